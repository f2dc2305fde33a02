#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The data plane's routes in process (no socket): leases, reports and releases, bad input,
//! tokens, expired leases, and a stampede of reports of one expired token.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use credpool::admin::{Add, Snapshot};
use credpool::{
    Clock, Credpool, ManualClock, ProviderId, Secret, Timestamp, api_key_entry, oauth_entry,
    with_token_url,
};
use credpool_test_support::{ApiKeyMode, FakeProvider};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{DataState, router};

const NOW: i64 = 1_800_000_000_000;

struct World {
    pool: Credpool,
    state: DataState,
    clock: Arc<ManualClock>,
    fake: FakeProvider,
}

impl World {
    async fn start() -> World {
        let fake = FakeProvider::start_default().await;
        let clock = Arc::new(ManualClock::new(Timestamp(NOW)));
        let pool = Credpool::builder()
            .in_memory()
            .clock(clock.clone())
            .allow_insecure_loopback(true)
            .start()
            .await
            .unwrap();
        let state = DataState::new(pool.client(), clock.clone(), Duration::from_secs(60));
        World {
            pool,
            state,
            clock,
            fake,
        }
    }

    async fn add_key(&self, label: &str, key: &str) {
        self.fake.add_api_key(key, ApiKeyMode::Ok);
        self.pool
            .admin()
            .run(
                &ProviderId::new("openai"),
                Add(api_key_entry(label, Secret::new(key))),
            )
            .await
            .unwrap();
    }

    async fn add_grant(&self, label: &str) {
        let (access, refresh) = self.fake.grant(label);
        let entry = with_token_url(
            oauth_entry(label, access, refresh, None),
            &self.fake.token_url(),
            None,
        );
        self.pool
            .admin()
            .run(&ProviderId::new("xai-oauth"), Add(entry))
            .await
            .unwrap();
    }

    fn app(&self) -> Router {
        router(self.state.clone(), None)
    }
}

