//! The phrases providers use, grouped by what they mean, and the helpers that find them.
//!
//! Each table names the providers whose wording it encodes. Phrases are lower case and matched
//! in the lower-cased text ([`super::evidence::Evidence::text`]); none is the whole text of one
//! answer, so a table generalises to the family, not to a sample.
//!
//! **Invariant:** matching is plain substring or word search over at most 16 KiB; no regular
//! expressions, no allocation per phrase.

/// Phrases that say an API key is simply wrong (OpenAI "Incorrect API key provided", Anthropic
/// "invalid x-api-key", Google "API key not valid", xAI on a 400).
pub(super) const INVALID_KEY_PHRASES: &[&str] = &[
    "invalid x-api-key",
    "invalid api key",
    "incorrect api key",
    "api key not valid",
    "api key not found",
    "invalid_api_key",
    "api_key_invalid",
    "api key is invalid",
    "api key expired",
    "is invalid. please check your api key",
];

/// The account, organization or team may not be used until a person acts: disabled or
/// restricted organizations (Anthropic "This organization has been disabled."), accounts that
/// need verification (OpenAI "Your organization must be verified"), blocked users (grok.com
/// `WKE=unauthorized:blocked-user`), deactivated accounts (OpenAI `account_deactivated`).
pub(super) const REFUSED_ACCOUNT_PHRASES: &[&str] = &[
    "organization has been disabled",
    "organization has been restricted",
    "organization is restricted",
    "organization restricted",
    "organization is disabled",
    "account has been disabled",
    "account is disabled",
    "account has been deactivated",
    "account_deactivated",
    "account has been suspended",
    "deactivated account",
    "deleted or deactivated",
    "disabled in this account",
    "violation of terms",
    "account is suspended",
    "team is blocked",
    "team has been blocked",
    "account is blocked",
    "account has been blocked",
    "has been suspended",
    "consumer_suspended",
    "reported as leaked",
    "user is blocked",
    "blocked-user",
    "must be verified",
    "verify organization",
    "verify your account",
    "validation_required",
    "requires validation",
];

/// Cloud platforms refusing the credential: AWS STS/IAM ("security token included in the
/// request is invalid", `UnrecognizedClientException`, signature mismatches, Bedrock model
/// access denied) and Google Cloud IAM ("Permission 'aiplatform.endpoints.predict' denied",
/// `CONSUMER_INVALID`).
pub(super) const CLOUD_REFUSED_PHRASES: &[&str] = &[
    "security token included in the request is invalid",
    "unrecognizedclientexception",
    "invalidclienttokenid",
    "invalidsignatureexception",
    "signature we calculated does not match",
    "accessdeniedexception",
    "don't have access to the model",
    "do not have access to the model with the specified model id",
    "model access is denied",
    "is not authorized to perform",
    "iam_permission_denied",
    "service_disabled",
    "has not been used in project",
    "api_key_service_blocked",
    "consumer_invalid",
    "denied on resource",
    "permission denied on resource",
];

/// An expired token in any wording: OAuth access tokens (Anthropic "OAuth token has expired",
/// OpenAI Codex `token_expired`), GitHub Copilot's plain-text "unauthorized: token expired",
/// AWS STS "The security token included in the request is expired".
pub(super) const EXPIRED_TOKEN_PHRASES: &[&str] = &[
    "token has expired",
    "token is expired",
    "token expired",
    "expired token",
    "token_expired",
    "expiredtoken",
    "request is expired",
    "access token expired",
];

/// Wording about the access token that a refresh fixes on an OAuth grant: xAI "The OAuth2
/// access token could not be validated", Anthropic "OAuth token has been revoked", "Invalid
/// bearer token", "Invalid OAuth token", Google "Expected OAuth 2 access token", "Invalid
/// authentication credentials".
pub(super) const ACCESS_TOKEN_PHRASES: &[&str] = &[
    "could not be validated",
    "token has been revoked",
    "invalid bearer token",
    "invalid oauth token",
    "oauth token",
    "access token",
    "bearer token",
    "invalid authentication credentials",
    "invalid or expired credentials",
    "credentials are invalid or expired",
    "expected oauth 2 access token",
    "bad-credentials",
];

