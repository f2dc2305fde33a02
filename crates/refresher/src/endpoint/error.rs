//! The errors of a token endpoint exchange.
//!
//! **Invariants:** no variant carries a token, a request body or a provider's free-text
//! description — only sanitised OAuth error codes, HTTP statuses and hosts. A grant is called
//! [`RefreshError::Terminal`] only on the authorization server's own JSON error code; an
//! intermediary's HTML page or a 5xx never kills a grant.

use std::fmt;
use std::time::Duration;

/// Why a token endpoint exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The provider refused the grant in its own words (`invalid_grant`,
    /// `refresh_token_reused`, `invalid_client`, …): the grant is dead, a re-login is needed.
    #[error("refresh grant rejected by the provider: {code}")]
    Terminal {
        /// The OAuth error code, sanitised.
        code: String,
        /// The HTTP status of the answer.
        status: u16,
    },
    /// The provider refused for entitlement (xAI `xai_oauth_tier_denied`, a bare 403): the grant
    /// is not known to be dead, but retrying soon will not help.
    #[error("refresh denied by the provider: {code}")]
    Denied {
        /// The OAuth error code, sanitised, or `http_403`.
        code: String,
        /// The HTTP status of the answer.
        status: u16,
    },
    /// The endpoint could not give an answer now; retry after backoff (or `retry_after`).
    #[error("token endpoint unavailable: {reason}")]
    Transient {
        /// What went wrong.
        reason: TransientReason,
        /// The wait the provider asked for, if it said (`Retry-After` in seconds).
        retry_after: Option<Duration>,
    },
    /// The endpoint answered success (2xx) without a usable token. The refresh token may have
    /// been consumed: retrying with it can trip reuse detection, so the caller re-syncs first
    /// and retries at most once.
    #[error("token endpoint answered success without a usable token: {reason}")]
    Protocol {
        /// What was wrong with the answer.
        reason: ProtocolReason,
    },
    /// Our own per-host budget for token-endpoint requests is spent; nothing was sent.
    #[error("token endpoint budget for {host} spent; retry in {retry_after:?}")]
    RateLimited {
        /// The host whose budget is spent.
        host: String,
        /// How long until the next request is admitted.
        retry_after: Duration,
    },
    /// The endpoint is not usable as configured (bad or insecure URL, wrong domain, redirect,
    /// 404, invalid discovery document); fix configuration, do not retry blindly.
    #[error("token endpoint misconfigured: {reason}")]
    Misconfigured {
        /// What is wrong.
        reason: ConfigReason,
    },
}

impl RefreshError {
    /// Tells whether the grant is dead and only a re-login revives it.
    pub fn is_terminal(&self) -> bool {
        matches!(self, RefreshError::Terminal { .. })
    }

    /// Returns the wait the provider (or our limiter) asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RefreshError::Transient { retry_after, .. } => *retry_after,
            RefreshError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Tells whether the request may have reached the provider and redeemed the refresh token
    /// without us learning the new pair: a timeout, a connection broken after sending, a 5xx,
    /// or a 2xx without a usable token. A retry with the same single-use token may then be
    /// seen as reuse, unless the provider has a grace window.
    pub fn may_have_consumed_token(&self) -> bool {
        match self {
            RefreshError::Protocol { .. } => true,
            RefreshError::Transient { reason, .. } => matches!(
                reason,
                TransientReason::Timeout
                    | TransientReason::Interrupted
                    | TransientReason::ServerError { .. }
            ),
            _ => false,
        }
    }

    /// Tells whether the provider provably did not redeem the token, so sending the same
    /// refresh token to another endpoint is safe: nothing was delivered (connection refused,
    /// DNS failure, our own limiter) or the route does not exist (404).
    pub fn provably_unspent(&self) -> bool {
        matches!(
            self,
            RefreshError::Transient {
                reason: TransientReason::Connect,
                ..
            } | RefreshError::RateLimited { .. }
                | RefreshError::Misconfigured {
                    reason: ConfigReason::NotFound
                }
        )
    }
}

