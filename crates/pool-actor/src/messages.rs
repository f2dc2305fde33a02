//! The pool actor's message enum and its answers.
//!
//! One enum per actor; request variants end with `reply`. These types stay inside the crate:
//! callers use [`crate::PoolHandle`]. Admin requests travel as one variant
//! ([`crate::admin::AdminMsg`]); the registry's messages live beside it in `registry.rs`.

use std::sync::Arc;

use credpool_core::{Classification, EntryId, Generation, Outcome};

use crate::admin::AdminMsg;
use crate::error::Reply;
use crate::events::Subscription;
use crate::join::RefreshJoin;
use crate::lease::{Grant, LeaseTicket};
use crate::refresh::RefreshResult;
use crate::view::EntryView;

/// Messages of a `PoolActor`.
pub(crate) enum PoolMsg {
    /// Hands out a lease for `model` (or any model), or says which refresh to wait for.
    Select {
        model: Option<String>,
        reply: Reply<Answer>,
    },
    /// Returns the entry last handed out.
    Current { reply: Reply<Option<EntryView>> },
    /// Force-refreshes the entry last handed out (or the first live grant) and says which
    /// refresh to wait for.
    TryRefreshCurrent { reply: Reply<Answer> },
    /// Reports that a lease's credential was rejected; answers with what to retry with.
    ReportAuthFailure {
        ticket: LeaseTicket,
        failure: Classification,
        model: Option<String>,
        /// The join other callers of the same expired token wait on (see
        /// `Shared::claim_refresh`): the actor settles it with whatever it decides.
        claim: Option<Arc<RefreshJoin>>,
        reply: Reply<Answer>,
    },
    /// Reports any other outcome; the lease is returned. Acknowledged once durable.
    ReportOutcome {
        ticket: LeaseTicket,
        outcome: Outcome,
        model: Option<String>,
        reply: Option<Reply<()>>,
    },
    /// A lease came back (it already gave its count back); serves strict-cap waiters.
    Release,
    /// A refresh this pool started has finished.
    RefreshFinished {
        entry: EntryId,
        generation: Generation,
        result: RefreshResult,
    },
    /// The refresher's timer fired for (entry, generation): proactive, or a backoff retry.
    RefreshDue {
        entry: EntryId,
        generation: Generation,
    },
    /// A strict-cap waiter's time is up.
    WaiterTimeout { waiter: u64 },
    /// Writes behind the counters and cursor, and retries commits the store refused.
    WriteBehind,
    /// An admin operation.
    Admin(AdminMsg),
    /// Adds a subscriber to the pool's events.
    Subscribe(Subscription),
    /// Flushes write-behind state and the store (shutdown, tests).
    Flush { reply: Reply<()> },
    /// Fails the actor as a bug would (tests of the supervisor's restart policy).
    Crash,
}

/// What the pool answers a caller that needs a lease.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The lease to use.
    Lease(Grant),
    /// A refresh of `entry` is in flight: wait on `join` (see `RefreshJoin::wait`), then
    /// lease what it produced if its generation moved past `reported`, or ask the actor for
    /// any lease.
    AwaitRefresh {
        entry: EntryId,
        reported: Generation,
        /// The entry's position when the answer was sent (a lookup hint).
        position: usize,
        join: Arc<RefreshJoin>,
    },
}
