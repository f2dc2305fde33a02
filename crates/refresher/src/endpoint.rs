//! Token endpoint clients: the shared OAuth 2.0 `refresh_token` grant, one small client per
//! provider on top of it, and a per-host budget for token-endpoint requests.
//!
//! Layout:
//! - [`grant`]: [`refresh`] — one request, its answer classified into [`TokenResponse`] or
//!   [`RefreshError`];
//! - [`http`]: the reqwest client ([`build_http_client`]), the URL policy, capped reads;
//! - [`limiter`]: [`HostRateLimiter`], consulted before every token request and every OpenID
//!   discovery request (a zero budget sends nothing);
//! - providers: [`xai`] (OpenID discovery, `x.ai` domain check), [`openai_codex`],
//!   [`anthropic`] (two endpoints, safe fall-through), [`nous`], [`generic`] (from
//!   configuration). [`ProviderClient`] picks one by provider id.
//!
//! URLs and client ids come from [`TokenEndpointSpec`] (the registry's defaults, which
//! configuration may override by editing the spec).
//!
//! **Invariants:**
//! - a refresh token is sent only to a URL that passed the URL policy (https, the provider's
//!   domain when it has one; plain http only to loopback with the test switch on);
//! - a refresh token is sent to a second endpoint only when the first provably did not
//!   redeem it ([`RefreshError::provably_unspent`]);
//! - no token appears in an error, a log line or a `Debug` output.

pub mod anthropic;
mod error;
pub mod generic;
pub mod grant;
pub mod http;
pub mod limiter;
pub mod nous;
pub mod openai_codex;
pub mod xai;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use credpool_core::registry::ProviderRegistry;
use credpool_core::{Clock, ProviderId, Secret, TokenEndpointSpec};

pub use error::{ConfigReason, ProtocolReason, RefreshError, TransientReason};
pub use grant::{RefreshLimits, ResolvedEndpoint, TokenResponse, refresh};
pub use http::{DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, USER_AGENT, build_http_client};
pub use limiter::{HostRateLimit, HostRateLimiter};

/// What every provider client shares: the HTTP client, the per-host budget, the body cap and
/// the loopback test switch.
#[derive(Debug, Clone)]
pub struct EndpointContext {
    /// The client from [`build_http_client`] (no redirects).
    pub http: reqwest::Client,
    /// The per-host budget, shared by every client of one refresher.
    pub limiter: Arc<HostRateLimiter>,
    /// Bounds on one exchange.
    pub limits: RefreshLimits,
    /// Allows `http://127.0.0.1` / `localhost` endpoints, for tests against a fake provider.
    /// Off by default; never set it in production configuration.
    pub allow_insecure_loopback: bool,
}

impl EndpointContext {
    /// A context with the default budget (25 per 60 s per host) and limits, loopback off.
    pub fn new(http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        EndpointContext {
            http,
            limiter: Arc::new(HostRateLimiter::new(clock, HostRateLimit::default())),
            limits: RefreshLimits::default(),
            allow_insecure_loopback: false,
        }
    }

    /// Sets the loopback test switch.
    #[must_use]
    pub fn with_insecure_loopback(mut self, allow: bool) -> Self {
        self.allow_insecure_loopback = allow;
        self
    }

