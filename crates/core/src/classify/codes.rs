//! The table of provider error codes that decide a class on their own.
//!
//! Codes come from `error.code`, `error.type`, `error.details.error_code` (Anthropic), Google's
//! `ErrorInfo.reason` and `status`, xAI's top-level `code` and the OAuth `error` field. A code
//! that only names a family (`invalid_request_error`, `permission_error`, `PERMISSION_DENIED`)
//! is not in the table: it is kept as the reason and the words decide.
//!
//! **Invariant:** matching is case-insensitive and exact (no substring), except the xAI
//! `…bad-credentials` family, so a new provider code never matches by accident.

/// What a provider code means, when it decides alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CodeRule {
    /// The grant or token is dead: re-auth only.
    Terminal,
    /// The API key is not valid: terminal for a key, a refresh for an OAuth access token.
    InvalidKey,
    /// The access token expired.
    Expired,
    /// Authentication failed without saying why: read by the words and the credential kind.
    PlainAuth,
    /// The OAuth client (not the grant) is misconfigured.
    BadClient,
    /// The account or key may not be used until a person acts (IAM, disabled, unverified).
    Refused,
    /// The provider says the account is out of credit, quota or budget.
    Billing,
    /// The provider says the credential is throttled.
    RateLimit,
    /// The provider says it is overloaded or out of capacity.
    Overloaded,
    /// The provider failed.
    ServerError,
    /// The account may not use the model.
    Model,
    /// The request itself is too large for the model or the endpoint.
    TooLarge,
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

/// Looks a code up; `None` for codes that do not decide alone.
pub(super) fn code_rule(code: &str) -> Option<CodeRule> {
    let code = code.to_ascii_lowercase();
    if code.contains("bad-credentials") || code.contains("bad_credentials") {
        return Some(CodeRule::Expired);
    }
    let rule = match code.as_str() {
        c if TERMINAL_CODES.contains(&c) => CodeRule::Terminal,
        "invalid_api_key" | "api_key_invalid" | "incorrect_api_key" | "api_key_expired"
        | "invalid_x_api_key" | "api_key_not_found" | "invalidapikey" => CodeRule::InvalidKey,
        "token_expired"
        | "expired_token"
        | "access_token_expired"
        | "expiredtoken"
        | "expiredtokenexception" => CodeRule::Expired,
        "authentication_error"
        | "unauthenticated"
        | "unauthorized"
        | "invalid_authentication"
        | "invalid_authentication_error"
        | "authentication_failed"
        | "invalid_auth"
        | "missing_api_key" => CodeRule::PlainAuth,
        "invalid_client" => CodeRule::BadClient,
        // AWS (`__type`, `x-amzn-errortype`) and Google `ErrorInfo.reason`.
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "invalidclienttokenid"
        | "accessdeniedexception"
        | "iam_permission_denied"
        | "consumer_invalid"
        | "service_disabled"
        | "api_key_service_blocked"
        | "account_deactivated"
        | "organization_disabled"
        | "access_terminated" => CodeRule::Refused,
        "insufficient_quota"
        | "billing_error"
        | "billing_hard_limit_reached"
        | "billing_not_active"
        | "billing_disabled"
        | "enforced_spend_limit_reached"
        | "spend_limit_reached"
        | "usage_limit_reached"
        | "insufficient_balance"
        | "insufficient_credits"
        | "payment_required"
        | "credits_exhausted"
        | "budget_exceeded"
        | "arrearage"
        | "quota_exhausted"
        | "exceeded_current_quota_error"
        | "quota_exceeded" => CodeRule::Billing,
        "rate_limit_error"
        | "rate_limit_exceeded"
        | "ratelimitexceeded"
        | "rate_limited"
        | "too_many_requests"
        | "resource_exhausted"
        | "rate_limit_reached"
        | "rate_limit_reached_error"
        | "throttlingexception"
        | "throttling_error"
        | "throttling"
        | "slow_down"
        | "requests_rate_limit_exceeded"
        | "tokens_rate_limit_exceeded" => CodeRule::RateLimit,
        "overloaded_error"
        | "overloaded"
        | "server_overloaded"
        | "unavailable"
        | "service_unavailable"
        | "serviceunavailableexception"
        | "modelnotreadyexception"
        | "engine_overloaded"
        | "engine_overloaded_error"
        | "capacity_exceeded"
        | "model_capacity_exhausted" => CodeRule::Overloaded,
        "api_error"
        | "internal_error"
        | "internal"
        | "server_error"
        | "internal_server_error"
        | "internalserverexception"
        | "temporarily_unavailable"
        | "deadline_exceeded"
        | "timeout"
        | "bad_gateway" => CodeRule::ServerError,
        "model_not_found"
        | "model_not_available"
        | "unsupported_model"
        | "model_not_allowed"
        | "model_access_denied" => CodeRule::Model,
        "context_length_exceeded"
        | "request_too_large"
        | "tokens_limit_reached"
        | "string_above_max_length" => CodeRule::TooLarge,
        _ => return None,
    };
    Some(rule)
}
