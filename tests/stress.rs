#![allow(clippy::unwrap_used, clippy::expect_used)]
//! 64 workers over two pools while a chaos task expires tokens, flips key modes, fails the
//! token endpoint and resets entries. Real time, about a second and a half, bounded.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use credpool::StatusKind;
use credpool::admin::{Reset, Snapshot, Stats};
use credpool::{ClientError, RecoveryConfig, Target};
use credpool_test_support::{ApiKeyMode, TokenFault};
use rand::Rng;
use support::*;

const WORKERS: usize = 64;
const REQUESTS: usize = 20;
const KEYS: [&str; 4] = ["key-0", "key-1", "key-2", "key-3"];

fn random_mode(rng: &mut impl Rng) -> ApiKeyMode {
    match rng.random_range(0..10) {
        0..=5 => ApiKeyMode::Ok,
        6 => throttled(),
        7 => ApiKeyMode::RateLimited {
            retry_after_secs: 1,
        },
        8 => ApiKeyMode::Billing402,
        _ => ApiKeyMode::Invalid,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_workers_under_random_faults_all_finish() {
    let world = Arc::new(
        World::start(
            StoreKind::Memory,
            RecoveryConfig {
                transient_backoff: Duration::from_millis(5),
                ..RecoveryConfig::default()
            },
        )
        .await,
    );
    world.add_grant("grant-a").await;
    world.add_grant("grant-b").await;
    for key in KEYS {
        world.add_key(&openai(), key, ApiKeyMode::Ok).await;
    }

    // Start in trouble, so every run sees failures whatever the scheduling.
    world.fake.expire_access_tokens();
    world.fake.set_api_key_mode(KEYS[0], throttled());
    let running = Arc::new(AtomicBool::new(true));
    let chaos = {
        let world = Arc::clone(&world);
        let running = Arc::clone(&running);
        tokio::spawn(async move {
            let mut round = 0u32;
            while running.load(Ordering::SeqCst) {
                let (expire, fault, modes, reset) = {
                    let mut rng = rand::rng();
                    let modes: Vec<ApiKeyMode> =
                        KEYS.iter().map(|_| random_mode(&mut rng)).collect();
                    (
                        rng.random_bool(0.3),
                        rng.random_range(0..6),
                        modes,
                        round % 4 == 3,
                    )
                };
                if expire {
                    world.fake.expire_access_tokens();
                }
                match fault {
                    0 => world.fake.push_fault(TokenFault::Status503),
                    1 => world
                        .fake
                        .push_fault(TokenFault::Slow(Duration::from_millis(20))),
                    _ => {}
                }
                for (key, mode) in KEYS.iter().zip(modes) {
                    world.fake.set_api_key_mode(key, mode);
                }
                if reset {
                    // Bring benched and dead entries back, as an admin would.
                    for provider in [openai(), xai()] {
                        let snapshot = world.admin.run(&provider, Snapshot).await.unwrap();
                        for entry in snapshot
                            .entries
                            .iter()
                            .filter(|e| e.status != StatusKind::Ok)
                        {
                            let _ = world
                                .admin
                                .run(&provider, Reset(Target(entry.id.to_string())))
                                .await;
                        }
                    }
                }
                round += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let client = world.client.clone();
            let http = world.http.clone();
            tokio::spawn(async move {
                let provider = if n % 2 == 0 { xai() } else { openai() };
                let (mut ok, mut typed) = (0u64, 0u64);
                for _ in 0..REQUESTS {
                    let attempt = client.with_recovery(&provider, |credential| {
                        let http = http.clone();
                        async move { chat(&http, credential).await }
                    });
                    match tokio::time::timeout(Duration::from_secs(15), attempt).await {
                        Err(_) => panic!("worker {n} stuck"),
                        Ok(Ok(_)) => ok += 1,
                        Ok(Err(
                            ClientError::Exhausted { .. }
                            | ClientError::Request(_)
                            | ClientError::ForeignOrigin(_),
                        )) => typed += 1,
                        Ok(Err(other)) => panic!("worker {n}: unexpected {other:?}"),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (ok, typed)
            })
        })
        .collect();

    let (ok, typed) = tally(workers).await;
    running.store(false, Ordering::SeqCst);
    chaos.await.unwrap();

    eprintln!("{ok} succeeded, {typed} typed errors");
    assert_eq!(
        ok + typed,
        (WORKERS * REQUESTS) as u64,
        "every request ended"
    );
    assert!(ok > 0, "some requests succeeded ({typed} typed errors)");
    let refresher = world.fake.token_requests();
    assert!(refresher >= 1, "the expired grants were refreshed");
    assert_eq!(
        world.fake.reuse_detections(),
        0,
        "no refresh token was spent twice"
    );
    for label in ["grant-a", "grant-b"] {
        assert!(!world.fake.is_revoked(label), "{label} was revoked");
    }
    let stats = world.admin.run(&openai(), Stats).await.unwrap();
    assert_eq!(stats.leases_held, 0, "every lease came back");
}
