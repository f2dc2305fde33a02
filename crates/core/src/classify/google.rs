//! Google's structured error details (`google.rpc.*` in `error.details`), read rather than
//! guessed from words.
//!
//! Gemini, Vertex AI and Cloud Code Assist answer every quota failure with the same status
//! (`RESOURCE_EXHAUSTED`) and often the same sentence ("You exceeded your current quota, please
//! check your plan and billing details"). What tells them apart is in the details:
//!
//! - `ErrorInfo.reason`: `MODEL_CAPACITY_EXHAUSTED` (the server has no room: transient),
//!   `QUOTA_EXHAUSTED` (a plan's quota, Code Assist: billing), `RATE_LIMIT_EXCEEDED`
//!   (a per-minute limit), `IAM_PERMISSION_DENIED`, `CONSUMER_INVALID`, `API_KEY_INVALID`, …;
//! - `ErrorInfo.metadata.quota_limit` and `QuotaFailure.violations[].quotaId`:
//!   `…PerMinute…` against `…PerDay…`;
//! - `RetryInfo.retryDelay` and `ErrorInfo.metadata.quotaResetDelay` / `quotaResetTimeStamp`
//!   for the reset (read by [`crate::reset`]).
//!
//! **Invariant:** reading is bounded (at most 32 details and 32 violations) and never panics.

use serde_json::Value;

/// The window of the quota a Google error names, from its quota ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum QuotaWindow {
    /// No quota id was given.
    #[default]
    Unknown,
    /// Only per-minute (or per-second) quotas were exceeded: a throttle.
    PerMinute,
    /// A per-day quota was exceeded: it lifts only with the day, so it is billing.
    PerDay,
}

/// What Google's details say, for the decision.
#[derive(Debug, Default)]
pub(super) struct GoogleDetails {
    /// `ErrorInfo.reason` values and the legacy `errors[].reason`, as spelled.
    pub reasons: Vec<String>,
    /// The longest window among the exceeded quotas.
    pub window: QuotaWindow,
    /// Whether a quota names a model (`quotaDimensions.model`, a `…PerModel…` id).
    pub model_quota: bool,
}

impl GoogleDetails {
    /// Reads `error.details` (an array of `google.rpc` messages) into `self`.
    pub fn read_details(&mut self, details: &Value) {
        let Some(items) = details.as_array() else {
            return;
        };
        for item in items.iter().take(32) {
            let kind = item.get("@type").and_then(Value::as_str).unwrap_or("");
            // Some proxies drop `@type`; a `reason` with a `domain` is still an ErrorInfo.
            let error_info =
                kind.ends_with("ErrorInfo") || (kind.is_empty() && item.get("domain").is_some());
            if error_info {
                if let Some(reason) = item.get("reason").and_then(Value::as_str) {
                    self.reasons.push(reason.to_owned());
                }
                if let Some(metadata) = item.get("metadata") {
                    for key in ["quota_limit", "quota_id", "quotaId"] {
                        if let Some(id) = metadata.get(key).and_then(Value::as_str) {
                            self.note_quota_id(id);
                        }
                    }
                }
            }
            if kind.ends_with("QuotaFailure") {
                let violations = item.get("violations").and_then(Value::as_array);
                for violation in violations.into_iter().flatten().take(32) {
                    self.model_quota |= violation
                        .pointer("/quotaDimensions/model")
                        .is_some_and(|m| !m.is_null());
                    if let Some(id) = violation.get("quotaId").and_then(Value::as_str) {
                        self.note_quota_id(id);
                    }
                }
            }
        }
    }

    /// Reads the legacy `error.errors[].reason` list (`rateLimitExceeded`).
    pub fn read_legacy_errors(&mut self, errors: &Value) {
        let Some(items) = errors.as_array() else {
            return;
        };
        for item in items.iter().take(32) {
            if let Some(reason) = item.get("reason").and_then(Value::as_str) {
                self.reasons.push(reason.to_owned());
            }
        }
    }

    fn note_quota_id(&mut self, id: &str) {
        self.model_quota |= id.contains("PerModel");
        let window = if id.contains("PerDay") || id.contains("Daily") {
            QuotaWindow::PerDay
        } else if id.contains("PerMinute") || id.contains("PerSecond") {
            QuotaWindow::PerMinute
        } else {
            QuotaWindow::Unknown
        };
        // A per-day violation outweighs per-minute ones: the day's quota lifts last.
        self.window = match (self.window, window) {
            (QuotaWindow::PerDay, _) | (_, QuotaWindow::PerDay) => QuotaWindow::PerDay,
            (QuotaWindow::PerMinute, _) | (_, QuotaWindow::PerMinute) => QuotaWindow::PerMinute,
            _ => QuotaWindow::Unknown,
        };
    }

    /// Tells whether an `ErrorInfo.reason` (any case) was given.
    pub fn has_reason(&self, reason: &str) -> bool {
        self.reasons.iter().any(|r| r.eq_ignore_ascii_case(reason))
    }
}
