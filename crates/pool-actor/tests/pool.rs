//! Pool actor behaviour with real actors, a real store and paused time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::sync::Arc;
use std::time::Duration;

use credpool_core::{
    Classification, FailureKind, Outcome, Secret, StatusKind, Strategy, Unavailable,
};
use credpool_pool_actor::admin::{Add, Move, Remove, Reset, Snapshot, Stats};
use credpool_pool_actor::{PoolError, PoolEvent, RefreshFailure, RefreshResult, Target};
use credpool_store::{MemoryStore, SledStore, Store};
use support::*;

fn auth_expired() -> Classification {
    Classification {
        status: Some(403),
        reason: Some("unauthenticated:bad-credentials".to_owned()),
        ..Classification::of(FailureKind::AuthExpired)
    }
}

/// Selects `n` times, returning each lease at once, and spells the labels picked.
async fn picks(pool: &credpool_pool_actor::PoolHandle, n: usize) -> String {
    let mut out = Vec::new();
    for _ in 0..n {
        match pool.select(None).await {
            Ok(lease) => out.push(lease.label().to_owned()),
            Err(PoolError::Exhausted { .. }) => out.push("-".to_owned()),
            Err(other) => panic!("unexpected {other:?}"),
        }
        tokio::task::yield_now().await;
    }
    out.join(" ")
}

async fn bench(pool: &credpool_pool_actor::PoolHandle, label: &str) {
    // Lease entries until we hold the one to bench, then report it rate limited.
    let mut held = Vec::new();
    loop {
        let lease = pool.select(None).await.expect("select");
        if lease.label() == label {
            pool.report(lease, Outcome::Failure(rate_limited()), None)
                .await
                .expect("report");
            break;
        }
        held.push(lease);
    }
}

