//! What the data-plane API reads and writes (version 1).
//!
//! **Invariants:** a secret appears only in a lease's `header.value`; `Debug` of every type
//! here leaves it out; a report's body is carried to the classifier, never logged.

use std::collections::BTreeMap;

use credpool::{Classification, FailureKind, RequestFailure, Timestamp, Unavailable};
use serde::{Deserialize, Serialize};

/// `POST /v1/lease`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaseRequest {
    pub(crate) provider: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) model: Option<String>,
}

/// A header to send, its value secret.
#[derive(Serialize)]
pub(crate) struct HeaderJson {
    pub(crate) name: String,
    pub(crate) value: String,
}

impl std::fmt::Debug for HeaderJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderJson")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A lease as the wire shows it.
#[derive(Debug, Serialize)]
pub(crate) struct LeaseJson {
    pub(crate) id: String,
    pub(crate) provider: String,
    pub(crate) entry: String,
    pub(crate) label: String,
    pub(crate) generation: u64,
    pub(crate) kind: &'static str,
    pub(crate) base_url: Option<String>,
    pub(crate) header: HeaderJson,
    pub(crate) expires_at: String,
}

/// `POST /v1/leases/{id}/report`: a success, the provider's answer, or a transport failure.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportRequest {
    pub(crate) outcome: Option<String>,
    pub(crate) status: Option<u16>,
    #[serde(default)]
    pub(crate) headers: Headers,
    pub(crate) body: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) url: Option<String>,
}

/// Response headers: `[["name", "value"], …]` or `{"name": "value", …}`.
#[derive(Deserialize, Default)]
#[serde(untagged)]
pub(crate) enum Headers {
    #[default]
    None,
    Pairs(Vec<(String, String)>),
    Map(BTreeMap<String, String>),
}

impl Headers {
    fn pairs(self) -> Vec<(String, String)> {
        match self {
            Headers::None => Vec::new(),
            Headers::Pairs(pairs) => pairs,
            Headers::Map(map) => map.into_iter().collect(),
        }
    }
}

/// What a report says happened.
pub(crate) enum Reported {
    Success,
    Failure(RequestFailure),
}

impl ReportRequest {
    /// Reads the report, or says what is wrong with it.
    pub(crate) fn read(self) -> Result<Reported, String> {
        match (self.outcome.as_deref(), self.status, self.error) {
            (Some("success"), None, None) => Ok(Reported::Success),
            (Some(other), None, None) => Err(format!(
                "outcome {other:?} is not known (\"success\", or give status/headers/body or error)"
            )),
            (None, Some(status), None) => {
                if !(100..=599).contains(&status) {
                    return Err(format!("status {status} is not an HTTP status"));
                }
                let headers = self.headers.pairs();
                let body = self.body.unwrap_or_default();
                Ok(Reported::Failure(match self.url {
                    Some(url) => RequestFailure::http(status, headers, body, url),
                    None => RequestFailure::answer(status, headers, body),
                }))
            }
            (None, None, Some(message)) => {
                let mut failure = RequestFailure::transport(message);
                failure.origin = self.url;
                Ok(Reported::Failure(failure))
            }
            _ => Err(
                "give exactly one of: outcome = \"success\", status (with headers and body), error"
                    .to_owned(),
            ),
        }
    }
}

/// A classification as the wire shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ClassificationJson {
    /// `auth_expired`, `auth_invalid`, `rate_limited`, `billing`, `transient`,
    /// `model_entitlement` or `other`.
    pub(crate) kind: &'static str,
    /// The fine kind (`rate_limited_model`, `auth_invalid_terminal`, …).
    pub(crate) detail: &'static str,
    pub(crate) status: Option<u16>,
    pub(crate) reason: Option<String>,
    pub(crate) reset_at: Option<String>,
}

impl From<&Classification> for ClassificationJson {
    fn from(classification: &Classification) -> Self {
        let kind = match &classification.kind {
            FailureKind::AuthExpired => "auth_expired",
            FailureKind::AuthInvalid { .. } => "auth_invalid",
            FailureKind::RateLimited { .. } => "rate_limited",
            FailureKind::Billing { .. } => "billing",
            FailureKind::Transient { .. } => "transient",
            FailureKind::ModelEntitlement => "model_entitlement",
            FailureKind::Other => "other",
        };
        ClassificationJson {
            kind,
            detail: classification.kind.name(),
            status: classification.status,
            reason: classification.reason.clone(),
            reset_at: classification.reset_at.map(Timestamp::to_rfc3339),
        }
    }
}

/// The answer to a report.
#[derive(Debug, Serialize)]
pub(crate) struct ReportAnswer {
    pub(crate) classification: Option<ClassificationJson>,
    pub(crate) action: &'static str,
    pub(crate) lease: Option<LeaseJson>,
    pub(crate) retry_after_ms: u64,
    pub(crate) next_available_at: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) causes: BTreeMap<&'static str, usize>,
}

/// Causes by name.
pub(crate) fn cause_names(causes: &BTreeMap<Unavailable, usize>) -> BTreeMap<&'static str, usize> {
    causes
        .iter()
        .map(|(cause, n)| (cause.as_str(), *n))
        .collect()
}
