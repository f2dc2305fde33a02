//! The admin HTTP API (axum): `/healthz`, `/metrics` and everything under `/v1/`.
//!
//! Routes (all but `/healthz` need `Authorization: Bearer <token>`):
//!
//! | method and path | does |
//! | --- | --- |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/providers` | running pools |
//! | `GET /v1/status` | every running pool's snapshot |
//! | `GET /v1/stats` | every pool's counters and the refresher's |
//! | `GET /v1/providers/{p}/entries` | one pool's snapshot |
//! | `GET /v1/providers/{p}/entries/{target}` | one entry, resolved like the pool does ([`resolve`]) |
//! | `POST /v1/providers/{p}/entries` | add (JSON [`AddEntryRequest`]) |
//! | `DELETE /v1/providers/{p}/entries/{target}` | remove |
//! | `POST /v1/providers/{p}/entries/{target}/reset` | reset |
//! | `POST /v1/providers/{p}/entries/{target}/refresh` | refresh now |
//! | `POST /v1/providers/{p}/entries/{target}/move` | move (`{"position": n}`) |
//! | `PUT /v1/providers/{p}/strategy` | set the strategy (`{"strategy": "…"}`) |
//! | `GET /v1/providers/{p}/stats` | one pool's counters |
//! | `GET /v1/events[?provider=p]` | server-sent events |
//!
//! **Invariants:**
//! - No response carries a secret: entries are the pool's redacted views (fingerprints),
//!   errors are the pools' messages, JSON errors have string values elided.
//! - A missing or wrong token is 401 before anything else is looked at; the comparison does
//!   not exit early.
//! - Event streams end when the service starts shutting down, so a graceful stop never waits
//!   on a subscriber.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use credpool::{
    AdminClient, ClientError, Clock, EntryView, NewEntry, PoolError, PoolEvent, PoolSnapshot,
    ProviderId, ProviderRegistry, Refresher, Secret, Strategy, Target,
};
use credpool_core::EntryId;
use credpool_core::{ClientMetadata, EntryKind, OAuthTokens, SecretSource};
use futures::stream::{self, BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::watch;

use super::config::{elide_strings, required_domain, token_url_problem};
use super::metrics;
use super::token;

/// Events buffered per pool for one SSE subscriber before it is told it lagged.
const EVENT_BUFFER: usize = 1024;

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
}

/// An error answered as `{"error": "…"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        let status = match &error {
            ClientError::UnknownProvider(_) => StatusCode::NOT_FOUND,
            ClientError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            ClientError::Exhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ClientError::Pool(pool) => match pool {
                PoolError::NoSuchEntry(_) | PoolError::UnknownProvider(_) => StatusCode::NOT_FOUND,
                PoolError::AmbiguousTarget(_) => StatusCode::CONFLICT,
                PoolError::Invalid(_) => StatusCode::BAD_REQUEST,
                PoolError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                PoolError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

/// A secret in a request body: wrapped at once, shown redacted, sent as its value only by
/// the admin CLI.
#[derive(Clone)]
pub struct SecretField(pub Secret);

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|value| SecretField(Secret::new(value)))
    }
}

impl Serialize for SecretField {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose())
    }
}

/// The body of `POST /v1/providers/{p}/entries`: exactly one of `api_key` and
/// `refresh_token`; the rest optional.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddEntryRequest {
    /// The label (unique per provider by convention).
    pub label: String,
    /// A static API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretField>,
    /// An OAuth grant's refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretField>,
    /// The grant's current access token, if known (otherwise it is refreshed at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<SecretField>,
    /// Seconds until the access token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
    /// A token endpoint for this grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// An OAuth client id for this grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Priority (lower is preferred); absent puts the entry last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Weight for `weighted_random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The endpoint the credential is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

