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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use credpool_core::{Clock, EntryId, Generation, Timestamp};

use crate::join::{RefreshJoin, spawn_refresh_watchdog};
use crate::lease::{Grant, LeaseTicket, Leased};

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
    /// The refreshes in flight, which auth-failure callers join without a message (kept
    /// apart from `entries`: usually empty, and no cost per entry).
    pub(crate) refreshing: Vec<(EntryId, Arc<RefreshJoin>)>,
}

impl FastSnapshot {
    /// Finds `entry`, looking at `hint` (where it was when the caller learnt of it) first.
    fn find(&self, entry: EntryId, hint: usize) -> Option<(usize, &FastEntry)> {
        match self.entries.get(hint) {
            Some(found) if found.leased.id == entry => Some((hint, found)),
            _ => self
                .entries
                .iter()
                .enumerate()
                .find(|(_, found)| found.leased.id == entry),
        }
    }
}

/// State shared by a pool actor and its handles.
#[derive(Debug)]
pub(crate) struct Shared {
    snapshot: RwLock<Arc<FastSnapshot>>,
    clock: Arc<dyn Clock>,
    /// The entry last handed out (`0`: none; entry ids are never 0).
    current: AtomicU64,
    /// Auth failures against an older generation answered here, for the pool's stats.
    stale_reports: AtomicU64,
    /// Refreshes asked for by a report on its way to the actor: later reports of the same
    /// expired token wait on the claim instead of queueing thousands of messages ahead of
    /// the refresh's result. Usually empty.
    claims: Mutex<Vec<Claim>>,
}

/// A refresh claimed by the first caller that reported (entry, generation) expired.
#[derive(Debug)]
struct Claim {
    entry: EntryId,
    join: Arc<RefreshJoin>,
}

/// What [`Shared::claim_refresh`] found.
#[derive(Debug)]
pub(crate) enum Claimed {
    /// Nobody had claimed it: this caller reports it, carrying the join to the actor.
    First(Arc<RefreshJoin>),
    /// Somebody had: wait on their join.
    Joined(Arc<RefreshJoin>),
}

impl Shared {
    /// An empty, disabled fast path reading `clock`.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Shared {
            snapshot: RwLock::new(Arc::new(FastSnapshot::default())),
            clock,
            current: AtomicU64::new(0),
            stale_reports: AtomicU64::new(0),
            claims: Mutex::default(),
        }
    }

    /// Installs a new snapshot (the pool actor only).
    pub(crate) fn publish(&self, snapshot: FastSnapshot) {
        let snapshot = Arc::new(snapshot);
        match self.snapshot.write() {
            Ok(mut slot) => *slot = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Returns a fresh lease id: unique in the process, taken from a block of ids per thread
    /// so that concurrent leases do not all write one counter.
    pub(crate) fn next_lease_id(&self) -> u64 {
        const BLOCK: u64 = 1024;
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
        }
        IDS.with(|ids| {
            let (mut next, mut end) = ids.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            ids.set((next + 1, end));
            next
        })
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
                return Some(self.grant(&entry.leased, position, now));
            }
            let leases = entry.leased.counters.leases();
            if least.is_none_or(|(fewest, _)| leases < fewest) {
                least = Some((leases, position));
            }
        }
        let (_, position) = least?;
        let entry = snapshot.entries.get(position)?;
        entry.leased.counters.acquire();
        Some(self.grant(&entry.leased, position, now))
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
        let (position, found) = snapshot.find(entry, position)?;
        let now = self.clock.now();
        if found.leased.generation <= reported || found.ready_from > now || found.revive_first {
            return None;
        }
        found.leased.counters.acquire();
        Some(self.grant(&found.leased, position, now))
    }

    /// Joins the refresh of `entry` in flight if it spends the `reported` generation's
    /// refresh token (what the actor would do with the report, without asking it). `None`
    /// leaves the report to the actor.
    pub(crate) fn join_refresh(
        &self,
        entry: EntryId,
        reported: Generation,
    ) -> Option<Arc<RefreshJoin>> {
        let snapshot = self.snapshot.read().ok()?;
        let (_, join) = snapshot
            .refreshing
            .iter()
            .find(|(id, join)| *id == entry && join.generation == reported)?;
        Some(join.join())
    }

    /// Leases what a settled refresh produced if its generation is newer than `reported`
    /// (no lock: the actor left it in the join). Like [`Shared::lease_newer`] it ignores the
    /// lease cap. `None` leaves it to the snapshot or the actor.
    pub(crate) fn lease_refreshed(
        &self,
        join: &RefreshJoin,
        reported: Generation,
    ) -> Option<Grant> {
        let refreshed = join.outcome.get()?.as_ref()?;
        if refreshed.leased.generation <= reported {
            return None;
        }
        refreshed.leased.counters.acquire();
        Some(self.grant(&refreshed.leased, refreshed.position, refreshed.at))
    }

    /// Claims the refresh of `entry` at `generation` for an expired-token report, or joins
    /// the claim of whoever reported it first. A new claim gets its watchdog (ticking every
    /// `period`), so its joiners' waits are bounded even if the report never arrives.
    pub(crate) fn claim_refresh(
        &self,
        entry: EntryId,
        generation: Generation,
        period: Duration,
    ) -> Claimed {
        let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = claims
            .iter()
            .position(|claim| claim.entry == entry && claim.join.generation == generation)
        {
            if !claims[found].join.is_settled() {
                return Claimed::Joined(claims[found].join.join());
            }
            // Over and not yet forgotten: joining it would answer without the report ever
            // reaching the actor. This caller claims anew.
            claims.swap_remove(found);
        }
        let join = Arc::new(RefreshJoin::new(generation));
        claims.push(Claim {
            entry,
            join: Arc::clone(&join),
        });
        drop(claims);
        spawn_refresh_watchdog(Arc::clone(&join), period);
        Claimed::First(join)
    }

    /// Forgets the claims of `entry` at `generation` (their joins are settled or now belong
    /// to a refresh in flight, which the snapshot offers).
    pub(crate) fn drop_claims(&self, entry: EntryId, generation: Generation) {
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|claim| claim.entry != entry || claim.join.generation != generation);
    }

    /// Counts an auth failure against an older generation answered by [`Shared::lease_newer`].
    pub(crate) fn count_stale_report(&self) {
        self.stale_reports.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the stale reports counted since the last call.
    pub(crate) fn take_stale_reports(&self) -> u64 {
        self.stale_reports.swap(0, Ordering::Relaxed)
    }

    fn grant(&self, leased: &Arc<Leased>, position: usize, now: Timestamp) -> Grant {
        let counters = &leased.counters;
        counters.fast_selections.fetch_add(1, Ordering::Relaxed);
        // Written only when the clock moved on (milliseconds), not on every lease.
        if counters.fast_last_used.load(Ordering::Relaxed) < now.0 {
            counters.fast_last_used.fetch_max(now.0, Ordering::Relaxed);
        }
        self.set_current(Some(leased.id));
        Grant {
            ticket: LeaseTicket {
                lease_id: self.next_lease_id(),
                entry: leased.id,
                generation: leased.generation,
            },
            leased: Arc::clone(leased),
            position,
        }
    }
}
