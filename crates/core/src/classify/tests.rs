//! Cases written from the providers' public error documentation; one line each.

use proptest::prelude::*;

use super::*;

/// 2026-08-29T10:40:00Z.
const NOW: Timestamp = Timestamp(1_788_000_000_000);
const CEILING: Duration = Duration::from_secs(7 * 24 * 3600);

/// One provider answer under test.
struct In {
    provider: Option<&'static str>,
    entry_kind: Option<CredentialKind>,
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// An answer with a status.
fn at(status: u16, body: &str) -> In {
    In {
        provider: None,
        entry_kind: None,
        status: Some(status),
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

/// A transport failure or a bare message: no status.
fn bare(body: &str) -> In {
    In {
        status: None,
        ..at(0, body)
    }
}

impl In {
    fn p(mut self, provider: &'static str) -> Self {
        self.provider = Some(provider);
        self
    }
    fn key(mut self) -> Self {
        self.entry_kind = Some(CredentialKind::ApiKey);
        self
    }
    fn oauth(mut self) -> Self {
        self.entry_kind = Some(CredentialKind::OAuth);
        self
    }
    fn h(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    fn run(&self) -> Classification {
        let input = ClassifyInput {
            provider: self.provider,
            entry_kind: self.entry_kind,
            status: self.status,
            headers: &self.headers,
            body: &self.body,
        };
        classify(&input, NOW, CEILING)
    }
}

/// `expected` is the kind's name, then optionally a space and the expected reason.
fn check(input: In, expected: &str) {
    let got = input.run();
    let (kind, reason) = match expected.split_once(' ') {
        Some((kind, reason)) => (kind, Some(reason)),
        None => (expected, None),
    };
    assert_eq!(
        (got.kind.name(), got.reason.as_deref()),
        (kind, reason),
        "status={:?} provider={:?} body={:?}",
        input.status,
        input.provider,
        String::from_utf8_lossy(&input.body)
    );
}

#[test]
#[rustfmt::skip]
fn openai() {
    check(at(401, r#"{"error":{"message":"Incorrect API key provided: sk-proj-abc1********************xyz9. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#).p("openai"), "auth_invalid_terminal invalid_api_key");
    check(at(401, r#"{"error":{"message":"Incorrect API key provided: eyJhbGciOi***","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#).oauth(), "auth_expired invalid_api_key");
    check(at(401, r#"{"error":{"message":"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth.","type":"invalid_request_error","param":null,"code":null}}"#).p("openai"), "auth_invalid invalid_request_error");
    check(at(429, r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#), "rate_limited_model rate_limit_exceeded");
    check(at(429, r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#), "billing_verified insufficient_quota");
    check(at(404, r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#), "model_entitlement model_not_found");
    check(at(403, r#"{"error":{"message":"Project `proj_abc` does not have access to model `o3`","type":"invalid_request_error","param":null,"code":null}}"#), "model_entitlement invalid_request_error");
    check(at(500, r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#), "transient_server_error server_error");
    check(at(503, r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#), "transient_overloaded server_error");
    check(at(400, r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#), "other context_length_exceeded");
    check(at(403, r#"{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","param":null,"code":"unsupported_country_region_territory"}}"#), "other unsupported_country_region_territory");
}

#[test]
#[rustfmt::skip]
fn openai_codex() {
    check(at(401, r#"{"error":{"message":"Provided authentication token is expired. Please try signing in again.","type":null,"code":"token_expired","param":null},"status":401}"#).p("openai-codex"), "auth_expired token_expired");
    check(at(401, r#"{"error":{"message":"Your authentication token has been invalidated. Please try signing in again.","type":"invalid_request_error","code":"token_invalidated","param":null},"status":401}"#).p("openai-codex"), "auth_invalid_terminal token_invalidated");
    check(at(401, r#"{"error":{"message":"Your refresh token has already been used to generate a new access token. Please try signing in again.","type":"invalid_request_error","code":"refresh_token_reused"}}"#), "auth_invalid_terminal refresh_token_reused");
    check(at(401, "").p("openai-codex"), "auth_expired");
    check(at(429, r#"{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","plan_type":"plus","resets_at":1788007200,"resets_in_seconds":7200}}"#).p("openai-codex"), "billing_verified usage_limit_reached");
    check(at(400, r#"{"detail":"The 'gpt-5-pro' model is not supported when using Codex with a ChatGPT account."}"#).p("openai-codex"), "model_entitlement");
}

#[test]
#[rustfmt::skip]
fn anthropic() {
    check(at(401, r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#).p("anthropic").key(), "auth_invalid_terminal authentication_error");
    check(at(401, r#"{"type":"error","error":{"type":"authentication_error","message":"OAuth token has expired. Please obtain a new token or refresh your existing token."}}"#).p("anthropic"), "auth_expired authentication_error");
    check(at(403, r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#).p("anthropic"), "other permission_error");
    check(at(429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50,000 input tokens per minute."}}"#).p("anthropic"), "rate_limited_account rate_limit_error");
    check(at(429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your monthly spend limit.","details":{"error_code":"enforced_spend_limit_reached"}}}"#).p("anthropic"), "billing_verified enforced_spend_limit_reached");
    check(at(400, r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#), "billing_unverified invalid_request_error");
    check(at(400, r#"{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 2026-09-01 at 00:00 UTC."}}"#), "billing_unverified invalid_request_error");
    check(at(402, r#"{"type":"error","error":{"type":"billing_error","message":"There is an issue with your payment method."}}"#), "billing_verified billing_error");
    check(at(529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#), "transient_overloaded overloaded_error");
    check(at(500, r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#), "transient_server_error api_error");
    check(at(413, r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#), "other request_too_large");
    check(at(404, r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-nonesuch"}}"#), "other not_found_error");
    check(at(200, "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"), "transient_overloaded overloaded_error");
}

#[test]
#[rustfmt::skip]
fn xai() {
    let bad_credentials = r#"{"code":"unauthenticated:bad-credentials","error":"The provided credentials are invalid or expired."}"#;
    check(at(403, bad_credentials).p("xai-oauth"), "auth_expired unauthenticated:bad-credentials");
    check(at(403, bad_credentials).key(), "auth_expired unauthenticated:bad-credentials");
    check(bare("xai request failed: unauthenticated:bad-credentials"), "auth_expired unauthenticated:bad-credentials");
    check(at(403, "bad-credentials").p("xai-oauth"), "auth_expired bad-credentials");
    // A blocked team needs a person, like a disabled organization: refused, not `other`.
    check(at(403, r#"{"code":"The caller does not have permission to execute the specified operation","error":"permission denied: team is blocked"}"#).p("xai-oauth"), "auth_invalid");
    check(at(400, r#"{"code":"Client specified an invalid argument","error":"Incorrect API key provided: xa***yz. You can obtain an API key from https://console.x.ai."}"#).p("xai"), "auth_invalid_terminal");
    check(at(429, r#"{"code":"Some resource has been exhausted","error":"Your team abc has either used all available credits or reached its monthly spending limit. To continue making API requests, please purchase more credits or raise your spending limit."}"#).p("xai-oauth"), "billing_unverified");
    check(at(403, r#"{"code":"The caller does not have permission to execute the specified operation","error":"Your newly created team doesn't have any credits yet. You can purchase credits on https://console.x.ai."}"#), "billing_unverified");
    check(at(429, r#"{"code":"Some resource has been exhausted","error":"Too many requests, please slow down"}"#).p("xai-oauth"), "rate_limited_account");
}

#[test]
#[rustfmt::skip]
fn google() {
    check(at(400, r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#).p("gemini"), "auth_invalid_terminal API_KEY_INVALID");
    check(at(400, r#"{"error":{"code":400,"message":"API key expired. Please renew the API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_EXPIRED","domain":"googleapis.com"}]}}"#).p("gemini"), "auth_invalid_terminal API_KEY_EXPIRED");
    let per_model = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-pro"},"quotaValue":"5"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}"#;
    check(at(429, per_model).p("gemini"), "rate_limited_model RESOURCE_EXHAUSTED");
    check(at(429, &format!("[{per_model}]")).p("gemini"), "rate_limited_model RESOURCE_EXHAUSTED");
    check(at(429, r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#), "rate_limited_account RESOURCE_EXHAUSTED");
    check(at(403, r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers (callers without established identity).","status":"PERMISSION_DENIED"}}"#), "other PERMISSION_DENIED");
    check(at(503, r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#), "transient_overloaded UNAVAILABLE");
    check(at(500, r#"{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}"#), "transient_server_error INTERNAL");
    check(at(504, r#"{"error":{"code":504,"message":"The service is currently unavailable.","status":"DEADLINE_EXCEEDED"}}"#), "transient_server_error DEADLINE_EXCEEDED");
    check(at(400, r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#), "other FAILED_PRECONDITION");
    check(at(401, r#"{"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.","status":"UNAUTHENTICATED"}}"#).oauth(), "auth_expired UNAUTHENTICATED");
}

#[test]
#[rustfmt::skip]
fn openrouter() {
    check(at(402, r#"{"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits"}}"#).p("openrouter"), "billing_verified");
    check(at(401, r#"{"error":{"code":401,"message":"No auth credentials found"}}"#).p("openrouter"), "auth_invalid");
    check(at(401, r#"{"error":{"code":401,"message":"User not found."}}"#).p("openrouter"), "auth_invalid");
    // A per-day request cap is a throttle with a reset, not billing because it mentions credits.
    check(at(429, r#"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","metadata":{"headers":{"X-RateLimit-Limit":"50"}}}}"#).p("openrouter"), "rate_limited_account");
    check(at(403, r#"{"error":{"code":403,"message":"gpt-4o requires moderation on OpenAI. Your input was flagged for \"harassment\"","metadata":{"reasons":["harassment"],"flagged_input":"…"}}}"#), "other");
    check(at(503, r#"{"error":{"code":503,"message":"No allowed providers are available for the selected model."}}"#), "transient_overloaded");
    check(at(200, r#"{"error":{"code":429,"message":"Rate limit exceeded"}}"#), "rate_limited_account");
    check(at(200, "data: {\"id\":\"gen-1\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"error\":{\"code\":\"server_error\",\"message\":\"Provider disconnected\"},\"choices\":[]}\n\n"), "transient_stream_error server_error");
    check(at(429, r#"{"error":{"code":429,"message":"Provider returned error","metadata":{"raw":"{\"error\":{\"message\":\"Rate limit reached for model deepseek in organization x\"}}","provider_name":"Chutes"}}}"#), "rate_limited_model");
}

#[test]
#[rustfmt::skip]
fn mistral_groq_deepseek() {
    check(at(401, r#"{"message":"Unauthorized","request_id":"6f2e9c1d"}"#).p("custom:mistral"), "auth_invalid");
    check(at(429, r#"{"object":"error","message":"Requests rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#), "rate_limited_account rate_limited");
    check(at(429, r#"{"object":"error","message":"Service tier capacity exceeded for this model.","type":"service_tier_capacity_exceeded","param":null,"code":"3505"}"#), "rate_limited_model 3505");
    check(at(400, r#"{"object":"error","message":"Invalid model: mistral-huge","type":"invalid_model","param":null,"code":"1500"}"#), "other 1500");
    check(at(401, r#"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#).p("groq"), "auth_invalid_terminal invalid_api_key");
    check(at(429, r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` service tier `on_demand` on tokens per day (TPD): Limit 100000, Used 99000, Requested 2000. Please try again in 14m24s.","type":"tokens","code":"rate_limit_exceeded"}}"#), "rate_limited_model rate_limit_exceeded");
    check(at(498, r#"{"error":{"message":"Flex tier capacity exceeded. This is a known issue.","type":"invalid_request_error","code":"capacity_exceeded"}}"#), "transient_overloaded capacity_exceeded");
    check(at(402, r#"{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}"#).p("deepseek"), "billing_verified invalid_request_error");
    check(at(401, r#"{"error":{"message":"Authentication Fails, Your api key: ****abcd is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}"#).p("deepseek"), "auth_invalid_terminal authentication_error");
    check(at(503, r#"{"error":{"message":"Server overloaded, please retry shortly.","type":"server_error"}}"#), "transient_overloaded server_error");
    check(at(422, r#"{"error":{"message":"Invalid parameters","type":"invalid_request_error"}}"#), "other invalid_request_error");
}

#[test]
#[rustfmt::skip]
fn oauth_token_endpoint() {
    check(at(400, r#"{"error":"invalid_grant","error_description":"Refresh token expired"}"#), "auth_invalid_terminal invalid_grant");
    check(at(401, r#"{"error":"invalid_token","error_description":"The access token expired"}"#), "auth_invalid_terminal invalid_token");
    check(at(400, r#"{"error":"unauthorized_client"}"#), "auth_invalid_terminal unauthorized_client");
    check(at(400, r#"{"error":"token_revoked","error_description":"Token was revoked"}"#), "auth_invalid_terminal token_revoked");
    check(at(401, r#"{"error":"refresh_token_reused","error_description":"Refresh token has already been used"}"#), "auth_invalid_terminal refresh_token_reused");
    check(at(401, r#"{"error":"token_expired"}"#).key(), "auth_expired token_expired");
    check(at(401, r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#), "auth_invalid invalid_client");
    check(at(400, r#"{"error":"invalid_request","error_description":"Missing refresh_token"}"#), "other invalid_request");
    check(at(503, r#"{"error":"temporarily_unavailable"}"#), "transient_server_error temporarily_unavailable");
    check(at(400, r#"{"error":"slow_down"}"#), "rate_limited_account slow_down");
}

#[test]
#[rustfmt::skip]
fn plain_text_html_and_transport() {
    check(at(401, "Unauthorized").p("xai-oauth"), "auth_expired");
    check(at(401, "Unauthorized").p("nous"), "auth_expired");
    check(at(401, "Unauthorized").p("acme-unknown"), "auth_invalid");
    check(at(401, "Unauthorized"), "auth_invalid");
    check(at(401, "Unauthorized").p("xai-oauth").key(), "auth_invalid");
    check(at(401, "Unauthorized").p("openai").oauth(), "auth_expired");
    check(at(401, "error: token_revoked"), "auth_invalid_terminal token_revoked");
    check(at(401, "invalid_tokens_count").p("openai"), "auth_invalid");
    check(at(520, ""), "transient_proxy");
    check(at(524, "error code: 524"), "transient_proxy");
    check(at(502, "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"), "transient_proxy");
    // A challenge or block page does not pass by retrying: the request (client) must change.
    check(at(403, "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title></head><body>cf-chl</body></html>"), "other");
    check(at(403, "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head></html>"), "other");
    check(at(403, "<html><head><title>403 Forbidden</title></head><body>nginx</body></html>"), "other");
    check(at(404, "<html><body>Not Found</body></html>"), "other");
    check(at(403, "Forbidden"), "other");
    check(at(429, "You exceeded your current quota, please check your plan and billing details."), "billing_unverified");
    check(at(429, "Too Many Requests"), "rate_limited_account");
    check(bare(""), "transient_network");
    check(bare("connection reset by peer"), "transient_network");
    check(bare("Error code: 429 - {'error': {'message': 'Rate limit exceeded'}}"), "rate_limited_account");
    check(bare("Error code: 401 - {'error': {'message': 'Unauthorized'}}").p("xai-oauth"), "auth_expired");
    check(at(200, ""), "transient_empty_response");
    check(at(200, "  \n "), "transient_empty_response");
    check(at(200, r#"{"id":"chatcmpl-1","choices":[]}"#), "transient_empty_response");
    check(at(200, "data: {\"choices\":[]}\n\ndata: [DONE]\n\n"), "transient_empty_response");
    check(at(200, "data: {\"error\":{\"message\":\"Your credit balance is too low\"}}\n\n"), "billing_unverified");
    check(at(200, "data: {\"error\":{\"message\":\"upstream connect error\"}}\n\n"), "transient_stream_error");
    check(at(200, "event: error\ndata: not json at all\n\n"), "transient_stream_error");
    check(at(408, ""), "transient_server_error");
    check(at(504, ""), "transient_server_error");
    check(at(500, "Internal Server Error"), "transient_server_error");
    check(at(529, ""), "transient_overloaded");
    check(at(503, ""), "transient_overloaded");
    check(at(400, ""), "other");
    check(at(402, ""), "billing_verified");
    check(at(402, "Payment Required").p("nous"), "billing_verified");
    check(at(429, ""), "rate_limited_account");
    check(at(418, "I'm a teapot"), "other");
    check(at(301, ""), "other");
}

#[test]
#[rustfmt::skip]
fn non_utf8_bodies_are_read_lossily() {
    let mut input = at(429, "");
    input.body = b"\xff\xfe rate limit \xc3".to_vec();
    check(input, "rate_limited_account");
    let mut input = bare("");
    input.body = vec![0x80, 0x81, 0x82];
    check(input, "transient_network");
}

#[test]
#[rustfmt::skip]
fn weak_families() {
    // Request size: the request must shrink, whatever the code says.
    check(at(429, r#"{"error":{"message":"Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 30601.","type":"tokens","code":"rate_limit_exceeded"}}"#), "other rate_limit_exceeded");
    check(at(429, r#"{"error":{"message":"Rate limit reached for model `m` on tokens per minute (TPM): Limit 7000, Used 0, Requested ~12903. Please try again in 50s.","code":"rate_limit_exceeded"}}"#), "other rate_limit_exceeded");
    check(at(200, "data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"context_length_exceeded\",\"message\":\"Your input exceeds the context window of this model.\"}}}\n\n"), "other context_length_exceeded");
    // An envelope a client printed as a Python dict inside a 2xx stream is an error, not an empty answer.
    check(at(200, "{'error': {'message': 'Rate limit exceeded', 'code': 429}}"), "rate_limited_account");
    check(at(200, "{'error': {'message': \"This model's maximum context length is 1024 tokens.\"}}"), "other");
    // Per-day against per-minute Google quotas; capacity; plan quota.
    check(at(429, r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#), "billing_verified RESOURCE_EXHAUSTED");
    check(at(429, r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"MODEL_CAPACITY_EXHAUSTED"}]}}"#), "transient_overloaded MODEL_CAPACITY_EXHAUSTED");
    check(at(429, r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"QUOTA_EXHAUSTED"}]}}"#), "billing_verified QUOTA_EXHAUSTED");
    // A subscription window rejected in the headers, against a plain throttle.
    check(at(429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"Error"}}"#).h("anthropic-ratelimit-unified-status", "rejected"), "billing_verified rate_limit_error");
    check(at(429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"Error"}}"#).h("anthropic-ratelimit-unified-status", "allowed"), "rate_limited_account rate_limit_error");
    // A refused key stays refused on a provider that also issues OAuth grants.
    check(at(401, r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#).p("anthropic"), "auth_invalid_terminal authentication_error");
    // Accounts a person must fix.
    check(at(401, r#"{"error":{"message":"The OpenAI account associated with this API key has been deactivated.","type":"invalid_request_error","code":null}}"#), "auth_invalid invalid_request_error");
    check(at(403, r#"{"error":{"code":403,"message":"Your API key was reported as leaked. Please use another API key.","status":"PERMISSION_DENIED"}}"#), "auth_invalid PERMISSION_DENIED");
    // AWS: the error type in a header; an expired session token.
    check(at(429, r#"{"message":"Too many requests, please wait before trying again."}"#).h("x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"), "rate_limited_account ThrottlingException");
    check(at(403, r#"{"message":"The security token included in the request is expired"}"#).key(), "auth_expired");
    // Billing beyond 402.
    check(at(402, r#"{"error":{"code":402,"status":"RESOURCE_EXHAUSTED","message":"x"}}"#), "billing_verified RESOURCE_EXHAUSTED");
    check(at(400, r#"{"code":"Arrearage","message":"Access denied, please make sure your account is in good standing."}"#), "billing_verified Arrearage");
    check(at(400, r#"{"error":{"message":"Budget has been exceeded! Current cost: 1.2, Max budget: 1.0","type":"budget_exceeded","code":"400"}}"#), "billing_verified budget_exceeded");
}

#[test]
fn explanations_name_the_rule_and_the_evidence() {
    let input = at(429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"Extra usage is required for long context requests."}}"#).h("retry-after", "30");
    let (got, why) = classify_explained(
        &ClassifyInput {
            provider: None,
            entry_kind: None,
            status: input.status,
            headers: &input.headers,
            body: &input.body,
        },
        NOW,
        CEILING,
    );
    assert_eq!(got.kind.name(), "billing_unverified");
    assert_eq!(why.rule, Rule::BillingWords);
    assert_eq!(
        why.to_line(),
        "rule billing-words; status 429; codes rate_limit_error; matched \"extra usage\"; reset from header retry-after"
    );
}

/// Reset times found through `classify`, in seconds after `NOW`.
fn check_reset(input: In, expected: Option<i64>) {
    let got = input.run().reset_at.map(|at| (at.0 - NOW.0) / 1000);
    assert_eq!(
        got,
        expected,
        "body={:?}",
        String::from_utf8_lossy(&input.body)
    );
}

#[test]
#[rustfmt::skip]
fn reset_times_through_classify() {
    check_reset(at(429, r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}"#), Some(30));
    check_reset(at(429, r#"{"error":{"type":"usage_limit_reached","resets_at":1788007200}}"#), Some(7200));
    check_reset(at(429, "").h("Retry-After", "30"), Some(30));
    check_reset(at(429, r#"{"error":{"message":"Please try again in 14m24s.","code":"rate_limit_exceeded"}}"#), Some(864));
    check_reset(at(400, r#"{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 2026-09-01 at 00:00 UTC."}}"#), Some(220_800));
    check_reset(at(524, "").h("retry-after", "120"), Some(120));
    // Auth failures and bad requests carry no reset, even with rate-limit headers on them.
    check_reset(at(401, "").h("retry-after", "30"), None);
    check_reset(at(400, "bad").h("x-ratelimit-reset-requests", "6m0s"), None);
    check_reset(at(429, "").h("retry-after", "99999999"), Some(7 * 24 * 3600));
}

#[test]
#[rustfmt::skip]
fn messages_are_masked_and_short() {
    let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-AbCdEf0123456789AbCdEf0123456789. Header was Bearer abcdefgh12345678","code":"invalid_api_key"}}"#;
    let got = at(401, body).run();
    let message = got.message.unwrap_or_default();
    assert!(!message.contains("AbCdEf0123"), "{message}");
    assert!(!message.contains("abcdefgh12345678"), "{message}");
    assert!(message.contains("sk-***"), "{message}");
    let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "word ".repeat(200));
    let got = at(400, &long).run();
    let chars = got.message.map(|m| m.chars().count());
    assert_eq!(chars, Some(MAX_MESSAGE_CHARS + 1));
}

#[test]
#[rustfmt::skip]
fn masking() {
    let cases: &[(&str, &str)] = &[
        (
            "key sk-ant-api03-abcdefghijklmnop rejected",
            "key sk-*** rejected",
        ),
        (
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            "Bearer ***",
        ),
        (
            "authorization: bearer abcdefgh",
            "authorization: bearer ***",
        ),
        // `~` is a bearer-token character (RFC 6750); found by the core property tests.
        ("Bearer aAaaA~aA rejected", "Bearer *** rejected"),
        ("Bearer abc~defghijklmnop.", "Bearer ***."),
        ("home ~user/abcdefgh", "home ~user/abcdefgh"),
        (
            "AIzaSyA1234567890abcdefghijklmnopqrstu is bad",
            "AIza*** is bad",
        ),
        ("xai-AbCdEfGhIjKlMnOp", "xai-***"),
        ("token 0123456789abcdef0123456789abcdef.", "token ***."),
        (
            "see https://platform.openai.com/account/api-keys",
            "see https://platform.openai.com/account/api-keys",
        ),
        (
            "Rate limit reached for gpt-4o",
            "Rate limit reached for gpt-4o",
        ),
        ("sk-abc***xyz", "sk-abc***xyz"),
        ("", ""),
    ];
    for (text, expected) in cases {
        assert_eq!(mask_secrets(text), *expected, "{text:?}");
    }
}

#[test]
#[rustfmt::skip]
fn explanations_are_one_line() {
    let got = at(
        429,
        r#"{"error":{"message":"slow\ndown sk-AAAAAAAAAAAAAAAA1","code":"rate_limit_exceeded"}}"#,
    )
    .h("retry-after", "30")
    .run();
    let line = explain(&got);
    assert_eq!(
        line,
        "rate_limited_account: the credential is throttled for every model (status 429, code rate_limit_exceeded, resets at 2026-08-29T10:40:30Z) — \"slow down sk-***\""
    );
}

proptest! {
    #[test]
    fn classify_never_panics(
        status in proptest::option::of(0u16..1000),
        body in proptest::collection::vec(any::<u8>(), 0..400),
        headers in proptest::collection::vec(("[a-zA-Z-]{0,30}", ".{0,40}"), 0..4),
        provider in proptest::option::of("[a-z:-]{0,12}"),
    ) {
        let input = ClassifyInput { provider: provider.as_deref(), entry_kind: None, status, headers: &headers, body: &body };
        let got = classify(&input, NOW, CEILING);
        prop_assert!(got.message.as_ref().is_none_or(|m| m.chars().count() <= MAX_MESSAGE_CHARS + 1));
        prop_assert!(got.reset_at.is_none_or(|at| at > NOW && at <= NOW.plus(CEILING)));
        prop_assert!(!explain(&got).contains('\n'));
    }

    #[test]
    fn classify_never_panics_on_envelope_like_text(
        status in proptest::option::of(prop::sample::select(vec![200u16, 400, 401, 402, 403, 429, 500, 503, 529])),
        prefix in prop::sample::select(vec!["{\"error\":", "{\"error\":{\"code\":", "data: {\"error\":", "[{\"error\":{\"details\":[", "{\"code\":", "<html>", "event: error\ndata: "]),
        tail in "[ -~]{0,80}",
    ) {
        let body = format!("{prefix}{tail}");
        let input = ClassifyInput { provider: None, entry_kind: None, status, headers: &[], body: body.as_bytes() };
        let _ = classify(&input, NOW, CEILING);
    }

    #[test]
    fn masking_never_panics(text in ".{0,300}") {
        let _ = sanitize_message(&text);
    }
}
