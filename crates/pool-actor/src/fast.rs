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

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use credpool_core::{Clock, EntryId, Generation, Timestamp};
use tokio::sync::Notify;

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

/// What a refresh leaves its joiners to lease.
#[derive(Debug, Clone)]
pub(crate) struct Refreshed {
    /// The rotated entry's lease data.
    pub(crate) leased: Arc<Leased>,
    /// Its position in the snapshot published with it.
    pub(crate) position: usize,
    /// When the refresh's result came back: the joiners' leases are dated by it (a clock
    /// read less for each of them; they lease it within milliseconds).
    pub(crate) at: Timestamp,
}

/// How a wait on a joined refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinedRefresh {
    /// The refresh is over: lease what it produced (or ask the actor).
    Settled,
    /// Two watchdog periods passed since the caller joined (more than half a
    /// `call_timeout`, at most a whole one): the caller gives up; the refresh goes on and
    /// its result is still committed.
    Overdue,
}

/// A refresh in flight that callers join without a message and without a timer of their
/// own, and that they lease what it produced from (no lock on the tail of a stampede).
///
/// Waiters are spread over [`WAKE_SHARDS`] notifiers. The settling actor wakes shard after
/// shard, and every woken caller first claims and wakes one shard still asleep, so both
/// cores wake callers at once instead of one core waking thousands while the other runs them.
///
/// **Invariants:** `outcome` is set before `state` says settled, and only by the pool actor
/// after the rotated tokens are committed and published; `state` only moves forward; every
/// shard is woken after `state` says settled (or ticked).
///
/// Laid out for the tail of a stampede: what every woken caller reads (`generation`,
/// `state`, `outcome`) shares no cache line with the reference count or anything written
/// then (each shard, `woken_shards`, `joined`).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct RefreshJoin {
    /// The generation whose refresh token is being spent: only a report against this one
    /// joins.
    pub(crate) generation: Generation,
    /// Watchdog ticks (half a `call_timeout` each) in the low bits; `SETTLED` once over.
    state: AtomicU64,
    /// What joined callers lease once it is settled: the rotated entry when it is
    /// selectable, `None` when they must ask the actor.
    outcome: OnceLock<Option<Refreshed>>,
    wake: [Padded<Notify>; WAKE_SHARDS],
    /// Shards claimed for waking since the refresh settled.
    woken_shards: Padded<AtomicUsize>,
    /// Callers that joined through the snapshot, without a message.
    joined: Padded<AtomicU64>,
}

/// A value on cache lines of its own (two lines: adjacent-line prefetch pairs them).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// How many notifiers a refresh's waiters are spread over.
pub(crate) const WAKE_SHARDS: usize = 16;

const SETTLED: u64 = 1 << 63;

thread_local! {
    /// Spreads a thread's joiners over the shards without a shared counter.
    static NEXT_SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl RefreshJoin {
    /// A join for the refresh of `generation`.
    pub(crate) fn new(generation: Generation) -> Self {
        RefreshJoin {
            generation,
            state: AtomicU64::new(0),
            outcome: OnceLock::new(),
            wake: std::array::from_fn(|_| Padded(Notify::new())),
            woken_shards: Padded(AtomicUsize::new(0)),
            joined: Padded(AtomicU64::new(0)),
        }
    }

    /// Callers that joined through the snapshot so far.
    pub(crate) fn joined(&self) -> u64 {
        self.joined.load(Ordering::Acquire)
    }

    /// Ends the refresh for its joiners: they lease `outcome` (the rotated entry, when
    /// selectable) or ask the actor. Only the first call counts.
    pub(crate) fn settle(&self, outcome: Option<Refreshed>) {
        let _ = self.outcome.set(outcome);
        if self.state.fetch_or(SETTLED, Ordering::AcqRel) & SETTLED == 0 {
            // Woken callers claim shards too (one each, see `wait`); the settler wakes every
            // shard nobody claimed before it got there.
            while self.wake_one_shard() {}
        }
    }

    /// Claims a shard still asleep after the settle and wakes it; `false` when none is left.
    /// A claimed shard is woken by its claimer, so each shard is woken exactly once.
    fn wake_one_shard(&self) -> bool {
        if self.woken_shards.load(Ordering::Acquire) >= WAKE_SHARDS {
            return false;
        }
        let shard = self.woken_shards.fetch_add(1, Ordering::AcqRel);
        match self.wake.get(shard) {
            Some(wake) => {
                wake.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// Wakes every shard (a watchdog tick).
    fn wake_all(&self) {
        for wake in &self.wake {
            wake.notify_waiters();
        }
    }

    /// Whether the refresh is over.
    pub(crate) fn is_settled(&self) -> bool {
        self.state.load(Ordering::Acquire) & SETTLED != 0
    }

    /// Waits until the refresh is settled, or gives up at the watchdog's second tick after
    /// the call.
    pub(crate) async fn wait(&self) -> JoinedRefresh {
        let shard = NEXT_SHARD.with(|next| {
            let shard = next.get();
            next.set(shard.wrapping_add(1));
            shard % WAKE_SHARDS
        });
        let give_up = self.state.load(Ordering::Acquire).saturating_add(2);
        let ended = |state: u64| {
            if state & SETTLED != 0 {
                Some(JoinedRefresh::Settled)
            } else {
                (state >= give_up).then_some(JoinedRefresh::Overdue)
            }
        };
        loop {
            // Read first without registering: a woken caller must not queue on the lock the
            // settling actor is waking the others under.
            if let Some(ended) = ended(self.state.load(Ordering::Acquire)) {
                if ended == JoinedRefresh::Settled {
                    // Help the settler: one shard, so that this caller is not held up long.
                    self.wake_one_shard();
                }
                return ended;
            }
            let woken = self.wake[shard].notified();
            let mut woken = std::pin::pin!(woken);
            // Registered before the state is read again: a settle or tick after the read
            // wakes it.
            woken.as_mut().enable();
            if ended(self.state.load(Ordering::Acquire)).is_some() {
                continue;
            }
            woken.await;
        }
    }

    /// Joins through the snapshot: counts the caller.
    fn join(self: &Arc<Self>) -> Arc<RefreshJoin> {
        self.joined.fetch_add(1, Ordering::AcqRel);
        Arc::clone(self)
    }
}

/// Ticks `join` every `period` until it is settled, so that its joiners give up without
/// timers of their own (see [`RefreshJoin::wait`]).
pub(crate) fn spawn_refresh_watchdog(join: Arc<RefreshJoin>, period: Duration) {
    let period = period.max(Duration::from_millis(1));
    tokio::spawn(async move {
        loop {
            // Shard 0 is always woken on a settle (by the settler or a helper).
            let settled = join.wake[0].notified();
            let mut settled = std::pin::pin!(settled);
            settled.as_mut().enable();
            if join.is_settled() {
                return;
            }
            if tokio::time::timeout(period, settled).await.is_err() {
                join.state.fetch_add(1, Ordering::AcqRel);
                join.wake_all();
            }
        }
    });
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
