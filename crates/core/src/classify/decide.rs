//! The decision: from [`Evidence`], the status and the headers to a [`FailureKind`], the rule
//! that decided and what it matched.
//!
//! Rules run in a fixed order and the first that matches decides (each [`Rule`] says which
//! provider behaviour it encodes; `docs/CLASSIFICATION.md` has the table):
//!
//! 1. terminal OAuth codes; a 402; a request too large for the model or the limit;
//! 2. Google's structured details (capacity, plan quota, per-day against per-minute quotas);
//! 3. a subscription window rejected in the headers (Anthropic's unified rate limit);
//! 4. billing codes, then billing wording strong enough to beat a rate-limit code;
//! 5. the other provider codes, most specific first;
//! 6. words: expired and refused credentials, disabled or unverified accounts, cloud IAM,
//!    invalid keys, weak billing wording, model entitlement, challenge pages;
//! 7. the status; 8. what is left (no status: network; 2xx: empty or stream error).
//!
//! **Invariants:** the decision reads only its arguments (no clock, no I/O) and never panics;
//! a credential-independent failure (rate limit, server, request) never becomes auth.

use crate::entry::CredentialKind;
use crate::outcome::{FailureKind, RateLimitScope, TransientCause};

use super::codes::{CodeRule, TERMINAL_CODES, code_rule};
use super::evidence::Evidence;
use super::google::QuotaWindow;
use super::words::{
    ACCESS_TOKEN_PHRASES, BILLING_PHRASES, CAPACITY_PHRASES, CHALLENGE_PHRASES,
    CLOUD_REFUSED_PHRASES, EXPIRED_TOKEN_PHRASES, MODEL_PHRASES, OVERLOADED_PHRASES, PROXY_PHRASES,
    RATE_WORDS, REFUSED_ACCOUNT_PHRASES, STRONG_BILLING_PHRASES, TOO_LARGE_PHRASES, contains_any,
    has_word, invalid_key_phrase, requested_over_limit, status_in_text,
};

/// The rule that decided a classification; its name is stable (logs, `--explain`, docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// A terminal OAuth or provider code (`invalid_grant`, `token_revoked`, …).
    TerminalCode,
    /// A 402 Payment Required, whatever the body says.
    PaymentRequired,
    /// The request is too large for the model or for the limit itself (413, "Request too
    /// large", context length, requested tokens above the per-minute limit).
    RequestTooLarge,
    /// Google `ErrorInfo.reason` `MODEL_CAPACITY_EXHAUSTED`: the server has no room.
    GoogleCapacity,
    /// Google `ErrorInfo.reason` `QUOTA_EXHAUSTED`: a plan's quota (Code Assist).
    GooglePlanQuota,
    /// A Google quota whose id is per-day, or whose limit is 0 (the plan does not include it).
    GoogleDailyQuota,
    /// A Google quota whose ids are all per-minute.
    GoogleMinuteQuota,
    /// A subscription window rejected in the headers (`anthropic-ratelimit-unified-status`).
    PlanWindowHeader,
    /// A billing code (`insufficient_quota`, `usage_limit_reached`, `Arrearage`, …).
    BillingCode,
    /// Billing wording that beats a rate-limit code (extra usage, spending limit, budget,
    /// arrears, balance).
    BillingWords,
    /// An authentication code, read with the words and the credential kind.
    AuthCode,
    /// A code of the provider's table (rate limit, overload, server, model, size).
    ProviderCode,
    /// xAI's `bad-credentials` or expired-token wording: refresh.
    ExpiredToken,
    /// Wording about the OAuth access token on a 401/403: refresh once.
    AccessToken,
    /// The key is refused ("invalid x-api-key", "Incorrect API key provided").
    InvalidKey,
    /// The account, organization or team is disabled, blocked or unverified.
    RefusedAccount,
    /// A cloud platform refuses the credential (AWS IAM/STS, Google IAM).
    CloudRefused,
    /// Billing wording with no rate-limit wording beside it.
    WeakBillingWords,
    /// The account may not use the model.
    ModelWords,
    /// A bot challenge or block page.
    ChallengePage,
    /// Rate-limit wording without a status.
    RateWords,
    /// The HTTP status alone.
    Status,
    /// A 2xx with no error in it.
    EmptyResponse,
    /// No HTTP answer.
    Network,
}

