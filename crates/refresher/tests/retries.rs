//! A transient refresh failure is retried after its backoff, whatever the grant knows about
//! its expiry: the retry and the proactive timer are two reasons to wake up, and one must not
//! cancel the other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use credpool_core::{Secret, StatusKind, SystemClock};
use credpool_pool_actor::admin::{Add, Snapshot};
use credpool_pool_actor::{PoolError, PoolHandle};
use credpool_test_support::{FakeProviderConfig, TokenFault, eventually_async};

mod support;

use support::{Setup, add_expired_grant, expired, grant_entry, setup_with};

/// A refresher whose first retry comes after 50–100 ms instead of 5–10 s.
async fn quick_retries() -> Setup {
    setup_with(
        FakeProviderConfig::default(),
        Arc::new(SystemClock),
        |config| {
            config.backoff_initial = Duration::from_millis(100);
            config.http_timeout = Duration::from_secs(2);
        },
    )
    .await
}

async fn generation_reaches(pool: &PoolHandle, generation: u64) -> bool {
    let pool = pool.clone();
    eventually_async(
        || {
            let pool = pool.clone();
            async move {
                let snapshot = pool.admin(Snapshot).await.unwrap();
                snapshot.entries[0].generation.0 == generation
                    && snapshot.entries[0].status == StatusKind::Ok
            }
        },
        Duration::from_secs(10),
    )
    .await
}

/// Rejects the grant's token once with the endpoint answering 503, then checks that the
/// refresher retries on its own and the grant ends at generation 2, back in rotation.
async fn one_503_then_recovery(setup: &Setup) {
    setup.fake.push_fault(TokenFault::Status503);
    let lease = setup.pool.select(None).await.unwrap();
    let answer = setup.pool.report_auth_failure(lease, expired(), None).await;
    assert!(
        matches!(answer, Err(PoolError::Exhausted { .. })),
        "{answer:?}"
    );
    let snapshot = setup.pool.admin(Snapshot).await.unwrap();
    assert_eq!(
        snapshot.entries[0].cooldown_cause.as_deref(),
        Some("refresh_failed")
    );
    assert!(
        generation_reaches(&setup.pool, 2).await,
        "the backoff retry rotated the grant: {:?}, {:?}",
        setup.pool.admin(Snapshot).await.unwrap().entries[0],
        setup.refresher.stats().await.unwrap()
    );
    assert_eq!(
        setup.fake.token_requests(),
        2,
        "the failed attempt and the retry"
    );
    assert_eq!(setup.fake.reuse_detections(), 0);
    let stats = setup.refresher.stats().await.unwrap();
    assert_eq!(stats.failed_transient, 1);
    assert_eq!(
        stats.retries_armed, 0,
        "the retry fired and is not armed again"
    );
    let lease = setup.pool.select(None).await.unwrap();
    assert!(setup.fake.is_access_valid(lease.secret().expose()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_without_a_known_expiry_is_retried_after_a_transient_failure() {
    let setup = quick_retries().await;
    add_expired_grant(&setup, "grant").await;
    one_503_then_recovery(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_with_a_known_expiry_is_retried_after_a_transient_failure() {
    let setup = quick_retries().await;
    let (access, refresh) = setup.fake.grant("grant");
    let now = setup.clock.now();
    // Obtained an hour ago, expiring in three: the proactive timer is two hours away.
    let expires_at = now.plus(Duration::from_secs(3 * 3600));
    let obtained_at = now.minus(Duration::from_secs(3600));
    setup
        .pool
        .admin(Add(grant_entry(
            "grant",
            access,
            refresh,
            Some(expires_at),
            obtained_at,
        )))
        .await
        .unwrap();
    setup.fake.expire_access_tokens();
    one_503_then_recovery(&setup).await;
    assert_eq!(
        setup.refresher.stats().await.unwrap().timers_armed,
        1,
        "the proactive timer of the new token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_seeded_from_a_refresh_token_alone_is_retried_after_a_transient_failure() {
    let setup = quick_retries().await;
    let (_, refresh) = setup.fake.grant("grant");
    setup.fake.push_fault(TokenFault::Status503);
    let now = setup.clock.now();
    setup
        .pool
        .admin(Add(grant_entry(
            "grant",
            Secret::new(String::new()),
            refresh,
            None,
            now,
        )))
        .await
        .unwrap();
    assert!(
        generation_reaches(&setup.pool, 2).await,
        "the first token arrives on the retry: {:?}",
        setup.refresher.stats().await.unwrap()
    );
    assert_eq!(setup.fake.token_requests(), 2);
    assert_eq!(setup.fake.reuse_detections(), 0);
    let lease = setup.pool.select(None).await.unwrap();
    assert!(setup.fake.is_access_valid(lease.secret().expose()));
}
