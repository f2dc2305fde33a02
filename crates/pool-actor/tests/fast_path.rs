//! The lock-free select path agrees with the actor: what a reply made visible is what the
//! next `select` sees, leases come back on drop, fast usage shows in snapshots and stats, and
//! refresh joiners get the refreshed token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use credpool_core::{
    Classification, FailureKind, Outcome, Secret, StatusKind, Strategy, Unavailable,
};
use credpool_pool_actor::admin::{Add, Remove, SetStrategy, Snapshot, Stats};
use credpool_pool_actor::{PoolError, RefreshFailure, RefreshResult, Target};
use support::*;

/// What the fake refresher answers for a successful refresh of `g`.
fn rotated() -> RefreshResult {
    RefreshResult::Rotated {
        access: Secret::new("access-2"),
        refresh: Some(Secret::new("refresh-2")),
        expires_at: None,
    }
}

fn auth_expired() -> Classification {
    Classification {
        status: Some(401),
        ..Classification::of(FailureKind::AuthExpired)
    }
}

#[tokio::test(start_paused = true)]
async fn a_removed_entry_is_never_selected_after_the_removal_returns() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 2).await;
    assert_eq!(pool.select(None).await.unwrap().label(), "e0");
    pool.admin(Remove(Target::from("e0"))).await.unwrap();
    for _ in 0..10 {
        assert_eq!(pool.select(None).await.unwrap().label(), "e1");
    }
}

#[tokio::test(start_paused = true)]
async fn a_benched_entry_is_not_selected_after_the_report_returns_and_comes_back_revived() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 2).await;
    let mut events = pool.subscribe(64, None).await.unwrap();
    let lease = pool.select(None).await.unwrap();
    assert_eq!(lease.label(), "e0");
    pool.report(lease, Outcome::Failure(rate_limited()), None)
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(pool.select(None).await.unwrap().label(), "e1");
    }
    // Past the cooldown the actor revives e0 (status, event) on its first pick.
    tokio::time::advance(Duration::from_secs(2 * 3600)).await;
    assert_eq!(pool.select(None).await.unwrap().label(), "e0");
    let snapshot = pool.admin(Snapshot).await.unwrap();
    assert_eq!(snapshot.entries[0].status, StatusKind::Ok);
    let mut revived = false;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(10), events.recv()).await
    {
        revived |= format!("{event:?}").contains("Revived");
    }
    assert!(revived, "no Revived event after the cooldown");
}

#[tokio::test(start_paused = true)]
async fn leases_come_back_on_drop_and_fast_usage_is_counted() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 2).await;
    let held: Vec<_> = futures_select(&pool, 3).await;
    let labels: Vec<&str> = held.iter().map(|l| l.label()).collect();
    assert_eq!(labels, ["e0", "e1", "e0"], "soft cap prefers free entries");
    assert_eq!(pool.admin(Stats).await.unwrap().leases_held, 3);
    drop(held);
    assert_eq!(pool.admin(Stats).await.unwrap().leases_held, 0);
    for _ in 0..7 {
        drop(pool.select(None).await.unwrap());
    }
    let stats = pool.admin(Stats).await.unwrap();
    assert_eq!(stats.selections, 10);
    let snapshot = pool.admin(Snapshot).await.unwrap();
    let e0 = snapshot.entries.iter().find(|e| e.label == "e0").unwrap();
    assert_eq!(e0.usage.selections, 9);
    assert!(e0.usage.last_used_at.is_some());
}

async fn wait_for_pending_refresh(harness: &Harness) {
    for _ in 0..1000 {
        if harness.refresher.pending() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("no refresh in flight");
}

async fn futures_select(
    pool: &credpool_pool_actor::PoolHandle,
    n: usize,
) -> Vec<credpool_pool_actor::Lease> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.select(None).await.unwrap());
    }
    held
}

#[tokio::test(start_paused = true)]
async fn other_strategies_and_models_still_go_through_the_actor() {
    let harness = Harness::memory(Strategy::RoundRobin).await;
    let pool = harness.pool("openai").await;
    add_keys(&pool, 3).await;
    let mut labels = Vec::new();
    for _ in 0..4 {
        labels.push(pool.select(None).await.unwrap().label().to_owned());
    }
    assert_eq!(labels, ["e0", "e1", "e2", "e0"]);
    pool.admin(SetStrategy(Strategy::FillFirst)).await.unwrap();
    assert_eq!(pool.select(None).await.unwrap().label(), "e0");
    assert_eq!(pool.select(Some("gpt-4o")).await.unwrap().label(), "e0");
}