impl Rule {
    /// Returns the rule's stable name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::TerminalCode => "terminal-code",
            Rule::PaymentRequired => "payment-required",
            Rule::RequestTooLarge => "request-too-large",
            Rule::GoogleCapacity => "google-capacity",
            Rule::GooglePlanQuota => "google-plan-quota",
            Rule::GoogleDailyQuota => "google-daily-quota",
            Rule::GoogleMinuteQuota => "google-minute-quota",
            Rule::PlanWindowHeader => "plan-window-header",
            Rule::BillingCode => "billing-code",
            Rule::BillingWords => "billing-words",
            Rule::AuthCode => "auth-code",
            Rule::ProviderCode => "provider-code",
            Rule::ExpiredToken => "expired-token",
            Rule::AccessToken => "access-token",
            Rule::InvalidKey => "invalid-key",
            Rule::RefusedAccount => "refused-account",
            Rule::CloudRefused => "cloud-refused",
            Rule::WeakBillingWords => "weak-billing-words",
            Rule::ModelWords => "model-words",
            Rule::ChallengePage => "challenge-page",
            Rule::RateWords => "rate-words",
            Rule::Status => "status",
            Rule::EmptyResponse => "empty-response",
            Rule::Network => "network",
        }
    }
}

/// The outcome of the rules: the kind, the reason to report, the rule and what it matched.
#[derive(Debug, Clone)]
pub(super) struct Decision {
    pub kind: FailureKind,
    pub reason: Option<String>,
    pub rule: Rule,
    /// The phrase or header that matched, when a word or header rule decided.
    pub matched: Option<&'static str>,
    /// The status the rules read (the HTTP status, or one written in the body).
    pub effective_status: Option<u16>,
}

/// The credential as the rules see it: the entry's own kind, or the provider's usual one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Credential {
    /// The kind the caller stated, if any.
    pub explicit: Option<CredentialKind>,
    /// The stated kind, else the provider's usual kind.
    pub kind: CredentialKind,
}

/// Runs the rules; see the module docs for the order.
pub(super) fn decide(
    status: Option<u16>,
    headers: &[(String, String)],
    evidence: &Evidence,
    credential: Credential,
) -> Decision {
    let in_stream = status.is_some_and(|s| (200..300).contains(&s));
    if in_stream && !evidence.error_found {
        // A 2xx reported as a failure with no error in it: nothing usable came back.
        return Decision {
            kind: transient(TransientCause::EmptyResponse),
            reason: None,
            rule: Rule::EmptyResponse,
            matched: None,
            effective_status: status,
        };
    }
    let mut decision = decide_inner(status, headers, evidence, credential);
    if in_stream {
        // Inside a 2xx stream, a failure that is not about the credential or the request is a
        // stream error; an overload keeps its cause, a request that must change stays `other`.
        decision.kind = match decision.kind {
            FailureKind::Transient {
                cause: TransientCause::Overloaded | TransientCause::EmptyResponse,
            } => decision.kind,
            FailureKind::Other if decision.rule == Rule::RequestTooLarge => decision.kind,
            FailureKind::Transient { .. } | FailureKind::Other => {
                transient(TransientCause::StreamError)
            }
            other => other,
        };
    }
    decision
}

