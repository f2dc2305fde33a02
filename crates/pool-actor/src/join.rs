//! One refresh in flight, as the callers waiting for it see it: a [`RefreshJoin`] they wait
//! on without a message and without a timer of their own, and the [`Refreshed`] entry they
//! lease from once it is settled.
//!
//! Every caller that waits for a refresh — one that reported the expired token through the
//! snapshot, one the actor answered by message, a `Select` waiting for a grant's first token,
//! a forced refresh — waits on the entry's join (there is no other waiting mechanism).
//!
//! **Invariants:** only the pool actor settles a join with an outcome, after the rotated
//! tokens are committed and published; a join is settled exactly once, at the latest when
//! its refresh record is dropped; a waiter's wait is bounded by the refresh's watchdog.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use credpool_core::{Generation, Timestamp};
use tokio::sync::Notify;

use crate::lease::Leased;

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
    pub(crate) outcome: OnceLock<Option<Refreshed>>,
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
    pub(crate) fn join(self: &Arc<Self>) -> Arc<RefreshJoin> {
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
