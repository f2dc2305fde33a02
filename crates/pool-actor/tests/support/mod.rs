//! Shared set-up for the pool actor's integration tests: real actors, a store (memory or
//! sled in a tempdir), paused tokio time, and a refresher whose answers the test controls.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credpool_core::{
    ClientMetadata, Clock, EntryKind, OAuthTokens, ProviderId, Secret, SecretSource, Strategy,
    Timestamp,
};
use credpool_pool_actor::admin::Add;
use credpool_pool_actor::{
    CapMode, NewEntry, PoolConfig, PoolHandle, PoolRegistry, RefreshCallback, RefreshRequest,
    RefreshResult, RefreshSeam, RegistryConfig, TokioClock, TrackUpdate,
};
use credpool_store::{MemoryStore, Store};

/// 2027-01-01T00:00:00Z: tests start here so timestamps read well.
pub const START: Timestamp = Timestamp(1_798_761_600_000);

/// A refresher whose refreshes wait until the test completes them.
#[derive(Debug, Default)]
pub struct FakeRefresher {
    pub requests: Mutex<Vec<RefreshRequest>>,
    pending: Mutex<VecDeque<RefreshCallback>>,
    pub tracked: Mutex<Vec<TrackUpdate>>,
    /// Retries asked for by a pool that could not start a refresh (its marker was refused).
    pub retries: Mutex<Vec<(credpool_core::EntryId, credpool_core::Generation)>>,
    /// When set, every refresh completes at once with a token named after the generation.
    pub auto_rotate: Mutex<bool>,
}

impl FakeRefresher {
    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap().len()
    }

    /// Completes the oldest pending refresh.
    pub fn complete(&self, result: RefreshResult) {
        let callback = self.pending.lock().unwrap().pop_front();
        callback.expect("a pending refresh").deliver(result);
    }
}

impl RefreshSeam for FakeRefresher {
    fn refresh(&self, request: RefreshRequest, done: RefreshCallback) {
        let generation = request.generation;
        self.requests.lock().unwrap().push(request);
        if *self.auto_rotate.lock().unwrap() {
            done.deliver(RefreshResult::Rotated {
                access: Secret::new(format!("access-{}", generation.0 + 1)),
                refresh: Some(Secret::new(format!("refresh-{}", generation.0 + 1))),
                expires_at: None,
            });
        } else {
            self.pending.lock().unwrap().push_back(done);
        }
    }

    fn track(&self, update: TrackUpdate) {
        self.tracked.lock().unwrap().push(update);
    }

    fn retry_later(
        &self,
        _provider: &credpool_core::ProviderId,
        entry: credpool_core::EntryId,
        generation: credpool_core::Generation,
    ) {
        self.retries.lock().unwrap().push((entry, generation));
    }
}

pub struct Harness {
    pub registry: PoolRegistry,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub refresher: Arc<FakeRefresher>,
}

pub fn pool_config(strategy: Strategy) -> PoolConfig {
    PoolConfig {
        strategy,
        ..PoolConfig::default()
    }
}

impl Harness {
    pub async fn start(store: Arc<dyn Store>, pool: PoolConfig) -> Harness {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(START));
        Self::start_with(store, pool, clock, Arc::new(FakeRefresher::default())).await
    }

    pub async fn memory(strategy: Strategy) -> Harness {
        Self::start(Arc::new(MemoryStore::new()), pool_config(strategy)).await
    }

    pub async fn start_with(
        store: Arc<dyn Store>,
        pool: PoolConfig,
        clock: Arc<dyn Clock>,
        refresher: Arc<FakeRefresher>,
    ) -> Harness {
        let config = RegistryConfig {
            default_pool: pool,
            ..RegistryConfig::default()
        };
        let seam: Arc<dyn RefreshSeam> = refresher.clone();
        let registry = PoolRegistry::start(config, Arc::clone(&store), Arc::clone(&clock), seam)
            .await
            .expect("registry starts");
        Harness {
            registry,
            store,
            clock,
            refresher,
        }
    }

    pub async fn pool(&self, provider: &str) -> PoolHandle {
        self.registry
            .pool(&ProviderId::new(provider))
            .await
            .expect("pool")
    }
}

pub fn api_key(label: &str, key: &str) -> NewEntry {
    NewEntry {
        label: label.to_owned(),
        kind: EntryKind::ApiKey {
            key: Secret::new(key),
        },
        source: SecretSource::Manual,
        priority: None,
        base_url: None,
        weight: None,
    }
}

pub fn grant(label: &str, access: &str, refresh: &str, expires_at: Option<Timestamp>) -> NewEntry {
    NewEntry {
        label: label.to_owned(),
        kind: EntryKind::OAuth(OAuthTokens {
            access: Secret::new(access),
            refresh: Some(Secret::new(refresh)),
            expires_at,
            client: ClientMetadata::default(),
        }),
        source: SecretSource::OAuthGrant,
        priority: None,
        base_url: None,
        weight: None,
    }
}

pub fn strict(wait: Duration) -> PoolConfig {
    PoolConfig {
        cap_mode: CapMode::Strict { wait },
        ..PoolConfig::default()
    }
}

/// Adds API keys `k0..kn` labelled `e0..en`.
pub async fn add_keys(pool: &PoolHandle, n: usize) {
    for i in 0..n {
        pool.admin(Add(api_key(&format!("e{i}"), &format!("k{i}"))))
            .await
            .expect("add");
    }
}

/// A 429 on the whole account.
pub fn rate_limited() -> credpool_core::Classification {
    credpool_core::Classification {
        status: Some(429),
        ..credpool_core::Classification::of(credpool_core::FailureKind::RateLimited {
            scope: credpool_core::RateLimitScope::Account,
        })
    }
}

/// Polls `condition` every millisecond of (paused) time until it holds.
pub async fn support_wait(condition: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not met");
}

/// Polls an async `condition` every millisecond of (paused) time until it holds.
pub async fn support_wait_async<F, Fut>(condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..10_000 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not met");
}