#[tokio::test(start_paused = true)]
async fn pick_sequences_for_every_strategy_under_cooldowns() {
    let cases: [(Strategy, &str, &str); 3] = [
        (Strategy::FillFirst, "e0 e0 e0", "e1 e1 e1"),
        (Strategy::RoundRobin, "e0 e1 e2 e0", "e1 e2 e1 e2"),
        (Strategy::LeastUsed, "e0 e1 e2 e0", "e1 e2 e1 e2"),
    ];
    for (strategy, before, after) in cases {
        let harness = Harness::memory(strategy).await;
        let pool = harness.pool("openai").await;
        add_keys(&pool, 3).await;
        assert_eq!(
            picks(&pool, before.split(' ').count()).await,
            before,
            "{strategy:?}"
        );
        bench(&pool, "e0").await;
        let got = picks(&pool, after.split(' ').count()).await;
        // least_used and round_robin continue from their state; check membership and order shape
        if strategy == Strategy::FillFirst {
            assert_eq!(got, after, "{strategy:?}");
        } else {
            assert!(
                !got.contains("e0"),
                "{strategy:?} picked a cooling entry: {got}"
            );
            let labels: Vec<&str> = got.split(' ').collect();
            assert!(
                labels.windows(2).all(|w| w[0] != w[1]),
                "{strategy:?} did not alternate: {got}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn random_strategies_never_pick_cooling_or_dead_entries() {
    for strategy in [Strategy::Random, Strategy::WeightedRandom] {
        let harness = Harness::memory(strategy).await;
        let pool = harness.pool("openai").await;
        add_keys(&pool, 3).await;
        bench(&pool, "e1").await;
        let got = picks(&pool, 40).await;
        assert!(!got.contains("e1"), "{strategy:?}: {got}");
        assert!(
            got.contains("e0") && got.contains("e2"),
            "{strategy:?}: {got}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn soft_cap_prefers_free_entries_and_never_blocks() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 2).await;
    let a = pool.select(None).await.unwrap();
    let b = pool.select(None).await.unwrap();
    let c = pool.select(None).await.unwrap();
    assert_eq!([a.label(), b.label(), c.label()], ["e0", "e1", "e0"]);
    drop(a);
    drop(c);
    tokio::task::yield_now().await;
    assert_eq!(picks(&pool, 2).await, "e0 e0");
    drop(b);
}

#[tokio::test(start_paused = true)]
async fn strict_cap_waits_for_a_release_then_times_out() {
    let harness =
        Harness::start(Arc::new(MemoryStore::new()), strict(Duration::from_secs(2))).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 1).await;
    let held = pool.select(None).await.unwrap();
    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.select(None).await.map(|l| l.label().to_owned()) })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(held);
    assert_eq!(waiting.await.unwrap().unwrap(), "e0");

    let _held = pool.select(None).await.unwrap();
    let started = tokio::time::Instant::now();
    let refused = pool.select(None).await;
    assert!(
        matches!(refused, Err(PoolError::Exhausted { .. })),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn exhausted_names_the_earliest_deadline_and_a_report_loop_converges() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 3).await;
    let now = harness.clock.now();
    // A loop that keeps reporting 429s with growing reset times makes N attempts, then stops.
    let mut attempts = 0;
    let error = loop {
        match pool.select(None).await {
            Ok(lease) => {
                attempts += 1;
                assert!(attempts <= 4, "more than N+1 attempts");
                let mut failure = rate_limited();
                failure.reset_at = Some(now.plus(Duration::from_secs(30 * attempts)));
                pool.report(lease, Outcome::Failure(failure), None)
                    .await
                    .unwrap();
            }
            Err(error) => break error,
        }
    };
    assert_eq!(attempts, 3);
    match error {
        PoolError::Exhausted {
            next_available_at,
            causes,
            ..
        } => {
            assert_eq!(next_available_at, Some(now.plus(Duration::from_secs(30))));
            assert_eq!(
                causes.get(&Unavailable::CoolingDown(
                    credpool_core::CooldownCause::RateLimited
                )),
                Some(&3)
            );
        }
        other => panic!("{other:?}"),
    }
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(picks(&pool, 1).await, "e0");
}

#[tokio::test(start_paused = true)]
async fn stale_generation_reports_get_the_current_token_without_refresh_or_cooldown() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("xai-oauth").await;
    pool.admin(Add(grant("grant", "access-1", "refresh-1", None)))
        .await
        .unwrap();
    let first = pool.select(None).await.unwrap();
    let second = pool.select(None).await.unwrap();
    assert_eq!(first.generation(), second.generation());

    // The first failure triggers the refresh; it completes and commits generation 2.
    let recovering = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.report_auth_failure(first, auth_expired(), None).await })
    };
    support_wait(|| harness.refresher.pending() == 1).await;
    harness.refresher.complete(RefreshResult::Rotated {
        access: Secret::new("access-2"),
        refresh: Some(Secret::new("refresh-2")),
        expires_at: None,
    });
    let refreshed = recovering.await.unwrap().unwrap();
    assert_eq!(refreshed.secret().expose(), "access-2");

    // The second lease still carries generation 1: its failure is answered with generation 2.
    let answered = pool
        .report_auth_failure(second, auth_expired(), None)
        .await
        .unwrap();
    assert_eq!(answered.secret().expose(), "access-2");
    assert_eq!(answered.generation(), refreshed.generation());
    assert_eq!(harness.refresher.request_count(), 1, "no second refresh");
    let stats = pool.admin(Stats).await.unwrap();
    assert_eq!(stats.stale_reports, 1);
    assert!(stats.cooldowns.is_empty(), "{stats:?}");
    let snapshot = pool.admin(Snapshot).await.unwrap();
    assert_eq!(snapshot.entries[0].status, StatusKind::Ok);
}

#[tokio::test(start_paused = true)]
async fn concurrent_auth_failures_join_one_refresh() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("xai-oauth").await;
    pool.admin(Add(grant("grant", "access-1", "refresh-1", None)))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let lease = pool.select(None).await.unwrap();
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            pool.report_auth_failure(lease, auth_expired(), None).await
        }));
    }
    support_wait(|| harness.refresher.pending() == 1).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    harness.refresher.complete(RefreshResult::Rotated {
        access: Secret::new("access-2"),
        refresh: Some(Secret::new("refresh-2")),
        expires_at: None,
    });
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().secret().expose(), "access-2");
    }
    assert_eq!(harness.refresher.request_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn siblings_holding_the_same_secret_are_benched_together() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    pool.admin(Add(api_key("explicit", "shared-key")))
        .await
        .unwrap();
    pool.admin(Add(api_key("from-config", "shared-key")))
        .await
        .unwrap();
    pool.admin(Add(api_key("other", "other-key")))
        .await
        .unwrap();
    let lease = pool.select(None).await.unwrap();
    assert_eq!(lease.label(), "explicit");
    pool.report(lease, Outcome::Failure(rate_limited()), None)
        .await
        .unwrap();
    let snapshot = pool.admin(Snapshot).await.unwrap();
    let statuses: Vec<&str> = snapshot.entries.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["cooling_down", "cooling_down", "ok"]);
    assert_eq!(picks(&pool, 2).await, "other other");
}

