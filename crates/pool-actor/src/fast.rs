//! The message-free read path: a snapshot of the entries that the pool actor publishes and
//! that [`crate::PoolHandle::select`] picks from without a message (a shared read lock on the
//! snapshot pointer, then atomics on the picked entry).
//!
//! The pool actor stays the only writer of entries. After every change that can alter what
//! `Select` would hand out (an added, removed, moved, benched, revived, refreshed or killed
//! entry; a strategy change) it publishes a new immutable [`FastSnapshot`] *before* it replies
//! to the message that caused the change, so a caller that saw the reply never picks from an
//! older snapshot. What the snapshot cannot decide it leaves to the actor: a handle falls back
//! to a `Select` message whenever the fast path declines (another strategy than fill-first, a
//! strict cap, a model, nothing available, an expired cooldown the actor must revive first,
//! the actor not running).
//!
//! Lease counts live in per-entry atomics shared by the actor's slot, the snapshot and every
//! lease; a lease gives its count back itself when dropped. Usage counters of fast selections
//! accumulate in the same atomics and the actor folds them into its entries before it shows or
//! writes them (write-behind, snapshots, stats, views).
//!
//! **Invariants:**
//! - Only the pool actor publishes snapshots; a snapshot is built from entries already
//!   committed (rotated tokens are flushed before they appear here).
//! - The fast path never changes an entry: it takes a lease count and bumps usage atomics.
//! - When in doubt it declines; the actor's answer is always a correct one.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use credpool_core::{Clock, EntryId, Generation, Timestamp};

use crate::lease::{Grant, LeaseTicket, Leased};

/// Lease count and fast-path usage of one entry, shared by its slot, the snapshot and leases.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Leases held now.
    leases: AtomicU32,
    /// Selections made by the fast path since the actor last folded them in.
    fast_selections: AtomicU64,
    /// Wall time (ms) of the latest fast selection, 0 for none since the last fold.
    fast_last_used: AtomicI64,
}

impl Counters {
    /// Leases held now.
    pub(crate) fn leases(&self) -> u32 {
        self.leases.load(Ordering::Relaxed)
    }

    /// Takes one lease (the actor's path; it decides caps itself).
    pub(crate) fn acquire(&self) {
        self.leases.fetch_add(1, Ordering::AcqRel);
    }

    /// Gives one lease back; never below zero.
    pub(crate) fn release(&self) {
        let _ = self
            .leases
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Takes one lease if fewer than `cap` are held.
    fn try_acquire_under(&self, cap: u32) -> bool {
        self.leases
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Takes the fast selections made since the last call: (count, latest use).
    pub(crate) fn take_fast_usage(&self) -> Option<(u64, Timestamp)> {
        let count = self.fast_selections.swap(0, Ordering::AcqRel);
        let last = self.fast_last_used.swap(0, Ordering::AcqRel);
        (count > 0).then_some((count, Timestamp(last)))
    }
}

/// One selectable entry as the fast path sees it.
#[derive(Debug)]
pub(crate) struct FastEntry {
    /// What a lease carries, with the entry's id and generation (shared with the actor's
    /// slot).
    pub(crate) leased: Arc<Leased>,
    /// Selectable from this time on (cooldowns and every per-model bench over); the end of
    /// time for entries only the actor can change (dead, no secret yet).
    pub(crate) ready_from: Timestamp,
    /// Its status is a cooldown that will have expired: the actor revives it (status, event,
    /// log) on its first pick, so the fast path declines instead of picking it.
    pub(crate) revive_first: bool,
}

/// What the actor last published.
#[derive(Debug, Default)]
pub(crate) struct FastSnapshot {
    /// Whether the fast path may serve `Select` at all (fill-first with a soft cap).
    pub(crate) enabled: bool,
    /// Leases per entry before others are preferred.
    pub(crate) max_leases: u32,
    /// Every entry, in the actor's priority order: a position here is the slot's position
    /// when the snapshot was published (leases carry it as a lookup hint).
    pub(crate) entries: Vec<FastEntry>,
}

/// State shared by a pool actor and its handles.
#[derive(Debug)]
pub(crate) struct Shared {
    snapshot: RwLock<Arc<FastSnapshot>>,
    clock: Arc<dyn Clock>,
    /// Lease ids, unique per pool run, issued by both paths.
    next_lease_id: AtomicU64,
    /// The entry last handed out (`0`: none; entry ids are never 0).
    current: AtomicU64,
    /// Whether a dropped lease must also tell the actor (strict caps park waiters there).
    notify_release: AtomicBool,
    /// Auth failures against an older generation answered here, for the pool's stats.
    stale_reports: AtomicU64,
}

impl Shared {
    /// An empty, disabled fast path reading `clock`.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Shared {
            snapshot: RwLock::new(Arc::new(FastSnapshot::default())),
            clock,
            next_lease_id: AtomicU64::new(1),
            current: AtomicU64::new(0),
            notify_release: AtomicBool::new(false),
            stale_reports: AtomicU64::new(0),
        }
    }

