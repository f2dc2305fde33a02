//! [`ClientError`]: the one error type at the client's boundary.
//!
//! **Invariant:** no variant carries a secret; a failed request shows its status and
//! classification, never its body.

use std::collections::BTreeMap;

use credpool_core::{EntryId, ProviderId, Timestamp, Unavailable};
use credpool_pool_actor::PoolError;

use crate::failure::FailedRequest;

/// What can go wrong acquiring a credential or running a request with one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing is available for the provider now. `last_failure` is the last real rejection
    /// the recovery loop saw (the 429 or 402 that benched the last entry), if any.
    #[error("no available credentials for {provider}")]
    Exhausted {
        /// The provider.
        provider: ProviderId,
        /// The earliest moment a credential becomes available again; `None` when none will on
        /// its own (all dead, or none configured).
        next_available_at: Option<Timestamp>,
        /// How many entries are unavailable for each reason.
        causes: BTreeMap<Unavailable, usize>,
        /// The last rejection seen before the pool ran dry.
        last_failure: Option<Box<FailedRequest>>,
    },
    /// The request failed in a way no other credential fixes (a bad request, a transient
    /// failure after its retries); the pool was told what it needs to know.
    #[error("request failed: {0}")]
    Request(Box<FailedRequest>),
    /// The rejection came from an origin other than the credential's endpoint (a proxy, a
    /// redirect target, a misrouted base URL): the credential was not blamed.
    #[error("request rejected by a foreign origin: {0}")]
    ForeignOrigin(Box<FailedRequest>),
    /// The provider is not known to the registry.
    #[error("unknown provider {0}")]
    UnknownProvider(ProviderId),
    /// No provider serves the URL's host.
    #[error("no provider serves {0}")]
    NoProviderForUrl(String),
    /// The pool (or the whole registry) is not running, even after resolving it again.
    #[error("pool stopped")]
    Stopped,
    /// The secret cannot travel in an HTTP header (it holds control characters).
    #[error("credential {entry} cannot be sent as a header")]
    InvalidCredential {
        /// The entry whose secret is malformed.
        entry: EntryId,
    },
    /// An entry's secret could not be read from where it was said to be.
    #[error("no secret in {place}")]
    MissingSecret {
        /// Where it was looked for (a variable or file name, never a value).
        place: String,
    },
    /// Any other pool error (timeout, store failure, an admin target that does not match).
    #[error(transparent)]
    Pool(PoolError),
}

impl ClientError {
    /// Returns the last real rejection behind this error, if there is one.
    pub fn failure(&self) -> Option<&FailedRequest> {
        match self {
            ClientError::Exhausted { last_failure, .. } => last_failure.as_deref(),
            ClientError::Request(failed) | ClientError::ForeignOrigin(failed) => Some(failed),
            _ => None,
        }
    }

    /// Returns when a credential is available again, for [`ClientError::Exhausted`].
    pub fn next_available_at(&self) -> Option<Timestamp> {
        match self {
            ClientError::Exhausted {
                next_available_at, ..
            } => *next_available_at,
            _ => None,
        }
    }

    /// Adds the last rejection to an exhaustion error.
    pub(crate) fn with_last_failure(self, failed: FailedRequest) -> Self {
        match self {
            ClientError::Exhausted {
                provider,
                next_available_at,
                causes,
                last_failure: None,
            } => ClientError::Exhausted {
                provider,
                next_available_at,
                causes,
                last_failure: Some(Box::new(failed)),
            },
            other => other,
        }
    }
}

impl From<PoolError> for ClientError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Exhausted {
                provider,
                next_available_at,
                causes,
            } => ClientError::Exhausted {
                provider,
                next_available_at,
                causes,
                last_failure: None,
            },
            PoolError::UnknownProvider(provider) => ClientError::UnknownProvider(provider),
            PoolError::Stopped => ClientError::Stopped,
            other => ClientError::Pool(other),
        }
    }
}