    /// Replaces the per-host budget.
    #[must_use]
    pub fn with_limiter(mut self, limiter: Arc<HostRateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Replaces the exchange bounds.
    #[must_use]
    pub fn with_limits(mut self, limits: RefreshLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Spends one unit of the endpoint host's budget, then runs the grant.
    pub async fn refresh_at(
        &self,
        endpoint: &ResolvedEndpoint,
        refresh_token: &Secret,
    ) -> Result<TokenResponse, RefreshError> {
        self.limiter.try_acquire(endpoint.host())?;
        refresh(&self.http, endpoint, refresh_token, &self.limits).await
    }

    /// Tries `endpoints` in order, moving to the next only when the previous one provably did
    /// not redeem the token (connection refused, DNS failure, 404, our own budget). Any other
    /// answer — success, a 4xx, a 5xx, a timeout — is final: the token may be spent.
    pub async fn refresh_in_order(
        &self,
        endpoints: &[ResolvedEndpoint],
        refresh_token: &Secret,
    ) -> Result<TokenResponse, RefreshError> {
        let mut last_error = RefreshError::config(ConfigReason::NoEndpoint);
        for endpoint in endpoints {
            match self.refresh_at(endpoint, refresh_token).await {
                Err(error) if error.provably_unspent() => {
                    tracing::debug!(
                        provider = %endpoint.provider(),
                        host = %endpoint.host(),
                        %error,
                        "token endpoint unusable, trying the next one"
                    );
                    last_error = error;
                }
                result => return result,
            }
        }
        Err(last_error)
    }

    /// Resolves every URL of `spec` for `provider`, checking each against the URL policy.
    pub fn resolve_all(
        &self,
        provider: &ProviderId,
        spec: &TokenEndpointSpec,
    ) -> Result<Vec<ResolvedEndpoint>, RefreshError> {
        if spec.urls.is_empty() {
            return Err(RefreshError::config(ConfigReason::NoEndpoint));
        }
        spec.urls
            .iter()
            .map(|url| {
                ResolvedEndpoint::new(
                    provider.clone(),
                    url,
                    spec.required_domain.as_deref(),
                    self.allow_insecure_loopback,
                    spec.client_id.clone(),
                    spec.json_body,
                )
            })
            .collect()
    }
}

/// Returns the built-in token endpoint spec of a provider, if it has one.
pub fn builtin_spec(provider: &str) -> Option<TokenEndpointSpec> {
    ProviderRegistry::builtin()
        .by_name(provider)
        .and_then(|spec| spec.token_endpoint)
}

/// A token endpoint client for any provider, chosen by id.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProviderClient {
    /// `xai-oauth` (boxed: it carries its discovery cache and URLs).
    Xai(Box<xai::XaiClient>),
    /// `openai-codex`.
    OpenAiCodex(openai_codex::OpenAiCodexClient),
    /// `anthropic`.
    Anthropic(anthropic::AnthropicClient),
    /// `nous`.
    Nous(nous::NousClient),
    /// Any other OAuth provider from configuration.
    Generic(generic::GenericClient),
}

impl ProviderClient {
    /// Builds the client for `provider` from its token endpoint spec.
    pub fn new(
        provider: &ProviderId,
        spec: &TokenEndpointSpec,
        context: EndpointContext,
    ) -> Result<Self, RefreshError> {
        Ok(match provider.as_str() {
            xai::PROVIDER => ProviderClient::Xai(Box::new(xai::XaiClient::new(spec, context)?)),
            openai_codex::PROVIDER => {
                ProviderClient::OpenAiCodex(openai_codex::OpenAiCodexClient::new(spec, context)?)
            }
            anthropic::PROVIDER => {
                ProviderClient::Anthropic(anthropic::AnthropicClient::new(spec, context)?)
            }
            nous::PROVIDER => ProviderClient::Nous(nous::NousClient::new(spec, context)?),
            _ => ProviderClient::Generic(generic::GenericClient::new(
                provider.clone(),
                spec,
                context,
            )?),
        })
    }

    /// Redeems `refresh_token` at the provider.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, RefreshError> {
        match self {
            ProviderClient::Xai(client) => client.refresh(refresh_token).await,
            ProviderClient::OpenAiCodex(client) => client.refresh(refresh_token).await,
            ProviderClient::Anthropic(client) => client.refresh(refresh_token).await,
            ProviderClient::Nous(client) => client.refresh(refresh_token).await,
            ProviderClient::Generic(client) => client.refresh(refresh_token).await,
        }
    }
}
