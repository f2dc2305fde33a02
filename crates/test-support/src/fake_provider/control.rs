//! The fake provider's control routes, under `/__control`: what a test in another process
//! (the Python client's suite) does with the `FakeProvider` methods in process.
//!
//! | method and path | does |
//! | --- | --- |
//! | `POST /__control/expire-access-tokens` | every access token issued so far is expired |
//! | `POST /__control/api-key-mode` | `{"key", "mode": "ok" \| "rate_limited" \| "billing" \| "invalid", "retry_after_s"}` |
//! | `GET /__control/stats` | `{"token_requests", "refreshes", "reuse_detections", "api_requests"}` |
//!
//! **Invariant:** only on loopback test runs: the fake is test support and never faces a
//! network.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{ApiKeyMode, Shared, lock};

/// The control routes.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/__control/expire-access-tokens", post(expire))
        .route("/__control/api-key-mode", post(api_key_mode))
        .route("/__control/stats", get(stats))
        .with_state(shared)
}

async fn expire(State(shared): State<Arc<Shared>>) -> Response {
    lock(&shared.ledger).expire_access_tokens();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct ModeRequest {
    key: String,
    mode: String,
    #[serde(default)]
    retry_after_s: Option<u64>,
}

async fn api_key_mode(
    State(shared): State<Arc<Shared>>,
    axum::Json(request): axum::Json<ModeRequest>,
) -> Response {
    let mode = match request.mode.as_str() {
        "ok" => ApiKeyMode::Ok,
        "rate_limited" => ApiKeyMode::RateLimited {
            retry_after_secs: request.retry_after_s.unwrap_or(30),
        },
        "billing" => ApiKeyMode::Billing402,
        "invalid" => ApiKeyMode::Invalid,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": format!("unknown mode {other:?}") })),
            )
                .into_response();
        }
    };
    lock(&shared.api_keys).insert(request.key, mode);
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let counters = &shared.counters;
    axum::Json(json!({
        "token_requests": counters.token_requests.load(Ordering::SeqCst),
        "refreshes": counters.refreshes.load(Ordering::SeqCst),
        "reuse_detections": counters.reuse_detections.load(Ordering::SeqCst),
        "api_requests": counters.api_requests.load(Ordering::SeqCst),
    }))
    .into_response()
}