#[tokio::test(start_paused = true)]
async fn terminal_auth_failures_kill_and_only_a_reset_revives() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 2).await;
    let lease = pool.select(None).await.unwrap();
    let failure = Classification {
        status: Some(401),
        reason: Some("invalid_api_key".to_owned()),
        ..Classification::of(FailureKind::AuthInvalid { terminal: true })
    };
    let next = pool
        .report_auth_failure(lease, failure, None)
        .await
        .unwrap();
    assert_eq!(next.label(), "e1");
    drop(next);
    tokio::time::advance(Duration::from_secs(365 * 86_400)).await;
    assert_eq!(picks(&pool, 2).await, "e1 e1");
    let view = pool.admin(Reset(Target::from("e0"))).await.unwrap();
    assert_eq!(view.status, StatusKind::Ok);
    assert_eq!(picks(&pool, 1).await, "e0");
}

#[tokio::test(start_paused = true)]
async fn targets_resolve_by_id_label_and_index_with_clear_errors() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 2).await;
    assert_eq!(
        pool.admin(Add(api_key("E0", "k-dup"))).await.unwrap_err(),
        PoolError::LabelTaken("E0".to_owned()),
        "labels are unique per provider, whatever their case"
    );
    let snapshot = pool.admin(Snapshot).await.unwrap();
    let id = snapshot.entries[1].id.to_string();
    assert_eq!(pool.admin(Reset(Target(id))).await.unwrap().label, "e1");
    assert_eq!(
        pool.admin(Reset(Target::from("2"))).await.unwrap().label,
        "e1"
    );
    assert_eq!(
        pool.admin(Reset(Target::from("E0"))).await.unwrap().label,
        "e0",
        "labels match whatever their case"
    );
    assert_eq!(
        pool.admin(Reset(Target::from("9"))).await,
        Err(PoolError::NoSuchEntry("#9".to_owned()))
    );
    assert_eq!(
        pool.admin(Reset(Target::from("nope"))).await,
        Err(PoolError::NoSuchEntry("nope".to_owned()))
    );
    assert!(matches!(
        pool.admin(Reset(Target::from(" "))).await,
        Err(PoolError::Invalid(_))
    ));
    let moved = pool
        .admin(Move {
            target: Target::from("e1"),
            position: 1,
        })
        .await
        .unwrap();
    assert_eq!(moved.index, 1);
    assert_eq!(picks(&pool, 1).await, "e1");
}

