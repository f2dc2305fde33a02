//! Failure classification: one function from a provider's answer to a typed [`Classification`].
//!
//! [`classify`] reads the status, the headers and the body once ([`evidence`]) and runs a fixed
//! order of rules ([`decide`]): terminal codes and request size first, then Google's structured
//! details, subscription windows in the headers, billing codes and strong billing wording, the
//! provider's codes, the words of auth, account and billing failures, and finally the status.
//! The reset time comes from [`crate::reset`]. [`classify_explained`] also returns the rule that
//! decided and what it matched, for `credpool classify --explain`.
//!
//! `docs/CLASSIFICATION.md` is the table of rules with the reasons for each choice, and
//! `crates/core/tests/corpus/` holds the real provider answers they are measured against
//! ([`score`]).
//!
//! **Invariants:** [`classify`] never panics, whatever the bytes; the returned message never
//! carries anything key-shaped ([`mask_secrets`]) and is at most [`MAX_MESSAGE_CHARS`]
//! characters plus an ellipsis; `reason` is the provider's own code when it gave one; reset
//! times are only kept for rate limits, billing and transient failures.

mod codes;
mod decide;
mod evidence;
mod google;
mod sanitize;
pub mod score;
mod words;

use std::sync::OnceLock;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::entry::CredentialKind;
use crate::outcome::{Class, Classification, FailureKind, RateLimitScope, TransientCause};
use crate::registry::ProviderRegistry;
use crate::reset::{self, ResetSource};

pub use codes::TERMINAL_CODES;
pub use decide::Rule;
pub use sanitize::{MAX_MESSAGE_CHARS, mask_secrets, sanitize_message};

use decide::{Credential, Decision, decide};
use evidence::Evidence;
use sanitize::sanitize_reason;

/// A provider's answer, as the classifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyInput<'a> {
    /// The provider the request went to; a hint, unknown names are generic.
    pub provider: Option<&'a str>,
    /// The kind of credential used; decides how a plain 401 is read.
    pub entry_kind: Option<CredentialKind>,
    /// The HTTP status, or `None` for a transport failure or a bare message.
    pub status: Option<u16>,
    /// Response headers as (name, value) pairs; names in any case.
    pub headers: &'a [(String, String)],
    /// The response body, possibly empty, possibly not UTF-8.
    pub body: &'a [u8],
}

/// Why a classification came out as it did: the rule and the evidence it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The rule that decided.
    pub rule: Rule,
    /// The status the rules read: the HTTP status, or one written in the body.
    pub status: Option<u16>,
    /// The provider codes found, most specific first.
    pub codes: Vec<String>,
    /// The phrase or header that matched, when words or headers decided.
    pub matched: Option<&'static str>,
    /// Where the reset time was read, when there is one.
    pub reset_source: Option<ResetSource>,
}

impl Explanation {
    /// Renders the explanation as one line: `rule <name>; status …; codes …; matched "…"`.
    pub fn to_line(&self) -> String {
        let mut parts = vec![format!("rule {}", self.rule.name())];
        if let Some(status) = self.status {
            parts.push(format!("status {status}"));
        }
        if !self.codes.is_empty() {
            let codes: Vec<String> = self.codes.iter().map(|c| sanitize_reason(c)).collect();
            parts.push(format!("codes {}", codes.join(", ")));
        }
        if let Some(matched) = self.matched {
            parts.push(format!("matched \"{matched}\""));
        }
        if let Some(source) = &self.reset_source {
            parts.push(format!(
                "reset from {}",
                sanitize_message(&source.to_string())
            ));
        }
        parts.join("; ")
    }
}

/// Classifies a provider's answer; reset times are clamped to `now + reset_ceiling`.
///
/// `now` is when the answer was received: replaying a recorded answer with its own receipt
/// time gives the reset it had then.
pub fn classify(
    input: &ClassifyInput<'_>,
    now: Timestamp,
    reset_ceiling: Duration,
) -> Classification {
    classify_explained(input, now, reset_ceiling).0
}

