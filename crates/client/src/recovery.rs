//! The recovery loop's decisions, shared by [`crate::PoolClient::with_recovery`] and the
//! reqwest middleware: what a classified failure does to the lease, and when to stop.
//!
//! **Invariants:**
//! - Converge, never spin: every retry after a credential failure is either on an entry this
//!   loop has not failed with yet, or (once per loop) on an entry that now carries a newer
//!   token generation. With N entries that is at most N+1 credential attempts; transient
//!   same-credential retries are the caller's budget on top.
//! - A rejection from a foreign origin is never reported against the credential.
//! - A transient failure never benches a credential.
//! - The error returned when the pool runs dry carries the last real rejection, never one
//!   the loop made up.

use std::collections::HashMap;
use std::time::Duration;

use std::sync::Arc;

use credpool_core::registry::AuthHeader;
use credpool_core::{EntryId, FailureKind, Generation, Outcome, ProviderId};
use credpool_pool_actor::{Lease, PoolError, PoolHandle};

use crate::context::ClientContext;
use crate::credential::Credential;
use crate::error::ClientError;
use crate::failure::{FailedRequest, RequestFailure};

#[cfg(test)]
mod tests;

/// What the loop does with a failure of a given kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Report it as an auth failure; the pool refreshes the token (or hands back the current
    /// one, or rotates) and the loop retries with that.
    Refresh,
    /// Report the outcome (the pool benches or kills the entry) and lease another entry.
    Rotate,
    /// Retry the same credential after a backoff, within the caller's budget.
    RetrySame,
    /// Return the error; the credential is not to blame.
    GiveUp,
}

/// Maps a failure kind to the loop's action.
pub(crate) fn action_for(kind: &FailureKind) -> Action {
    match kind {
        FailureKind::AuthExpired => Action::Refresh,
        FailureKind::AuthInvalid { .. }
        | FailureKind::RateLimited { .. }
        | FailureKind::Billing { .. } => Action::Rotate,
        FailureKind::Transient { .. } => Action::RetrySame,
        // Model entitlement is about one model, and this loop leases for any model: benching
        // the whole credential would be wrong, so the caller gets the error.
        FailureKind::ModelEntitlement | FailureKind::Other => Action::GiveUp,
    }
}

/// The next step of a recovery loop.
pub(crate) enum Step {
    /// Try again with `lease` after `delay`.
    Retry {
        /// The credential to retry with.
        lease: Lease,
        /// How long to wait first.
        delay: Duration,
    },
    /// Stop with this error.
    Fail(ClientError),
}

/// One recovery loop: a request's attempts across credentials.
pub(crate) struct Recovery {
    client: Arc<ClientContext>,
    provider: ProviderId,
    handle: PoolHandle,
    auth_header: AuthHeader,
    /// The entries this loop failed with, at the generation that failed.
    failed: HashMap<EntryId, Generation>,
    /// Whether the one retry of an already-failed entry with a newer token was used.
    regenerated_retry_used: bool,
    transient_retries_used: u32,
}

impl Recovery {
    /// Starts a loop: resolves the pool and leases the first credential.
    pub(crate) async fn begin(
        client: Arc<ClientContext>,
        provider: &ProviderId,
    ) -> Result<(Recovery, Lease), ClientError> {
        let mut recovery = Recovery::for_lease(client, provider).await?;
        let lease = recovery.select().await?;
        Ok((recovery, lease))
    }

    /// Starts a loop for a lease the caller already holds (resolves the pool only).
    pub(crate) async fn for_lease(
        client: Arc<ClientContext>,
        provider: &ProviderId,
    ) -> Result<Recovery, ClientError> {
        let handle = client.handles.handle(provider).await?;
        Ok(Recovery {
            auth_header: client.auth_header(provider),
            client,
            provider: provider.clone(),
            handle,
            failed: HashMap::new(),
            regenerated_retry_used: false,
            transient_retries_used: 0,
        })
    }

    /// Leases a credential, resolving the pool again once if it stopped.
    async fn select(&mut self) -> Result<Lease, ClientError> {
        match self.handle.select(None).await {
            Err(PoolError::Stopped) => {
                self.reresolve().await?;
                self.handle.select(None).await.map_err(ClientError::from)
            }
            other => other.map_err(ClientError::from),
        }
    }

