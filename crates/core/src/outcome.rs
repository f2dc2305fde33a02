//! Typed outcomes of a request made with a credential.
//!
//! **Invariant:** an HTTP failure becomes a [`Classification`] in exactly one place
//! ([`crate::classify`]); everything downstream matches on [`FailureKind`], never on status
//! codes or message text.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// What happened when a credential was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The request succeeded.
    Success,
    /// The request failed in a classified way.
    Failure(Classification),
}

/// Whether a rate limit covers the whole account or only one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// The credential is throttled for every model.
    Account,
    /// The credential is throttled for one model; others still work.
    Model,
}

/// Why a failure is transient; informs logs and the retry, never the credential's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransientCause {
    /// The provider says it is overloaded (529, 503 "overloaded").
    Overloaded,
    /// A 5xx or 408 from the provider.
    ServerError,
    /// An HTML page or a 52x from a proxy or CDN in front of the provider.
    Proxy,
    /// A 200 with an empty body.
    EmptyResponse,
    /// The request timed out or the connection failed.
    Network,
    /// An error frame inside a 200 event stream that is not about the credential.
    StreamError,
}

/// The finer kinds of failure; [`Class`] is their documented coarse view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FailureKind {
    /// The access token expired or was not accepted in a way a refresh may fix.
    AuthExpired,
    /// The key or grant is bad. `terminal` means the credential is dead until re-auth.
    AuthInvalid {
        /// True when the provider's code says the credential can never work again.
        terminal: bool,
    },
    /// The credential is throttled.
    RateLimited {
        /// Account-wide or for one model.
        scope: RateLimitScope,
    },
    /// Out of credit, spend limit or quota.
    Billing {
        /// True when the provider said so explicitly (402 or a billing error code), false when
        /// only the message text suggests it.
        verified: bool,
    },
    /// The account may not use the requested model.
    ModelEntitlement,
    /// The provider or the path to it failed; the credential is fine.
    Transient {
        /// What failed.
        cause: TransientCause,
    },
    /// Anything else (a bad request, a client error); not the credential's fault.
    Other,
}

/// The coarse class of a failure, as `credpool classify` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A refresh may help.
    AuthExpired,
    /// The key or grant is bad.
    AuthInvalid,
    /// Throttled, for the account or a model.
    RateLimited,
    /// Billing or quota.
    Billing,
    /// Not the credential's fault; retry.
    Transient,
    /// Everything else, including model entitlement.
    Other,
}

impl Class {
    /// Returns the snake_case name used in JSON and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::AuthExpired => "auth_expired",
            Class::AuthInvalid => "auth_invalid",
            Class::RateLimited => "rate_limited",
            Class::Billing => "billing",
            Class::Transient => "transient",
            Class::Other => "other",
        }
    }
}

impl FailureKind {
    /// Returns the coarse class.
    pub fn class(&self) -> Class {
        match self {
            FailureKind::AuthExpired => Class::AuthExpired,
            FailureKind::AuthInvalid { .. } => Class::AuthInvalid,
            FailureKind::RateLimited { .. } => Class::RateLimited,
            FailureKind::Billing { .. } => Class::Billing,
            FailureKind::Transient { .. } => Class::Transient,
            FailureKind::ModelEntitlement | FailureKind::Other => Class::Other,
        }
    }

    /// Returns the fine kind's snake_case name (`rate_limited_model`, `transient_proxy`, …).
    pub fn name(&self) -> &'static str {
        match self {
            FailureKind::AuthExpired => "auth_expired",
            FailureKind::AuthInvalid { terminal: true } => "auth_invalid_terminal",
            FailureKind::AuthInvalid { terminal: false } => "auth_invalid",
            FailureKind::RateLimited {
                scope: RateLimitScope::Account,
            } => "rate_limited_account",
            FailureKind::RateLimited {
                scope: RateLimitScope::Model,
            } => "rate_limited_model",
            FailureKind::Billing { verified: true } => "billing_verified",
            FailureKind::Billing { verified: false } => "billing_unverified",
            FailureKind::ModelEntitlement => "model_entitlement",
            FailureKind::Transient { cause } => match cause {
                TransientCause::Overloaded => "transient_overloaded",
                TransientCause::ServerError => "transient_server_error",
                TransientCause::Proxy => "transient_proxy",
                TransientCause::EmptyResponse => "transient_empty_response",
                TransientCause::Network => "transient_network",
                TransientCause::StreamError => "transient_stream_error",
            },
            FailureKind::Other => "other",
        }
    }

    /// Tells whether the credential is dead until someone signs in again.
    pub fn is_terminal(&self) -> bool {
        matches!(self, FailureKind::AuthInvalid { terminal: true })
    }
}

/// A classified failure: the kind plus what the provider said about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// What kind of failure this is.
    pub kind: FailureKind,
    /// The HTTP status, if there was one.
    pub status: Option<u16>,
    /// The provider's own error code or type (`invalid_api_key`, `unauthenticated:bad-credentials`).
    pub reason: Option<String>,
    /// The provider's message, shortened and with anything key-shaped masked.
    pub message: Option<String>,
    /// When the provider says the limit resets, clamped to the configured ceiling.
    pub reset_at: Option<Timestamp>,
}

impl Classification {
    /// Builds a classification with only a kind.
    pub fn of(kind: FailureKind) -> Self {
        Classification {
            kind,
            status: None,
            reason: None,
            message: None,
            reset_at: None,
        }
    }
}
