//! The OAuth 2.0 `refresh_token` grant (RFC 6749 §6), shared by every provider, and the
//! classification of its answer.
//!
//! **Invariants:** one call sends at most one request; the answer is classified from the
//! OAuth error code first and the status second ([`classify_failure`]); the refresh token
//! leaves this module only in the request body, never in an error or a log field.

use std::time::Duration;

use credpool_core::{ProviderId, Secret};
use reqwest::header::{ACCEPT, USER_AGENT};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::error::{ConfigReason, ProtocolReason, RefreshError, TransientReason};
use super::http::{self, DEFAULT_MAX_BODY_BYTES, ReadError};

/// A token endpoint ready to be called: its URL passed the URL policy when it was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEndpoint {
    provider: ProviderId,
    url: Url,
    host: String,
    client_id: Option<String>,
    json_body: bool,
}

impl ResolvedEndpoint {
    /// Checks `url` with [`http::check_endpoint_url`] and builds the endpoint.
    pub fn new(
        provider: ProviderId,
        url: &str,
        required_domain: Option<&str>,
        allow_insecure_loopback: bool,
        client_id: Option<String>,
        json_body: bool,
    ) -> Result<Self, RefreshError> {
        let url = http::check_endpoint_url(url, required_domain, allow_insecure_loopback)?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        Ok(ResolvedEndpoint {
            provider,
            url,
            host,
            client_id,
            json_body,
        })
    }

    /// Returns the provider this endpoint refreshes for.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// Returns the URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Returns the lower-cased host (the rate limiter's key).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Returns the OAuth client id sent with the grant.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// Tells whether the grant is sent as JSON rather than a form.
    pub fn json_body(&self) -> bool {
        self.json_body
    }
}

/// Bounds on one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLimits {
    /// The largest answer read; larger ones are an error.
    pub max_body_bytes: usize,
}

impl Default for RefreshLimits {
    fn default() -> Self {
        RefreshLimits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A successful refresh.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The new access token.
    pub access: Secret,
    /// The rotated refresh token, when the provider returned one; when `None` the old one
    /// stays current (RFC 6749 §6 lets the server keep it).
    pub refresh: Option<Secret>,
    /// The access token's lifetime, when given.
    pub expires_in: Option<Duration>,
    /// The granted scope, when given.
    pub scope: Option<String>,
    /// The token type (`Bearer`), when given.
    pub token_type: Option<String>,
}

/// Sends one `refresh_token` grant to `endpoint` and classifies the answer.
///
/// The body is a form (or JSON when the endpoint says so) with `grant_type`, `refresh_token`
/// and `client_id`; headers `Accept: application/json` and credpool's `User-Agent`. Use a
/// client from [`http::build_http_client`]: one that follows redirects could forward the token.
#[tracing::instrument(skip_all, fields(provider = %endpoint.provider, host = %endpoint.host))]
pub async fn refresh(
    client: &reqwest::Client,
    endpoint: &ResolvedEndpoint,
    refresh_token: &Secret,
    limits: &RefreshLimits,
) -> Result<TokenResponse, RefreshError> {
    let mut fields: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
    ];
    if let Some(client_id) = endpoint.client_id.as_deref() {
        fields.push(("client_id", client_id));
    }
    let request = client
        .post(endpoint.url.clone())
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, http::USER_AGENT);
    let request = if endpoint.json_body {
        let object: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::String((*value).to_owned())))
            .collect();
        request.json(&object)
    } else {
        request.form(&fields)
    };
    let result = exchange(request, limits).await;
    match &result {
        Ok(response) => tracing::debug!(
            rotated = response.refresh.is_some(),
            expires_in_secs = response.expires_in.map(|d| d.as_secs()),
            "token refreshed"
        ),
        Err(error) => tracing::debug!(%error, "token refresh failed"),
    }
    result
}

async fn exchange(
    request: reqwest::RequestBuilder,
    limits: &RefreshLimits,
) -> Result<TokenResponse, RefreshError> {
    let response = request
        .send()
        .await
        .map_err(|error| http::transport_error(&error))?;
    let status = response.status().as_u16();
    let retry_after = http::retry_after(response.headers());
    let body = match http::read_capped(response, limits.max_body_bytes).await {
        Ok(body) => body,
        Err(ReadError::Transport(error)) => return Err(http::transport_error(&error)),
        Err(ReadError::TooLarge) if (200..300).contains(&status) => {
            return Err(RefreshError::Protocol {
                reason: ProtocolReason::BodyTooLarge,
            });
        }
        Err(ReadError::TooLarge) => {
            return Err(RefreshError::Transient {
                reason: TransientReason::ErrorBodyTooLarge { status },
                retry_after,
            });
        }
    };
    if (200..300).contains(&status) {
        parse_success(&body)
    } else {
        Err(classify_failure(status, retry_after, &body))
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<Value>,
    scope: Option<String>,
    token_type: Option<String>,
}

/// Parses a 2xx answer into a [`TokenResponse`].
pub fn parse_success(body: &[u8]) -> Result<TokenResponse, RefreshError> {
    let protocol = |reason| RefreshError::Protocol { reason };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(protocol(ProtocolReason::EmptyBody));
    }
    let raw: RawTokenResponse =
        serde_json::from_slice(body).map_err(|_| protocol(ProtocolReason::MalformedJson))?;
    let access = raw
        .access_token
        .map(Secret::new)
        .filter(|secret| !secret.is_empty())
        .ok_or(protocol(ProtocolReason::MissingAccessToken))?;
    let refresh = raw
        .refresh_token
        .map(Secret::new)
        .filter(|secret| !secret.is_empty());
    let expires_in = raw.expires_in.as_ref().and_then(|value| match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    });
    Ok(TokenResponse {
        access,
        refresh,
        expires_in: expires_in.map(Duration::from_secs),
        scope: raw.scope,
        token_type: raw.token_type,
    })
}