#[tokio::test(start_paused = true)]
async fn refresh_joiners_get_the_new_generation_and_stale_reports_the_current_one() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = grant_pool(&harness).await;
    let mut leases: Vec<_> = futures_select(&pool, 20).await;
    let old = leases[0].generation();
    let kept = leases.pop().unwrap();
    let joiners = report_all(&pool, leases);
    wait_for_pending_refresh(&harness).await;
    // Let every report reach the pool before the refresh completes.
    tokio::time::sleep(Duration::from_millis(10)).await;
    harness.refresher.complete(rotated());
    for (_, joiner) in joiners {
        let lease = joiner.await.unwrap().unwrap();
        assert!(lease.generation() > old);
        assert_eq!(lease.secret().expose(), "access-2");
    }
    assert_eq!(harness.refresher.request_count(), 1);
    let stats = pool.admin(Stats).await.unwrap();
    assert_eq!(stats.leases_held, 1, "only the kept lease");

    // A report against the old generation gets the current token: no refresh, no cooldown.
    let again = pool
        .report_auth_failure(kept, auth_expired(), None)
        .await
        .unwrap();
    assert_eq!(again.secret().expose(), "access-2");
    drop(again);
    assert_eq!(harness.refresher.request_count(), 1);
    let stats = pool.admin(Stats).await.unwrap();
    assert!(stats.stale_reports >= 1);
    assert_eq!(stats.leases_held, 0);
}

#[tokio::test(start_paused = true)]
async fn joiners_of_a_failed_refresh_are_answered_by_the_actor() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = grant_pool(&harness).await;
    let leases: Vec<_> = futures_select(&pool, 5).await;
    let joiners = report_all(&pool, leases);
    wait_for_pending_refresh(&harness).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    harness
        .refresher
        .complete(RefreshResult::Failed(RefreshFailure::Terminal {
            code: "invalid_grant".to_owned(),
        }));
    for (_, joiner) in joiners {
        match joiner.await.unwrap() {
            Err(PoolError::Exhausted { causes, .. }) => {
                assert!(causes.contains_key(&Unavailable::Dead), "{causes:?}");
            }
            other => panic!("expected exhausted, got {other:?}"),
        }
    }
}

/// Selects until `n` leases of `label` are held; returns them and the others taken meanwhile
/// (held, so that the soft cap moves on to `label` again).
async fn leases_of(
    pool: &credpool_pool_actor::PoolHandle,
    label: &str,
    n: usize,
) -> (
    Vec<credpool_pool_actor::Lease>,
    Vec<credpool_pool_actor::Lease>,
) {
    let (mut wanted, mut others) = (Vec::new(), Vec::new());
    while wanted.len() < n {
        let lease = pool.select(None).await.unwrap();
        if lease.label() == label {
            wanted.push(lease);
        } else {
            others.push(lease);
        }
    }
    (wanted, others)
}

/// Spawns `report_auth_failure` for each lease; returns the tasks with their start times.
fn report_all(
    pool: &credpool_pool_actor::PoolHandle,
    leases: Vec<credpool_pool_actor::Lease>,
) -> Reporting {
    leases
        .into_iter()
        .map(|lease| {
            let pool = pool.clone();
            let started = tokio::time::Instant::now();
            let task =
                tokio::spawn(
                    async move { pool.report_auth_failure(lease, auth_expired(), None).await },
                );
            (started, task)
        })
        .collect()
}

type Reporting = Vec<(
    tokio::time::Instant,
    tokio::task::JoinHandle<Result<credpool_pool_actor::Lease, PoolError>>,
)>;

/// An `xai-oauth` pool holding the grant `g` (access-1, refresh-1).
async fn grant_pool(harness: &Harness) -> credpool_pool_actor::PoolHandle {
    let pool = harness.pool("xai-oauth").await;
    pool.admin(Add(grant("g", "access-1", "refresh-1", None)))
        .await
        .unwrap();
    pool
}

/// `callers` callers of `g`'s token: the first reports it expired and starts a refresh that the
/// fake refresher holds; the others report once it is in flight and wait on it.
async fn waiting_on_a_refresh(
    harness: &Harness,
    pool: &credpool_pool_actor::PoolHandle,
    callers: usize,
) -> Reporting {
    let mut leases = futures_select(pool, callers).await;
    let mut reporting = report_all(pool, vec![leases.remove(0)]);
    wait_for_pending_refresh(harness).await;
    reporting.extend(report_all(pool, leases));
    tokio::time::sleep(Duration::from_millis(10)).await;
    reporting
}

