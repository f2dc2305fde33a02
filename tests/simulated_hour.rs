#![allow(clippy::unwrap_used, clippy::expect_used)]
//! 64 workers over a simulated hour. The tree and the fake provider share one injected
//! `ManualClock`, which a driver task moves forward 30 s per step for 120 steps while the
//! workers send real requests on loopback: access tokens (10 min) expire on the fake's
//! clock, `Retry-After` cooldowns end on the pool's. Paused tokio time is not used because
//! real HTTP and auto-advancing time do not mix (a paused runtime fires reqwest timeouts the
//! moment it idles on a socket, which would turn into spurious refresh retries).
//!
//! Faults along the hour: expiries (natural), 429s with `Retry-After: 60`, a 402 on one key,
//! a revoked grant at minute 40, token-endpoint 503s. Checked: no worker stuck, every
//! request ends in success or a typed error, token-endpoint requests never exceed the
//! refreshes the hour needs, the reuse detector stays at 0, and every lease comes back.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use credpool::StatusKind;
use credpool::admin::{Snapshot, Stats};
use credpool::{ClientError, Clock, ManualClock, RecoveryConfig, Timestamp};
use credpool_test_support::{ApiKeyMode, TokenFault};
use rand::Rng;
use support::*;

const WORKERS: usize = 64;
const STEP: Duration = Duration::from_secs(30);
const STEPS: u32 = 120;
const LIFETIME: Duration = Duration::from_secs(10 * 60);
const KEYS: [&str; 3] = ["key-0", "key-1", "key-2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_workers_over_a_simulated_hour() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let started = clock.now();
    let world = Arc::new(
        World::start_with(
            StoreKind::Sled,
            RecoveryConfig {
                transient_backoff: Duration::from_millis(2),
                ..RecoveryConfig::default()
            },
            LIFETIME,
            Arc::clone(&clock) as Arc<dyn Clock>,
        )
        .await,
    );
    world.add_grant("grant-a").await;
    world.add_grant("grant-b").await;
    for key in KEYS {
        world.add_key(&openai(), key, ApiKeyMode::Ok).await;
    }

    let done = Arc::new(AtomicBool::new(false));
    let injected_503 = Arc::new(AtomicU64::new(0));
    let driver = {
        let (world, clock, done) = (Arc::clone(&world), Arc::clone(&clock), Arc::clone(&done));
        let injected_503 = Arc::clone(&injected_503);
        tokio::spawn(async move {
            for step in 0..STEPS {
                let (throttle, fault_503) = {
                    let mut rng = rand::rng();
                    (rng.random_range(0..KEYS.len() * 3), rng.random_bool(0.15))
                };
                // Throttle at most one key per step, for 60 s of pool time.
                for (n, key) in KEYS.iter().enumerate() {
                    let mode = if n == throttle {
                        ApiKeyMode::RateLimited {
                            retry_after_secs: 60,
                        }
                    } else if *key == "key-2" && (20..24).contains(&step) {
                        ApiKeyMode::Billing402
                    } else {
                        ApiKeyMode::Ok
                    };
                    world.fake.set_api_key_mode(key, mode);
                }
                if fault_503 {
                    world.fake.push_fault(TokenFault::Status503);
                    injected_503.fetch_add(1, Ordering::SeqCst);
                }
                if step == 80 {
                    world.fake.revoke("grant-b");
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
                clock.advance(STEP);
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let (client, http, done) =
                (world.client.clone(), world.http.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let provider = if n % 2 == 0 { xai() } else { openai() };
                let (mut ok, mut typed) = (0u64, 0u64);
                while !done.load(Ordering::SeqCst) {
                    let attempt = client.with_recovery(&provider, |credential| {
                        let http = http.clone();
                        async move { chat(&http, credential).await }
                    });
                    match tokio::time::timeout(Duration::from_secs(15), attempt).await {
                        Err(_) => panic!("worker {n} stuck"),
                        Ok(Ok(_)) => ok += 1,
                        Ok(Err(ClientError::Exhausted { .. } | ClientError::Request(_))) => {
                            typed += 1;
                        }
                        Ok(Err(other)) => panic!("worker {n}: unexpected {other:?}"),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (ok, typed)
            })
        })
        .collect();

    driver.await.unwrap();
    let (ok, typed) = tally(workers).await;
    let simulated = clock.now().since(started);
    assert!(simulated >= Duration::from_secs(3600), "{simulated:?}");

    let token_requests = world.fake.token_requests();
    let refreshes = world.fake.refreshes();
    let injected = injected_503.load(Ordering::SeqCst);
    eprintln!(
        "{ok} succeeded, {typed} typed errors; {refreshes} refreshes, {token_requests} token \
         requests, {injected} 503s queued"
    );
    assert!(ok > 0, "requests succeed over the hour");
    assert!(
        refreshes >= 2,
        "expired tokens were refreshed ({refreshes})"
    );
    // Refreshes happen only when a token has expired: at most one per lifetime per grant
    // (6 in an hour, plus one for the step boundaries).
    let lifetimes = 3600 / LIFETIME.as_secs() + 1;
    assert!(
        refreshes <= 2 * lifetimes,
        "{refreshes} refreshes for {lifetimes} lifetimes of 2 grants"
    );
    // Every token request is a needed refresh, a retry after a 503 we queued, or the one
    // refused attempt of the revoked grant.
    assert!(
        token_requests <= refreshes + injected + 1,
        "{token_requests} token requests for {refreshes} refreshes and {injected} 503s"
    );
    assert_eq!(
        world.fake.reuse_detections(),
        0,
        "a refresh token was spent twice"
    );

    let grants = world.admin.run(&xai(), Snapshot).await.unwrap();
    let grant_a = grants
        .entries
        .iter()
        .find(|e| e.label == "grant-a")
        .unwrap();
    assert_ne!(grant_a.status, StatusKind::Dead, "{grant_a:?}");
    for provider in [xai(), openai()] {
        let stats = world.admin.run(&provider, Stats).await.unwrap();
        assert_eq!(stats.leases_held, 0, "every lease came back ({provider})");
    }
}
