//! The fake provider's HTTP handlers.
//!
//! **Invariant:** a token fault is applied before the refresh token is looked at (except
//! `Slow` and `LostResponse`, see the parent module), and counters move before any await so a
//! test polling them sees every request that arrived.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::ledger::{AccessState, IssuedPair, RefreshVerdict};
use super::listener::ConnKill;
use super::{ApiKeyMode, ReuseAnswer, Shared, TokenFault, TokenRequestRecord, lock};

/// Builds the router over the shared state.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/v1/chat/completions", post(api))
        .route("/v1/models", get(api))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    json_response(
        status,
        json!({ "error": code, "error_description": description }),
    )
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared
        .counters
        .discovery_requests
        .fetch_add(1, Ordering::SeqCst);
    let token_endpoint = lock(&shared.discovery_override)
        .clone()
        .unwrap_or_else(|| format!("{}/oauth/token", shared.base_url));
    json_response(
        StatusCode::OK,
        json!({
            "issuer": shared.base_url,
            "token_endpoint": token_endpoint,
            "grant_types_supported": ["refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        }),
    )
}

/// The fields of a token request, from a form or a JSON body.
fn parse_token_body(headers: &HeaderMap, body: &[u8]) -> (bool, HashMap<String, String>) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        let fields = serde_json::from_slice::<HashMap<String, Value>>(body)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect();
        (true, fields)
    } else {
        (false, parse_form(body))
    }
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    fn decode(part: &str) -> String {
        let replaced = part.replace('+', " ");
        let bytes = replaced.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escaped = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            if bytes[i] == b'%'
                && let Some(byte) = escaped
            {
                out.push(byte);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn token(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnKill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared
        .counters
        .token_requests
        .fetch_add(1, Ordering::SeqCst);
    let (json_body, fields) = parse_token_body(&headers, &body);
    *lock(&shared.last_token_request) = Some(TokenRequestRecord {
        content_type: header_text(&headers, header::CONTENT_TYPE),
        accept: header_text(&headers, header::ACCEPT),
        user_agent: header_text(&headers, header::USER_AGENT),
        json_body,
        grant_type: fields.get("grant_type").cloned(),
        client_id: fields.get("client_id").cloned(),
        had_refresh_token: fields.contains_key("refresh_token"),
    });

    let answer = match shared.next_fault() {
        None => redeem(&shared, &fields),
        Some(TokenFault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            redeem(&shared, &fields)
        }
        Some(TokenFault::LostResponse) => {
            let _ = redeem(&shared, &fields);
            conn.kill();
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Some(TokenFault::ConnectionReset) => {
            conn.kill();
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Some(TokenFault::Timeout) => {
            tokio::time::sleep(shared.config.timeout_hold).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Some(TokenFault::EchoedToken) => {
            let sent = fields.get("refresh_token").cloned().unwrap_or_default();
            json_response(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("weird_{sent}") }),
            )
        }
        Some(fault) => fault_response(&fault),
    };
    *lock(&shared.last_token_answer) = Some(std::time::Instant::now());
    answer
}

/// The answer of a fault that does not involve the grant.
fn fault_response(fault: &TokenFault) -> Response {
    match fault {
        TokenFault::EchoedToken => StatusCode::BAD_REQUEST.into_response(),
        TokenFault::Status500 => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        ),
        TokenFault::Status503 => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "try again later",
        ),
        TokenFault::HtmlPage => html(StatusCode::BAD_GATEWAY, CLOUDFLARE_502, None),
        TokenFault::MalformedJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{not json",
        )
            .into_response(),
        TokenFault::Empty200 => StatusCode::OK.into_response(),
        TokenFault::MissingAccessToken => json_response(
            StatusCode::OK,
            json!({ "token_type": "Bearer", "expires_in": 3600 }),
        ),
        TokenFault::InvalidGrant => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token is invalid",
        ),
        TokenFault::RefreshTokenReused => reuse_response(ReuseAnswer::RefreshTokenReused),
        TokenFault::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            axum::Json(json!({ "error": "rate_limited", "error_description": "slow down" })),
        )
            .into_response(),
        TokenFault::RateLimitedHtml { retry_after_secs } => html(
            StatusCode::TOO_MANY_REQUESTS,
            "<html><body><h1>429 Too Many Requests</h1></body></html>",
            Some(*retry_after_secs),
        ),
        TokenFault::TierDenied => oauth_error(
            StatusCode::FORBIDDEN,
            "xai_oauth_tier_denied",
            "your subscription tier does not include api access",
        ),
        TokenFault::Redirect(location) => (
            StatusCode::FOUND,
            [(header::LOCATION, location.clone())],
            "",
        )
            .into_response(),
        TokenFault::Oversized(bytes) => {
            let padding = "x".repeat(*bytes);
            json_response(
                StatusCode::OK,
                json!({ "access_token": "fake-at-oversized", "expires_in": 60, "padding": padding }),
            )
        }
        TokenFault::NotFound => (StatusCode::NOT_FOUND, "not found").into_response(),
        // Handled by the caller; kept total for the compiler.
        TokenFault::Slow(_)
        | TokenFault::Timeout
        | TokenFault::ConnectionReset
        | TokenFault::LostResponse => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

const CLOUDFLARE_502: &str = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>\n";

fn html(status: StatusCode, page: &'static str, retry_after_secs: Option<u64>) -> Response {
    let mut response = Response::new(Body::from(page));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    response
}

fn reuse_response(answer: ReuseAnswer) -> Response {
    match answer {
        ReuseAnswer::InvalidGrant => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token reuse detected",
        ),
        ReuseAnswer::RefreshTokenReused => json_response(
            StatusCode::BAD_REQUEST,
            json!({ "error": {
                "message": "Your refresh token has already been used to generate a new access token. Please try signing in again.",
                "type": "invalid_request_error",
                "param": null,
                "code": "refresh_token_reused",
            }}),
        ),
    }
}

/// Runs the `refresh_token` grant against the ledger.
fn redeem(shared: &Shared, fields: &HashMap<String, String>) -> Response {
    if fields.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only refresh_token is supported",
        );
    }
    if let Some(expected) = &shared.config.expected_client_id
        && fields.get("client_id") != Some(expected)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    let Some(refresh_token) = fields.get("refresh_token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing refresh_token",
        );
    };
    let verdict = lock(&shared.ledger).refresh(refresh_token);
    if matches!(verdict, RefreshVerdict::Issued(_) | RefreshVerdict::Reused) {
        shared.persist();
    }
    match verdict {
        RefreshVerdict::Issued(pair) => {
            shared.counters.refreshes.fetch_add(1, Ordering::SeqCst);
            pair_response(&pair)
        }
        RefreshVerdict::Replayed(pair) => pair_response(&pair),
        RefreshVerdict::Reused => {
            shared
                .counters
                .reuse_detections
                .fetch_add(1, Ordering::SeqCst);
            reuse_response(shared.config.reuse_answer)
        }
        RefreshVerdict::Revoked => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token has been revoked",
        ),
        RefreshVerdict::Unknown => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token not found",
        ),
    }
}

