//! What the refresher's integration tests share: a real pool and refresher against the fake
//! provider on loopback, on a `MemoryStore`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several test files

use std::sync::Arc;
use std::time::Duration;

use credpool_core::registry::TokenEndpointSpec;
use credpool_core::{
    Classification, ClientMetadata, Clock, EntryKind, FailureKind, OAuthTokens, ProviderId,
    ProviderRegistry, Secret, SecretSource, SystemClock, Timestamp,
};
use credpool_pool_actor::admin::Add;
use credpool_pool_actor::{
    NewEntry, PoolConfig, PoolHandle, PoolRegistry, RefreshSeam, RegistryConfig,
};
use credpool_refresher::{Refresher, RefresherConfig};
use credpool_store::{MemoryStore, Store};
use credpool_test_support::{FakeProvider, FakeProviderConfig};

pub struct Setup {
    pub fake: FakeProvider,
    pub pool: PoolHandle,
    pub refresher: Refresher,
    pub clock: Arc<dyn Clock>,
    pub registry: PoolRegistry,
    /// The pool's store, for fault injection.
    pub store: Arc<MemoryStore>,
}

pub fn providers_for(fake: &FakeProvider) -> ProviderRegistry {
    let mut providers = ProviderRegistry::builtin();
    let mut xai = providers.by_name("xai-oauth").unwrap();
    xai.token_endpoint = Some(TokenEndpointSpec {
        urls: vec![fake.token_url()],
        discovery_url: None,
        required_domain: None,
        client_id: Some("credpool-tests".to_owned()),
        json_body: false,
    });
    providers.insert(xai);
    providers
}

pub async fn setup_with(
    fake_config: FakeProviderConfig,
    clock: Arc<dyn Clock>,
    tune: impl FnOnce(&mut RefresherConfig),
) -> Setup {
    let fake = FakeProvider::start(FakeProviderConfig {
        clock: Arc::clone(&clock),
        ..fake_config
    })
    .await;
    let providers = providers_for(&fake);
    let mut refresher_config = RefresherConfig {
        providers: providers.clone(),
        allow_insecure_loopback: true,
        http_timeout: Duration::from_secs(2),
        ..RefresherConfig::default()
    };
    tune(&mut refresher_config);
    let refresher = Refresher::start(refresher_config, Arc::clone(&clock))
        .await
        .unwrap();
    let memory = Arc::new(MemoryStore::new());
    let store: Arc<dyn Store> = memory.clone();
    let seam: Arc<dyn RefreshSeam> = Arc::new(refresher.clone());
    let registry = PoolRegistry::start(
        RegistryConfig {
            providers,
            default_pool: PoolConfig::default(),
            ..RegistryConfig::default()
        },
        store,
        Arc::clone(&clock),
        seam,
    )
    .await
    .unwrap();
    let pool = registry.pool(&ProviderId::new("xai-oauth")).await.unwrap();
    Setup {
        fake,
        pool,
        refresher,
        clock,
        registry,
        store: memory,
    }
}

pub async fn setup() -> Setup {
    setup_with(FakeProviderConfig::default(), Arc::new(SystemClock), |_| {}).await
}

pub fn grant_entry(
    label: &str,
    access: Secret,
    refresh: Secret,
    expires_at: Option<Timestamp>,
    obtained_at: Timestamp,
) -> NewEntry {
    NewEntry {
        label: label.to_owned(),
        kind: EntryKind::OAuth(OAuthTokens {
            access,
            refresh: Some(refresh),
            expires_at,
            client: ClientMetadata {
                obtained_at: Some(obtained_at),
                ..ClientMetadata::default()
            },
        }),
        source: SecretSource::OAuthGrant,
        priority: None,
        base_url: None,
        weight: None,
    }
}

/// Adds a grant minted by the fake whose access token has expired at the provider. Its expiry
/// is unknown to the pool, so only on-demand refreshes happen (no proactive timer races the
/// test).
pub async fn add_expired_grant(setup: &Setup, label: &str) {
    let (access, refresh) = setup.fake.grant(label);
    let now = setup.clock.now();
    setup
        .pool
        .admin(Add(grant_entry(
            label,
            access,
            refresh,
            None,
            now.minus(Duration::from_secs(3600)),
        )))
        .await
        .unwrap();
    setup.fake.expire_access_tokens();
}

pub fn expired() -> Classification {
    Classification {
        status: Some(403),
        reason: Some("unauthenticated:bad-credentials".to_owned()),
        ..Classification::of(FailureKind::AuthExpired)
    }
}