fn decide_inner(
    status: Option<u16>,
    headers: &[(String, String)],
    evidence: &Evidence,
    credential: Credential,
) -> Decision {
    let text = evidence.text.as_str();
    let in_stream = status.is_some_and(|s| (200..300).contains(&s));
    // A status inside the body stands in for a missing (or 2xx stream) status.
    let effective = match status {
        None => evidence.numeric_code.or_else(|| status_in_text(text)),
        Some(s) if in_stream => evidence.numeric_code.or(Some(s)),
        Some(s) => Some(s),
    };
    let first_code = evidence.codes.first().cloned();
    let done = |kind: FailureKind, reason: Option<String>, rule: Rule, matched| Decision {
        kind,
        reason,
        rule,
        matched,
        effective_status: effective,
    };
    let rules = |code: &str| code_rule(code);
    let code_with = |wanted: CodeRule| {
        evidence
            .codes
            .iter()
            .find(|code| rules(code) == Some(wanted))
            .cloned()
    };

    // 1. Codes that end a grant; a 402; a request that must shrink.
    if let Some(code) = code_with(CodeRule::Terminal) {
        return done(terminal(), Some(code), Rule::TerminalCode, None);
    }
    if effective == Some(402) {
        return done(billing(true), first_code, Rule::PaymentRequired, None);
    }
    let rate_words = contains_any(text, RATE_WORDS);
    if !evidence.html {
        let too_large = if effective == Some(413) {
            Some("413")
        } else if let Some(code) = code_with(CodeRule::TooLarge) {
            return done(FailureKind::Other, Some(code), Rule::RequestTooLarge, None);
        } else if let Some(phrase) = contains_any(text, TOO_LARGE_PHRASES) {
            Some(phrase)
        } else if rate_words.is_some() && requested_over_limit(text) {
            Some("requested > limit")
        } else {
            None
        };
        if too_large.is_some() {
            return done(
                FailureKind::Other,
                first_code,
                Rule::RequestTooLarge,
                too_large,
            );
        }
    }

    // 2. Google's structured details.
    let google = &evidence.google;
    let google_quota = evidence.has_code("RESOURCE_EXHAUSTED")
        || effective == Some(429)
        || text.contains("resource_exhausted");
    // Quota ids survive in text when a client printed the body in its own syntax.
    let per_day_in_text = text.contains("perdayperproject") || text.contains("_per_day");
    if google.has_reason("MODEL_CAPACITY_EXHAUSTED") {
        let reason = Some("MODEL_CAPACITY_EXHAUSTED".to_owned());
        return done(
            transient(TransientCause::Overloaded),
            reason,
            Rule::GoogleCapacity,
            None,
        );
    }
    if google_quota && let Some(phrase) = contains_any(text, CAPACITY_PHRASES) {
        let kind = transient(TransientCause::Overloaded);
        return done(kind, first_code, Rule::GoogleCapacity, Some(phrase));
    }
    if google.has_reason("QUOTA_EXHAUSTED") {
        let reason = Some("QUOTA_EXHAUSTED".to_owned());
        return done(billing(true), reason, Rule::GooglePlanQuota, None);
    }
    if google_quota && (google.window == QuotaWindow::PerDay || per_day_in_text) {
        return done(
            billing(true),
            first_code,
            Rule::GoogleDailyQuota,
            Some("PerDay quota"),
        );
    }
    if google_quota && text.contains("limit: 0") {
        return done(
            billing(true),
            first_code,
            Rule::GoogleDailyQuota,
            Some("limit: 0"),
        );
    }
    if google_quota && google.window == QuotaWindow::PerMinute {
        let kind = rate_limited(evidence);
        return done(
            kind,
            first_code,
            Rule::GoogleMinuteQuota,
            Some("PerMinute quota"),
        );
    }

    // 3. A subscription window rejected (Anthropic's unified rate limit on Pro/Max plans).
    if effective == Some(429) && unified_window_rejected(headers) {
        let matched = Some("anthropic-ratelimit-unified-status: rejected");
        return done(billing(true), first_code, Rule::PlanWindowHeader, matched);
    }

    // 4. Billing codes, then billing wording strong enough to beat a throttle code.
    if let Some(code) = code_with(CodeRule::Billing) {
        return done(billing(true), Some(code), Rule::BillingCode, None);
    }
    if !evidence.html
        && let Some(phrase) = contains_any(text, STRONG_BILLING_PHRASES)
    {
        return done(billing(false), first_code, Rule::BillingWords, Some(phrase));
    }

    // 5. The provider's codes, most specific first.
    for code in &evidence.codes {
        let Some(rule) = rules(code) else {
            continue;
        };
        let reason = Some(code.clone());
        let (kind, rule, matched) = match rule {
            CodeRule::InvalidKey => (invalid_key(credential), Rule::AuthCode, None),
            CodeRule::Expired => (FailureKind::AuthExpired, Rule::AuthCode, None),
            CodeRule::PlainAuth => {
                let (kind, matched) = plain_auth(text, credential);
                (kind, Rule::AuthCode, matched)
            }
            CodeRule::BadClient | CodeRule::Refused => (refused(), Rule::AuthCode, None),
            CodeRule::RateLimit => (rate_limited(evidence), Rule::ProviderCode, None),
            CodeRule::Overloaded => (
                transient(TransientCause::Overloaded),
                Rule::ProviderCode,
                None,
            ),
            CodeRule::ServerError if contains_any(text, OVERLOADED_PHRASES).is_some() => (
                transient(TransientCause::Overloaded),
                Rule::ProviderCode,
                None,
            ),
            CodeRule::ServerError => (
                transient(TransientCause::ServerError),
                Rule::ProviderCode,
                None,
            ),
            CodeRule::Model => (FailureKind::ModelEntitlement, Rule::ProviderCode, None),
            CodeRule::TooLarge => (FailureKind::Other, Rule::RequestTooLarge, None),
            CodeRule::Terminal | CodeRule::Billing => continue,
        };
        return done(kind, reason, rule, matched);
    }

    // 6. Words.
    let auth_capable = matches!(effective, None | Some(400 | 401 | 403)) || in_stream;
    if auth_capable && !evidence.html {
        if text.contains("bad-credentials") {
            let reason = if text.contains("unauthenticated:bad-credentials") {
                "unauthenticated:bad-credentials"
            } else {
                "bad-credentials"
            };
            return done(
                FailureKind::AuthExpired,
                Some(reason.to_owned()),
                Rule::ExpiredToken,
                Some("bad-credentials"),
            );
        }
        if (matches!(effective, None | Some(400 | 401)) || in_stream)
            && let Some(word) = TERMINAL_CODES.iter().find(|w| has_word(text, w))
        {
            let reason = Some((*word).to_owned());
            return done(terminal(), reason, Rule::TerminalCode, None);
        }
        if let Some(phrase) = refused_account_phrase(text) {
            return done(refused(), first_code, Rule::RefusedAccount, Some(phrase));
        }
        if let Some(phrase) = invalid_key_phrase(text, false) {
            return done(
                invalid_key(credential),
                first_code,
                Rule::InvalidKey,
                Some(phrase),
            );
        }
        if let Some(phrase) = contains_any(text, EXPIRED_TOKEN_PHRASES) {
            return done(
                FailureKind::AuthExpired,
                first_code,
                Rule::ExpiredToken,
                Some(phrase),
            );
        }
        if let Some(phrase) = contains_any(text, CLOUD_REFUSED_PHRASES) {
            return done(refused(), first_code, Rule::CloudRefused, Some(phrase));
        }
        if effective != Some(400)
            && let Some(phrase) = contains_any(text, ACCESS_TOKEN_PHRASES)
        {
            let kind = access_token_kind(phrase, credential);
            return done(kind, first_code, Rule::AccessToken, Some(phrase));
        }
    }
    let client_error_or_unknown = matches!(effective, None | Some(400..=499)) || in_stream;
    if client_error_or_unknown && !evidence.html {
        if rate_words.is_none()
            && let Some(phrase) = contains_any(text, BILLING_PHRASES)
        {
            return done(
                billing(false),
                first_code,
                Rule::WeakBillingWords,
                Some(phrase),
            );
        }
        if let Some(phrase) = contains_any(text, MODEL_PHRASES) {
            return done(
                FailureKind::ModelEntitlement,
                first_code,
                Rule::ModelWords,
                Some(phrase),
            );
        }
    }
    if evidence.html
        && matches!(effective, Some(400..=428 | 430..=499))
        && let Some(phrase) = contains_any(text, CHALLENGE_PHRASES)
    {
        return done(
            FailureKind::Other,
            first_code,
            Rule::ChallengePage,
            Some(phrase),
        );
    }
    // A bare message, or an error frame inside a 2xx stream (OpenRouter passes an upstream
    // 429 into a started stream, vercel/ai#2698), may say "rate limit" in words only.
    if (effective.is_none() || in_stream) && !evidence.html && rate_words.is_some() {
        return done(
            rate_limited(evidence),
            first_code,
            Rule::RateWords,
            rate_words,
        );
    }

    // 7. The status; 8. no status at all.
    let overloaded_words = contains_any(text, OVERLOADED_PHRASES).is_some();
    let kind = match effective {
        Some(401) => by_kind(credential.kind),
        Some(429) if evidence.html && contains_any(text, PROXY_PHRASES).is_some() => {
            transient(TransientCause::Proxy)
        }
        Some(429) => rate_limited(evidence),
        Some(520..=527 | 530) => transient(TransientCause::Proxy),
        Some(500..=599) if evidence.html => transient(TransientCause::Proxy),
        Some(503 | 529) => transient(TransientCause::Overloaded),
        Some(500..=599) if overloaded_words => transient(TransientCause::Overloaded),
        Some(408 | 500..=599) => transient(TransientCause::ServerError),
        Some(200..=299) if in_stream && overloaded_words => transient(TransientCause::Overloaded),
        // `decide` only comes here with an error found in the 2xx body.
        Some(200..=299) => transient(TransientCause::StreamError),
        Some(_) => FailureKind::Other,
        None if evidence.empty => transient(TransientCause::Network),
        None if overloaded_words => transient(TransientCause::Overloaded),
        None if evidence.html => transient(TransientCause::Proxy),
        None => transient(TransientCause::Network),
    };
    let rule = if effective.is_none() {
        Rule::Network
    } else {
        Rule::Status
    };
    done(kind, first_code, rule, None)
}