#[tokio::test(start_paused = true)]
async fn events_reach_subscribers_and_lag_is_reported_not_hidden() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    let mut events = pool.subscribe(4, None).await.unwrap();
    add_keys(&pool, 8).await;
    let mut seen = Vec::new();
    while let Some(event) = events.try_recv() {
        seen.push(event);
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    // The fifth to eighth did not fit: the next event published tells how many were missed.
    pool.admin(Remove(Target::from("e7"))).await.unwrap();
    let next = |events: &mut credpool_pool_actor::EventStream| events.try_recv().map(|r| r.event);
    assert_eq!(next(&mut events), Some(PoolEvent::Lagged { missed: 4 }));
    assert!(matches!(next(&mut events), Some(PoolEvent::Removed { .. })));
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_statuses_deadlines_tokens_counters_and_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let deadline;
    {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let harness = Harness::start(store, pool_config(Strategy::RoundRobin)).await;
        let pool = harness.pool("openai").await;
        add_keys(&pool, 3).await;
        let lease = pool.select(None).await.unwrap();
        assert_eq!(lease.label(), "e0");
        pool.report(lease, Outcome::Failure(rate_limited()), None)
            .await
            .unwrap();
        assert_eq!(picks(&pool, 3).await, "e1 e2 e1");
        let snapshot = pool.admin(Snapshot).await.unwrap();
        deadline = snapshot.entries[0].cooldown_remaining_s;
        // within the write-behind window
        tokio::time::advance(Duration::from_millis(300)).await;
        harness.registry.shutdown().await.unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let harness = Harness::start(store, pool_config(Strategy::FillFirst)).await;
    let pool = harness.pool("openai").await;
    let snapshot = pool.admin(Snapshot).await.unwrap();
    assert_eq!(
        snapshot.strategy,
        Strategy::RoundRobin,
        "strategy came from the store"
    );
    assert_eq!(snapshot.entries[0].status, StatusKind::CoolingDown);
    assert_eq!(snapshot.entries[0].cooldown_remaining_s, deadline);
    let uses: Vec<u64> = snapshot
        .entries
        .iter()
        .map(|e| e.usage.selections)
        .collect();
    assert_eq!(uses, [1, 2, 1]);
    // the cursor continues after e1 (the last pick)
    assert_eq!(picks(&pool, 2).await, "e2 e1");
}

#[tokio::test(start_paused = true)]
async fn two_pools_in_one_process_are_independent() {
    let a = Harness::memory(Strategy::FillFirst).await;
    let b = Harness::memory(Strategy::FillFirst).await;
    let pool_a = a.pool("openai").await;
    let pool_b = b.pool("openai").await;
    add_keys(&pool_a, 2).await;
    add_keys(&pool_b, 1).await;
    assert_eq!(pool_a.admin(Snapshot).await.unwrap().entries.len(), 2);
    assert_eq!(pool_b.admin(Snapshot).await.unwrap().entries.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_crashed_pool_is_restarted_from_the_store() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 2).await;
    let lease = pool.select(None).await.unwrap();
    pool.report(lease, Outcome::Failure(rate_limited()), None)
        .await
        .unwrap();
    let provider = pool.provider().clone();
    harness
        .registry
        .crash_pool_for_test(&provider)
        .await
        .unwrap();
    support_wait(|| !pool.is_alive()).await;
    let restarted = harness.pool("openai").await;
    let snapshot = restarted.admin(Snapshot).await.unwrap();
    assert_eq!(snapshot.entries.len(), 2);
    assert_eq!(snapshot.entries[0].status, StatusKind::CoolingDown);
    assert_eq!(picks(&restarted, 1).await, "e1");
}

/// The store refuses the rotated pair: it is never handed out, the grant is benched meanwhile
/// (callers rotate), and the write-behind stores and installs it once the store takes writes
/// again — no second refresh, no lost grant.
#[tokio::test(start_paused = true)]
async fn a_rotation_the_store_refuses_is_never_exposed_and_installed_once_it_recovers() {
    let store = Arc::new(MemoryStore::new());
    let harness = Harness::start(store.clone(), pool_config(Strategy::FillFirst)).await;
    let pool = harness.pool("xai-oauth").await;
    pool.admin(Add(grant("grant", "access-1", "refresh-1", None)))
        .await
        .unwrap();
    pool.admin(Add(api_key("fallback", "key"))).await.unwrap();
    let lease = pool.select(None).await.unwrap();
    let recovering = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.report_auth_failure(lease, auth_expired(), None).await })
    };
    support_wait(|| harness.refresher.pending() == 1).await;
    store.set_fail_writes(true);
    harness.refresher.complete(RefreshResult::Rotated {
        access: Secret::new("access-NEW"),
        refresh: Some(Secret::new("refresh-NEW")),
        expires_at: None,
    });
    let next = recovering.await.unwrap().unwrap();
    assert_eq!(next.label(), "fallback");
    drop(next);
    let snapshot = pool.admin(Snapshot).await.unwrap();
    assert_eq!(snapshot.entries[0].status, StatusKind::CoolingDown);
    assert_eq!(
        snapshot.entries[0].generation.0, 1,
        "the new pair is not installed"
    );
    assert_eq!(picks(&pool, 3).await, "fallback fallback fallback");
    let stats = pool.admin(Stats).await.unwrap();
    assert_eq!(stats.unstored_rotations, 1);
    assert!(stats.store_errors >= 1);
    // A report meanwhile starts no second refresh: that refresh token is spent.
    assert_eq!(harness.refresher.request_count(), 1);

    store.set_fail_writes(false);
    tokio::time::advance(Duration::from_millis(300)).await;
    let pool_now = pool.clone();
    support_wait_async(move || {
        let pool = pool_now.clone();
        async move { pool.admin(Snapshot).await.unwrap().entries[0].generation.0 == 2 }
    })
    .await;
    let snapshot = pool.admin(Snapshot).await.unwrap();
    assert_eq!(snapshot.entries[0].status, StatusKind::Ok);
    assert_eq!(pool.admin(Stats).await.unwrap().unstored_rotations, 0);
    let lease = pool.select(None).await.unwrap();
    assert_eq!(lease.secret().expose(), "access-NEW");
    assert_eq!(harness.refresher.request_count(), 1, "no second refresh");
    assert!(
        store
            .load_provider(&"xai-oauth".into())
            .unwrap()
            .markers
            .is_empty(),
        "the marker went with the commit"
    );
}

#[tokio::test(start_paused = true)]
async fn terminal_refresh_failure_kills_the_grant_and_rotates() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("xai-oauth").await;
    pool.admin(Add(grant("grant", "access-1", "refresh-1", None)))
        .await
        .unwrap();
    let lease = pool.select(None).await.unwrap();
    let recovering = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.report_auth_failure(lease, auth_expired(), None).await })
    };
    support_wait(|| harness.refresher.pending() == 1).await;
    harness
        .refresher
        .complete(RefreshResult::Failed(RefreshFailure::Terminal {
            code: "invalid_grant".to_owned(),
        }));
    let answer = recovering.await.unwrap();
    assert!(
        matches!(
            answer,
            Err(PoolError::Exhausted {
                next_available_at: None,
                ..
            })
        ),
        "{answer:?}"
    );
    let snapshot = pool.admin(Snapshot).await.unwrap();
    assert_eq!(
        snapshot.entries[0].dead_reason.as_deref(),
        Some("invalid_grant")
    );
}

