//! xAI (Grok sign-in): the token endpoint comes from OpenID discovery
//! (`https://auth.x.ai/.well-known/openid-configuration` by default) and is cached.
//!
//! A 403 (`xai_oauth_tier_denied`) is an entitlement refusal, not a dead grant: it maps to
//! [`RefreshError::Denied`].
//!
//! **Invariants:** the refresh token is sent only to an https endpoint on `x.ai` or a
//! subdomain (the spec's `required_domain`), whether configured or discovered — a discovery
//! document naming `https://evil.com` or `https://evilx.ai` is rejected; loopback http is
//! allowed only with the context's test switch. A cached endpoint that answers 404 or a
//! redirect is forgotten, so the next call discovers again. Discovery is a request to the
//! provider's host like any other: it spends one unit of that host's budget, checked before
//! anything is sent (a zero budget sends nothing at all).

use std::sync::{Mutex, PoisonError};

use credpool_core::{ProviderId, Secret, TokenEndpointSpec};
use reqwest::header::{ACCEPT, USER_AGENT};
use serde::Deserialize;

use super::error::{ConfigReason, TransientReason};
use super::http::{self, ReadError};
use super::{EndpointContext, RefreshError, ResolvedEndpoint, TokenResponse};

/// The provider id.
pub const PROVIDER: &str = "xai-oauth";

/// The discovery document used when the spec names none.
pub const DEFAULT_DISCOVERY_URL: &str = "https://auth.x.ai/.well-known/openid-configuration";

/// The domain the token endpoint must be on when the spec names none.
pub const DEFAULT_REQUIRED_DOMAIN: &str = "x.ai";

/// The largest discovery document read.
const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// Returns the domain an xAI token endpoint must be on: the spec's `required_domain`, or
/// [`DEFAULT_REQUIRED_DOMAIN`] when it names none. Configuration checks a `token_url` with the
/// same domain (through [`http::check_endpoint_url`]).
pub fn required_domain(spec: &TokenEndpointSpec) -> &str {
    spec.required_domain
        .as_deref()
        .unwrap_or(DEFAULT_REQUIRED_DOMAIN)
}

/// The xAI token endpoint client.
#[derive(Debug)]
pub struct XaiClient {
    context: EndpointContext,
    provider: ProviderId,
    discovery_url: url::Url,
    required_domain: String,
    client_id: Option<String>,
    json_body: bool,
    /// A configured endpoint skips discovery.
    configured: Option<ResolvedEndpoint>,
    /// The discovered endpoint; a plain mutex because it is never held across an await (two
    /// concurrent first calls may both discover, which is harmless).
    discovered: Mutex<Option<ResolvedEndpoint>>,
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    token_endpoint: Option<String>,
}

impl XaiClient {
    /// Builds the client from a spec (see [`super::builtin_spec`] for the default). A URL in
    /// `spec.urls` is used as the token endpoint directly; otherwise discovery finds it.
    pub fn new(spec: &TokenEndpointSpec, context: EndpointContext) -> Result<Self, RefreshError> {
        let provider = ProviderId::new(PROVIDER);
        let required_domain = required_domain(spec).to_owned();
        let discovery_url = http::check_endpoint_url(
            spec.discovery_url
                .as_deref()
                .unwrap_or(DEFAULT_DISCOVERY_URL),
            Some(&required_domain),
            context.allow_insecure_loopback,
        )?;
        let configured = spec
            .urls
            .first()
            .map(|url| {
                ResolvedEndpoint::new(
                    provider.clone(),
                    url,
                    Some(&required_domain),
                    context.allow_insecure_loopback,
                    spec.client_id.clone(),
                    spec.json_body,
                )
            })
            .transpose()?;
        Ok(XaiClient {
            context,
            provider,
            discovery_url,
            required_domain,
            client_id: spec.client_id.clone(),
            json_body: spec.json_body,
            configured,
            discovered: Mutex::new(None),
        })
    }

    /// Returns the token endpoint: configured, cached, or discovered now.
    pub async fn token_endpoint(&self) -> Result<ResolvedEndpoint, RefreshError> {
        if let Some(endpoint) = &self.configured {
            return Ok(endpoint.clone());
        }
        if let Some(endpoint) = self.cached() {
            return Ok(endpoint);
        }
        let endpoint = self.discover().await?;
        *self
            .discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// Drops the cached discovery result.
    pub fn forget_discovery(&self) {
        *self
            .discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Redeems `refresh_token` at the (discovered) token endpoint.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, RefreshError> {
        let endpoint = self.token_endpoint().await?;
        let result = self.context.refresh_at(&endpoint, refresh_token).await;
        if let Err(RefreshError::Misconfigured {
            reason: ConfigReason::NotFound | ConfigReason::Redirect { .. },
        }) = &result
        {
            self.forget_discovery();
        }
        result
    }

    fn cached(&self) -> Option<ResolvedEndpoint> {
        self.discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    #[tracing::instrument(skip_all, fields(provider = %self.provider, host = self.discovery_url.host_str()))]
    async fn discover(&self) -> Result<ResolvedEndpoint, RefreshError> {
        // The budget first: a spent (or zero) budget sends nothing, discovery included.
        self.context
            .limiter
            .try_acquire(self.discovery_url.host_str().unwrap_or_default())?;
        let response = self
            .context
            .http
            .get(self.discovery_url.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, http::USER_AGENT)
            .send()
            .await
            .map_err(|error| http::transport_error(&error))?;
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        if !(200..300).contains(&status) {
            return Err(super::grant::classify_failure(status, retry_after, &[]));
        }
        let body = match http::read_capped(response, MAX_DISCOVERY_BYTES).await {
            Ok(body) => body,
            Err(ReadError::Transport(error)) => return Err(http::transport_error(&error)),
            Err(ReadError::TooLarge) => {
                return Err(RefreshError::config(ConfigReason::DiscoveryInvalid));
            }
        };
        let document: DiscoveryDocument = serde_json::from_slice(&body)
            .map_err(|_| RefreshError::transient(TransientReason::Unreadable { status }))?;
        let Some(token_endpoint) = document.token_endpoint else {
            return Err(RefreshError::config(ConfigReason::DiscoveryInvalid));
        };
        let endpoint = ResolvedEndpoint::new(
            self.provider.clone(),
            &token_endpoint,
            Some(&self.required_domain),
            self.context.allow_insecure_loopback,
            self.client_id.clone(),
            self.json_body,
        )?;
        tracing::debug!(token_host = %endpoint.host(), "token endpoint discovered");
        Ok(endpoint)
    }
}
