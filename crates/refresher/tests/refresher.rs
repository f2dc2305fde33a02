//! The refresher with a real pool against the fake provider on loopback.
//!
//! Tests that talk HTTP run in real time (paused time would fire reqwest's timeouts while a
//! request waits on the socket), bounded by short timeouts; the proactive-timer test pauses
//! time and gives the HTTP client a long timeout instead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use credpool_core::{Clock, StatusKind, SystemClock, Timestamp};
use credpool_pool_actor::admin::{Add, Refresh, Snapshot};
use credpool_pool_actor::{PoolError, TokioClock};
use credpool_refresher::endpoint::HostRateLimit;
use credpool_test_support::{
    FakeProvider, FakeProviderConfig, TokenFault, eventually, eventually_async,
};

mod support;

use support::{add_expired_grant, expired, grant_entry, setup, setup_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_simultaneous_auth_failures_make_one_token_request() {
    let setup = setup().await;
    add_expired_grant(&setup, "grant").await;
    let mut leases = Vec::new();
    for _ in 0..10_000 {
        leases.push(setup.pool.select(None).await.unwrap());
    }
    let old = leases[0].secret().expose().to_owned();
    let mut tasks = Vec::new();
    for lease in leases {
        let pool = setup.pool.clone();
        tasks.push(tokio::spawn(async move {
            pool.report_auth_failure(lease, expired(), None).await
        }));
    }
    let mut fresh = None;
    for task in tasks {
        let lease = task.await.unwrap().unwrap();
        assert_ne!(lease.secret().expose(), old);
        fresh.get_or_insert_with(|| lease.secret().expose().to_owned());
        assert_eq!(Some(lease.secret().expose()), fresh.as_deref());
    }
    assert_eq!(setup.fake.token_requests(), 1);
    assert!(setup.fake.is_access_valid(fresh.as_deref().unwrap()));
    assert_eq!(setup.fake.reuse_detections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_generation_failure_makes_no_token_request() {
    let setup = setup().await;
    add_expired_grant(&setup, "grant").await;
    let first = setup.pool.select(None).await.unwrap();
    let stale = setup.pool.select(None).await.unwrap();
    let refreshed = setup
        .pool
        .report_auth_failure(first, expired(), None)
        .await
        .unwrap();
    assert_eq!(setup.fake.token_requests(), 1);
    let answered = setup
        .pool
        .report_auth_failure(stale, expired(), None)
        .await
        .unwrap();
    assert_eq!(answered.secret().expose(), refreshed.secret().expose());
    assert_eq!(
        setup.fake.token_requests(),
        1,
        "no POST for a stale generation"
    );
}

#[tokio::test(start_paused = true)]
async fn proactive_refresh_fires_inside_the_skew_window() {
    let clock: Arc<dyn Clock> =
        Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_800_000_000)));
    let setup = setup_with(
        FakeProviderConfig {
            access_token_lifetime: Duration::from_secs(30 * 60),
            ..FakeProviderConfig::default()
        },
        Arc::clone(&clock),
        |config| config.http_timeout = Duration::from_secs(3600),
    )
    .await;
    let (access, refresh) = setup.fake.grant("grant");
    let now = clock.now();
    let expires_at = now.plus(Duration::from_secs(30 * 60));
    setup
        .pool
        .admin(Add(grant_entry(
            "grant",
            access,
            refresh,
            Some(expires_at),
            now,
        )))
        .await
        .unwrap();
    // A 30-minute xAI token refreshes 120 s (+ up to 12 s jitter) before expiry.
    tokio::time::advance(Duration::from_secs(30 * 60 - 133)).await;
    tokio::task::yield_now().await;
    assert_eq!(setup.fake.token_requests(), 0, "not before the skew window");
    tokio::time::advance(Duration::from_secs(14)).await;
    let pool = setup.pool.clone();
    assert!(
        eventually_async(
            || {
                let pool = pool.clone();
                async move { pool.admin(Snapshot).await.unwrap().entries[0].generation.0 == 2 }
            },
            Duration::from_secs(60)
        )
        .await
    );
    assert_eq!(setup.fake.token_requests(), 1);
    let snapshot = setup.pool.admin(Snapshot).await.unwrap();
    let new_expiry = snapshot.entries[0].token_expires_at.unwrap();
    assert!(
        new_expiry > expires_at,
        "the timer is re-armed for the new token"
    );
    assert_eq!(setup.refresher.stats().await.unwrap().timers_armed, 1);
}

