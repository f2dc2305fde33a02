//! What every part of the client shares: the handle cache, the provider set, the recovery
//! settings and the clock classifications read. `PoolClient` and the recovery loop both sit
//! on it (neither imports the other).
//!
//! **Invariant:** failures are classified here, through `credpool_core::classify` only, once
//! per failure; nothing downstream looks at status codes.

use std::sync::Arc;
use std::time::Duration;

use credpool_core::registry::AuthHeader;
use credpool_core::{
    Classification, ClassifyInput, Clock, CooldownConfig, CredentialKind, ProviderId,
    ProviderRegistry, classify,
};

use crate::error::ClientError;
use crate::failure::RequestFailure;
use crate::handles::HandleCache;

/// How [`crate::PoolClient::with_recovery`] and the middleware retry.
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

/// The client's shared state.
pub(crate) struct ClientContext {
    pub(crate) handles: HandleCache,
    pub(crate) providers: ProviderRegistry,
    pub(crate) config: RecoveryConfig,
    /// Reset times in classifications are computed against this clock; tests inject theirs.
    pub(crate) clock: Arc<dyn Clock>,
}

impl ClientContext {
    /// Returns how the provider's API keys travel (`Bearer` unless configured otherwise).
    pub(crate) fn auth_header(&self, provider: &ProviderId) -> AuthHeader {
        self.providers
            .get(provider)
            .map_or(AuthHeader::Bearer, |spec| spec.auth_header)
    }

    /// Resolves the provider serving a URL's host.
    pub(crate) fn provider_for_url(&self, url: &str) -> Result<ProviderId, ClientError> {
        self.providers
            .provider_for_url(url)
            .ok_or_else(|| ClientError::NoProviderForUrl(url.to_owned()))
    }

    /// Classifies a provider's answer to a request made with a `kind` credential of
    /// `provider`.
    pub(crate) fn classify(
        &self,
        provider: &ProviderId,
        kind: CredentialKind,
        failure: &RequestFailure,
    ) -> Classification {
        let input = ClassifyInput {
            provider: Some(provider.as_str()),
            entry_kind: Some(kind),
            status: failure.status,
            headers: &failure.headers,
            body: &failure.body,
        };
        let mut classification = classify(&input, self.clock.now(), self.config.reset_ceiling);
        if classification.message.is_none() && failure.status.is_none() {
            classification.message = failure.message.clone();
        }
        classification
    }
}
