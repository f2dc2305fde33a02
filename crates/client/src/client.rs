//! [`PoolClient`]: the handle every worker of a runtime shares to acquire credentials, report
//! how they went, and run requests with recovery.
//!
//! **Invariants:**
//! - Failures are classified here through `credpool_core::classify` only, once per failure,
//!   and the pool is told the typed outcome; nothing downstream looks at status codes.
//! - The client keeps no credential state of its own: the pool actor owns entries, statuses
//!   and tokens; the client caches only handles.
//! - The hot path (acquire, report a success) is one actor message each and no I/O.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use credpool_core::registry::AuthHeader;
use credpool_core::{
    Classification, ClassifyInput, Clock, CooldownConfig, Outcome, ProviderId, ProviderRegistry,
    SystemClock, classify,
};
use credpool_pool_actor::{Lease, PoolRegistry};

use crate::credential::Credential;
use crate::error::ClientError;
use crate::failure::RequestFailure;
use crate::handles::HandleCache;
use crate::recovery::{Recovery, Step};

/// How [`PoolClient::with_recovery`] and the middleware retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// Same-credential retries after a transient failure (5xx, timeout, overloaded). This is
    /// the caller's retry budget: rotating to another credential never spends it.
    pub transient_retries: u32,
    /// The wait before the first transient retry; it doubles for each further one.
    pub transient_backoff: Duration,
    /// The ceiling on provider reset times when classifying (the pool clamps again).
    pub reset_ceiling: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            transient_retries: 1,
            transient_backoff: Duration::from_millis(500),
            reset_ceiling: CooldownConfig::default().reset_ceiling,
        }
    }
}

struct Inner {
    handles: HandleCache,
    providers: ProviderRegistry,
    config: RecoveryConfig,
    /// Reset times in classifications are computed against this clock; tests inject theirs.
    clock: Arc<dyn Clock>,
}

/// The credential client of one runtime: cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct PoolClient {
    inner: Arc<Inner>,
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
            inner: Arc::new(Inner {
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
            inner: Arc::new(Inner {
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

    pub(crate) fn handles(&self) -> &HandleCache {
        &self.inner.handles
    }

    /// Resolves the provider serving a URL's host (`https://api.x.ai/v1` → `xai-oauth`).
    pub fn provider_for_url(&self, url: &str) -> Result<ProviderId, ClientError> {
        self.inner
            .providers
            .provider_for_url(url)
            .ok_or_else(|| ClientError::NoProviderForUrl(url.to_owned()))
    }

    /// Returns how the provider's API keys travel (`Bearer` unless configured otherwise).
    pub(crate) fn auth_header(&self, provider: &ProviderId) -> AuthHeader {
        self.inner
            .providers
            .get(provider)
            .map_or(AuthHeader::Bearer, |spec| spec.auth_header)
    }

    /// Leases a credential of `provider`.
    pub async fn acquire(&self, provider: &ProviderId) -> Result<Lease, ClientError> {
        self.inner
            .handles
            .call(provider, |handle| async move { handle.select(None).await })
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
        let auth_header = self.auth_header(&provider);
        Ok(Credential::of(lease, &provider, auth_header))
    }

    /// Reports how a request went and returns the lease; answers once any status change is
    /// durable.
    pub async fn report(&self, lease: Lease, outcome: Outcome) -> Result<(), ClientError> {
        let provider = lease_provider(&lease)?;
        let handle = self.inner.handles.handle(&provider).await?;
        let result = handle.report(lease, outcome, None).await;
        if matches!(result, Err(credpool_pool_actor::PoolError::Stopped)) {
            self.inner.handles.forget(&provider);
        }
        result.map_err(ClientError::from)
    }

    /// Reports a success without waiting (the hot path).
    pub fn report_success(&self, lease: Lease) {
        // Dropping the lease would only release it; a success report also counts it.
        if let Some(provider) = lease.provider().cloned() {
            let handles = &self.inner.handles;
            let cached = handles.cached(&provider);
            match cached {
                Some(handle) => handle.report_success(lease),
                None => drop(lease),
            }
        }
    }

    /// Classifies a provider's answer to a request made with a `kind` credential of
    /// `provider`.
    pub fn classify(
        &self,
        provider: &ProviderId,
        kind: credpool_core::CredentialKind,
        failure: &RequestFailure,
    ) -> Classification {
        let input = ClassifyInput {
            provider: Some(provider.as_str()),
            entry_kind: Some(kind),
            status: failure.status,
            headers: &failure.headers,
            body: &failure.body,
        };
        let mut classification = classify(
            &input,
            self.inner.clock.now(),
            self.inner.config.reset_ceiling,
        );
        if classification.message.is_none() && failure.status.is_none() {
            classification.message = failure.message.clone();
        }
        classification
    }

    /// Classifies a rejection of `lease`'s credential and reports it as an auth failure;
    /// returns what to retry with: the refreshed token, the current one (when the lease was
    /// stale), or another entry.
    pub async fn report_auth_failure(
        &self,
        lease: Lease,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Lease, ClientError> {
        let provider = lease_provider(&lease)?;
        let failure = RequestFailure {
            status: Some(status),
            headers: headers.to_vec(),
            body: bytes::Bytes::copy_from_slice(body),
            origin: None,
            message: None,
        };
        let classification = self.classify(&provider, lease.credential_kind(), &failure);
        let handle = self.inner.handles.handle(&provider).await?;
        match handle
            .report_auth_failure(lease, classification, None)
            .await
        {
            Err(credpool_pool_actor::PoolError::Stopped) => {
                // The pool restarted from the store: the lease is gone; lease afresh.
                self.inner.handles.forget(&provider);
                self.acquire(&provider).await
            }
            other => other.map_err(ClientError::from),
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
    pub async fn with_recovery<T, F, Fut>(
        &self,
        provider: &ProviderId,
        mut request: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(Credential) -> Fut,
        Fut: Future<Output = Result<T, RequestFailure>>,
    {
        let (mut recovery, mut lease) = Recovery::begin(self, provider).await?;
        loop {
            let credential = recovery.credential(&lease);
            match request(credential).await {
                Ok(value) => {
                    recovery.succeeded(lease);
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