fn pair_response(pair: &IssuedPair) -> Response {
    let mut body = json!({
        "access_token": pair.access,
        "token_type": "Bearer",
        "expires_in": pair.expires_in.as_secs(),
        "scope": "openid offline_access api:access",
    });
    if let (Some(refresh), Some(map)) = (&pair.refresh, body.as_object_mut()) {
        map.insert("refresh_token".to_owned(), Value::String(refresh.clone()));
    }
    json_response(StatusCode::OK, body)
}

/// The credential presented to the API: a bearer token or an `x-api-key`.
fn credential(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    bearer.or(api_key).map(str::to_owned)
}

fn invalid_api_key() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({ "error": {
            "message": "Incorrect API key provided",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }}),
    )
}

async fn api(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.counters.api_requests.fetch_add(1, Ordering::SeqCst);
    let Some(credential) = credential(&headers) else {
        return invalid_api_key();
    };
    *lock(&shared.requests_by_credential)
        .entry(credential.clone())
        .or_insert(0) += 1;
    let mode = lock(&shared.api_keys).get(&credential).copied();
    if let Some(mode) = mode {
        return match mode {
            ApiKeyMode::Ok => success(),
            ApiKeyMode::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_secs.to_string())],
                axum::Json(json!({ "error": {
                    "message": "Rate limit reached for requests",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }})),
            )
                .into_response(),
            ApiKeyMode::Billing402 => json_response(
                StatusCode::PAYMENT_REQUIRED,
                json!({ "error": { "message": "Insufficient credits", "code": 402 } }),
            ),
            ApiKeyMode::Billing403 => json_response(
                StatusCode::FORBIDDEN,
                json!({ "error": {
                    "message": "Your credit balance is too low to access the API. Please go to Plans & Billing to purchase credits.",
                    "type": "billing_error",
                    "code": "insufficient_quota",
                }}),
            ),
            ApiKeyMode::Invalid => invalid_api_key(),
        };
    }
    let state = lock(&shared.ledger).access_state(&credential);
    match state {
        AccessState::Valid => success(),
        AccessState::Expired | AccessState::Revoked => json_response(
            StatusCode::FORBIDDEN,
            json!({
                "code": "unauthenticated:bad-credentials",
                "error": "Unauthenticated: bad credentials",
            }),
        ),
        AccessState::Unknown => invalid_api_key(),
    }
}

fn success() -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": "fake-model",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": "ok" },
                "finish_reason": "stop",
            }],
            "data": [{ "id": "fake-model", "object": "model" }],
            "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 },
        }),
    )
}