    async fn reresolve(&mut self) -> Result<(), ClientError> {
        tracing::debug!(provider = %self.provider, "pool stopped; resolving it again");
        self.client.handles.forget(&self.provider);
        self.handle = self.client.handles.handle(&self.provider).await?;
        Ok(())
    }

    /// The facts of a lease for the request closure.
    pub(crate) fn credential(&self, lease: &Lease) -> Credential {
        Credential::of(lease, &self.provider, self.auth_header)
    }

    /// Decides what to do after `failure` of a request made with `lease`.
    pub(crate) async fn failed(&mut self, lease: Lease, failure: RequestFailure) -> Step {
        let classification =
            self.client
                .classify(&self.provider, lease.credential_kind(), &failure);
        let foreign = failure.is_foreign_to(lease.base_url());
        let failed = FailedRequest {
            failure,
            classification,
        };
        if foreign {
            tracing::warn!(
                provider = %self.provider,
                entry = %lease.entry_id(),
                status = ?failed.failure.status,
                "rejection from a foreign origin; the credential is not blamed"
            );
            drop(lease);
            return Step::Fail(ClientError::ForeignOrigin(Box::new(failed)));
        }
        let action = action_for(&failed.classification.kind);
        tracing::debug!(
            provider = %self.provider,
            entry = %lease.entry_id(),
            generation = %lease.generation(),
            kind = failed.classification.kind.name(),
            ?action,
            "request failed"
        );
        match action {
            Action::GiveUp => {
                drop(lease);
                Step::Fail(ClientError::Request(Box::new(failed)))
            }
            Action::RetrySame => {
                if self.transient_retries_used < self.client.config.transient_retries {
                    let delay = self
                        .client
                        .config
                        .transient_backoff
                        .saturating_mul(1 << self.transient_retries_used.min(16));
                    self.transient_retries_used += 1;
                    return Step::Retry { lease, delay };
                }
                let outcome = Outcome::Failure(failed.classification.clone());
                if let Err(error) = self.handle.report(lease, outcome, None).await {
                    tracing::debug!(provider = %self.provider, %error, "report failed");
                }
                Step::Fail(ClientError::Request(Box::new(failed)))
            }
            Action::Refresh => {
                self.failed.insert(lease.entry_id(), lease.generation());
                let answer = self
                    .handle
                    .report_auth_failure(lease, failed.classification.clone(), None)
                    .await;
                let next = match answer {
                    Err(PoolError::Stopped) => match self.reresolve().await {
                        Ok(()) => self.select().await,
                        Err(error) => Err(error),
                    },
                    other => other.map_err(ClientError::from),
                };
                self.accept(next, failed)
            }
            Action::Rotate => {
                self.failed.insert(lease.entry_id(), lease.generation());
                let outcome = Outcome::Failure(failed.classification.clone());
                if let Err(error) = self.handle.report(lease, outcome, None).await {
                    tracing::debug!(provider = %self.provider, %error, "report failed");
                }
                let next = self.select().await;
                self.accept(next, failed)
            }
        }
    }

    /// Accepts what the pool handed back, or stops when it offers nothing new.
    fn accept(&mut self, next: Result<Lease, ClientError>, failed: FailedRequest) -> Step {
        match next {
            Ok(lease) => match self.failed.get(&lease.entry_id()) {
                None => Step::Retry {
                    lease,
                    delay: Duration::ZERO,
                },
                Some(&generation)
                    if lease.generation() > generation && !self.regenerated_retry_used =>
                {
                    self.regenerated_retry_used = true;
                    Step::Retry {
                        lease,
                        delay: Duration::ZERO,
                    }
                }
                Some(_) => {
                    // The pool offers a credential this loop already failed with: stop here
                    // rather than go round again.
                    drop(lease);
                    Step::Fail(ClientError::Request(Box::new(failed)))
                }
            },
            Err(error) => Step::Fail(error.with_last_failure(failed)),
        }
    }
}