/// Classifies like [`classify`] and says which rule decided and on what evidence.
pub fn classify_explained(
    input: &ClassifyInput<'_>,
    now: Timestamp,
    reset_ceiling: Duration,
) -> (Classification, Explanation) {
    let credential = Credential {
        explicit: input.entry_kind,
        kind: credential_kind(input),
    };
    let mut evidence = Evidence::read(input.body);
    evidence.read_headers(input.headers);
    let Decision {
        kind,
        reason,
        rule,
        matched,
        effective_status,
    } = decide(input.status, input.headers, &evidence, credential);
    let reset = match kind.class() {
        Class::RateLimited | Class::Billing | Class::Transient => reset::find_reset(
            input.headers,
            evidence.json.as_ref(),
            evidence.message.as_deref(),
            now,
            reset_ceiling,
        ),
        Class::AuthExpired | Class::AuthInvalid | Class::Other => None,
    };
    let message = evidence
        .message
        .as_deref()
        .map(sanitize_message)
        .filter(|m| !m.is_empty());
    let classification = Classification {
        kind,
        status: input.status,
        reason: reason.map(|r| sanitize_reason(&r)),
        message,
        reset_at: reset.as_ref().map(|r| r.at),
    };
    let explanation = Explanation {
        rule,
        status: effective_status,
        codes: evidence.codes,
        matched,
        reset_source: reset.map(|r| r.source),
    };
    (classification, explanation)
}

/// Describes a classification in one line, with no secrets (the message is already masked).
pub fn explain(classification: &Classification) -> String {
    let what = match &classification.kind {
        FailureKind::AuthExpired => "the access token expired or was refused; a refresh may fix it",
        FailureKind::AuthInvalid { terminal: true } => {
            "the credential is invalid for good; it is dead until someone signs in again"
        }
        FailureKind::AuthInvalid { terminal: false } => {
            "the credential was refused; it is benched and retried later"
        }
        FailureKind::RateLimited {
            scope: RateLimitScope::Account,
        } => "the credential is throttled for every model",
        FailureKind::RateLimited {
            scope: RateLimitScope::Model,
        } => "the credential is throttled for one model",
        FailureKind::Billing { verified: true } => "out of credit or quota (the provider said so)",
        FailureKind::Billing { verified: false } => {
            "out of credit or quota (read from the message)"
        }
        FailureKind::ModelEntitlement => "the account may not use the requested model",
        FailureKind::Transient { cause } => match cause {
            TransientCause::Overloaded => {
                "the provider is overloaded; retry, the credential is fine"
            }
            TransientCause::ServerError => "the provider failed; retry, the credential is fine",
            TransientCause::Proxy => "a proxy or CDN page answered; retry, the credential is fine",
            TransientCause::EmptyResponse => "the provider sent an empty answer; retry",
            TransientCause::Network => "no answer reached us (network or timeout); retry",
            TransientCause::StreamError => "the event stream carried an error; retry",
        },
        FailureKind::Other => "a request or client error; not the credential's fault",
    };
    let mut line = format!("{}: {what}", classification.kind.name());
    let mut facts = Vec::new();
    if let Some(status) = classification.status {
        facts.push(format!("status {status}"));
    }
    if let Some(reason) = &classification.reason {
        facts.push(format!("code {reason}"));
    }
    if let Some(at) = classification.reset_at {
        facts.push(format!("resets at {}", at.to_rfc3339()));
    }
    if !facts.is_empty() {
        line.push_str(" (");
        line.push_str(&facts.join(", "));
        line.push(')');
    }
    if let Some(message) = &classification.message {
        line.push_str(" — \"");
        line.push_str(&sanitize_message(message));
        line.push('"');
    }
    line
}

/// Decides OAuth or API key: the entry's own kind wins, then the provider hint; an unknown
/// provider is a generic API-key provider.
fn credential_kind(input: &ClassifyInput<'_>) -> CredentialKind {
    // The built-in registry's OAuth provider ids, computed once: this runs per request.
    static OAUTH_PROVIDERS: OnceLock<Vec<String>> = OnceLock::new();
    if let Some(kind) = input.entry_kind {
        return kind;
    }
    let oauth = OAUTH_PROVIDERS.get_or_init(|| {
        ProviderRegistry::builtin()
            .iter()
            .filter(|spec| spec.is_oauth())
            .map(|spec| spec.id.as_str().to_owned())
            .collect()
    });
    let Some(name) = input.provider.map(str::trim) else {
        return CredentialKind::ApiKey;
    };
    if oauth.iter().any(|id| id.eq_ignore_ascii_case(name)) {
        CredentialKind::OAuth
    } else {
        CredentialKind::ApiKey
    }
}

#[cfg(test)]
mod tests;