    /// Installs a new snapshot (the pool actor only).
    pub(crate) fn publish(&self, snapshot: FastSnapshot, notify_release: bool) {
        self.notify_release.store(notify_release, Ordering::Release);
        let snapshot = Arc::new(snapshot);
        match self.snapshot.write() {
            Ok(mut slot) => *slot = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Returns a fresh lease id.
    pub(crate) fn next_lease_id(&self) -> u64 {
        self.next_lease_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Records the entry last handed out (no write when it is already the current one, so
    /// that tasks leasing the same entry do not bounce the cache line).
    pub(crate) fn set_current(&self, entry: Option<EntryId>) {
        let id = entry.map_or(0, |id| id.0);
        if self.current.load(Ordering::Relaxed) != id {
            self.current.store(id, Ordering::Relaxed);
        }
    }

    /// The entry last handed out.
    pub(crate) fn current(&self) -> Option<EntryId> {
        match self.current.load(Ordering::Relaxed) {
            0 => None,
            id => Some(EntryId(id)),
        }
    }

    /// Whether dropping a lease must also send the actor a `Release`.
    pub(crate) fn notify_release(&self) -> bool {
        self.notify_release.load(Ordering::Acquire)
    }

    /// Picks as the actor would with fill-first and a soft cap: the first selectable entry
    /// under the cap, else the least-leased selectable one. `None` leaves it to the actor.
    pub(crate) fn try_select(&self) -> Option<Grant> {
        let snapshot = self.snapshot.read().ok()?;
        if !snapshot.enabled || snapshot.entries.is_empty() {
            return None;
        }
        let now = self.clock.now();
        let cap = snapshot.max_leases.max(1);
        let mut least: Option<(u32, usize)> = None;
        for (position, entry) in snapshot.entries.iter().enumerate() {
            if entry.ready_from > now {
                continue;
            }
            if entry.revive_first {
                return None;
            }
            if entry.leased.counters.try_acquire_under(cap) {
                return Some(self.grant(entry, position, now));
            }
            let leases = entry.leased.counters.leases();
            if least.is_none_or(|(fewest, _)| leases < fewest) {
                least = Some((leases, position));
            }
        }
        let (_, position) = least?;
        let entry = snapshot.entries.get(position)?;
        entry.leased.counters.acquire();
        Some(self.grant(entry, position, now))
    }

    /// Leases `entry` itself if it is selectable and its generation is newer than `reported`
    /// (the answer to an auth failure once a refresh or someone else rotated the token).
    /// Like the actor's answer to refresh waiters it ignores the lease cap. `None` leaves it
    /// to the actor.
    /// `position` is where the entry was when the caller learnt of it (found by a scan if it
    /// moved since).
    pub(crate) fn lease_newer(
        &self,
        entry: EntryId,
        reported: Generation,
        position: usize,
    ) -> Option<Grant> {
        let snapshot = self.snapshot.read().ok()?;
        let position = match snapshot.entries.get(position) {
            Some(found) if found.leased.id == entry => position,
            _ => snapshot
                .entries
                .iter()
                .position(|found| found.leased.id == entry)?,
        };
        let found = snapshot.entries.get(position)?;
        let now = self.clock.now();
        if found.leased.generation <= reported || found.ready_from > now || found.revive_first {
            return None;
        }
        found.leased.counters.acquire();
        Some(self.grant(found, position, now))
    }

    /// Counts an auth failure against an older generation answered by [`Shared::lease_newer`].
    pub(crate) fn count_stale_report(&self) {
        self.stale_reports.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the stale reports counted since the last call.
    pub(crate) fn take_stale_reports(&self) -> u64 {
        self.stale_reports.swap(0, Ordering::Relaxed)
    }

    fn grant(&self, entry: &FastEntry, position: usize, now: Timestamp) -> Grant {
        let counters = &entry.leased.counters;
        counters.fast_selections.fetch_add(1, Ordering::Relaxed);
        // Written only when the clock moved on (milliseconds), not on every lease.
        if counters.fast_last_used.load(Ordering::Relaxed) < now.0 {
            counters.fast_last_used.fetch_max(now.0, Ordering::Relaxed);
        }
        self.set_current(Some(entry.leased.id));
        Grant {
            ticket: LeaseTicket {
                lease_id: self.next_lease_id(),
                entry: entry.leased.id,
                generation: entry.leased.generation,
            },
            leased: Arc::clone(&entry.leased),
            position,
        }
    }
}