/// Billing wording strong enough to win over a rate-limit code or a 429: a subscription's
/// extra usage (Anthropic), a spending limit (xAI, Anthropic), a gateway budget (LiteLLM),
/// arrears (DashScope `Arrearage`, Zhipu 1113 "您的账户已欠费"), an empty balance (DeepSeek
/// "Insufficient Balance", SiliconFlow "paid balance is insufficient", Zhipu "余额不足"), a
/// subscription past due (Claude plans: "Your subscription payment is past due. Please pay your
/// overdue invoice", anthropics/claude-code#64480).
pub(super) const STRONG_BILLING_PHRASES: &[&str] = &[
    "extra usage",
    "spending limit",
    "spend limit",
    "used all available credits",
    "doesn't have any credits",
    "insufficient credits",
    "insufficient balance",
    "insufficient funds",
    "balance is insufficient",
    "top up and try again",
    "recharge your account",
    "余额不足",
    "欠费",
    "insufficient_quota",
    "credit balance",
    "requires more credits",
    "budget has been exceeded",
    "exceeded budget",
    "crossed budget",
    "budget_exceeded",
    "over budget",
    "good standing",
    "overdue",
    "arrearage",
    "past due",
    "payment required",
    "payment method",
    "billing hard limit",
    "usage limit has been reached",
    "hit your usage limit",
    "reached your specified api usage limits",
    "upgrade your subscription",
    "subscription has expired",
    "subscription is inactive",
    "not included in your plan",
    "not available on your current plan",
    "does not include access",
];

/// Weaker billing wording, believed only when nothing in the text speaks of a rate limit
/// (Groq's rate-limit messages link to a billing page, Google's per-minute quota message says
/// "check your plan and billing details").
pub(super) const BILLING_PHRASES: &[&str] = &[
    "credits",
    "billing",
    "payment",
    "quota",
    "usage limit",
    "usage_limit",
    "key limit exceeded",
    "monthly limit",
    "requires a subscription",
    "upgrade for",
    "free tier",
];

/// Words that say the failure is a throttle (a rate over a window), whatever else is said.
pub(super) const RATE_WORDS: &[&str] = &[
    "rate limit",
    "rate-limit",
    "ratelimit",
    "rate_limit",
    "rate limited",
    "too many requests",
    "throttl",
    "per minute",
    "per min",
    "per day",
    "per-day",
    "(tpm)",
    "(tpd)",
    "(rpm)",
    "(rpd)",
    "slow down",
    "resource exhausted",
    "resource has been exhausted",
];

/// Google's wording for a server (not a quota) without room: "The service is temporarily out of
/// capacity", "No capacity available for model …".
pub(super) const CAPACITY_PHRASES: &[&str] = &[
    "out of capacity",
    "no capacity available",
    "capacity exhausted",
];

/// A request the model or endpoint cannot take at its size: OpenAI/Groq "Request too large for
/// … on tokens per min", Anthropic `request_too_large` and "prompt is too long", Bedrock "Input
/// is too long for requested model", context-length errors in any envelope.
pub(super) const TOO_LARGE_PHRASES: &[&str] = &[
    "request too large",
    "request body too large",
    "request entity too large",
    "reduce your message size",
    "tokens must be reduced",
    "input is too long",
    "prompt is too long",
    "maximum context length",
    "context length",
    "context_length_exceeded",
    "exceed context limit",
    "context window",
    "exceeds the model limit",
    "exceeds the maximum allowed",
    "must have length less than or equal to",
];

/// Phrases that say the account may not use the model.
pub(super) const MODEL_PHRASES: &[&str] = &[
    "does not have access to model",
    "do not have access to model",
    "not have access to the model",
    "does not exist or you do not have access",
    "model_not_found",
    "not supported when using codex",
    "model is not available for your",
];

