//! Where the pool keeps its own contract when the store misbehaves or the process dies: a death
//! the store refused is still a death and is stored (flushed) once the store takes writes, and
//! an expired cooldown revived only in memory is still available after a crash.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::sync::Arc;
use std::time::Duration;

use credpool_core::{Classification, FailureKind, Outcome, StatusKind, Strategy};
use credpool_pool_actor::admin::{Add, Snapshot, Stats};
use credpool_pool_actor::{PoolError, RefreshFailure, RefreshResult};
use credpool_store::{MemoryStore, Store};
use support::*;

fn auth_expired() -> Classification {
    Classification {
        status: Some(403),
        reason: Some("unauthenticated:bad-credentials".to_owned()),
        ..Classification::of(FailureKind::AuthExpired)
    }
}

/// Whether the store holds entry `label` of `provider` as dead.
fn stored_dead(store: &MemoryStore, provider: &str, label: &str) -> bool {
    store
        .load_provider(&provider.into())
        .unwrap()
        .entries
        .iter()
        .find(|entry| entry.label == label)
        .expect("stored")
        .status
        .is_dead()
}

/// The token endpoint kills the grant while the store refuses writes: the grant is dead in
/// memory at once (never handed out again), the write-behind stores and flushes the death once
/// the store recovers, and a crash after that finds it dead — no refresh is retried.
#[tokio::test(start_paused = true)]
async fn a_death_the_store_refused_is_kept_in_memory_and_flushed_once_the_store_recovers() {
    let store = Arc::new(MemoryStore::new());
    let harness = Harness::start(store.clone(), pool_config(Strategy::FillFirst)).await;
    let pool = harness.pool("xai-oauth").await;
    pool.admin(Add(grant("grant", "access-1", "refresh-1", None)))
        .await
        .unwrap();
    pool.admin(Add(api_key("fallback", "key"))).await.unwrap();
    let lease = pool.select(None).await.unwrap();
    assert_eq!(lease.label(), "grant");
    let recovering = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.report_auth_failure(lease, auth_expired(), None).await })
    };
    support_wait(|| harness.refresher.pending() == 1).await;
    store.set_fail_writes(true);
    harness
        .refresher
        .complete(RefreshResult::Failed(RefreshFailure::Terminal {
            code: "invalid_grant".to_owned(),
        }));
    let next = recovering.await.unwrap().unwrap();
    assert_eq!(next.label(), "fallback", "the caller rotates");
    drop(next);

    let snapshot = pool.admin(Snapshot).await.unwrap();
    assert_eq!(snapshot.entries[0].status, StatusKind::Dead);
    assert_eq!(
        snapshot.entries[0].dead_reason.as_deref(),
        Some("invalid_grant")
    );
    assert!(pool.admin(Stats).await.unwrap().store_errors >= 1);
    assert!(
        !stored_dead(&store, "xai-oauth", "grant"),
        "the store still holds the live grant"
    );
    for _ in 0..3 {
        let lease = pool.select(None).await.unwrap();
        assert_eq!(
            lease.label(),
            "fallback",
            "a dead grant is never handed out"
        );
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!stored_dead(&store, "xai-oauth", "grant"), "still refused");

    store.set_fail_writes(false);
    let flushes = store.flush_count();
    support_wait(|| stored_dead(&store, "xai-oauth", "grant")).await;
    support_wait(|| store.flush_count() > flushes).await;
    // What a crash keeps is only what was flushed.
    store.crash();
    assert!(
        stored_dead(&store, "xai-oauth", "grant"),
        "the death was flushed, not only written"
    );
    let provider = pool.provider().clone();
    harness
        .registry
        .crash_pool_for_test(&provider)
        .await
        .unwrap();
    support_wait(|| !pool.is_alive()).await;
    let restarted = harness.pool("xai-oauth").await;
    let snapshot = restarted.admin(Snapshot).await.unwrap();
    assert_eq!(snapshot.entries[0].status, StatusKind::Dead);
    assert_eq!(
        snapshot.entries[0].dead_reason.as_deref(),
        Some("invalid_grant")
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        harness.refresher.request_count(),
        1,
        "the leftover marker of a dead grant is not a refresh to retry"
    );
    assert!(
        store
            .load_provider(&"xai-oauth".into())
            .unwrap()
            .markers
            .is_empty(),
        "the restart cleared the marker"
    );
}

/// A cooldown whose deadline passed is revived on the way to a lease in memory only; a crash
/// that loses that revival loses nothing: the restarted pool hands the entry out and shows it
/// `ok`, because the stored expired cooldown means the same.
#[tokio::test(start_paused = true)]
async fn an_expired_cooldown_revived_in_memory_only_is_available_after_a_crash() {
    let store = Arc::new(MemoryStore::new());
    let harness = Harness::start(store.clone(), pool_config(Strategy::FillFirst)).await;
    let pool = harness.pool("openai").await;
    pool.admin(Add(api_key("only", "key"))).await.unwrap();
    let lease = pool.select(None).await.unwrap();
    pool.report(lease, Outcome::Failure(rate_limited()), None)
        .await
        .unwrap();
    assert!(matches!(
        pool.select(None).await,
        Err(PoolError::Exhausted { .. })
    ));
    let remaining = pool.admin(Snapshot).await.unwrap().entries[0]
        .cooldown_remaining_s
        .expect("benched with a deadline");
    tokio::time::advance(Duration::from_secs(remaining + 1)).await;

    // Revived on the way to this lease; nothing flushed it.
    let flushes = store.flush_count();
    let lease = pool.select(None).await.unwrap();
    assert_eq!(lease.label(), "only");
    drop(lease);
    assert_eq!(store.flush_count(), flushes, "a revival is written behind");
    store.crash();
    let provider = pool.provider().clone();
    harness
        .registry
        .crash_pool_for_test(&provider)
        .await
        .unwrap();
    support_wait(|| !pool.is_alive()).await;

    let restarted = harness.pool("openai").await;
    let snapshot = restarted.admin(Snapshot).await.unwrap();
    assert_eq!(snapshot.entries[0].status, StatusKind::Ok);
    let lease = restarted.select(None).await.unwrap();
    assert_eq!(lease.label(), "only");
}
