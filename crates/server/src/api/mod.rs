//! The admin HTTP API (axum): `/healthz`, `/metrics` and everything under `/v1/`.
//!
//! Routes (all but `/healthz` need `Authorization: Bearer <token>`):
//!
//! | method and path | does |
//! | --- | --- |
//! | `GET /healthz` | `ok`, or 503 `store failing` while the store refuses writes |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/providers` | running pools |
//! | `GET /v1/status` | every running pool's snapshot |
//! | `GET /v1/stats` | every pool's counters and the refresher's |
//! | `GET /v1/providers/{p}/entries` | one pool's snapshot |
//! | `GET /v1/providers/{p}/entries/{target}` | one entry, resolved like the pool does (an id, a label, a position) |
//! | `POST /v1/providers/{p}/entries` | add (JSON [`AddEntryRequest`]; 409 `label_taken` when the label exists) |
//! | `DELETE /v1/providers/{p}/entries/{target}` | remove |
//! | `POST /v1/providers/{p}/entries/{target}/reset` | reset |
//! | `POST /v1/providers/{p}/entries/{target}/refresh` | refresh now |
//! | `POST /v1/providers/{p}/entries/{target}/move` | move (`{"position": n}`) |
//! | `PUT /v1/providers/{p}/strategy` | set the strategy (`{"strategy": "…"}`) |
//! | `GET /v1/providers/{p}/stats` | one pool's counters |
//! | `GET /v1/events[?provider=p]` | server-sent events (`Last-Event-ID` resumes) |
//! | `GET /v1/backup` | a consistent backup of the store (`application/octet-stream`; it holds the stored secrets) |
//!
//! **Invariants:**
//! - No response carries a secret: entries are the pool's redacted views (fingerprints),
//!   errors are `{"error": {"code", "message"}}` with the pools' messages, JSON errors have
//!   string values elided.
//! - A missing or wrong token is 401 before anything else is looked at; the comparison does
//!   not exit early.
//! - Event streams end when the service starts shutting down, so a graceful stop never waits
//!   on a subscriber.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use credpool::StoreHealth;
use credpool::admin::{Snapshot, Stats};
use credpool::{AdminClient, Clock, ProviderId, ProviderRegistry, Refresher, Secret, Store};
use tokio::sync::watch;

use crate::metrics;
use crate::token;

pub(crate) mod error;
mod events;
mod pools;
pub(crate) mod requests;

pub use self::error::ApiError;
pub use self::requests::{
    AddEntryRequest, MAX_SECRET_BYTES, MoveRequest, SecretField, StrategyRequest, parse_strategy,
};

/// What every handler reads.
#[derive(Clone)]
pub struct ApiState {
    /// The pools' admin handle.
    pub admin: AdminClient,
    /// The refresher, for its counters.
    pub refresher: Refresher,
    /// The admin token.
    pub token: Arc<Secret>,
    /// Deadlines of added grants (`expires_in_s`).
    pub clock: Arc<dyn Clock>,
    /// Whether added grants may name loopback `http` token endpoints.
    pub allow_insecure_loopback: bool,
    /// The providers the service runs with: an added grant's `token_url` must be on its
    /// provider's required domain (xAI: `x.ai`).
    pub providers: ProviderRegistry,
    /// Turns `true` when the service starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Pool events counted for `/metrics`.
    pub events: metrics::EventCounts,
    /// The store, for its health.
    pub store: Arc<dyn Store>,
}

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/v1/providers", get(pools::list_providers))
        .route("/v1/status", get(pools::status))
        .route("/v1/stats", get(pools::all_stats))
        .route("/v1/events", get(events::events))
        .route("/v1/backup", get(backup))
        .route(
            "/v1/providers/{provider}/entries",
            get(pools::snapshot).post(pools::add),
        )
        .route(
            "/v1/providers/{provider}/entries/{target}",
            get(pools::entry).delete(pools::remove),
        )
        .route(
            "/v1/providers/{provider}/entries/{target}/reset",
            post(pools::reset),
        )
        .route(
            "/v1/providers/{provider}/entries/{target}/refresh",
            post(pools::refresh),
        )
        .route(
            "/v1/providers/{provider}/entries/{target}/move",
            post(pools::move_entry),
        )
        .route(
            "/v1/providers/{provider}/strategy",
            put(pools::strategy).post(pools::strategy),
        )
        .route("/v1/providers/{provider}/stats", get(pools::stats))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(requests::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state.clone());
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
        .merge(protected)
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !token::authorized(header, &state.token) {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

/// Liveness: `ok`, or 503 with the cause while the store refuses writes.
async fn healthz(State(state): State<ApiState>) -> Response {
    match state.store.health() {
        StoreHealth::Ok => "ok\n".into_response(),
        StoreHealth::Failing { since, reason } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store failing since {since}: {reason}\n"),
        )
            .into_response(),
    }
}

/// A backup of the store, taken on a blocking thread (writes wait while it runs).
async fn backup(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let store = Arc::clone(&state.store);
    let bytes = tokio::task::spawn_blocking(move || store.export())
        .await
        .map_err(|error| ApiError::unavailable(error.to_string()))?
        .map_err(|error| ApiError::unavailable(error.to_string()))?;
    tracing::info!(bytes = bytes.len(), "backup taken");
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        bytes.to_vec(),
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_such_route", "no such route")
}

async fn metrics_text(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let providers: Vec<ProviderId> = state
        .admin
        .list_providers()
        .await?
        .into_iter()
        .map(|summary| summary.provider)
        .collect();
    let mut pools = Vec::with_capacity(providers.len());
    let mut snapshots = Vec::with_capacity(providers.len());
    for provider in &providers {
        pools.push(state.admin.run(provider, Stats).await?);
        snapshots.push(state.admin.run(provider, Snapshot).await?);
    }
    let refresher = state
        .refresher
        .stats()
        .await
        .map_err(|error| ApiError::unavailable(error.to_string()))?;
    let body = metrics::render(&metrics::Scrape {
        pools: &pools,
        snapshots: &snapshots,
        refresher: &refresher,
        events: &state.events,
        store: &state.store.health(),
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests;
