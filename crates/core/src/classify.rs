//! Failure classification: one function from a provider's answer to a typed [`Classification`].
//!
//! [`classify`] reads the status, the headers and the body (JSON envelopes of OpenAI, Anthropic,
//! xAI, Google Gemini/Vertex, OpenRouter, Mistral, Groq, DeepSeek and OAuth token endpoints;
//! plain text; HTML proxy pages; server-sent-event error frames) and decides in this order:
//!
//! 1. the provider's **error code** (`error.details.error_code`, Google `ErrorInfo.reason`,
//!    `error.code`, xAI's top-level `code`, the OAuth `error`, `error.type`, Google `status`),
//!    the most specific first; codes that only describe a family (`invalid_request_error`,
//!    `permission_error`) do not decide;
//! 2. well-known words in the text (xAI `bad-credentials`, the terminal OAuth codes, an invalid
//!    API key, billing and quota wording, model entitlement wording);
//! 3. the **status** (401 auth, 402 billing, 429 throttle, 529/503 overloaded, 52x proxy,
//!    5xx/408 server error, other 4xx other);
//! 4. what is left: no status and no body is a network failure, a 2xx is an empty response or a
//!    stream error.
//!
//! `docs/CLASSIFICATION.md` is the table of rules with the reasons for each choice.
//!
//! **Invariants:** [`classify`] never panics, whatever the bytes; the returned message never
//! carries anything key-shaped ([`mask_secrets`]) and is at most [`MAX_MESSAGE_CHARS`]
//! characters plus an ellipsis; `reason` is the provider's own code when it gave one.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::clock::Timestamp;
use crate::entry::CredentialKind;
use crate::outcome::{Class, Classification, FailureKind, RateLimitScope, TransientCause};
use crate::registry::ProviderRegistry;
use crate::reset;

/// The longest provider message kept in a [`Classification`], in characters.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// Bodies are inspected up to this many bytes; error bodies are small, a huge one is not an
/// error envelope worth reading in full.
const MAX_BODY_BYTES: usize = 256 * 1024;

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

