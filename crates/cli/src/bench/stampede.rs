//! The stampede: many callers report the same OAuth entry's token as expired at once.
//!
//! The whole real path runs: the fake provider on loopback (its `xai-oauth` token endpoint),
//! the refresher actor over HTTP, the pool actor with its durable in-flight marker and the
//! flushed commit in a sled store in a temporary directory. Every caller first holds a lease
//! on the old token; they are released together and each times its `report_auth_failure`
//! until it holds a lease on the new generation.
//!
//! **Invariant:** a caller counts as done only when its lease carries a newer generation than
//! the one it reported; anything else is an error of the bench, not a slow sample.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use credpool_client::oauth_entry;
use credpool_core::{
    Classification, Clock, FailureKind, ProviderId, ProviderRegistry, SystemClock,
};
use credpool_pool_actor::admin::Add;
use credpool_pool_actor::{NewEntry, PoolRegistry, RegistryConfig};
use credpool_refresher::{Refresher, RefresherConfig};
use credpool_store::{SledStore, Store};
use credpool_test_support::{FakeProvider, FakeProviderConfig, TokenFault};
use tokio::sync::{Barrier, watch};

use super::stats::{Samples, nanos};

/// How long the fake token endpoint takes to answer the stampede's refresh: a fast real
/// provider's round trip (xAI's and OpenAI's take 100–400 ms from a laptop). On loopback it
/// would answer in about a millisecond, before most of 10,000 callers have even reported,
/// and the tail would time their arrival instead of what follows the answer.
pub(crate) const PROVIDER_LATENCY: Duration = Duration::from_millis(50);

/// What a stampede measured.
#[derive(Debug)]
pub(crate) struct StampedeResult {
    /// Callers that reported the failure.
    pub(crate) callers: usize,
    /// Requests the token endpoint received.
    pub(crate) token_requests: u64,
    /// Callers that had reported before the provider answered (the rest arrived after it
    /// and are in the tail too).
    pub(crate) waiting_at_answer: usize,
    /// Time from the common start until each caller held the new token.
    pub(crate) done: Samples,
    /// Time from the first caller holding the new token until each caller did.
    pub(crate) after_first: Samples,
    /// Time from the provider's token answer until each caller held the new token (the
    /// answer's way back, the commit and flush, the wake).
    pub(crate) after_answer: Samples,
}

fn auth_expired() -> Classification {
    Classification {
        status: Some(403),
        reason: Some("unauthenticated:bad-credentials".to_owned()),
        ..Classification::of(FailureKind::AuthExpired)
    }
}

/// Runs one stampede of `callers` callers.
pub(crate) async fn stampede(callers: usize) -> anyhow::Result<StampedeResult> {
    let fake = FakeProvider::start(FakeProviderConfig {
        access_token_lifetime: Duration::from_secs(30 * 60),
        ..FakeProviderConfig::default()
    })
    .await;
    let xai = ProviderId::new("xai-oauth");
    let mut providers = ProviderRegistry::builtin();
    providers.set_token_url(&xai, &fake.token_url())?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path())?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let refresher = Refresher::start(
        RefresherConfig {
            providers: providers.clone(),
            allow_insecure_loopback: true,
            http_timeout: Duration::from_secs(10),
            ..RefresherConfig::default()
        },
        Arc::clone(&clock),
    )
    .await?;
    let registry = PoolRegistry::start(
        RegistryConfig {
            providers,
            ..RegistryConfig::default()
        },
        store,
        clock,
        Arc::new(refresher.clone()),
    )
    .await?;
    let result = run(&fake, &registry, &xai, callers).await;
    registry.shutdown().await?;
    refresher.stop();
    result
}

