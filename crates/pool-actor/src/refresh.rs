//! The seam between a pool and whatever refreshes OAuth tokens.
//!
//! The pool decides *when* a refresh happens and commits its result; the [`RefreshSeam`]
//! only talks to token endpoints. The refresher crate implements it; tests use fakes.
//!
//! **Invariant:** a seam never writes entries; it returns a [`RefreshResult`] through the
//! callback and the pool commits it before anyone sees the new token.

use std::fmt;
use std::time::Duration;

use credpool_core::{ClientMetadata, EntryId, Generation, ProviderId, Secret, Timestamp};

/// A request to refresh one entry at one generation.
#[derive(Debug, Clone)]
pub struct RefreshRequest {
    /// The provider.
    pub provider: ProviderId,
    /// The entry.
    pub entry: EntryId,
    /// The generation whose refresh token is being spent.
    pub generation: Generation,
    /// The refresh token to spend.
    pub refresh_token: Secret,
    /// The grant's client facts (client id, endpoint override).
    pub client: ClientMetadata,
    /// True when this retries a refresh a crash interrupted: a reuse or `invalid_grant`
    /// answer then means the grant is lost (`refresh_interrupted`).
    pub after_interruption: bool,
}

/// Why a refresh failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshFailure {
    /// Worth retrying later (timeout, 5xx, 429, an HTML page, a malformed answer).
    Transient {
        /// What happened, without secrets.
        reason: String,
        /// How long the endpoint asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The grant is dead (`invalid_grant`, `refresh_token_reused`, …).
    Terminal {
        /// The provider's code.
        code: String,
    },
}

/// The outcome of a refresh.
#[derive(Debug, Clone)]
pub enum RefreshResult {
    /// New tokens; `refresh` is `None` when the provider kept the old refresh token.
    Rotated {
        /// The new access token.
        access: Secret,
        /// The new refresh token, if the provider rotated it.
        refresh: Option<Secret>,
        /// When the new access token expires.
        expires_at: Option<Timestamp>,
    },
    /// The refresh failed.
    Failed(RefreshFailure),
}

/// Delivers a [`RefreshResult`] back to the pool that asked.
pub struct RefreshCallback(Box<dyn FnOnce(RefreshResult) + Send>);

impl RefreshCallback {
    /// Wraps a closure.
    pub fn new(deliver: impl FnOnce(RefreshResult) + Send + 'static) -> Self {
        RefreshCallback(Box::new(deliver))
    }

    /// Delivers the result.
    pub fn deliver(self, result: RefreshResult) {
        (self.0)(result);
    }
}

impl fmt::Debug for RefreshCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshCallback")
    }
}

/// Tells the refresher about an OAuth entry's tokens, so it can arm proactive refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackUpdate {
    /// The provider.
    pub provider: ProviderId,
    /// The entry.
    pub entry: EntryId,
    /// The current generation.
    pub generation: Generation,
    /// When the current access token expires; `None` when unknown or the entry is gone.
    pub expires_at: Option<Timestamp>,
    /// When the current access token was obtained (its lifetime decides the skew).
    pub obtained_at: Option<Timestamp>,
    /// True when the entry was removed or died: forget it.
    pub forget: bool,
}

/// Something that can refresh OAuth tokens for a pool.
pub trait RefreshSeam: Send + Sync + fmt::Debug + 'static {
    /// Starts a refresh; the result comes back through `done`, exactly once.
    fn refresh(&self, request: RefreshRequest, done: RefreshCallback);

    /// Notes an entry's current tokens (arms or re-arms its proactive timer).
    fn track(&self, update: TrackUpdate);

    /// Asks for a retry after the usual backoff of a refresh the pool could not start (its
    /// durable marker could not be written, so no token was sent); the retry arrives as
    /// [`crate::PoolHandle::refresh_due`] for `generation`.
    fn retry_later(&self, _provider: &ProviderId, _entry: EntryId, _generation: Generation) {}

    /// Gives the seam a handle on a pool it serves, so proactive timers can call
    /// [`crate::PoolHandle::refresh_due`]. Called when the pool (re)starts.
    fn attach(&self, _pool: crate::PoolHandle) {}
}

/// A seam for pools without OAuth refresh: every refresh fails transiently.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRefresher;

impl RefreshSeam for NoRefresher {
    fn refresh(&self, _request: RefreshRequest, done: RefreshCallback) {
        done.deliver(RefreshResult::Failed(RefreshFailure::Transient {
            reason: "no refresher configured".to_owned(),
            retry_after: None,
        }));
    }

    fn track(&self, _update: TrackUpdate) {}
}