/// One row of the token-endpoint fault matrix in docs/SEMANTICS.md.
struct FaultRow {
    fault: TokenFault,
    /// The entry's status afterwards: `ok`, `cooling_down` or `dead`.
    status: &'static str,
    /// The cooldown cause (`cooling_down`) or the dead reason (`dead`).
    detail: Option<&'static str>,
    /// Bounds on the cooldown left, in seconds, for `cooling_down`.
    cooldown_s: Option<RangeInclusive<u64>>,
}

/// The name of a fault's variant, as the fake provider spells it.
fn variant_name(fault: &TokenFault) -> String {
    let debug = format!("{fault:?}");
    debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Every variant of `TokenFault`, read from the fake provider's source: the enum is
/// `#[non_exhaustive]`, so no match here can prove that the matrix covers it.
fn every_token_fault_variant() -> BTreeSet<String> {
    let source = include_str!("../../test-support/src/fake_provider.rs");
    let body = source
        .split_once("pub enum TokenFault {")
        .and_then(|(_, rest)| rest.split_once("\n}"))
        .map(|(body, _)| body)
        .expect("the fake provider declares TokenFault");
    body.lines()
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|line| line.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|line| {
            line.split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Every token-endpoint fault of the fake provider and the state it leaves a grant in after
/// an on-demand refresh of an expired token: one row per line of the table in
/// docs/SEMANTICS.md ("Token-endpoint fault matrix"), and one row per `TokenFault` variant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_fault_matrix() {
    // A transient failure benches the grant for `refresh_failed` (60 s by default), or for
    // longer when the endpoint asked for it; a redirect goes to a second fake that must never
    // see a request.
    let cooling = |fault: TokenFault| FaultRow {
        fault,
        status: "cooling_down",
        detail: Some("refresh_failed"),
        cooldown_s: Some(55..=60),
    };
    let cooling_for = |fault: TokenFault, secs: u64| FaultRow {
        cooldown_s: Some(secs - 5..=secs),
        ..cooling(fault)
    };
    let dead = |fault: TokenFault, reason: &'static str| FaultRow {
        fault,
        status: "dead",
        detail: Some(reason),
        cooldown_s: None,
    };
    let elsewhere = FakeProvider::start(FakeProviderConfig::default()).await;
    let rows = vec![
        cooling(TokenFault::Status500),
        cooling(TokenFault::Status503),
        cooling(TokenFault::Timeout),
        cooling(TokenFault::ConnectionReset),
        FaultRow {
            fault: TokenFault::Slow(Duration::from_millis(200)),
            status: "ok",
            detail: None,
            cooldown_s: None,
        },
        cooling(TokenFault::HtmlPage),
        cooling(TokenFault::MalformedJson),
        cooling(TokenFault::Empty200),
        cooling(TokenFault::MissingAccessToken),
        dead(TokenFault::InvalidGrant, "invalid_grant"),
        dead(TokenFault::RefreshTokenReused, "refresh_token_reused"),
        // A `Retry-After` longer than `refresh_failed`, so that honouring it shows.
        cooling_for(
            TokenFault::RateLimited {
                retry_after_secs: 600,
            },
            600,
        ),
        cooling_for(
            TokenFault::RateLimitedHtml {
                retry_after_secs: 600,
            },
            600,
        ),
        cooling_for(TokenFault::TierDenied, 3600),
        cooling(TokenFault::Redirect(elsewhere.token_url())),
        cooling(TokenFault::NotFound),
        cooling(TokenFault::Oversized(2 * 1024 * 1024)),
        cooling(TokenFault::LostResponse),
        // The code echoes the refresh token: it is never repeated, the grant dies with a
        // fixed reason (a 400 refusal in the server's own words).
        dead(TokenFault::EchoedToken, "unknown_error"),
    ];
    let covered: BTreeSet<String> = rows.iter().map(|row| variant_name(&row.fault)).collect();
    assert_eq!(
        covered,
        every_token_fault_variant(),
        "one row per TokenFault variant"
    );
    for row in rows {
        let name = format!("{:?}", row.fault);
        let lost_response = row.fault == TokenFault::LostResponse;
        let setup = setup_with(
            FakeProviderConfig {
                timeout_hold: Duration::from_secs(5),
                ..FakeProviderConfig::default()
            },
            Arc::new(SystemClock),
            |config| config.http_timeout = Duration::from_secs(1),
        )
        .await;
        add_expired_grant(&setup, "grant").await;
        setup.fake.push_fault(row.fault);
        let lease = setup.pool.select(None).await.unwrap();
        let old = lease.secret().expose().to_owned();
        let answer = setup.pool.report_auth_failure(lease, expired(), None).await;
        let snapshot = setup.pool.admin(Snapshot).await.unwrap();
        let entry = &snapshot.entries[0];
        assert_eq!(entry.status.as_str(), row.status, "{name}: {entry:?}");
        match row.status {
            "ok" => {
                assert_eq!(entry.generation.0, 2, "{name}");
                let lease = answer.unwrap_or_else(|error| panic!("{name}: {error:?}"));
                assert_ne!(
                    lease.secret().expose(),
                    old,
                    "{name}: a lease on the new token"
                );
            }
            "dead" => {
                assert_eq!(entry.dead_reason.as_deref(), row.detail, "{name}");
                assert!(matches!(answer, Err(PoolError::Exhausted { .. })), "{name}");
            }
            _ => {
                assert_eq!(entry.cooldown_cause.as_deref(), row.detail, "{name}");
                assert!(matches!(answer, Err(PoolError::Exhausted { .. })), "{name}");
                assert_eq!(entry.generation.0, 1, "{name}: no token change");
                let left = entry.cooldown_remaining_s.unwrap_or_default();
                let bounds = row.cooldown_s.clone().unwrap_or(0..=0);
                assert!(
                    bounds.contains(&left),
                    "{name}: {left} s left, expected {bounds:?}"
                );
            }
        }
        assert!(
            setup.fake.token_requests() <= 1,
            "{name}: one request per refresh"
        );
        assert_eq!(setup.fake.reuse_detections(), 0, "{name}");
        if lost_response {
            // The provider rotated the pair but the answer never arrived: the next attempt
            // spends the old refresh token again and meets reuse detection (no grace window).
            setup.pool.admin(Refresh("grant".into())).await.unwrap();
            let pool = setup.pool.clone();
            assert!(
                eventually_async(
                    || {
                        let pool = pool.clone();
                        async move {
                            pool.admin(Snapshot).await.unwrap().entries[0].status
                                == StatusKind::Dead
                        }
                    },
                    Duration::from_secs(5)
                )
                .await,
                "{name}: the retry kills the grant"
            );
            assert_eq!(setup.fake.reuse_detections(), 1, "{name}");
            let snapshot = setup.pool.admin(Snapshot).await.unwrap();
            assert_eq!(
                snapshot.entries[0].dead_reason.as_deref(),
                Some("invalid_grant"),
                "{name}"
            );
        }
    }
    assert_eq!(
        elsewhere.token_requests(),
        0,
        "the redirect was never followed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_host_limit_caps_token_endpoint_requests() {
    let setup = setup_with(
        FakeProviderConfig::default(),
        Arc::new(SystemClock),
        |config| {
            config.host_limit = HostRateLimit {
                max_requests: 3,
                window: Duration::from_secs(60),
            }
        },
    )
    .await;
    for i in 0..5 {
        add_expired_grant(&setup, &format!("grant-{i}")).await;
    }
    // Each auth failure refreshes a different grant until the budget is spent.
    for _ in 0..5 {
        match setup.pool.select(None).await {
            Ok(lease) => {
                let _ = setup.pool.report_auth_failure(lease, expired(), None).await;
            }
            Err(_) => break,
        }
    }
    assert!(eventually(|| setup.fake.token_requests() >= 3, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        setup.fake.token_requests(),
        3,
        "the fourth and fifth were never sent"
    );
}