impl std::fmt::Debug for AddEntryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddEntryRequest")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl AddEntryRequest {
    /// Checks the request and builds the entry (secrets owned: they are stored). A
    /// `token_url` must pass the refresher's URL policy with `required_domain` (the
    /// provider's, see [`required_domain`]).
    ///
    /// # Errors
    /// Not exactly one secret, grant fields on an API key, or an unacceptable token URL.
    pub fn into_entry(
        self,
        clock: &dyn Clock,
        required_domain: Option<&str>,
        allow_insecure_loopback: bool,
    ) -> Result<NewEntry, String> {
        let grant_fields = self.access_token.is_some()
            || self.expires_in_s.is_some()
            || self.token_url.is_some()
            || self.client_id.is_some();
        if let Some(url) = &self.token_url {
            check_token_url(url, required_domain, allow_insecure_loopback)?;
        }
        let (kind, source) = match (self.api_key, self.refresh_token) {
            (Some(key), None) => {
                if grant_fields {
                    return Err("access_token, expires_in_s, token_url and client_id belong to OAuth grants (refresh_token)".to_owned());
                }
                (EntryKind::ApiKey { key: key.0 }, SecretSource::Manual)
            }
            (None, Some(refresh)) => {
                let expires_at = self
                    .expires_in_s
                    .map(|secs| clock.now().plus(Duration::from_secs(secs)));
                let tokens = OAuthTokens {
                    access: self.access_token.map_or_else(|| Secret::new(""), |a| a.0),
                    refresh: Some(refresh.0),
                    expires_at,
                    client: ClientMetadata {
                        client_id: self.client_id,
                        token_endpoint: self.token_url,
                        scope: None,
                        obtained_at: expires_at.map(|_| clock.now()),
                    },
                };
                (EntryKind::OAuth(tokens), SecretSource::OAuthGrant)
            }
            (Some(_), Some(_)) => {
                return Err("give either api_key or refresh_token, not both".to_owned());
            }
            (None, None) => return Err("give api_key or refresh_token".to_owned()),
        };
        Ok(NewEntry {
            label: self.label,
            kind,
            source,
            priority: self.priority,
            base_url: self.base_url,
            weight: self.weight,
        })
    }
}

/// Accepts the token endpoints the refresher will use (see [`token_url_problem`]).
fn check_token_url(
    url: &str,
    required_domain: Option<&str>,
    allow_insecure_loopback: bool,
) -> Result<(), String> {
    match token_url_problem(url, required_domain, allow_insecure_loopback) {
        None => Ok(()),
        Some(problem) => Err(format!("token_url: {problem}")),
    }
}

/// The body of the move route.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The 1-based position in priority order.
    pub position: usize,
}

/// The body of the strategy route.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyRequest {
    /// The strategy's snake_case name.
    pub strategy: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    provider: Option<String>,
}

