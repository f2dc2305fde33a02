//! [`PoolClient`]: the handle every worker of a runtime shares to acquire credentials, report
//! how they went, and run requests with recovery.
//!
//! **Invariants:**
//! - The client keeps no credential state of its own: the pool actor owns entries, statuses
//!   and tokens; the client caches only handles.
//! - The hot path is memory only: `acquire` reads the pool's published snapshot (a message
//!   only when the snapshot cannot decide), and a success report gives the lease back and
//!   counts the success in shared counters, without a message.

use std::future::Future;
use std::sync::Arc;

use credpool_core::{Classification, Clock, Outcome, ProviderId, ProviderRegistry, SystemClock};
use credpool_pool_actor::{Lease, PoolRegistry};

use crate::context::{ClientContext, RecoveryConfig};
use crate::credential::Credential;
use crate::error::ClientError;
use crate::failure::RequestFailure;
use crate::handles::HandleCache;
use crate::recovery::{Recovery, Step};

/// The credential client of one runtime: cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct PoolClient {
    inner: Arc<ClientContext>,
}

impl std::fmt::Debug for PoolClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl PoolClient {
    /// Builds a client over a running registry. `providers` resolves hosts and auth headers;
    /// pass the registry's own provider set.
    pub fn new(
        registry: PoolRegistry,
        providers: ProviderRegistry,
        config: RecoveryConfig,
    ) -> Self {
        PoolClient {
            inner: Arc::new(ClientContext {
                handles: HandleCache::new(registry),
                providers,
                config,
                clock: Arc::new(SystemClock),
            }),
        }
    }

