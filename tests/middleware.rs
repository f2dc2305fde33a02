#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The reqwest middleware against the fake provider: real pool actors, store and refresher.

mod support;

use credpool::StatusKind;
use credpool::admin::Snapshot;
use credpool::{ClientError, PoolMiddleware};
use credpool_test_support::ApiKeyMode;
use support::*;

fn client_with(middleware: PoolMiddleware) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_through_the_middleware() {
    let world = World::start(StoreKind::Sled, quick()).await;
    world.add_grant("grant").await;
    let http = client_with(PoolMiddleware::fixed(world.client.clone(), xai()));
    let url = format!("{}/chat/completions", world.fake.api_url());

    let first = http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(first.status(), 200);
    world.fake.expire_access_tokens();

    let workers: Vec<_> = (0..3)
        .map(|_| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move { http.post(&url).body("{}").send().await })
        })
        .collect();
    for worker in workers {
        let response = worker.await.unwrap().expect("no transport error");
        assert_eq!(response.status(), 200, "the retry with the new token works");
    }
    assert_eq!(world.fake.token_requests(), 1, "exactly one refresh");
    assert_eq!(world.fake.reuse_detections(), 0);
    let snapshot = world.admin.run(&xai(), Snapshot).await.unwrap();
    assert_eq!(snapshot.entries[0].status, StatusKind::Ok);
    assert_eq!(snapshot.entries[0].generation.0, 2);
    let stored = world.store.load_provider(&xai()).unwrap();
    assert_eq!(stored.entries[0].generation.0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middleware_rotates_keys_and_returns_the_real_last_response() {
    let world = World::start(StoreKind::Memory, quick()).await;
    let provider = openai();
    world.add_key(&provider, "key-a", throttled()).await;
    world.add_key(&provider, "key-b", ApiKeyMode::Ok).await;
    let http = client_with(PoolMiddleware::fixed(
        world.client.clone(),
        provider.clone(),
    ));
    let url = format!("{}/chat/completions", world.fake.api_url());

    let response = http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(world.fake.api_requests_with("key-a"), 1);
    assert_eq!(world.fake.api_requests_with("key-b"), 1);

    // Now b runs out of credit: the caller sees the provider's own 402 and the exhaustion.
    world.fake.set_api_key_mode("key-b", ApiKeyMode::Billing402);
    let response = http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 402);
    let error = response.extensions().get::<ClientError>().cloned();
    assert!(
        matches!(error, Some(ClientError::Exhausted { .. })),
        "{error:?}"
    );
    assert!(error.unwrap().next_available_at().is_some());
    let body = response.text().await.unwrap();
    assert!(body.contains("Insufficient credits"), "{body}");

    // With nothing left the middleware fails before sending anything.
    let before = world.fake.api_requests();
    let error = http.post(&url).body("{}").send().await.unwrap_err();
    assert!(
        matches!(error, reqwest_middleware::Error::Middleware(_)),
        "{error:?}"
    );
    assert_eq!(world.fake.api_requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_keys_travel_as_x_api_key_and_auto_routes_by_host() {
    let world = World::start(StoreKind::Memory, quick()).await;
    let anthropic = credpool::ProviderId::new("anthropic");
    world.add_key(&anthropic, "ant-key", ApiKeyMode::Ok).await;
    let http = client_with(PoolMiddleware::fixed(world.client.clone(), anthropic));
    let response = http
        .post(format!("{}/chat/completions", world.fake.api_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(world.fake.api_requests_with("ant-key"), 1);

    // Auto: loopback is served by no provider, so it is refused before anything is sent.
    let auto = client_with(PoolMiddleware::auto(world.client.clone()));
    let error = auto
        .get(format!("{}/models", world.fake.api_url()))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{error}").contains("no provider serves"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_body_is_sent_once_but_the_failure_is_still_reported() {
    let world = World::start(StoreKind::Memory, quick()).await;
    let provider = openai();
    world.add_key(&provider, "key-a", throttled()).await;
    world.add_key(&provider, "key-b", ApiKeyMode::Ok).await;
    let http = client_with(PoolMiddleware::fixed(
        world.client.clone(),
        provider.clone(),
    ));
    let stream = one_chunk_stream();
    let response = http
        .post(format!("{}/chat/completions", world.fake.api_url()))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "not cloneable: no retry");
    let snapshot = world.admin.run(&provider, Snapshot).await.unwrap();
    let a = snapshot
        .entries
        .iter()
        .find(|e| e.label == "key-a")
        .unwrap();
    assert_eq!(a.status, StatusKind::CoolingDown, "the pool still learned");
    assert_eq!(world.fake.api_requests(), 1);
}

fn one_chunk_stream()
-> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures::stream::once(async { Ok(bytes::Bytes::from_static(b"{}")) })
}
