//! The store's rows of the refresh fault matrix (docs/SEMANTICS.md): a refresh marker, a
//! commit and a marker removal the store refuses, each leading to its documented state and
//! then, once the store takes writes again, to a working grant without a replayed refresh
//! token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use credpool_core::{StatusKind, SystemClock};
use credpool_pool_actor::admin::{Refresh, Snapshot, Stats};
use credpool_pool_actor::{EntryView, PoolError, PoolHandle};
use credpool_store::{ChangeKind, Store};
use credpool_test_support::{FakeProviderConfig, TokenFault, eventually_async};

mod support;

use support::{Setup, add_expired_grant, expired, setup_with};

/// Retries after 50–100 ms; a short refresh-failure bench is not needed (the retry does not
/// wait for it).
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

async fn entry(pool: &PoolHandle) -> EntryView {
    pool.admin(Snapshot).await.unwrap().entries.remove(0)
}

/// Waits until the grant is back at `generation` and ok, and checks it serves a valid token.
async fn recovers_at(setup: &Setup, generation: u64) {
    let pool = setup.pool.clone();
    let back = eventually_async(
        || {
            let pool = pool.clone();
            async move {
                let entry = entry(&pool).await;
                entry.generation.0 == generation && entry.status == StatusKind::Ok
            }
        },
        Duration::from_secs(10),
    )
    .await;
    assert!(back, "{:?}", entry(&setup.pool).await);
    let lease = setup.pool.select(None).await.unwrap();
    assert!(setup.fake.is_access_valid(lease.secret().expose()));
    assert_eq!(
        setup.fake.reuse_detections(),
        0,
        "no refresh token replayed"
    );
    let markers = setup
        .store
        .load_provider(&"xai-oauth".into())
        .unwrap()
        .markers;
    assert!(markers.is_empty(), "no marker left: {markers:?}");
}

/// Rejects the grant's token and returns what the caller got.
async fn reject(setup: &Setup) -> Result<(), PoolError> {
    let lease = setup.pool.select(None).await.unwrap();
    setup
        .pool
        .report_auth_failure(lease, expired(), None)
        .await
        .map(drop)
}

fn is_exhausted(answer: &Result<(), PoolError>) -> bool {
    matches!(answer, Err(PoolError::Exhausted { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_marker_sends_no_token_benches_the_grant_and_is_retried() {
    let setup = quick_retries().await;
    add_expired_grant(&setup, "grant").await;
    setup.store.fail_batches_with(ChangeKind::PutMarker, 1);
    let answer = reject(&setup).await;
    assert!(is_exhausted(&answer), "{answer:?}");
    let benched = entry(&setup.pool).await;
    assert_eq!(benched.status, StatusKind::CoolingDown);
    assert_eq!(benched.cooldown_cause.as_deref(), Some("refresh_failed"));
    let reason = benched
        .last_error
        .and_then(|e| e.reason)
        .unwrap_or_default();
    assert!(reason.contains("store unavailable"), "{reason}");
    assert_eq!(
        setup.fake.token_requests(),
        0,
        "no refresh token without its marker"
    );
    assert!(setup.pool.admin(Stats).await.unwrap().store_errors >= 1);
    recovers_at(&setup, 2).await;
    assert_eq!(
        setup.fake.token_requests(),
        1,
        "the retry after the backoff"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_refresh_whose_marker_is_refused_says_so() {
    let setup = quick_retries().await;
    add_expired_grant(&setup, "grant").await;
    setup.store.fail_batches_with(ChangeKind::PutMarker, 1);
    let answer = setup.pool.admin(Refresh("grant".into())).await;
    assert!(matches!(answer, Err(PoolError::Store(_))), "{answer:?}");
    assert_eq!(setup.fake.token_requests(), 0);
    recovers_at(&setup, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_keeps_the_pair_unexposed_and_stores_it_later() {
    let setup = quick_retries().await;
    add_expired_grant(&setup, "grant").await;
    // The commit and the bench that follows it are refused; the write-behind then stores
    // the pair.
    setup.store.fail_batches_with(ChangeKind::PutEntry, 2);
    let answer = reject(&setup).await;
    assert!(is_exhausted(&answer), "{answer:?}");
    recovers_at(&setup, 2).await;
    assert_eq!(
        setup.fake.token_requests(),
        1,
        "the stored pair, not a second refresh"
    );
    assert_eq!(setup.pool.admin(Stats).await.unwrap().unstored_rotations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_marker_removal_leaves_the_marker_until_the_retry() {
    let setup = quick_retries().await;
    add_expired_grant(&setup, "grant").await;
    setup.fake.push_fault(TokenFault::Status503);
    setup.store.fail_batches_with(ChangeKind::ClearMarker, 1);
    let answer = reject(&setup).await;
    assert!(is_exhausted(&answer), "{answer:?}");
    let benched = entry(&setup.pool).await;
    assert_eq!(benched.cooldown_cause.as_deref(), Some("refresh_failed"));
    recovers_at(&setup, 2).await;
    assert_eq!(
        setup.fake.token_requests(),
        2,
        "the failed attempt and the retry"
    );
}