/// Parses a JSON body; a failure is a 400 naming what is wrong but no string value.
fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!(
            "invalid JSON body: {}",
            elide_strings(&error.to_string())
        ))
    })
}

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/v1/providers", get(list_providers))
        .route("/v1/status", get(status))
        .route("/v1/stats", get(all_stats))
        .route("/v1/events", get(events))
        .route("/v1/providers/{provider}/entries", get(snapshot).post(add))
        .route(
            "/v1/providers/{provider}/entries/{target}",
            get(entry).delete(remove),
        )
        .route(
            "/v1/providers/{provider}/entries/{target}/reset",
            post(reset),
        )
        .route(
            "/v1/providers/{provider}/entries/{target}/refresh",
            post(refresh),
        )
        .route(
            "/v1/providers/{provider}/entries/{target}/move",
            post(move_entry),
        )
        .route(
            "/v1/providers/{provider}/strategy",
            put(strategy).post(strategy),
        )
        .route("/v1/providers/{provider}/stats", get(stats))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !token::authorized(header, &state.token) {
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
            .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

async fn metrics_text(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let providers: Vec<ProviderId> = state
        .admin
        .list_providers()
        .await?
        .into_iter()
        .map(|summary| summary.provider)
        .collect();
    state.events.follow(&state.admin, &providers).await;
    let mut pools = Vec::with_capacity(providers.len());
    let mut snapshots = Vec::with_capacity(providers.len());
    for provider in &providers {
        pools.push(state.admin.stats(provider).await?);
        snapshots.push(state.admin.snapshot(provider).await?);
    }
    let refresher = state
        .refresher
        .stats()
        .await
        .map_err(|error| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
    let body = metrics::render(&metrics::Scrape {
        pools: &pools,
        snapshots: &snapshots,
        refresher: &refresher,
        events: &state.events,
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

async fn list_providers(State(state): State<ApiState>) -> Result<Response, ApiError> {
    Ok(Json(state.admin.list_providers().await?).into_response())
}

async fn status(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let providers = state.admin.list_providers().await?;
    let mut snapshots = Vec::with_capacity(providers.len());
    for summary in &providers {
        snapshots.push(state.admin.snapshot(&summary.provider).await?);
    }
    Ok(Json(snapshots).into_response())
}

async fn all_stats(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let providers = state.admin.list_providers().await?;
    let mut pools = Vec::with_capacity(providers.len());
    for summary in &providers {
        pools.push(state.admin.stats(&summary.provider).await?);
    }
    let refresher = state
        .refresher
        .stats()
        .await
        .map_err(|error| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
    Ok(Json(serde_json::json!({ "pools": pools, "refresher": refresher })).into_response())
}

async fn snapshot(
    State(state): State<ApiState>,
    Path(provider): Path<String>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.snapshot(&provider).await?).into_response())
}

async fn entry(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    let snapshot = state.admin.snapshot(&provider).await?;
    let entry =
        resolve(snapshot, &target).map_err(|error| ApiError::from(ClientError::Pool(error)))?;
    Ok(Json(entry).into_response())
}

/// Finds `target` in a snapshot in the pool's own order (its `resolve`, used by remove, reset,
/// refresh and move): an entry id, then a label matching exactly one entry (case-insensitive;
/// several is [`PoolError::AmbiguousTarget`]), then a 1-based position.
pub fn resolve(snapshot: PoolSnapshot, target: &str) -> Result<EntryView, PoolError> {
    let text = target.trim();
    if text.is_empty() {
        return Err(PoolError::Invalid("no entry target given".to_owned()));
    }
    let mut entries = snapshot.entries;
    if let Ok(id) = text.parse::<EntryId>()
        && let Some(at) = entries.iter().position(|entry| entry.id == id)
    {
        return Ok(entries.swap_remove(at));
    }
    let mut by_label = entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.label.eq_ignore_ascii_case(text))
        .map(|(at, _)| at);
    match (by_label.next(), by_label.next()) {
        (Some(at), None) => return Ok(entries.swap_remove(at)),
        (Some(_), Some(_)) => return Err(PoolError::AmbiguousTarget(text.to_owned())),
        (None, _) => {}
    }
    if let Ok(position) = text.parse::<usize>() {
        return match entries.iter().position(|entry| entry.index == position) {
            Some(at) if position >= 1 => Ok(entries.swap_remove(at)),
            _ => Err(PoolError::NoSuchEntry(format!("#{position}"))),
        };
    }
    Err(PoolError::NoSuchEntry(text.to_owned()))
}

async fn add(
    State(state): State<ApiState>,
    Path(provider): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    let request: AddEntryRequest = parse_json(&body)?;
    let domain = state
        .providers
        .get(&provider)
        .as_ref()
        .and_then(required_domain);
    let entry = request
        .into_entry(
            state.clock.as_ref(),
            domain.as_deref(),
            state.allow_insecure_loopback,
        )
        .map_err(ApiError::bad_request)?;
    let view = state.admin.add(&provider, entry).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn remove(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.remove(&provider, Target(target)).await?).into_response())
}

async fn reset(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.reset(&provider, Target(target)).await?).into_response())
}

async fn refresh(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.refresh(&provider, Target(target)).await?).into_response())
}

async fn move_entry(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    let request: MoveRequest = parse_json(&body)?;
    Ok(Json(
        state
            .admin
            .move_entry(&provider, Target(target), request.position)
            .await?,
    )
    .into_response())
}