#[tokio::test(start_paused = true)]
async fn a_marker_left_by_a_crash_retries_once_and_dies_interrupted_on_reuse() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let harness = Harness::start(store, pool_config(Strategy::FillFirst)).await;
        let pool = harness.pool("xai-oauth").await;
        pool.admin(Add(grant("grant", "access-1", "refresh-1", None)))
            .await
            .unwrap();
        let lease = pool.select(None).await.unwrap();
        let pool2 = pool.clone();
        let _recovering =
            tokio::spawn(
                async move { pool2.report_auth_failure(lease, auth_expired(), None).await },
            );
        support_wait(|| harness.refresher.pending() == 1).await;
        // "kill -9": the refresh never finishes and nothing is flushed on the way out.
        harness.registry.abort_for_test().await;
        support_wait(|| !pool.is_alive()).await;
        drop(harness);
    }
    let mut reopened = None;
    for _ in 0..1000 {
        match SledStore::open(dir.path()) {
            Ok(store) => {
                reopened = Some(store);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let store: Arc<dyn Store> = Arc::new(reopened.expect("the killed process released the store"));
    let harness = Harness::start(store, pool_config(Strategy::FillFirst)).await;
    let pool = harness.pool("xai-oauth").await;
    support_wait(|| harness.refresher.pending() == 1).await;
    {
        let requests = harness.refresher.requests.lock().unwrap();
        assert!(requests[0].after_interruption);
        assert_eq!(requests[0].refresh_token.expose(), "refresh-1");
    }
    harness
        .refresher
        .complete(RefreshResult::Failed(RefreshFailure::Terminal {
            code: "refresh_token_reused".to_owned(),
        }));
    support_wait_async(|| async {
        pool.admin(Snapshot).await.unwrap().entries[0]
            .dead_reason
            .as_deref()
            == Some("refresh_interrupted")
    })
    .await;
    assert_eq!(harness.refresher.request_count(), 1, "at most one retry");
}

#[tokio::test(start_paused = true)]
async fn exhausted_log_line_is_throttled_and_no_secret_is_logged() {
    let canary = "sk-canary-c0ffee-4242";
    let buffer = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let buffer = buffer.clone();
        move || CaptureWriter(buffer.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    pool.admin(Add(api_key("canary", canary))).await.unwrap();
    let lease = pool.select(None).await.unwrap();
    assert!(!format!("{lease:?}").contains(canary));
    pool.report(lease, Outcome::Failure(rate_limited()), None)
        .await
        .unwrap();
    for _ in 0..20 {
        assert!(pool.select(None).await.is_err());
    }
    let snapshot = pool.admin(Snapshot).await.unwrap();
    let stats = pool.admin(Stats).await.unwrap();
    for shown in [
        format!("{snapshot:?}"),
        format!("{stats:?}"),
        format!("{pool:?}"),
    ] {
        assert!(!shown.contains(canary), "{shown}");
    }
    let logs = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains(canary), "canary in logs");
    assert_eq!(logs.matches("no available entries").count(), 1, "{logs}");
}

struct CaptureWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_record_is_quarantined_and_shown_while_the_rest_loads() {
    let store = Arc::new(MemoryStore::new());
    let provider = credpool_core::ProviderId::new("openai");
    {
        let harness = Harness::start(store.clone(), pool_config(Strategy::FillFirst)).await;
        let pool = harness.pool("openai").await;
        add_keys(&pool, 2).await;
        harness.registry.shutdown().await.unwrap();
    }
    store
        .put_raw_entry(&provider, credpool_core::EntryId(0xbad), b"\x01garbage")
        .unwrap();
    let harness = Harness::start(store.clone(), pool_config(Strategy::FillFirst)).await;
    let pool = harness.pool("openai").await;
    let snapshot = pool.admin(Snapshot).await.unwrap();
    assert_eq!(snapshot.entries.len(), 2, "the rest of the pool loads");
    assert_eq!(snapshot.quarantined.len(), 1, "{snapshot:?}");
    assert!(
        snapshot.quarantined[0].key.contains("openai"),
        "{snapshot:?}"
    );
    assert_eq!(picks(&pool, 1).await, "e0");
}