async fn run(
    fake: &FakeProvider,
    registry: &PoolRegistry,
    xai: &ProviderId,
    callers: usize,
) -> anyhow::Result<StampedeResult> {
    let pool = registry.pool(xai).await?;
    let (access, refresh) = fake.grant("stampede");
    pool.admin(Add(NewEntry {
        base_url: Some(fake.api_url()),
        ..oauth_entry("stampede", access, refresh, None)
    }))
    .await?;
    let ready = Arc::new(Barrier::new(callers + 1));
    let (go, start) = watch::channel(None::<Instant>);
    let mut tasks = Vec::with_capacity(callers);
    for _ in 0..callers {
        let pool = pool.clone();
        let ready = Arc::clone(&ready);
        let mut start = start.clone();
        tasks.push(tokio::spawn(async move {
            let lease = pool.select(None).await?;
            let reported = lease.generation();
            ready.wait().await;
            let started = start
                .wait_for(Option::is_some)
                .await
                .map_err(|_| anyhow::anyhow!("the stampede never started"))?
                .context("a start time")?;
            let reported_at = started.elapsed();
            let renewed = pool
                .report_auth_failure(lease, auth_expired(), None)
                .await?;
            let done = started.elapsed();
            anyhow::ensure!(
                renewed.generation() > reported,
                "a caller got generation {} back after reporting {}",
                renewed.generation(),
                reported
            );
            drop(renewed);
            anyhow::Ok((reported_at, done))
        }));
    }
    ready.wait().await;
    fake.expire_access_tokens();
    fake.push_fault(TokenFault::Slow(PROVIDER_LATENCY));
    let before = fake.token_requests();
    let started = Instant::now();
    go.send_replace(Some(started));
    let mut reported = Vec::with_capacity(callers);
    let mut done = Vec::with_capacity(callers);
    for task in tasks {
        let (reported_at, done_at) = task.await.context("stampede caller panicked")??;
        reported.push(reported_at);
        done.push(done_at);
    }
    let wall = started.elapsed();
    let token_requests = fake.token_requests() - before;
    let answered = fake
        .last_token_answer_at()
        .context("the provider never answered a token request")?
        .saturating_duration_since(started);
    let first = done.iter().min().copied().unwrap_or_default();
    let after_first: Vec<u64> = done.iter().map(|d| nanos(*d - first)).collect();
    let after_answer: Vec<u64> = done
        .iter()
        .map(|d| nanos(d.saturating_sub(answered)))
        .collect();
    Ok(StampedeResult {
        callers,
        token_requests,
        waiting_at_answer: reported.iter().filter(|at| **at < answered).count(),
        done: Samples::new(done.into_iter().map(nanos).collect(), wall),
        after_first: Samples::new(after_first, wall),
        after_answer: Samples::new(after_answer, wall),
    })
}

/// The floor of a stampede's tail: `callers` tasks each parked on a oneshot, answered in one
/// loop as the pool answers its refresh waiters. With `timeout`, each wait is wrapped in a
/// `tokio::time::timeout` as `PoolHandle` wraps its calls. Returns the times from the first
/// task done until each task was done.
pub(crate) async fn wake_floor(callers: usize, timeout: bool) -> anyhow::Result<Samples> {
    let ready = Arc::new(Barrier::new(callers + 1));
    let mut senders = Vec::with_capacity(callers);
    let mut tasks = Vec::with_capacity(callers);
    for _ in 0..callers {
        let (sender, receiver) = tokio::sync::oneshot::channel::<u64>();
        senders.push(sender);
        let ready = Arc::clone(&ready);
        tasks.push(tokio::spawn(async move {
            ready.wait().await;
            let answer = if timeout {
                tokio::time::timeout(Duration::from_secs(60), receiver)
                    .await
                    .map_err(|_| anyhow::anyhow!("floor waiter timed out"))?
            } else {
                receiver.await
            };
            std::hint::black_box(answer.map_err(|_| anyhow::anyhow!("floor sender dropped"))?);
            anyhow::Ok(Instant::now())
        }));
    }
    ready.wait().await;
    // Let every task park on its receiver first.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    for (i, sender) in senders.into_iter().enumerate() {
        let _ = sender.send(i as u64);
    }
    let mut done = Vec::with_capacity(callers);
    for task in tasks {
        done.push(task.await.context("floor task panicked")??);
    }
    let first = done.iter().min().copied().unwrap_or(started);
    let after_first = done.iter().map(|d| nanos(*d - first)).collect();
    Ok(Samples::new(after_first, started.elapsed()))
}