async fn call(app: &Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

async fn lease(app: &Router, body: Value) -> Value {
    let (status, answer) = call(app, "POST", "/v1/lease", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["lease"].clone()
}

fn expired_token() -> Value {
    json!({
        "status": 403,
        "headers": [["content-type", "application/json"]],
        "body": r#"{"code":"unauthenticated:bad-credentials","error":"Unauthenticated: bad credentials"}"#,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_carries_its_header_and_a_success_report_releases_it() {
    let world = World::start().await;
    world.add_key("a", "sk-data-plane-aaaa").await;
    let app = world.app();
    let held = lease(&app, json!({ "provider": "openai" })).await;
    assert_eq!(held["provider"], "openai");
    assert_eq!(held["label"], "a");
    assert_eq!(held["kind"], "api_key");
    assert_eq!(held["generation"], 1);
    assert_eq!(held["header"]["name"], "authorization");
    assert_eq!(held["header"]["value"], "Bearer sk-data-plane-aaaa");
    assert_eq!(held["expires_at"], Timestamp(NOW + 60_000).to_rfc3339());
    let by_url = lease(
        &app,
        json!({ "url": "https://api.openai.com/v1/chat/completions" }),
    )
    .await;
    assert_eq!(by_url["provider"], "openai");
    let id = held["id"].as_str().unwrap();
    let (status, answer) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/report"),
        Some(json!({ "outcome": "success" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["action"], "released");
    let (status, answer) = call(&app, "DELETE", &format!("/v1/leases/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a report consumed it");
    assert_eq!(answer["error"]["code"], "unknown_lease");
    let other = by_url["id"].as_str().unwrap();
    let (status, _) = call(&app, "DELETE", &format!("/v1/leases/{other}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let snapshot = world
        .pool
        .admin()
        .run(&ProviderId::new("openai"), Snapshot)
        .await
        .unwrap();
    assert_eq!(snapshot.entries[0].leases, 0);
    assert_eq!(snapshot.entries[0].usage.successes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_rotates_and_an_exhausted_pool_is_503_with_retry_after() {
    let world = World::start().await;
    world.add_key("a", "sk-data-plane-aaaa").await;
    world.add_key("b", "sk-data-plane-bbbb").await;
    let app = world.app();
    let first = lease(&app, json!({ "provider": "openai" })).await;
    let throttled = json!({
        "status": 429,
        "headers": [["retry-after", "30"]],
        "body": r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
    });
    let id = first["id"].as_str().unwrap();
    let (status, answer) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/report"),
        Some(throttled.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["classification"]["kind"], "rate_limited");
    assert_eq!(answer["action"], "rotate");
    assert_ne!(answer["lease"]["entry"], first["entry"]);
    let second = answer["lease"]["id"].as_str().unwrap().to_owned();
    let (_, answer) = call(
        &app,
        "POST",
        &format!("/v1/leases/{second}/report"),
        Some(throttled),
    )
    .await;
    assert_eq!(answer["action"], "wait", "{answer}");
    assert!(answer["lease"].is_null());
    assert!(answer["next_available_at"].is_string(), "{answer}");
    let request = Request::builder()
        .method("POST")
        .uri("/v1/lease")
        .body(Body::from(json!({ "provider": "openai" }).to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "exhausted");
    assert_eq!(body["error"]["causes"]["rate_limited"], 2, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_stable_code_and_never_a_secret() {
    let world = World::start().await;
    world.add_key("a", "sk-data-plane-aaaa").await;
    let app = world.app();
    let huge = "x".repeat(2 << 20);
    for (body, code) in [
        (json!({ "provider": "nonesuch" }), "unknown_provider"),
        (
            json!({ "url": "https://example.com/v1" }),
            "no_provider_for_url",
        ),
        (json!({}), "invalid_request"),
        (
            json!({ "provider": "openai", "url": "https://api.openai.com" }),
            "invalid_request",
        ),
        (
            json!({ "provider": "openai", "extra": 1 }),
            "invalid_request",
        ),
        (json!({ "provider": huge }), "body_too_large"),
    ] {
        let (status, answer) = call(&app, "POST", "/v1/lease", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }
    let held = lease(&app, json!({ "provider": "openai" })).await;
    let id = held["id"].as_str().unwrap();
    for body in [
        json!({ "outcome": "great" }),
        json!({ "status": 99 }),
        json!({ "outcome": "success", "status": 200 }),
        json!({}),
    ] {
        let (status, answer) =
            call(&app, "POST", &format!("/v1/leases/{id}/report"), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_request");
        assert!(!answer.to_string().contains("sk-data"), "{answer}");
    }
    let (status, answer) = call(
        &app,
        "POST",
        "/v1/leases/0000/report",
        Some(json!({ "outcome": "success" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "unknown_lease");
    let (status, answer) = call(&app, "GET", "/v1/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "no_such_route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tcp_only_the_lease_token_opens_the_data_plane() {
    let world = World::start().await;
    world.add_key("a", "sk-data-plane-aaaa").await;
    let app = router(
        world.state.clone(),
        Some(Arc::new(Secret::new(
            "lease-token-0123456789abcdef0123456789",
        ))),
    );
    for presented in [None, Some("admin-token-0123456789abcdef0123456789ab")] {
        let mut request = Request::builder().method("POST").uri("/v1/lease");
        if let Some(token) = presented {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Body::from(json!({ "provider": "openai" }).to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let request = Request::builder()
        .method("POST")
        .uri("/v1/lease")
        .header(
            "authorization",
            "Bearer lease-token-0123456789abcdef0123456789",
        )
        .body(Body::from(json!({ "provider": "openai" }).to_string()))
        .unwrap();
    assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK);
}

/// An expired token reported on a live lease is refreshed once and the answer is a lease on
/// the new token; the same report on a lease that expired meanwhile gets the current token
/// without a second refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once_and_a_late_report_gets_the_current_token() {
    let world = World::start().await;
    world.add_grant("grok").await;
    let app = world.app();
    let early = lease(&app, json!({ "provider": "xai-oauth" })).await;
    let live = lease(&app, json!({ "provider": "xai-oauth" })).await;
    assert_eq!(early["generation"], 1);
    // The early lease outlives its deadline (its client died); the reaper gives it back.
    world.clock.advance(Duration::from_secs(61));
    assert_eq!(world.state.leases.reap(world.clock.now()), 2);
    world.fake.expire_access_tokens();
    let requests = world.fake.token_requests();
    // `live` also expired: a late report on it refreshes (same entry, same generation).
    let id = live["id"].as_str().unwrap();
    let (status, answer) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/report"),
        Some(expired_token()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["classification"]["kind"], "auth_expired");
    assert_eq!(answer["action"], "retry");
    assert_eq!(answer["lease"]["generation"], 2, "{answer}");
    assert_eq!(world.fake.token_requests(), requests + 1);
    // The early lease's report comes last: the current token, no refresh.
    let id = early["id"].as_str().unwrap();
    let (_, answer) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/report"),
        Some(expired_token()),
    )
    .await;
    assert_eq!(answer["action"], "retry", "{answer}");
    assert_eq!(answer["lease"]["generation"], 2);
    assert_eq!(
        world.fake.token_requests(),
        requests + 1,
        "no second refresh"
    );
    assert_eq!(world.fake.reuse_detections(), 0);
}

/// 10,000 clients report the same expired token at once: one token request, and every one
/// of them gets a lease on the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_reports_of_one_expired_token_make_one_token_request() {
    const CLIENTS: usize = 10_000;
    let world = World::start().await;
    world.add_grant("grok").await;
    let app = world.app();
    let mut ids = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let held = lease(&app, json!({ "provider": "xai-oauth" })).await;
        ids.push(held["id"].as_str().unwrap().to_owned());
    }
    world.fake.expire_access_tokens();
    let requests = world.fake.token_requests();
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let app = app.clone();
        tasks.spawn(async move {
            call(
                &app,
                "POST",
                &format!("/v1/leases/{id}/report"),
                Some(expired_token()),
            )
            .await
        });
    }
    let mut retried = 0;
    while let Some(joined) = tasks.join_next().await {
        let (status, answer) = joined.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["action"], "retry", "{answer}");
        assert_eq!(answer["lease"]["generation"], 2);
        retried += 1;
    }
    assert_eq!(retried, CLIENTS);
    assert_eq!(world.fake.token_requests(), requests + 1);
    assert_eq!(world.fake.reuse_detections(), 0);
}
