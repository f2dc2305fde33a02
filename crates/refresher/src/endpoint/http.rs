//! The HTTP plumbing shared by every token endpoint client: the reqwest client, the URL
//! policy, capped body reads and `Retry-After`.
//!
//! **Invariants:** redirects are never followed (a redirected POST could carry a refresh token
//! to another origin); a refresh token is only ever sent over https, except to loopback when
//! the `allow_insecure_loopback` test switch is on; no body read exceeds its cap.

use std::time::Duration;

use credpool_core::registry::host_matches;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;
use zeroize::Zeroizing;

use super::error::{ConfigReason, RefreshError, TransientReason};

/// The `User-Agent` of every token endpoint request.
pub const USER_AGENT: &str = concat!("credpool/", env!("CARGO_PKG_VERSION"));

/// The default timeout of a whole token endpoint exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The default cap on a token endpoint's answer.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Builds the HTTP client for token endpoints: rustls, the given overall timeout, no redirects,
/// credpool's `User-Agent`. Proxy settings from the environment are honoured (reqwest's
/// default), as an operator behind a proxy expects.
pub fn build_http_client(timeout: Duration) -> Result<reqwest::Client, RefreshError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|_| RefreshError::config(ConfigReason::HttpClient))
}

/// Checks a URL a refresh token may be sent to (or a discovery document read from): the one
/// URL policy of credpool, used by the refresher before every exchange and by configuration
/// and the admin API when a token endpoint is given, so a URL accepted there is one the
/// refresher will use.
///
/// Accepted: `https` URLs without user info, on `required_domain` or a subdomain of it when one
/// is given. With `allow_insecure_loopback`, also `http`/`https` on `127.0.0.1`, `localhost`
/// or `[::1]`, whatever the domain (tests point clients at a fake provider there).
///
/// # Errors
/// [`RefreshError::Misconfigured`] with [`ConfigReason::InvalidUrl`] (unparsable, no host, or
/// user info), [`ConfigReason::InsecureUrl`] (not https, and not an allowed loopback) or
/// [`ConfigReason::DomainMismatch`] (outside `required_domain`).
pub fn check_endpoint_url(
    raw: &str,
    required_domain: Option<&str>,
    allow_insecure_loopback: bool,
) -> Result<Url, RefreshError> {
    let url = Url::parse(raw).map_err(|_| RefreshError::config(ConfigReason::InvalidUrl))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RefreshError::config(ConfigReason::InvalidUrl));
    }
    let host = url
        .host_str()
        .ok_or(RefreshError::config(ConfigReason::InvalidUrl))?
        .to_ascii_lowercase();
    let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]");
    if allow_insecure_loopback && loopback && matches!(url.scheme(), "http" | "https") {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err(RefreshError::config(ConfigReason::InsecureUrl { host }));
    }
    if let Some(required) = required_domain
        && !host_matches(&host, required)
    {
        return Err(RefreshError::config(ConfigReason::DomainMismatch {
            host,
            required: required.to_owned(),
        }));
    }
    Ok(url)
}

/// Reads `Retry-After` as delay-seconds. The HTTP-date form is ignored here: turning it into a
/// wait needs the injected clock, which the pool's classifier owns.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// Why reading a body stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The body is larger than the cap.
    TooLarge,
    /// The transport failed while reading.
    Transport(reqwest::Error),
}

/// Reads a body chunk by chunk, stopping as soon as it would exceed `max_bytes`. The buffer is
/// zeroized when dropped, since a token answer holds secrets.
pub async fn read_capped(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let announced = response.content_length().unwrap_or(0);
    if announced > max_bytes as u64 {
        return Err(ReadError::TooLarge);
    }
    // Reserving the announced size up front avoids reallocations that would leave unzeroized
    // copies behind.
    let mut body = Zeroizing::new(Vec::with_capacity(
        usize::try_from(announced).unwrap_or(max_bytes),
    ));
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len().saturating_add(chunk.len()) > max_bytes {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Classifies a transport failure; the error itself is not kept (it names the URL).
pub fn transport_error(error: &reqwest::Error) -> RefreshError {
    let reason = if error.is_timeout() {
        TransientReason::Timeout
    } else if error.is_connect() {
        TransientReason::Connect
    } else {
        TransientReason::Interrupted
    };
    RefreshError::transient(reason)
}