/// Classifies a provider's answer; reset times are clamped to `now + reset_ceiling`.
pub fn classify(
    input: &ClassifyInput<'_>,
    now: Timestamp,
    reset_ceiling: Duration,
) -> Classification {
    let credential = credential_kind(input);
    let evidence = Evidence::read(input.body);
    let (kind, reason) = decide(input.status, &evidence, credential);
    let reset_at = match kind.class() {
        Class::RateLimited | Class::Billing | Class::Transient => reset::reset_at(
            input.headers,
            evidence.json.as_ref(),
            evidence.reset_text(),
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
    Classification {
        kind,
        status: input.status,
        reason: reason.map(|r| sanitize_reason(&r)),
        message,
        reset_at,
    }
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

/// Masks key-shaped substrings: `sk-…`, `xai-…`, `AIza…`, JWTs, `Bearer <token>` and any long
/// token that mixes letters and digits. Everything else is kept as is.
pub fn mask_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous_word_was_bearer = false;
    while !rest.is_empty() {
        // After `Bearer`, the word is a credential: it runs over every RFC 6750 token
        // character, `~` included, so that no tail of it is left unmasked.
        let in_word: fn(char) -> bool = if previous_word_was_bearer {
            is_bearer_token_char
        } else {
            is_token_char
        };
        let word_len = rest.find(|c: char| !in_word(c)).unwrap_or(rest.len());
        if word_len == 0 {
            let separator_len = rest.find(in_word).unwrap_or(rest.len());
            let separator = &rest[..separator_len];
            out.push_str(separator);
            if !separator.chars().all(|c| c == ' ') {
                previous_word_was_bearer = false;
            }
            rest = &rest[separator_len..];
            continue;
        }
        let word = &rest[..word_len];
        let trailing_dots = word.len() - word.trim_end_matches('.').len();
        if previous_word_was_bearer && word.len() >= 8 {
            out.push_str("***");
            out.push_str(&word[word.len() - trailing_dots..]);
        } else if let Some(prefix) = key_prefix(word) {
            out.push_str(prefix);
            out.push_str("***");
            out.push_str(&word[word.len() - trailing_dots..]);
        } else {
            out.push_str(word);
        }
        previous_word_was_bearer = word.eq_ignore_ascii_case("bearer");
        rest = &rest[word_len..];
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '=')
}

/// The characters of an RFC 6750 `b64token` (plus `=` padding).
fn is_bearer_token_char(c: char) -> bool {
    is_token_char(c) || c == '~'
}

/// Returns the prefix to keep when `word` looks like a secret, or `None` when it does not.
fn key_prefix(word: &str) -> Option<&'static str> {
    const PREFIXES: &[&str] = &[
        "sk-",
        "sk_",
        "xai-",
        "gsk_",
        "AIza",
        "eyJ",
        "ghp_",
        "gho_",
        "ghu_",
        "github_pat_",
        "rk-",
        "pk-",
        "sess-",
        "ya29.",
        "1//",
    ];
    let trimmed = word.trim_end_matches('.');
    if trimmed.len() < 11 {
        // Shorter than the shortest prefix plus eight characters: most words end here.
        return None;
    }
    for prefix in PREFIXES {
        if trimmed.len() >= prefix.len() + 8 && trimmed.starts_with(prefix) {
            return Some(prefix);
        }
    }
    let alphanumeric = trimmed.chars().filter(char::is_ascii_alphanumeric).count();
    let has_digit = trimmed.chars().any(|c| c.is_ascii_digit());
    let has_letter = trimmed.chars().any(|c| c.is_ascii_alphabetic());
    let is_url_like = trimmed.contains("//") || trimmed.contains("..");
    (alphanumeric >= 24 && has_digit && has_letter && !is_url_like).then_some("")
}

/// Masks secrets, flattens the text to one line and truncates it to [`MAX_MESSAGE_CHARS`].
pub fn sanitize_message(text: &str) -> String {
    let mut one_line = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !one_line.is_empty() {
            one_line.push(' ');
        }
        one_line.extend(word.chars().filter(|c| !c.is_control()));
    }
    let masked = mask_secrets(&one_line);
    match masked.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &masked[..cut]),
        None => masked,
    }
}

