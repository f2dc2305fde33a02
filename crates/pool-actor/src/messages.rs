//! The message enums of the pool actor and the registry.
//!
//! One enum per actor; request variants end with `reply`. These types stay inside the crate:
//! callers use [`crate::PoolHandle`] and [`crate::PoolRegistry`].

use std::fmt;
use std::sync::Arc;

use credpool_core::{Classification, EntryKind, Outcome, ProviderId, SecretSource, Strategy};
use ractor::{ActorRef, RpcReplyPort};

use crate::error::PoolError;
use crate::events::EventStream;
use crate::fast::Shared;
use crate::lease::{Grant, LeaseTicket};
use crate::refresh::RefreshResult;
use crate::view::{EntryView, PoolSnapshot, PoolStats, ProviderSummary};
use credpool_core::{EntryId, Generation};

/// A reply port carrying a result.
pub(crate) type Reply<T> = RpcReplyPort<Result<T, PoolError>>;

/// How an admin names an entry: its id, its label (case-insensitive, must be unique), or its
/// 1-based position in priority order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(pub String);

impl From<&str> for Target {
    fn from(text: &str) -> Self {
        Target(text.to_owned())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An entry to add.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Its label; must not be empty.
    pub label: String,
    /// The credential.
    pub kind: EntryKind,
    /// Where it came from.
    pub source: SecretSource,
    /// Its priority; `None` puts it last.
    pub priority: Option<u32>,
    /// The endpoint it is bound to; `None` uses the provider's default.
    pub base_url: Option<String>,
    /// Weight for `weighted_random`.
    pub weight: Option<u32>,
}

/// Messages of a `PoolActor`.
pub(crate) enum PoolMsg {
    /// Hands out a lease for `model` (or any model).
    Select {
        model: Option<String>,
        reply: Reply<Grant>,
    },
    /// Returns the entry last handed out.
    Current {
        reply: Reply<Option<EntryView>>,
    },
    /// Force-refreshes the entry last handed out and leases it.
    TryRefreshCurrent {
        reply: Reply<Grant>,
    },
    /// Reports that a lease's credential was rejected; answers with what to retry with.
    ReportAuthFailure {
        ticket: LeaseTicket,
        failure: Classification,
        model: Option<String>,
        /// The join other callers of the same expired token wait on (see
        /// `Shared::claim_refresh`): the actor settles it with whatever it decides.
        claim: Option<std::sync::Arc<crate::fast::RefreshJoin>>,
        reply: Reply<AuthAnswer>,
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
    /// The refresher's proactive timer fired for (entry, generation).
    RefreshDue {
        entry: EntryId,
        generation: Generation,
    },
    /// A strict-cap waiter's time is up.
    WaiterTimeout {
        waiter: u64,
    },
    /// Writes behind the counters and cursor.
    WriteBehind,
    // ---- admin ----
    Snapshot {
        reply: Reply<PoolSnapshot>,
    },
    AddEntry {
        entry: NewEntry,
        reply: Reply<EntryView>,
    },
    RemoveEntry {
        target: Target,
        reply: Reply<EntryView>,
    },
    ResetEntry {
        target: Target,
        reply: Reply<EntryView>,
    },
    RefreshEntry {
        target: Target,
        reply: Reply<EntryView>,
    },
    MoveEntry {
        target: Target,
        position: usize,
        reply: Reply<EntryView>,
    },
    SetStrategy {
        strategy: Strategy,
        reply: Reply<()>,
    },
    Stats {
        reply: Reply<PoolStats>,
    },
    Subscribe {
        capacity: usize,
        reply: RpcReplyPort<EventStream>,
    },
    /// Flushes write-behind state and the store (shutdown, tests).
    Flush {
        reply: Reply<()>,
    },
    /// Fails the actor as a bug would (tests of the supervisor's restart policy).
    Crash,
}

/// The pool's answer to an auth failure.
#[derive(Debug)]
pub(crate) enum AuthAnswer {
    /// What to retry with.
    Lease(Grant),
    /// A refresh of `entry` is in flight: wait on `join` (see `RefreshJoin::wait`), then
    /// lease what it produced if its generation moved past `reported`, or ask the actor for
    /// any lease.
    AwaitRefresh {
        entry: EntryId,
        reported: Generation,
        /// The entry's position when the answer was sent (a lookup hint).
        position: usize,
        join: std::sync::Arc<crate::fast::RefreshJoin>,
    },
}

/// Messages of the registry.
pub(crate) enum RegistryMsg {
    /// Returns (spawning if needed) the pool actor of a provider.
    GetPool {
        provider: ProviderId,
        reply: Reply<(ActorRef<PoolMsg>, Arc<Shared>)>,
    },
    /// Lists the running pools.
    ListProviders { reply: Reply<Vec<ProviderSummary>> },
    /// Kills every pool and the registry without flushing (crash tests).
    Abort,
}