/// Awaits every caller: each must end with what `expected` accepts, within a second (woken,
/// not timed out).
async fn all_end_soon(
    reporting: Reporting,
    expected: impl Fn(&Result<credpool_pool_actor::Lease, PoolError>) -> bool,
) {
    for (started, task) in reporting {
        let answer = task.await.unwrap();
        assert!(expected(&answer), "unexpected answer {answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "woken, not timed out"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_caller_joining_a_stuck_refresh_gives_up_within_the_call_timeout_and_the_late_rotation_is_still_stored()
 {
    let call_timeout = Duration::from_secs(10);
    let harness = Harness::start(
        std::sync::Arc::new(credpool_store::MemoryStore::new()),
        credpool_pool_actor::PoolConfig {
            call_timeout,
            ..pool_config(Strategy::FillFirst)
        },
    )
    .await;
    let pool = grant_pool(&harness).await;
    // Joined once the refresh is in flight (through the snapshot: no message, no timer).
    for (started, task) in waiting_on_a_refresh(&harness, &pool, 3).await {
        let answer = task.await.unwrap();
        let waited = started.elapsed();
        assert!(
            matches!(answer, Err(PoolError::Timeout)),
            "a stuck refresh must end the wait with a timeout, got {answer:?}"
        );
        assert!(
            waited > call_timeout / 2 && waited <= call_timeout + Duration::from_millis(50),
            "waited {waited:?} for a {call_timeout:?} call timeout"
        );
    }
    // The refresh itself goes on: its late result is committed, not lost.
    harness.refresher.complete(rotated());
    let mut rotated = false;
    for _ in 0..100 {
        let lease = pool.select(None).await.unwrap();
        if lease.secret().expose() == "access-2" {
            rotated = true;
            break;
        }
        drop(lease);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(rotated, "the late rotation was not stored");
    assert_eq!(harness.refresher.request_count(), 1);
    assert_eq!(pool.admin(Stats).await.unwrap().joined_refreshes, 2);
}

#[tokio::test(start_paused = true)]
async fn joiners_are_counted_and_woken_when_their_entry_is_removed() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = grant_pool(&harness).await;
    let reporting = waiting_on_a_refresh(&harness, &pool, 6).await;
    assert_eq!(pool.admin(Stats).await.unwrap().joined_refreshes, 5);
    pool.admin(Remove(Target::from("g"))).await.unwrap();
    all_end_soon(reporting, |answer| {
        matches!(answer, Err(PoolError::Exhausted { .. }))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stopped_pool_wakes_the_callers_waiting_on_its_refresh() {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = grant_pool(&harness).await;
    let reporting = waiting_on_a_refresh(&harness, &pool, 4).await;
    harness.registry.shutdown().await.unwrap();
    all_end_soon(reporting, |answer| {
        matches!(answer, Err(PoolError::Stopped))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn callers_of_one_expired_token_share_one_report_and_are_released_when_it_leads_to_no_refresh()
 {
    let harness = Harness::memory(Strategy::FillFirst).await;
    let pool = grant_pool(&harness).await;
    pool.admin(Add(api_key("k", "key-1"))).await.unwrap();

    // Many callers report the same expired token at once: one report reaches the pool, the
    // others wait on its claim; all get the new token from the one refresh.
    let (leases, others) = leases_of(&pool, "g", 6).await;
    drop(others);
    let reported = leases.len();
    let callers = report_all(&pool, leases);
    wait_for_pending_refresh(&harness).await;
    harness.refresher.complete(rotated());
    for (_, caller) in callers {
        assert_eq!(caller.await.unwrap().unwrap().secret().expose(), "access-2");
    }
    assert_eq!(harness.refresher.request_count(), 1);
    assert_eq!(
        pool.admin(Stats).await.unwrap().joined_refreshes,
        reported as u64 - 1
    );

    // The fresh token is rejected at once: the first report benches g instead of refreshing
    // again (the refresh-loop guard), and the callers waiting on its claim are released at
    // once to the other entry — not left to time out.
    let (leases, others) = leases_of(&pool, "g", 3).await;
    drop(others);
    all_end_soon(report_all(&pool, leases), |answer| {
        answer.as_ref().is_ok_and(|lease| lease.label() == "k")
    })
    .await;
    assert_eq!(harness.refresher.request_count(), 1, "no second refresh");
}
