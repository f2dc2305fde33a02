//! Errors at the pool's boundary.

use std::collections::BTreeMap;

use credpool_core::{ProviderId, Timestamp};

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
        /// How many entries are unavailable for each reason (`rate_limited`, `dead`, …).
        causes: BTreeMap<String, usize>,
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
