//! The data-plane API of `credpool serve`: leases for processes outside this one, over a Unix
//! socket (its 0600 mode is the authentication) and optionally TCP (a lease token of its own).
//!
//! Routes:
//!
//! | method and path | does |
//! | --- | --- |
//! | `GET /v1/health` | `{"ok": true}` |
//! | `POST /v1/lease` | a lease of a provider (`{"provider"}` or `{"url"}`, optional `model`) |
//! | `POST /v1/leases/{id}/report` | a success (releases), or a failure: the next step and lease |
//! | `DELETE /v1/leases/{id}` | releases |
//!
//! **Invariants:**
//! - A secret appears only in a lease's `header.value`: never in a log, an error or an event.
//! - A report makes exactly the decision an in-process `with_recovery` step makes
//!   ([`credpool::PoolClient::decide`]): 10,000 reports of one expired token make one refresh.
//! - Every lease handed out is held by the table until released, reported or expired; an
//!   expired lease goes back to its pool and a late report on it still counts by generation
//!   (a stale report gets the current token).
//! - The admin token opens nothing here and the lease token nothing on the admin API.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use credpool::{Clock, PoolClient, ProviderId, Secret};

use crate::api::error::ApiError;
use crate::api::requests::MAX_BODY_BYTES;

mod handlers;
mod leases;
pub(crate) mod serve;
mod wire;

pub(crate) use self::leases::LeaseTable;

/// What the data plane's handlers share.
#[derive(Clone)]
pub(crate) struct DataState {
    pub(crate) client: PoolClient,
    pub(crate) leases: Arc<LeaseTable>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl DataState {
    pub(crate) fn new(client: PoolClient, clock: Arc<dyn Clock>, ttl: Duration) -> DataState {
        DataState {
            client,
            leases: Arc::new(LeaseTable::new(ttl)),
            clock,
        }
    }
}

/// The data plane's routes; with `token`, every route needs `Authorization: Bearer <token>`
/// (TCP), without it none does (the Unix socket).
pub(crate) fn router(state: DataState, token: Option<Arc<Secret>>) -> Router {
    let routes = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/lease", post(handlers::lease))
        .route("/v1/leases/{id}/report", post(handlers::report))
        .route("/v1/leases/{id}", delete(handlers::release))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    match token {
        Some(token) => routes.layer(middleware::from_fn_with_state(token, require_token)),
        None => routes,
    }
}

async fn health() -> Response {
    Json(serde_json::json!({ "ok": true })).into_response()
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "no_such_route", "no such route").into_response()
}

async fn require_token(State(token): State<Arc<Secret>>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !crate::token::authorized(header, &token) {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong lease token",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"credpool-data\""),
        );
        return response;
    }
    next.run(request).await
}

/// A request body, or the API's error: over [`MAX_BODY_BYTES`] is 400 `body_too_large`.
fn read_body(read: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    read.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "body_too_large",
                format!("the request body is over {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })
}

/// The provider a lease request names, by id or by the host of a URL.
fn provider_of(
    client: &PoolClient,
    provider: Option<String>,
    url: Option<String>,
) -> Result<ProviderId, ApiError> {
    match (provider, url) {
        (Some(provider), None) => {
            let id = ProviderId::new(&provider);
            if client.providers().get(&id).is_none() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_provider",
                    format!("unknown provider {id}"),
                ));
            }
            Ok(id)
        }
        (None, Some(url)) => client.provider_for_url(&url).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "no_provider_for_url",
                "no provider serves that URL's host (map it with the provider's `hosts`)",
            )
        }),
        _ => Err(ApiError::bad_request(
            "give exactly one of provider and url",
        )),
    }
}

/// Starts the reaper: every second (or `ttl`, when shorter), expired leases go back to their
/// pools. Ends when the table is gone.
pub(crate) fn spawn_reaper(state: &DataState, ttl: Duration) -> tokio::task::JoinHandle<()> {
    let leases = Arc::downgrade(&state.leases);
    let clock = Arc::clone(&state.clock);
    let every = ttl
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(50));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(leases) = leases.upgrade() else {
                return;
            };
            leases.reap(clock.now());
        }
    })
}

#[cfg(test)]
mod tests;
