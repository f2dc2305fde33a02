#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Scenario tests of `PoolClient`: real pool actors, a real store, the real refresher and the
//! fake provider on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use credpool::StatusKind;
use credpool::admin::Snapshot;
use credpool::{ClientError, ProviderId, RequestFailure};
use credpool::{Clock, SystemClock};
use credpool_test_support::ApiKeyMode;
use support::*;

/// Seconds from now until `at`, rounded.
fn secs_until(at: credpool::Timestamp) -> i64 {
    (at.0 - SystemClock.now().0 + 500) / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_three_workers_share_one_refresh() {
    let world = World::start(StoreKind::Sled, quick()).await;
    world.add_grant("grant").await;

    // Every worker works with the first token.
    for _ in 0..3 {
        let http = world.http.clone();
        world
            .client
            .with_recovery(&xai(), |credential| chat(&http, credential))
            .await
            .expect("first token works");
    }
    world.fake.expire_access_tokens();

    let workers = ["title", "compression", "vision"].map(|_| {
        let client = world.client.clone();
        let http = world.http.clone();
        tokio::spawn(async move {
            let attempts = Arc::new(AtomicU32::new(0));
            let counter = Arc::clone(&attempts);
            let result = client
                .with_recovery(&xai(), move |credential| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let http = http.clone();
                    async move { chat(&http, credential).await }
                })
                .await;
            (result, attempts.load(Ordering::SeqCst))
        })
    });
    for worker in workers {
        let (result, attempts) = worker.await.unwrap();
        result.expect("the worker succeeds on its retry");
        assert!(attempts <= 2, "{attempts} attempts for one entry");
    }
    assert_eq!(world.fake.token_requests(), 1, "exactly one refresh");
    assert_eq!(world.fake.reuse_detections(), 0);

    let snapshot = world.admin.run(&xai(), Snapshot).await.unwrap();
    let entry = &snapshot.entries[0];
    assert_eq!(entry.status, StatusKind::Ok, "nothing benched: {entry:?}");
    assert_eq!(entry.generation.0, 2);

    // The refreshed pair is durable in the store, and it is the live one.
    let stored = world.store.load_provider(&xai()).unwrap();
    let tokens = stored.entries[0].oauth().unwrap();
    assert_eq!(stored.entries[0].generation.0, 2);
    assert!(world.fake.is_access_valid(tokens.access.expose()));
    assert!(tokens.refresh.as_ref().is_some_and(|r| !r.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_rotate_cool_and_a_budget_of_one_reaches_the_third_key() {
    let world = World::start(StoreKind::Memory, quick()).await;
    let provider = openai();
    world.add_key(&provider, "key-a", throttled()).await;
    world
        .add_key(&provider, "key-b", ApiKeyMode::Billing403)
        .await;
    world.add_key(&provider, "key-c", ApiKeyMode::Ok).await;

    let http = world.http.clone();
    let body = world
        .client
        .with_recovery(&provider, |credential| chat(&http, credential))
        .await
        .expect("rotation reaches the third key");
    assert!(body.contains("chatcmpl"));
    assert_eq!(world.fake.api_requests(), 3, "one attempt per key");

    let snapshot = world.admin.run(&provider, Snapshot).await.unwrap();
    let by_label = |label: &str| {
        snapshot
            .entries
            .iter()
            .find(|e| e.label == label)
            .unwrap()
            .clone()
    };
    let a = by_label("key-a");
    assert_eq!(a.status, StatusKind::CoolingDown);
    assert_eq!(a.cooldown_cause.as_deref(), Some("rate_limited"));
    assert!(a.cooldown_remaining_s.unwrap() > 3000, "{a:?}");
    let b = by_label("key-b");
    assert_eq!(b.cooldown_cause.as_deref(), Some("billing"));
    assert!(b.cooldown_remaining_s.unwrap() > 3000, "{b:?}");
    assert_eq!(by_label("key-c").status, StatusKind::Ok);

    // Key c goes bad: a 401 kills it, and with the others benched the pool is dry.
    world.fake.set_api_key_mode("key-c", ApiKeyMode::Invalid);
    let error = world
        .client
        .with_recovery(&provider, |credential| chat(&http, credential))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Exhausted { .. }), "{error:?}");
    assert_eq!(error.failure().unwrap().failure.status, Some(401));
    let snapshot = world.admin.run(&provider, Snapshot).await.unwrap();
    let c = snapshot
        .entries
        .iter()
        .find(|e| e.label == "key-c")
        .unwrap();
    assert_eq!(c.status, StatusKind::Dead, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sole_key_cools_for_sixty_seconds_and_the_real_429_comes_back() {
    let world = World::start(StoreKind::Memory, quick()).await;
    let provider = openai();
    world
        .add_key(&provider, "key-dead", ApiKeyMode::Invalid)
        .await;
    world.add_key(&provider, "key-busy", throttled()).await;

    let http = world.http.clone();
    let error = world
        .client
        .with_recovery(&provider, |credential| chat(&http, credential))
        .await
        .unwrap_err();
    let ClientError::Exhausted {
        next_available_at,
        last_failure,
        ..
    } = &error
    else {
        panic!("expected exhaustion, got {error:?}");
    };
    assert_eq!(last_failure.as_ref().unwrap().failure.status, Some(429));
    let wait = secs_until(next_available_at.expect("the busy key comes back"));
    assert!((55..=60).contains(&wait), "sole key benched {wait}s");
    assert!(world.fake.api_requests() <= 3, "at most N+1 attempts");
    assert_eq!(world.fake.api_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhaustion_returns_the_last_402_with_next_available_at() {
    let world = World::start(StoreKind::Memory, quick()).await;
    let provider = openai();
    world
        .add_key(
            &provider,
            "key-slow",
            ApiKeyMode::RateLimited {
                retry_after_secs: 30,
            },
        )
        .await;
    world
        .add_key(&provider, "key-broke", ApiKeyMode::Billing402)
        .await;

    let http = world.http.clone();
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&attempts);
    let error = world
        .client
        .with_recovery(&provider, move |credential| {
            counter.fetch_add(1, Ordering::SeqCst);
            let http = http.clone();
            async move { chat(&http, credential).await }
        })
        .await
        .unwrap_err();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let failed = error.failure().expect("the last real rejection");
    assert_eq!(failed.failure.status, Some(402));
    assert_eq!(failed.classification.kind.class().as_str(), "billing");
    let wait = secs_until(error.next_available_at().expect("the 429 key comes back"));
    assert!((25..=30).contains(&wait), "next available in {wait}s");
    // Nothing is left: a plain acquire says so too, with the same deadline.
    let again = world.client.acquire(&provider).await.unwrap_err();
    assert!(matches!(
        again,
        ClientError::Exhausted {
            last_failure: None,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_route_resolves_the_provider_by_host() {
    let world = World::start(StoreKind::Memory, quick()).await;
    world.add_grant("grant").await;

    let lease = world
        .client
        .acquire_for_url("https://api.x.ai/v1")
        .await
        .unwrap();
    assert_eq!(lease.provider(), Some(&xai()));
    assert_eq!(lease.label(), "grant");
    drop(lease);

    let http = world.http.clone();
    world
        .client
        .with_recovery_for_url("https://api.x.ai/v1/chat/completions", |credential| {
            chat(&http, credential)
        })
        .await
        .expect("works through the host route");

    let unknown = world.client.acquire_for_url("https://example.com/v1").await;
    assert!(matches!(unknown, Err(ClientError::NoProviderForUrl(_))));
    let unknown = world.client.acquire(&ProviderId::new("nonesuch")).await;
    assert!(
        matches!(unknown, Err(ClientError::UnknownProvider(_))),
        "{unknown:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_from_a_foreign_origin_blames_nobody() {
    let world = World::start(StoreKind::Memory, quick()).await;
    let provider = openai();
    world.add_key(&provider, "key-a", ApiKeyMode::Ok).await;
    world.add_key(&provider, "key-b", ApiKeyMode::Ok).await;
    // A second server (a misconfigured proxy) that knows none of our keys.
    let proxy = credpool_test_support::FakeProvider::start_default().await;

    let http = world.http.clone();
    let proxy_url = proxy.api_url();
    let error = world
        .client
        .with_recovery(&provider, |credential| {
            let http = http.clone();
            let proxy_url = proxy_url.clone();
            async move { chat_at(&http, &proxy_url, credential).await }
        })
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::ForeignOrigin(_)), "{error:?}");
    assert_eq!(error.failure().unwrap().failure.status, Some(401));
    assert_eq!(
        proxy.api_requests(),
        1,
        "no rotation after a foreign rejection"
    );
    let snapshot = world.admin.run(&provider, Snapshot).await.unwrap();
    assert!(
        snapshot.entries.iter().all(|e| e.status == StatusKind::Ok),
        "{snapshot:?}"
    );
    assert!(
        snapshot.entries.iter().all(|e| e.leases == 0),
        "lease released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_retry_the_same_key_without_penalty() {
    let world = World::start(StoreKind::Memory, quick()).await;
    let provider = openai();
    world.add_key(&provider, "key-a", ApiKeyMode::Ok).await;
    world.add_key(&provider, "key-b", ApiKeyMode::Ok).await;

    // One network failure, then success: same key, two attempts.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let http = world.http.clone();
    world
        .client
        .with_recovery(&provider, move |credential| {
            let mut log = log.lock().unwrap();
            log.push(credential.label().to_owned());
            let first = log.len() == 1;
            let http = http.clone();
            async move {
                if first {
                    Err(RequestFailure::transport("connection reset"))
                } else {
                    chat(&http, credential).await
                }
            }
        })
        .await
        .expect("the retry succeeds");
    assert_eq!(*seen.lock().unwrap(), ["key-a", "key-a"]);

    // Failing past the budget: the error comes back, nobody is benched.
    let error = world
        .client
        .with_recovery(&provider, |credential| async move {
            Err::<(), _>(RequestFailure::http(
                503,
                Vec::new(),
                r#"{"error":{"message":"overloaded"}}"#,
                credential.base_url().unwrap_or_default(),
            ))
        })
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Request(_)), "{error:?}");
    let snapshot = world.admin.run(&provider, Snapshot).await.unwrap();
    assert!(
        snapshot.entries.iter().all(|e| e.status == StatusKind::Ok),
        "{snapshot:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_auth_failure_classifies_and_hands_back_the_refreshed_token() {
    let world = World::start(StoreKind::Memory, quick()).await;
    world.add_grant("grant").await;
    world.fake.expire_access_tokens();

    let lease = world.client.acquire(&xai()).await.unwrap();
    assert_eq!(lease.generation().0, 1);
    let body =
        br#"{"code":"unauthenticated:bad-credentials","error":"Unauthenticated: bad credentials"}"#;
    let refreshed = world
        .client
        .report_failure(
            lease,
            credpool::RequestFailure::answer(403, Vec::new(), body.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(refreshed.generation().0, 2);
    assert!(world.fake.is_access_valid(refreshed.secret().expose()));
    world
        .client
        .report(refreshed, credpool::Outcome::Success)
        .await
        .unwrap();
    assert_eq!(world.fake.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_pool_is_resolved_again() {
    let world = World::start(StoreKind::Memory, quick()).await;
    let provider = openai();
    world.add_key(&provider, "key-a", ApiKeyMode::Ok).await;
    drop(world.client.acquire(&provider).await.unwrap());

    world.registry.crash_pool_for_test(&provider).await.unwrap();
    let client = world.client.clone();
    let recovered = credpool_test_support::eventually_async(
        || {
            let client = client.clone();
            let provider = provider.clone();
            async move { client.acquire(&provider).await.is_ok() }
        },
        Duration::from_secs(5),
    )
    .await;
    assert!(recovered, "the client finds the restarted pool");
    let http = world.http.clone();
    world
        .client
        .with_recovery(&provider, |credential| chat(&http, credential))
        .await
        .expect("requests work after the restart");
}