    /// Returns a client that reads `clock` when classifying (reset times); the handle cache
    /// starts empty.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        PoolClient {
            inner: Arc::new(ClientContext {
                handles: HandleCache::new(self.inner.handles.registry().clone()),
                providers: self.inner.providers.clone(),
                config: self.inner.config.clone(),
                clock,
            }),
        }
    }

    /// Returns the recovery settings.
    pub fn config(&self) -> &RecoveryConfig {
        &self.inner.config
    }

    /// Returns the provider set used for host resolution and auth headers.
    pub fn providers(&self) -> &ProviderRegistry {
        &self.inner.providers
    }

    /// Returns the underlying registry.
    pub fn registry(&self) -> &PoolRegistry {
        self.inner.handles.registry()
    }

    pub(crate) fn context(&self) -> &Arc<ClientContext> {
        &self.inner
    }

    /// Resolves the provider serving a URL's host (`https://api.x.ai/v1` → `xai-oauth`).
    pub fn provider_for_url(&self, url: &str) -> Result<ProviderId, ClientError> {
        self.inner.provider_for_url(url)
    }

    /// Leases a credential of `provider`.
    pub async fn acquire(&self, provider: &ProviderId) -> Result<Lease, ClientError> {
        self.inner
            .handles
            .call(provider, |handle| async move { handle.select(None).await })
            .await
            .map_err(ClientError::from)
    }

    /// Leases a credential of `provider` usable for `model` (entries benched for that model,
    /// or not serving it, are skipped); `None` is [`PoolClient::acquire`].
    pub async fn acquire_for_model(
        &self,
        provider: &ProviderId,
        model: Option<&str>,
    ) -> Result<Lease, ClientError> {
        let model = model.map(str::to_owned);
        self.inner
            .handles
            .call(provider, |handle| {
                let model = model.clone();
                async move { handle.select(model.as_deref()).await }
            })
            .await
            .map_err(ClientError::from)
    }

    /// Leases a credential of the provider serving `base_url`'s host.
    pub async fn acquire_for_url(&self, base_url: &str) -> Result<Lease, ClientError> {
        let provider = self.provider_for_url(base_url)?;
        self.acquire(&provider).await
    }

    /// Returns the facts a request needs from a lease (secret, endpoint, header).
    pub fn credential(&self, lease: &Lease) -> Result<Credential, ClientError> {
        let provider = lease_provider(lease)?;
        let auth_header = self.inner.auth_header(&provider);
        Ok(Credential::of(lease, &provider, auth_header))
    }

    /// Reports a typed outcome and returns the lease; answers once any status change is
    /// durable. For a provider's raw answer, [`PoolClient::report_failure`] classifies it and
    /// also says what to retry with.
    pub async fn report(&self, lease: Lease, outcome: Outcome) -> Result<(), ClientError> {
        let provider = lease_provider(&lease)?;
        let handle = self.inner.handles.handle(&provider).await?;
        let result = handle.report(lease, outcome, None).await;
        if matches!(result, Err(credpool_pool_actor::PoolError::Stopped)) {
            self.inner.handles.forget(&provider);
        }
        result.map_err(ClientError::from)
    }

    /// Reports a success and gives the lease back at once (no message, no wait): an
    /// `acquire` right after it sees the entry free again.
    pub fn report_success(&self, lease: Lease) {
        lease.succeeded();
    }

    /// Classifies a provider's answer to a request made with a `kind` credential of
    /// `provider` (what [`PoolClient::report_failure`] does first).
    pub fn classify(
        &self,
        provider: &ProviderId,
        kind: credpool_core::CredentialKind,
        failure: &RequestFailure,
    ) -> Classification {
        self.inner.classify(provider, kind, failure)
    }

    /// Reports a failed request made with `lease` — the provider's raw answer, classified
    /// here once — and returns the lease to retry with, as one step of
    /// [`PoolClient::with_recovery`] would: the refreshed token after an expired one (or the
    /// current token when another worker already refreshed it), another entry after a
    /// rejected key, a throttle or a billing failure, the same credential after a transient
    /// failure. A failure no credential fixes, a rejection from a foreign origin and an
    /// exhausted pool are errors ([`ClientError::Request`], [`ClientError::ForeignOrigin`],
    /// [`ClientError::Exhausted`]).
    pub async fn report_failure(
        &self,
        lease: Lease,
        failure: RequestFailure,
    ) -> Result<Lease, ClientError> {
        let provider = lease_provider(&lease)?;
        let mut recovery = Recovery::for_lease(self.inner.clone(), &provider).await?;
        match recovery.failed(lease, failure).await {
            Step::Retry { lease, .. } => Ok(lease),
            Step::Fail(error) => Err(error),
        }
    }

    /// Runs `request` with a credential of `provider`, recovering from credential failures.
    ///
    /// The closure gets a [`Credential`] per attempt and returns the response or a
    /// [`RequestFailure`]. On failure the client classifies it, tells the pool, and:
    /// - `auth_expired`: retries once with what the pool hands back (the refreshed token, or
    ///   the current one when another worker already refreshed it);
    /// - `auth_invalid`, `rate_limited`, `billing`: reports the outcome (the pool benches or
    ///   kills the entry) and retries with another entry; this never spends the caller's
    ///   retry budget;
    /// - `transient`: retries the same credential up to `transient_retries` times, with
    ///   backoff, and does not blame it;
    /// - anything else (a bad request, model entitlement): returns the error at once, without
    ///   blaming the credential.
    ///
    /// A rejection from an origin other than the lease's base URL is returned as
    /// [`ClientError::ForeignOrigin`] without a report. Credential-driven attempts are bounded
    /// by N+1 for N entries (each entry once, plus one retry of an entry with a newer token);
    /// transient retries come on top. When the pool runs dry the error is
    /// [`ClientError::Exhausted`] carrying the last real rejection and `next_available_at`.
    /// On success the lease is back in the pool when this returns.
    pub async fn with_recovery<T, F, Fut>(
        &self,
        provider: &ProviderId,
        mut request: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(Credential) -> Fut,
        Fut: Future<Output = Result<T, RequestFailure>>,
    {
        let (mut recovery, mut lease) = Recovery::begin(self.inner.clone(), provider).await?;
        loop {
            let credential = recovery.credential(&lease);
            match request(credential).await {
                Ok(value) => {
                    lease.succeeded();
                    return Ok(value);
                }
                Err(failure) => match recovery.failed(lease, failure).await {
                    Step::Retry { lease: next, delay } => {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        lease = next;
                    }
                    Step::Fail(error) => return Err(error),
                },
            }
        }
    }

    /// Like [`PoolClient::with_recovery`], with the provider resolved from `base_url`'s host.
    pub async fn with_recovery_for_url<T, F, Fut>(
        &self,
        base_url: &str,
        request: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(Credential) -> Fut,
        Fut: Future<Output = Result<T, RequestFailure>>,
    {
        let provider = self.provider_for_url(base_url)?;
        self.with_recovery(&provider, request).await
    }
}

/// The provider a lease came from (always known for a lease a pool handed out).
fn lease_provider(lease: &Lease) -> Result<ProviderId, ClientError> {
    lease.provider().cloned().ok_or(ClientError::Stopped)
}
