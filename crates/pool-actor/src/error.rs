//! Errors at the pool's boundary, and the reply port every request carries.

use std::collections::BTreeMap;

use credpool_core::{ProviderId, Timestamp, Unavailable};
use ractor::RpcReplyPort;

/// A reply port carrying a result: the last field of every request message.
pub(crate) type Reply<T> = RpcReplyPort<Result<T, PoolError>>;

/// What can go wrong asking a pool for something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Nothing is available now; `next_available_at` is the earliest time something will be
    /// (`None` when nothing will come back on its own: every entry is dead or there are none).
    #[error("no available entries for {provider}")]
    Exhausted {
        /// The provider.
        provider: ProviderId,
        /// The earliest moment an entry becomes available again.
        next_available_at: Option<Timestamp>,
        /// How many entries are unavailable for each reason.
        causes: BTreeMap<Unavailable, usize>,
    },
    /// The provider is not known.
    #[error("unknown provider {0}")]
    UnknownProvider(ProviderId),
    /// No entry matches the target.
    #[error("no entry matching {0:?}")]
    NoSuchEntry(String),
    /// More than one entry has that label.
    #[error("ambiguous entry label {0:?}: use the id or the 1-based index")]
    AmbiguousTarget(String),
    /// An entry with that label already exists in the pool (labels are unique per provider).
    #[error("an entry labelled {0:?} already exists")]
    LabelTaken(String),
    /// The request is malformed (empty label, bad position, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The store failed; the change was not made durable.
    #[error("store failed: {0}")]
    Store(String),
    /// The pool or registry is not running.
    #[error("pool stopped")]
    Stopped,
    /// The call did not complete in time.
    #[error("timed out waiting for the pool")]
    Timeout,
}

impl PoolError {
    /// A stable, machine-readable name of the error (the `code` of API answers).
    pub fn code(&self) -> &'static str {
        match self {
            PoolError::Exhausted { .. } => "exhausted",
            PoolError::UnknownProvider(_) => "unknown_provider",
            PoolError::NoSuchEntry(_) => "no_such_entry",
            PoolError::AmbiguousTarget(_) => "ambiguous_target",
            PoolError::LabelTaken(_) => "label_taken",
            PoolError::Invalid(_) => "invalid_request",
            PoolError::Store(_) => "store_failed",
            PoolError::Stopped => "stopped",
            PoolError::Timeout => "timeout",
        }
    }
}