/// Why the endpoint could not answer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransientReason {
    /// No answer within the client's timeout.
    Timeout,
    /// The connection could not be established (refused, DNS, TLS handshake); nothing sent.
    Connect,
    /// The connection broke after the request was sent.
    Interrupted,
    /// A 5xx or 408 answer.
    ServerError {
        /// The HTTP status.
        status: u16,
    },
    /// A 429 answer.
    RateLimited {
        /// The HTTP status.
        status: u16,
    },
    /// A 4xx answer the provider flagged as temporary (`temporarily_unavailable`, `slow_down`).
    Busy {
        /// The HTTP status.
        status: u16,
    },
    /// An error status whose body is not the provider's OAuth JSON (an HTML page from a proxy
    /// or WAF, or a JSON body without an error code).
    Unreadable {
        /// The HTTP status.
        status: u16,
    },
    /// An error answer larger than the body cap.
    ErrorBodyTooLarge {
        /// The HTTP status.
        status: u16,
    },
}

impl fmt::Display for TransientReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransientReason::Timeout => f.write_str("timed out"),
            TransientReason::Connect => f.write_str("connection failed"),
            TransientReason::Interrupted => f.write_str("connection interrupted"),
            TransientReason::ServerError { status } => write!(f, "server error {status}"),
            TransientReason::RateLimited { status } => write!(f, "rate limited ({status})"),
            TransientReason::Busy { status } => write!(f, "provider busy ({status})"),
            TransientReason::Unreadable { status } => {
                write!(f, "unreadable error answer ({status})")
            }
            TransientReason::ErrorBodyTooLarge { status } => {
                write!(f, "error answer too large ({status})")
            }
        }
    }
}

/// What was wrong with a 2xx answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolReason {
    /// The body is not JSON (an HTML page, `{not json`).
    MalformedJson,
    /// The body is empty.
    EmptyBody,
    /// The JSON has no (or an empty) `access_token`.
    MissingAccessToken,
    /// The body is larger than the cap.
    BodyTooLarge,
}

impl fmt::Display for ProtocolReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolReason::MalformedJson => "malformed json",
            ProtocolReason::EmptyBody => "empty body",
            ProtocolReason::MissingAccessToken => "no access token",
            ProtocolReason::BodyTooLarge => "body too large",
        })
    }
}

/// What is wrong with an endpoint's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigReason {
    /// The URL does not parse, has no host, or carries user info.
    InvalidUrl,
    /// The URL is not https (and not an allowed loopback test URL).
    InsecureUrl {
        /// The URL's host.
        host: String,
    },
    /// The host is not the required domain or a subdomain of it.
    DomainMismatch {
        /// The URL's host.
        host: String,
        /// The domain required.
        required: String,
    },
    /// No token endpoint URL is configured.
    NoEndpoint,
    /// The discovery document has no usable `token_endpoint`.
    DiscoveryInvalid,
    /// The endpoint answered with a redirect, which is never followed.
    Redirect {
        /// The HTTP status.
        status: u16,
    },
    /// The endpoint answered 404.
    NotFound,
    /// The HTTP client could not be built.
    HttpClient,
}

impl fmt::Display for ConfigReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigReason::InvalidUrl => f.write_str("invalid url"),
            ConfigReason::InsecureUrl { host } => write!(f, "insecure url for {host}"),
            ConfigReason::DomainMismatch { host, required } => {
                write!(f, "host {host} is not {required} or a subdomain")
            }
            ConfigReason::NoEndpoint => f.write_str("no token endpoint"),
            ConfigReason::DiscoveryInvalid => f.write_str("invalid discovery document"),
            ConfigReason::Redirect { status } => write!(f, "redirect {status} not followed"),
            ConfigReason::NotFound => f.write_str("not found"),
            ConfigReason::HttpClient => f.write_str("http client could not be built"),
        }
    }
}

impl RefreshError {
    pub(crate) fn config(reason: ConfigReason) -> Self {
        RefreshError::Misconfigured { reason }
    }

    pub(crate) fn transient(reason: TransientReason) -> Self {
        RefreshError::Transient {
            reason,
            retry_after: None,
        }
    }
}