async fn strategy(
    State(state): State<ApiState>,
    Path(provider): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    let request: StrategyRequest = parse_json(&body)?;
    let strategy = parse_strategy(&request.strategy).map_err(ApiError::bad_request)?;
    state.admin.set_strategy(&provider, strategy).await?;
    Ok(Json(serde_json::json!({ "provider": provider, "strategy": strategy })).into_response())
}

async fn stats(
    State(state): State<ApiState>,
    Path(provider): Path<String>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.stats(&provider).await?).into_response())
}

/// Parses a strategy name; the error lists the choices but does not echo the value.
///
/// # Errors
/// The name is not one of the strategies.
pub fn parse_strategy(name: &str) -> Result<Strategy, String> {
    name.parse().map_err(|_| {
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown strategy; expected one of {}", names.join(", "))
    })
}

fn sse_event(event: &PoolEvent) -> Event {
    let value = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
    let name = value
        .get("event")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("event")
        .to_owned();
    Event::default().event(name).data(value.to_string())
}

async fn events(
    State(state): State<ApiState>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|error| ApiError::bad_request(error.body_text()))?;
    let providers: Vec<ProviderId> = match query.provider {
        Some(provider) => vec![ProviderId::new(&provider)],
        None => state
            .admin
            .list_providers()
            .await?
            .into_iter()
            .map(|summary| summary.provider)
            .collect(),
    };
    let mut streams: Vec<BoxStream<'static, PoolEvent>> = Vec::with_capacity(providers.len());
    for provider in &providers {
        let subscription = state.admin.subscribe(provider, EVENT_BUFFER).await?;
        streams.push(
            stream::unfold(subscription, |mut subscription| async move {
                subscription.recv().await.map(|event| (event, subscription))
            })
            .boxed(),
        );
    }
    let names: Vec<&str> = providers.iter().map(ProviderId::as_str).collect();
    let hello = Event::default()
        .event("subscribed")
        .data(serde_json::json!({ "event": "subscribed", "providers": names }).to_string());
    let mut shutdown = state.shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let events = stream::once(async move { hello })
        .chain(stream::select_all(streams).map(|event| sse_event(&event)))
        .chain(stream::pending())
        .map(Ok::<_, Infallible>)
        .take_until(stopping);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use credpool::{ManualClock, Timestamp};

    use super::*;

    /// A request body → `Ok(kind)` (`api_key` or `oauth`) or an error containing the text.
    fn check(body: &str, loopback: bool, expected: Result<&str, &str>) {
        check_for(body, None, loopback, expected);
    }

    /// [`check`] for a provider whose token endpoints must be on `domain`.
    fn check_for(body: &str, domain: Option<&str>, loopback: bool, expected: Result<&str, &str>) {
        let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
        let request: AddEntryRequest = serde_json::from_str(body).unwrap();
        match (request.into_entry(&clock, domain, loopback), expected) {
            (Ok(entry), Ok(kind)) => {
                let name = match &entry.kind {
                    EntryKind::ApiKey { .. } => "api_key",
                    EntryKind::OAuth(_) => "oauth",
                };
                assert_eq!(name, kind, "{body}");
            }
            (Err(error), Err(words)) => assert!(error.contains(words), "{body}: {error}"),
            (got, expected) => panic!(
                "{body}: got {:?}, expected {expected:?}",
                got.map(|e| e.label)
            ),
        }
    }

    #[test]
    fn add_requests_need_exactly_one_secret_and_a_safe_token_url() {
        check(r#"{"label":"k","api_key":"v"}"#, false, Ok("api_key"));
        check(r#"{"label":"g","refresh_token":"r"}"#, false, Ok("oauth"));
        check(
            r#"{"label":"g","refresh_token":"r","access_token":"a","expires_in_s":60,"token_url":"https://auth.example.com/t","client_id":"c"}"#,
            false,
            Ok("oauth"),
        );
        check(
            r#"{"label":"g","refresh_token":"r","token_url":"http://127.0.0.1:9/t"}"#,
            true,
            Ok("oauth"),
        );
        check(
            r#"{"label":"g","refresh_token":"r","token_url":"http://127.0.0.1:9/t"}"#,
            false,
            Err("needs allow_insecure_loopback"),
        );
        check(
            r#"{"label":"g","refresh_token":"r","token_url":"http://example.com/t"}"#,
            true,
            Err("https"),
        );
        check(
            r#"{"label":"k"}"#,
            false,
            Err("give api_key or refresh_token"),
        );
        check(
            r#"{"label":"k","api_key":"v","refresh_token":"r"}"#,
            false,
            Err("not both"),
        );
        check(
            r#"{"label":"k","api_key":"v","client_id":"c"}"#,
            false,
            Err("belong to OAuth grants"),
        );
    }

    #[test]
    fn token_urls_follow_the_refreshers_policy_with_the_providers_domain() {
        let grant =
            |url: &str| format!(r#"{{"label":"g","refresh_token":"r","token_url":"{url}"}}"#);
        let xai = Some("x.ai");
        check_for(
            &grant("https://auth.x.ai/oauth2/token"),
            xai,
            false,
            Ok("oauth"),
        );
        check_for(&grant("https://evil.com/token"), xai, false, Err("`x.ai`"));
        check_for(&grant("https://evilx.ai/token"), xai, false, Err("`x.ai`"));
        check_for(&grant("https://evil.com/token"), None, false, Ok("oauth"));
        check_for(&grant("http://127.0.0.1:9/token"), xai, true, Ok("oauth"));
        check_for(
            &grant("http://127.0.0.1:9/token"),
            xai,
            false,
            Err("needs allow_insecure_loopback"),
        );
        for url in [
            "https://user:pw@auth.x.ai/token",
            "https://user@auth.example.com/token",
            "not a url",
        ] {
            check_for(&grant(url), None, false, Err("user:password"));
            check_for(&grant(url), xai, true, Err("user:password"));
        }
    }

    #[tokio::test]
    async fn get_resolves_a_target_like_the_pool() {
        // Reset resolves through the pool's own `resolve`; GET must pick the same entry (or
        // fail the same way) for every kind of target.
        let pool = credpool::Credpool::builder()
            .in_memory()
            .start()
            .await
            .unwrap();
        let admin = pool.admin();
        let openai = ProviderId::new("openai");
        for label in ["a", "b", "2", "dup", "DUP"] {
            let entry = credpool::api_key_entry(label, Secret::new(format!("sk-{label}")));
            admin.add(&openai, entry).await.unwrap();
        }
        let snapshot = admin.snapshot(&openai).await.unwrap();
        let first_id = snapshot.entries[0].id.to_string();
        let mut targets = vec!["2", "b", "B", "1", "3", "5", "6", "0", "dup", "nosuch", " "];
        targets.push(&first_id);
        for target in targets {
            let ours = resolve(snapshot.clone(), target);
            let pools = admin.reset(&openai, Target(target.to_owned())).await;
            match (&ours, &pools) {
                (Ok(ours), Ok(pools)) => assert_eq!(ours.id, pools.id, "{target:?}"),
                (Err(ours), Err(ClientError::Pool(pools))) => {
                    assert_eq!(ours, pools, "{target:?}");
                }
                _ => panic!("{target:?}: get {ours:?}, pool {pools:?}"),
            }
        }
        let two = resolve(snapshot.clone(), "2").unwrap();
        assert_eq!(two.label, "2", "a label wins over a position");
        assert!(matches!(
            resolve(snapshot, "dup"),
            Err(PoolError::AmbiguousTarget(_))
        ));
        pool.shutdown().await.unwrap();
    }

    #[test]
    fn an_add_request_never_shows_its_secrets_in_debug() {
        let request: AddEntryRequest =
            serde_json::from_str(r#"{"label":"k","api_key":"sk-canary-debug"}"#).unwrap();
        assert!(!format!("{request:?}").contains("sk-canary"));
    }
}
