//! [`RequestFailure`]: what a caller's request closure reports when a provider refused it or
//! the request never got an answer, and [`FailedRequest`]: that failure with its
//! classification.
//!
//! **Invariants:**
//! - Neither type prints a body or a header value in `Debug` or `Display`: a provider's error
//!   body may echo a credential, so only its length is shown.
//! - The origin comparison of the endpoint-mismatch shield looks at scheme, host and port only,
//!   and fires only when both sides parse and differ.

use std::fmt;

use bytes::Bytes;
use credpool_core::Classification;

#[cfg(test)]
mod tests;

/// A request that did not succeed: an HTTP rejection or a transport failure.
///
/// Returned by the closure given to [`crate::PoolClient::with_recovery`]; the client
/// classifies it through `credpool-core` and decides what to do with the credential.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestFailure {
    /// The HTTP status; `None` when no answer arrived (timeout, connection failure).
    pub status: Option<u16>,
    /// The response headers as `(name, value)` pairs.
    pub headers: Vec<(String, String)>,
    /// The response body (error bodies are small; the classifier reads at most 256 KiB).
    pub body: Bytes,
    /// The URL that answered (after redirects). The endpoint-mismatch shield compares its
    /// origin with the lease's base URL; `None` turns the shield off for this failure.
    pub origin: Option<String>,
    /// What went wrong for a transport failure, without secrets.
    pub message: Option<String>,
}

impl RequestFailure {
    /// Builds the failure of a request that got an HTTP answer.
    pub fn http(
        status: u16,
        headers: Vec<(String, String)>,
        body: impl Into<Bytes>,
        origin: impl Into<String>,
    ) -> Self {
        RequestFailure {
            status: Some(status),
            headers,
            body: body.into(),
            origin: Some(origin.into()),
            message: None,
        }
    }

    /// Builds the failure of a request that got an HTTP answer from the lease's own endpoint
    /// (no origin to compare: the caller vouches for it).
    pub fn answer(status: u16, headers: Vec<(String, String)>, body: impl Into<Bytes>) -> Self {
        RequestFailure {
            status: Some(status),
            headers,
            body: body.into(),
            origin: None,
            message: None,
        }
    }

    /// Builds the failure of a request that got no answer (timeout, refused, reset).
    pub fn transport(message: impl Into<String>) -> Self {
        RequestFailure {
            status: None,
            headers: Vec::new(),
            body: Bytes::new(),
            origin: None,
            message: Some(message.into()),
        }
    }

    /// Copies the status, headers and URL of a `reqwest` response and takes its body.
    pub async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let origin = response.url().to_string();
        let headers = header_pairs(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        RequestFailure::http(status, headers, body, origin)
    }

    /// Builds a transport failure from a `reqwest` error. The message names the kind of
    /// failure and its cause, never the URL (a query string may carry a key).
    pub fn from_reqwest_error(error: &reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "connection failed"
        } else if error.is_body() || error.is_decode() {
            "body failed"
        } else if error.is_redirect() {
            "redirect failed"
        } else {
            "request failed"
        };
        let message = match std::error::Error::source(error) {
            Some(cause) => format!("{kind}: {cause}"),
            None => kind.to_owned(),
        };
        RequestFailure::transport(message)
    }

    /// Tells whether the rejection came from somewhere other than `base_url` (scheme, host
    /// and port compared). False when either side is missing or does not parse.
    pub fn is_foreign_to(&self, base_url: Option<&str>) -> bool {
        match (self.origin.as_deref(), base_url) {
            (Some(origin), Some(base)) => match (origin_of(origin), origin_of(base)) {
                (Some(a), Some(b)) => a != b,
                _ => false,
            },
            _ => false,
        }
    }
}

impl fmt::Debug for RequestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestFailure")
            .field("status", &self.status)
            .field("origin", &self.origin.as_deref().and_then(origin_of))
            .field("headers", &self.headers.len())
            .field("body_bytes", &self.body.len())
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, &self.message) {
            (Some(status), _) => write!(f, "http {status}"),
            (None, Some(message)) => write!(f, "transport failure: {message}"),
            (None, None) => f.write_str("transport failure"),
        }
    }
}

/// A failure with what `credpool-core` made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRequest {
    /// What the request got.
    pub failure: RequestFailure,
    /// How it was classified.
    pub classification: Classification,
}

impl fmt::Display for FailedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.failure, self.classification.kind.name())?;
        if let Some(reason) = &self.classification.reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// Copies header pairs whose values are text.
pub(crate) fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_owned(), v.to_owned()))
        })
        .collect()
}

/// The `(scheme, host, port)` of a URL, lower-cased, with the scheme's default port filled in.
pub(crate) fn origin_of(url: &str) -> Option<(String, String, u16)> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    let host = parsed
        .host_str()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let port = parsed.port_or_known_default()?;
    Some((parsed.scheme().to_owned(), host, port))
}