/// A provider code is short and has no spaces; anything else is not kept as a reason.
fn sanitize_reason(code: &str) -> String {
    let masked = mask_secrets(code.trim());
    masked.chars().take(64).collect()
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

/// What the body says, extracted once.
#[derive(Debug, Default)]
struct Evidence {
    /// The parsed error envelope (or SSE error frame), for reset fields.
    json: Option<Value>,
    /// Provider codes, most specific first, as spelled by the provider.
    codes: Vec<String>,
    /// A numeric code inside the body (OpenRouter `error.code`, Google `error.code`).
    numeric_code: Option<u16>,
    /// The provider's message (unmasked; masked before it leaves this module).
    message: Option<String>,
    /// Lower-cased text searched for phrases: the message, sentence-like codes, or the body.
    text: String,
    /// Whether Google's `QuotaFailure` names a model.
    model_quota: bool,
    /// Whether the body is an HTML page.
    html: bool,
    /// Whether the body is an event stream with an error frame in it.
    stream_error: bool,
    /// Whether the body is empty or only whitespace.
    empty: bool,
    /// Whether the body carries an error at all (an `error` member, a code, a status).
    error_found: bool,
}

impl Evidence {
    fn read(body: &[u8]) -> Evidence {
        let body = &body[..body.len().min(MAX_BODY_BYTES)];
        let text = String::from_utf8_lossy(body);
        let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        let mut evidence = Evidence {
            empty: trimmed.is_empty(),
            ..Evidence::default()
        };
        if evidence.empty {
            return evidence;
        }
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(value) = serde_json::from_str::<Value>(trimmed)
        {
            evidence.read_envelope(&value);
            evidence.json = Some(value);
            evidence.finish(trimmed);
            return evidence;
        }
        if let Some(frame) = sse_error_frame(trimmed) {
            evidence.stream_error = true;
            evidence.error_found = true;
            match serde_json::from_str::<Value>(frame) {
                Ok(value) => {
                    evidence.read_envelope(&value);
                    evidence.json = Some(value);
                }
                Err(_) => evidence.message = Some(frame.to_owned()),
            }
            evidence.finish(frame);
            return evidence;
        }
        let head = &trimmed[..floor_char_boundary(trimmed, 1024)];
        let head_lower = head.to_ascii_lowercase();
        if head.starts_with('<') || head_lower.contains("<html") || head_lower.contains("<!doctype")
        {
            evidence.html = true;
            evidence.message = html_title(trimmed);
            evidence.text = trimmed[..floor_char_boundary(trimmed, 16 * 1024)].to_ascii_lowercase();
            return evidence;
        }
        evidence.message = Some(trimmed.to_owned());
        evidence.finish(trimmed);
        evidence
    }

    /// Fills `text` from the message and sentence-like codes, or from the raw body.
    fn finish(&mut self, raw: &str) {
        let mut text = String::new();
        if let Some(message) = &self.message {
            text.push_str(message);
        }
        for code in &self.codes {
            text.push(' ');
            text.push_str(code);
        }
        if text.trim().is_empty() || self.json.is_none() && self.message.is_none() {
            text.push(' ');
            text.push_str(raw);
        }
        let end = floor_char_boundary(&text, 16 * 1024);
        self.text = text[..end].to_ascii_lowercase();
    }

    /// Reads a JSON error envelope of any of the known shapes.
    fn read_envelope(&mut self, root: &Value) {
        let root = match root {
            Value::Array(items) => items
                .iter()
                .find(|item| item.get("error").is_some())
                .or_else(|| items.first())
                .unwrap_or(root),
            _ => root,
        };
        let Some(object) = root.as_object() else {
            return;
        };
        self.error_found = object.contains_key("error")
            || object.contains_key("code")
            || object.get("type").and_then(Value::as_str) == Some("error")
            || object.get("object").and_then(Value::as_str) == Some("error");
        match object.get("error") {
            Some(Value::Object(error)) => {
                // Anthropic puts the precise code under error.details.error_code.
                if let Some(details) = error.get("details") {
                    if let Some(code) = details.get("error_code").and_then(Value::as_str) {
                        self.push_code(code);
                    }
                    self.read_google_details(details);
                }
                match error.get("code") {
                    Some(Value::String(code)) => self.push_code(code),
                    Some(Value::Number(n)) => self.numeric_code = as_status(n),
                    _ => {}
                }
                if let Some(kind) = error.get("type").and_then(Value::as_str) {
                    self.push_code(kind);
                }
                if let Some(status) = error.get("status").and_then(Value::as_str) {
                    self.push_code(status);
                }
                self.message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                // OpenRouter: the upstream provider's own error is in metadata.raw.
                if let Some(raw) = error
                    .get("metadata")
                    .and_then(|metadata| metadata.get("raw"))
                    .and_then(Value::as_str)
                {
                    let message = self.message.get_or_insert_with(String::new);
                    message.push_str(" | ");
                    message.push_str(raw);
                }
            }
            Some(Value::String(error)) => {
                if let Some(code) = object.get("code").and_then(Value::as_str) {
                    // xAI: {"code": "unauthenticated:bad-credentials", "error": "…"}.
                    self.message = Some(error.clone());
                    self.push_code(code);
                } else {
                    // OAuth (RFC 6749 §5.2): {"error": "invalid_grant", "error_description": "…"}.
                    self.push_code(error);
                    self.message = object
                        .get("error_description")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| (!looks_like_code(error)).then(|| error.clone()));
                }
            }
            _ => {
                // Mistral and others: {"object":"error","message":…,"type":…,"code":…}, or
                // {"detail": "…"}.
                match object.get("code") {
                    Some(Value::String(code)) => self.push_code(code),
                    Some(Value::Number(n)) => self.numeric_code = as_status(n),
                    _ => {}
                }
                if let Some(kind) = object.get("type").and_then(Value::as_str)
                    && kind != "error"
                {
                    self.push_code(kind);
                }
                self.message = object
                    .get("message")
                    .or_else(|| object.get("detail"))
                    .or_else(|| object.get("msg"))
                    .map(|value| match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
            }
        }
        if self.numeric_code.is_none()
            && let Some(Value::Number(n)) = object.get("status")
        {
            self.numeric_code = as_status(n);
        }
    }

    /// Reads Google `google.rpc` details: `ErrorInfo.reason` and `QuotaFailure` dimensions.
    fn read_google_details(&mut self, details: &Value) {
        let Some(items) = details.as_array() else {
            return;
        };
        for item in items.iter().take(32) {
            let kind = item.get("@type").and_then(Value::as_str).unwrap_or("");
            if kind.ends_with("ErrorInfo")
                && let Some(reason) = item.get("reason").and_then(Value::as_str)
            {
                self.push_code(reason);
            }
            if kind.ends_with("QuotaFailure") {
                let violations = item.get("violations").and_then(Value::as_array);
                for violation in violations.into_iter().flatten().take(32) {
                    let model_dimension = violation
                        .pointer("/quotaDimensions/model")
                        .is_some_and(|m| !m.is_null());
                    let per_model_id = violation
                        .get("quotaId")
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.contains("PerModel"));
                    self.model_quota |= model_dimension || per_model_id;
                }
            }
        }
    }

    /// Keeps identifier-like codes; a sentence in a code field (xAI) joins the text instead.
    fn push_code(&mut self, code: &str) {
        let code = code.trim();
        if code.is_empty() {
            return;
        }
        if looks_like_code(code) {
            self.codes.push(code.to_owned());
        } else {
            let message = self.message.get_or_insert_with(String::new);
            if !message.is_empty() {
                message.push_str(" | ");
            }
            message.push_str(code);
        }
    }

    /// The text searched for reset phrases.
    fn reset_text(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

fn looks_like_code(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && !text.contains(char::is_whitespace)
}

fn as_status(number: &serde_json::Number) -> Option<u16> {
    number
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Finds the first error frame in a server-sent-event body: a `data:` line after
/// `event: error`, or a `data:` JSON line carrying an `error` (or `"type":"error"`).
fn sse_error_frame(body: &str) -> Option<&str> {
    if !body.contains("data:") && !body.contains("event:") {
        return None;
    }
    let mut error_event = false;
    for line in body.lines().take(10_000) {
        let line = line.trim();
        if let Some(event) = line.strip_prefix("event:") {
            error_event = event.trim() == "error";
            continue;
        }
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        let mentions_error = data.starts_with('{')
            && (data.contains("\"error\"") || data.contains("\"type\":\"error\""));
        if error_event || mentions_error {
            return Some(data);
        }
    }
    None
}

/// Returns the `<title>` of an HTML page, for the message.
fn html_title(page: &str) -> Option<String> {
    let head = &page[..floor_char_boundary(page, 16 * 1024)];
    let lower = head.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title = head.get(open_end..close)?.trim();
    (!title.is_empty()).then(|| title.to_owned())
}

/// What a provider code means, when it decides alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeRule {
    /// The grant or token is dead: re-auth only.
    Terminal,
    /// The API key is not valid: terminal for a key, a refresh for an OAuth access token.
    InvalidKey,
    /// The access token expired.
    Expired,
    /// Authentication failed without saying why: read by the credential kind.
    PlainAuth,
    /// The OAuth client (not the grant) is misconfigured.
    BadClient,
    /// The provider says the account is out of credit or quota.
    Billing,
    /// The provider says the credential is throttled.
    RateLimit,
    /// The provider says it is overloaded.
    Overloaded,
    /// The provider failed.
    ServerError,
    /// The account may not use the model.
    Model,
}

/// The OAuth and provider codes that make a credential dead.
pub const TERMINAL_CODES: &[&str] = &[
    "token_invalidated",
    "token_revoked",
    "invalid_token",
    "invalid_grant",
    "unauthorized_client",
    "refresh_token_reused",
];

fn code_rule(code: &str) -> Option<CodeRule> {
    let code = code.to_ascii_lowercase();
    if code.contains("bad-credentials") || code.contains("bad_credentials") {
        return Some(CodeRule::Expired);
    }
    let rule = match code.as_str() {
        c if TERMINAL_CODES.contains(&c) => CodeRule::Terminal,
        "invalid_api_key" | "api_key_invalid" | "incorrect_api_key" | "api_key_expired"
        | "invalid_x_api_key" | "api_key_not_found" => CodeRule::InvalidKey,
        "token_expired" | "expired_token" | "access_token_expired" => CodeRule::Expired,
        "authentication_error"
        | "unauthenticated"
        | "unauthorized"
        | "invalid_authentication"
        | "authentication_failed"
        | "invalid_auth"
        | "missing_api_key" => CodeRule::PlainAuth,
        "invalid_client" => CodeRule::BadClient,
        "insufficient_quota"
        | "billing_error"
        | "billing_hard_limit_reached"
        | "billing_not_active"
        | "enforced_spend_limit_reached"
        | "spend_limit_reached"
        | "usage_limit_reached"
        | "insufficient_balance"
        | "insufficient_credits"
        | "payment_required"
        | "credits_exhausted"
        | "quota_exceeded" => CodeRule::Billing,
        "rate_limit_error"
        | "rate_limit_exceeded"
        | "rate_limited"
        | "ratelimitexceeded"
        | "too_many_requests"
        | "resource_exhausted"
        | "rate_limit_reached"
        | "slow_down"
        | "requests_rate_limit_exceeded"
        | "tokens_rate_limit_exceeded" => CodeRule::RateLimit,
        "overloaded_error"
        | "overloaded"
        | "server_overloaded"
        | "unavailable"
        | "service_unavailable"
        | "engine_overloaded"
        | "capacity_exceeded" => CodeRule::Overloaded,
        "api_error"
        | "internal_error"
        | "internal"
        | "server_error"
        | "internal_server_error"
        | "temporarily_unavailable"
        | "deadline_exceeded"
        | "timeout"
        | "bad_gateway" => CodeRule::ServerError,
        "model_not_found"
        | "model_not_available"
        | "unsupported_model"
        | "model_not_allowed"
        | "model_access_denied" => CodeRule::Model,
        _ => return None,
    };
    Some(rule)
}

/// Phrases that say an API key is simply wrong.
const INVALID_KEY_PHRASES: &[&str] = &[
    "invalid x-api-key",
    "invalid api key",
    "incorrect api key",
    "api key not valid",
    "invalid_api_key",
    "api_key_invalid",
    "api key is invalid",
    "api key expired",
    "is invalid. please check your api key",
];

/// Phrases about credit, spend, quota and plan limits.
const BILLING_PHRASES: &[&str] = &[
    "credit balance",
    "credits",
    "insufficient funds",
    "insufficient balance",
    "insufficient_quota",
    "can only afford",
    "billing",
    "payment",
    "spend limit",
    "spending limit",
    "spend_limit",
    "budget limit",
    "budget exceeded",
    "key limit exceeded",
    "quota",
    "usage limit",
    "usage_limit",
    "requires a subscription",
    "upgrade for",
    "free tier",
    "daily limit",
    "weekly limit",
    "monthly limit",
];

/// Phrases that say the account may not use the model.
const MODEL_PHRASES: &[&str] = &[
    "does not have access to model",
    "do not have access to model",
    "not have access to the model",
    "does not exist or you do not have access",
    "model_not_found",
    "not supported when using codex",
    "model is not available for your",
];

/// Phrases of a Cloudflare (or similar) challenge or error page.
const PROXY_PHRASES: &[&str] = &[
    "just a moment...",
    "attention required",
    "cf-chl",
    "cf-ray",
    "cloudflare",
    "ddos protection",
    "checking your browser",
];

fn auth_by_kind(credential: CredentialKind) -> FailureKind {
    match credential {
        CredentialKind::OAuth => FailureKind::AuthExpired,
        CredentialKind::ApiKey => FailureKind::AuthInvalid { terminal: false },
    }
}

fn invalid_key(credential: CredentialKind) -> FailureKind {
    // An OAuth access token sent where a key is expected reads as an invalid key once it has
    // expired (Codex tokens on api.openai.com); a refresh is the fix, and a dead grant shows up
    // as a terminal code from the token endpoint.
    match credential {
        CredentialKind::OAuth => FailureKind::AuthExpired,
        CredentialKind::ApiKey => FailureKind::AuthInvalid { terminal: true },
    }
}

/// The rate-limit scope: per model when the provider says so.
fn rate_limit_scope(evidence: &Evidence) -> RateLimitScope {
    let text = &evidence.text;
    let per_model = evidence.model_quota
        || text.contains("for model")
        || text.contains("per model")
        || text.contains("per-model")
        || text.contains("this model")
        || (text.contains("rate limit reached for") && text.contains(" in organization"));
    if per_model {
        RateLimitScope::Model
    } else {
        RateLimitScope::Account
    }
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(index, _)| {
        let before = text[..index].chars().next_back();
        let after = text[index + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        boundary(before) && boundary(after)
    })
}

/// Tells whether the text says an API key is wrong. `loose` (used once the provider already
/// said "authentication") also accepts "api key … invalid" in any order (DeepSeek's
/// "Your api key: ****abcd is invalid").
fn looks_like_invalid_key(text: &str, loose: bool) -> bool {
    if contains_any(text, INVALID_KEY_PHRASES) {
        return true;
    }
    loose
        && contains_any(text, &["api key", "api-key", "api_key", "apikey"])
        && ["invalid", "incorrect", "not valid"]
            .iter()
            .any(|word| has_word(text, word))
}

fn contains_any(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|phrase| text.contains(phrase))
}

/// Finds `error code: NNN` (Python SDK exception text) in a bare message.
fn status_in_text(text: &str) -> Option<u16> {
    let index = text.find("error code: ")?;
    let digits = text.get(index + 12..index + 15)?;
    digits
        .parse::<u16>()
        .ok()
        .filter(|n| (100..=599).contains(n))
}

fn transient(cause: TransientCause) -> FailureKind {
    FailureKind::Transient { cause }
}

/// The decision: code first, then words, then status. Returns the kind and the reason.
fn decide(
    status: Option<u16>,
    evidence: &Evidence,
    credential: CredentialKind,
) -> (FailureKind, Option<String>) {
    let in_stream = status.is_some_and(|s| (200..300).contains(&s));
    if in_stream && !evidence.error_found {
        // A 2xx reported as a failure with no error in it: nothing usable came back.
        return (transient(TransientCause::EmptyResponse), None);
    }
    let (kind, reason) = decide_inner(status, evidence, credential);
    if !in_stream {
        return (kind, reason);
    }
    // Inside a 2xx stream, anything not about the credential is a stream error (an overload
    // keeps its more precise cause).
    let kind = match kind {
        FailureKind::Transient {
            cause: TransientCause::Overloaded | TransientCause::EmptyResponse,
        } => kind,
        FailureKind::Transient { .. } | FailureKind::Other => {
            transient(TransientCause::StreamError)
        }
        other => other,
    };
    (kind, reason)
}

fn decide_inner(
    status: Option<u16>,
    evidence: &Evidence,
    credential: CredentialKind,
) -> (FailureKind, Option<String>) {
    let text = evidence.text.as_str();
    let first_code = evidence.codes.first().cloned();
    let in_stream = status.is_some_and(|s| (200..300).contains(&s));

    // 1. The provider's code, most specific first.
    for code in &evidence.codes {
        let Some(rule) = code_rule(code) else {
            continue;
        };
        let reason = Some(code.clone());
        let kind = match rule {
            CodeRule::Terminal => FailureKind::AuthInvalid { terminal: true },
            CodeRule::InvalidKey => invalid_key(credential),
            CodeRule::Expired => FailureKind::AuthExpired,
            CodeRule::PlainAuth => {
                if let Some(word) = TERMINAL_CODES.iter().find(|w| has_word(text, w)) {
                    return (
                        FailureKind::AuthInvalid { terminal: true },
                        Some((*word).to_owned()),
                    );
                }
                if looks_like_invalid_key(text, true) {
                    invalid_key(credential)
                } else {
                    auth_by_kind(credential)
                }
            }
            CodeRule::BadClient => FailureKind::AuthInvalid { terminal: false },
            CodeRule::Billing => FailureKind::Billing { verified: true },
            CodeRule::RateLimit => FailureKind::RateLimited {
                scope: rate_limit_scope(evidence),
            },
            CodeRule::Overloaded => transient(TransientCause::Overloaded),
            CodeRule::ServerError if text.contains("overloaded") => {
                transient(TransientCause::Overloaded)
            }
            CodeRule::ServerError => transient(TransientCause::ServerError),
            CodeRule::Model => FailureKind::ModelEntitlement,
        };
        return (kind, reason);
    }

    // A status inside the body stands in for a missing (or 2xx stream) status.
    let effective = match status {
        None => evidence.numeric_code.or_else(|| status_in_text(text)),
        Some(s) if in_stream => evidence.numeric_code.or(Some(s)),
        Some(s) => Some(s),
    };

    // 2. Well-known words.
    let auth_capable = matches!(effective, None | Some(400 | 401 | 403));
    if text.contains("bad-credentials") && (auth_capable || text.contains("unauthenticated")) {
        let reason = if text.contains("unauthenticated:bad-credentials") {
            "unauthenticated:bad-credentials"
        } else {
            "bad-credentials"
        };
        return (FailureKind::AuthExpired, Some(reason.to_owned()));
    }
    if (matches!(effective, None | Some(400 | 401)) || in_stream)
        && let Some(word) = TERMINAL_CODES.iter().find(|w| has_word(text, w))
    {
        return (
            FailureKind::AuthInvalid { terminal: true },
            Some((*word).to_owned()),
        );
    }
    if effective == Some(401) {
        let kind = if looks_like_invalid_key(text, true) {
            invalid_key(credential)
        } else if has_word(text, "token_expired")
            || text.contains("token has expired")
            || text.contains("token is expired")
            || text.contains("expired token")
        {
            FailureKind::AuthExpired
        } else {
            auth_by_kind(credential)
        };
        return (kind, first_code);
    }
    if effective == Some(402) {
        return (FailureKind::Billing { verified: true }, first_code);
    }
    let client_error_or_unknown = matches!(effective, None | Some(400..=499)) || in_stream;
    if client_error_or_unknown && !evidence.html {
        if matches!(effective, None | Some(400 | 403)) && looks_like_invalid_key(text, false) {
            return (invalid_key(credential), first_code);
        }
        if contains_any(text, BILLING_PHRASES) {
            return (FailureKind::Billing { verified: false }, first_code);
        }
        if contains_any(text, MODEL_PHRASES) {
            return (FailureKind::ModelEntitlement, first_code);
        }
    }

    // 3. The status.
    let overloaded_words = text.contains("overloaded") || text.contains("over capacity");
    let kind = match effective {
        Some(429) if evidence.html && contains_any(text, PROXY_PHRASES) => {
            transient(TransientCause::Proxy)
        }
        Some(429) => FailureKind::RateLimited {
            scope: rate_limit_scope(evidence),
        },
        Some(403) if evidence.html && contains_any(text, PROXY_PHRASES) => {
            transient(TransientCause::Proxy)
        }
        Some(520..=527 | 530) => transient(TransientCause::Proxy),
        Some(500..=599) if evidence.html => transient(TransientCause::Proxy),
        Some(503 | 529) => transient(TransientCause::Overloaded),
        Some(500..=599) if overloaded_words => transient(TransientCause::Overloaded),
        Some(408 | 500..=599) => transient(TransientCause::ServerError),
        Some(200..=299) if in_stream && overloaded_words => transient(TransientCause::Overloaded),
        Some(200..=299) if evidence.stream_error => transient(TransientCause::StreamError),
        Some(200..=299) => transient(TransientCause::EmptyResponse),
        Some(_) => FailureKind::Other,
        None if evidence.empty => transient(TransientCause::Network),
        None if overloaded_words => transient(TransientCause::Overloaded),
        None if evidence.html => transient(TransientCause::Proxy),
        None => transient(TransientCause::Network),
    };
    (kind, first_code)
}

#[cfg(test)]
mod tests;