/// Reads an authentication code that did not say why: the words first, then the kind.
fn plain_auth(text: &str, credential: Credential) -> (FailureKind, Option<&'static str>) {
    if let Some(word) = TERMINAL_CODES.iter().find(|w| has_word(text, w)) {
        return (terminal(), Some(word));
    }
    if let Some(phrase) = invalid_key_phrase(text, true) {
        return (invalid_key(credential), Some(phrase));
    }
    if let Some(phrase) = refused_account_phrase(text) {
        return (refused(), Some(phrase));
    }
    if let Some(phrase) = contains_any(text, EXPIRED_TOKEN_PHRASES) {
        return (FailureKind::AuthExpired, Some(phrase));
    }
    if let Some(phrase) = contains_any(text, ACCESS_TOKEN_PHRASES) {
        return (access_token_kind(phrase, credential), Some(phrase));
    }
    (by_kind(credential.kind), None)
}

/// Wording about the access token: a refresh for an OAuth grant, a refused key otherwise.
/// Phrases that name OAuth or an access token mean a token was sent, whatever the provider.
fn access_token_kind(phrase: &str, credential: Credential) -> FailureKind {
    let names_a_token = phrase.contains("oauth") || phrase.contains("access token");
    match credential.explicit {
        Some(CredentialKind::ApiKey) => FailureKind::AuthInvalid { terminal: false },
        Some(CredentialKind::OAuth) => FailureKind::AuthExpired,
        None if names_a_token => FailureKind::AuthExpired,
        None => by_kind(credential.kind),
    }
}