/// OAuth error codes that mean the grant is dead: only a re-login revives it. `invalid_client`
/// and `invalid_request` are configuration errors, but retrying cannot fix them either.
const TERMINAL_CODES: &[&str] = &[
    "invalid_grant",
    "refresh_token_reused",
    "refresh_token_expired",
    "refresh_token_invalidated",
    "token_revoked",
    "token_invalidated",
    "invalid_token",
    "unauthorized_client",
    "invalid_client",
    "invalid_request",
];

/// Codes that refuse for entitlement rather than a dead grant.
const DENIED_CODES: &[&str] = &["xai_oauth_tier_denied", "access_denied"];

/// Codes a provider uses for "try again later" on a 4xx.
const BUSY_CODES: &[&str] = &[
    "temporarily_unavailable",
    "slow_down",
    "server_error",
    "rate_limited",
    "rate_limit_exceeded",
];

/// Classifies a non-2xx answer: redirects and 404 are configuration, 429 and 5xx transient,
/// then the OAuth error code decides; a 400/401 with an unlisted code is terminal (the
/// authorization server refused the grant in its own words), a 403 is a denial; an answer
/// without a readable code is transient.
pub fn classify_failure(status: u16, retry_after: Option<Duration>, body: &[u8]) -> RefreshError {
    let transient = |reason| RefreshError::Transient {
        reason,
        retry_after,
    };
    if (300..400).contains(&status) {
        return RefreshError::config(ConfigReason::Redirect { status });
    }
    if status == 404 {
        return RefreshError::config(ConfigReason::NotFound);
    }
    if status == 429 {
        return transient(TransientReason::RateLimited { status });
    }
    if status >= 500 || status == 408 {
        return transient(TransientReason::ServerError { status });
    }
    let Some(code) = oauth_error_code(body) else {
        return transient(TransientReason::Unreadable { status });
    };
    if TERMINAL_CODES.contains(&code.as_str()) {
        RefreshError::Terminal { code, status }
    } else if DENIED_CODES.contains(&code.as_str()) {
        RefreshError::Denied { code, status }
    } else if BUSY_CODES.contains(&code.as_str()) {
        transient(TransientReason::Busy { status })
    } else if status == 403 {
        RefreshError::Denied { code, status }
    } else if status == 400 || status == 401 {
        RefreshError::Terminal { code, status }
    } else {
        transient(TransientReason::Unreadable { status })
    }
}

/// Other codes token endpoints are known to answer (RFC 6749 §5.2, RFC 6750, OpenID Connect,
/// the providers' own), kept as they are.
const OTHER_KNOWN_CODES: &[&str] = &[
    "unsupported_grant_type",
    "invalid_scope",
    "insufficient_scope",
    "expired_token",
    "consent_required",
    "login_required",
    "interaction_required",
    "account_selection_required",
    "forbidden",
    "unauthorized",
    // OpenAI- and Anthropic-style error types, xAI's credential code.
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "unauthenticated:bad-credentials",
];

/// What an error code nobody listed becomes: a provider's free-form code may echo input — a
/// refresh token has the shape of a code — so only known codes travel into errors, logs,
/// dead reasons and admin answers.
pub const UNKNOWN_CODE: &str = "unknown_error";

/// Keeps a known code; any other becomes [`UNKNOWN_CODE`], logged by length and a hash
/// prefix only (enough to tell two unknown codes apart, nothing of the value).
fn known_code(code: &str) -> String {
    let known = TERMINAL_CODES
        .iter()
        .chain(DENIED_CODES)
        .chain(BUSY_CODES)
        .chain(OTHER_KNOWN_CODES)
        .any(|known| *known == code);
    if known {
        return code.to_owned();
    }
    let hash = credpool_core::Secret::new(code).fingerprint();
    tracing::debug!(length = code.len(), %hash, "token endpoint answered an unknown error code");
    UNKNOWN_CODE.to_owned()
}

/// Extracts the OAuth error code from a JSON error body: `error` as a string (RFC 6749 §5.2),
/// else `error.code` / `error.type` (OpenAI), else a top-level `code`. Text that does not
/// look like a code (too long, odd characters) is skipped, and a code-shaped value that is
/// not a known code becomes [`UNKNOWN_CODE`]: a provider echoing input cannot put a token
/// into our errors.
pub fn oauth_error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let candidates = [
        value.get("error").and_then(Value::as_str),
        value.pointer("/error/code").and_then(Value::as_str),
        value.pointer("/error/type").and_then(Value::as_str),
        value.get("code").and_then(Value::as_str),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|code| is_code_like(code))
        .map(|code| known_code(&code.to_ascii_lowercase()))
}

fn is_code_like(code: &str) -> bool {
    (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}