/// A bot challenge or block page (Cloudflare "Just a moment...", "Attention Required!", "Sorry,
/// you have been blocked"): a client cannot pass it by retrying.
pub(super) const CHALLENGE_PHRASES: &[&str] = &[
    "just a moment...",
    "attention required",
    "you have been blocked",
    "cf-chl",
    "challenge-platform",
    "checking your browser",
    "enable javascript and cookies",
    "ddos protection",
];

/// Words of a proxy or CDN page (for a 429 HTML page, a throttle by the proxy).
pub(super) const PROXY_PHRASES: &[&str] = &["cloudflare", "cf-ray", "cf-wrapper", "cdn-cgi"];

/// Wording of a server without capacity.
pub(super) const OVERLOADED_PHRASES: &[&str] = &[
    "overloaded",
    "over capacity",
    "no capacity available",
    "temporarily unavailable",
    "high demand",
];

pub(super) fn contains_any(text: &str, phrases: &[&'static str]) -> Option<&'static str> {
    phrases.iter().copied().find(|phrase| text.contains(phrase))
}

/// Tells whether `word` occurs in `text` between non-identifier characters.
pub(super) fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(index, _)| {
        let before = text[..index].chars().next_back();
        let after = text[index + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        boundary(before) && boundary(after)
    })
}

/// Finds a phrase saying an API key is wrong. `loose` (used once the provider already said
/// "authentication") also accepts "api key … invalid" in any order (DeepSeek's "Your api key:
/// ****abcd is invalid").
pub(super) fn invalid_key_phrase(text: &str, loose: bool) -> Option<&'static str> {
    if let Some(phrase) = contains_any(text, INVALID_KEY_PHRASES) {
        return Some(phrase);
    }
    let names_a_key = contains_any(text, &["api key", "api-key", "api_key", "apikey"]).is_some();
    let says_wrong = ["invalid", "incorrect", "not valid"]
        .iter()
        .any(|word| has_word(text, word));
    (loose && names_a_key && says_wrong).then_some("api key … invalid")
}

/// Finds a request that is larger than the limit it is measured against: Groq's and OpenAI's
/// "Limit 6000, Requested 12328" (also behind "Rate limit reached": "Limit 7000, Used 0,
/// Requested ~12903"). No wait helps when one request is over the whole window.
pub(super) fn requested_over_limit(text: &str) -> bool {
    let Some(limit) = number_after(text, "limit ") else {
        return false;
    };
    let Some(requested) = number_after(text, "requested ") else {
        return false;
    };
    requested > limit
}

/// Reads the first number after `anchor` (skipping `~`, spaces and thousands separators).
fn number_after(text: &str, anchor: &str) -> Option<u64> {
    text.match_indices(anchor).find_map(|(index, _)| {
        let rest = text[index + anchor.len()..].trim_start_matches(['~', ' ', ':']);
        let digits: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// Finds a status code written in a bare message: `Error code: 429` (Python SDKs), `status
/// code: 413`, `StatusCode: 403` (AWS Go SDK), `HTTP 401`, `API Error: 401`.
pub(super) fn status_in_text(text: &str) -> Option<u16> {
    const ANCHORS: &[&str] = &[
        "error code: ",
        "status code: ",
        "status code ",
        "statuscode: ",
        "status_code: ",
        "status: ",
        "http ",
        "api error: ",
    ];
    ANCHORS.iter().find_map(|anchor| {
        text.match_indices(anchor).find_map(|(index, _)| {
            let digits = text.get(index + anchor.len()..index + anchor.len() + 3)?;
            let after = text[index + anchor.len() + 3..].chars().next();
            if after.is_some_and(|c| c.is_ascii_digit()) {
                return None;
            }
            digits
                .parse::<u16>()
                .ok()
                .filter(|n| (100..=599).contains(n))
        })
    })
}