/// Finds wording of a disabled, blocked or unverified account (OpenAI words a deactivated
/// account several ways: "account has been deactivated", "The OpenAI account associated with
/// this API key has been deactivated").
fn refused_account_phrase(text: &str) -> Option<&'static str> {
    contains_any(text, REFUSED_ACCOUNT_PHRASES).or_else(|| {
        (text.contains("account") && text.contains("has been deactivated"))
            .then_some("account … has been deactivated")
    })
}

/// Tells whether a unified (subscription) rate-limit window says `rejected`.
fn unified_window_rejected(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(name, value)| {
        let name = name.trim().to_ascii_lowercase();
        name.contains("ratelimit-unified")
            && name.ends_with("-status")
            && !name.contains("overage")
            && value.trim().eq_ignore_ascii_case("rejected")
    })
}

fn by_kind(credential: CredentialKind) -> FailureKind {
    match credential {
        CredentialKind::OAuth => FailureKind::AuthExpired,
        CredentialKind::ApiKey => FailureKind::AuthInvalid { terminal: false },
    }
}

/// A refused key. Only an entry stated as OAuth reads it as an expired access token (Codex
/// tokens sent to api.openai.com come back as `invalid_api_key`): a provider that also issues
/// OAuth grants still refuses keys for good ("invalid x-api-key").
fn invalid_key(credential: Credential) -> FailureKind {
    match credential.explicit {
        Some(CredentialKind::OAuth) => FailureKind::AuthExpired,
        _ => FailureKind::AuthInvalid { terminal: true },
    }
}

fn terminal() -> FailureKind {
    FailureKind::AuthInvalid { terminal: true }
}

/// Refused until a person acts; benched and retried later, not dead.
fn refused() -> FailureKind {
    FailureKind::AuthInvalid { terminal: false }
}

fn billing(verified: bool) -> FailureKind {
    FailureKind::Billing { verified }
}

fn transient(cause: TransientCause) -> FailureKind {
    FailureKind::Transient { cause }
}

/// A rate limit, per model when the provider says so.
fn rate_limited(evidence: &Evidence) -> FailureKind {
    let text = &evidence.text;
    let per_model = evidence.google.model_quota
        || text.contains("for model")
        || text.contains("per model")
        || text.contains("per-model")
        || text.contains("this model")
        || (text.contains("rate limit reached for") && text.contains(" in organization"));
    let scope = if per_model {
        RateLimitScope::Model
    } else {
        RateLimitScope::Account
    };
    FailureKind::RateLimited { scope }
}
