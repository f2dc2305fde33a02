//! Shared set-up for the workspace scenario tests: the fake provider on loopback and the whole
//! credpool tree started through the facade (`credpool::Credpool::builder`), with the
//! `xai-oauth` token endpoint pointed at the fake. Real time by default (real HTTP and paused
//! tokio time do not mix); simulations inject a `ManualClock` shared with the fake instead.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use credpool::admin::Add;
use credpool::{
    AdminClient, Clock, Credential, Credpool, NewEntry, PoolClient, PoolRegistry, ProviderId,
    ProviderRegistry, RecoveryConfig, Refresher, RefresherConfig, RequestFailure, Secret, Store,
    SystemClock, api_key_entry, oauth_entry,
};
use credpool_test_support::{FakeProvider, FakeProviderConfig};

pub fn xai() -> ProviderId {
    ProviderId::new("xai-oauth")
}

pub fn openai() -> ProviderId {
    ProviderId::new("openai")
}

/// Recovery with a short transient backoff (and the default single same-key retry).
pub fn quick() -> RecoveryConfig {
    RecoveryConfig {
        transient_backoff: Duration::from_millis(10),
        ..RecoveryConfig::default()
    }
}

pub struct World {
    pub fake: FakeProvider,
    pub pool: Credpool,
    pub registry: PoolRegistry,
    pub client: PoolClient,
    pub admin: AdminClient,
    pub store: Arc<dyn Store>,
    pub providers: ProviderRegistry,
    pub refresher: Refresher,
    pub http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

pub enum StoreKind {
    Memory,
    Sled,
}

/// The builtin providers with `xai-oauth`'s token endpoint at `token_url`.
pub fn providers_with_token_url(token_url: String) -> ProviderRegistry {
    let mut providers = ProviderRegistry::builtin();
    providers.set_token_url(&xai(), &token_url).unwrap();
    providers
}

impl World {
    pub async fn start(store: StoreKind, recovery: RecoveryConfig) -> World {
        // Access tokens live 30 min, so the xai skew is 120 s and no proactive refresh
        // fires during a test.
        World::start_with(
            store,
            recovery,
            Duration::from_secs(30 * 60),
            Arc::new(SystemClock),
        )
        .await
    }

    /// Starts the fake and the tree on one `clock`, with access tokens living `lifetime`.
    pub async fn start_with(
        store: StoreKind,
        recovery: RecoveryConfig,
        lifetime: Duration,
        clock: Arc<dyn Clock>,
    ) -> World {
        let fake = FakeProvider::start(FakeProviderConfig {
            access_token_lifetime: lifetime,
            clock: Arc::clone(&clock),
            ..FakeProviderConfig::default()
        })
        .await;
        let providers = providers_with_token_url(fake.token_url());
        let builder = Credpool::builder()
            .providers(providers.clone())
            .clock(clock)
            .recovery(recovery)
            .refresher(RefresherConfig {
                allow_insecure_loopback: true,
                backoff_initial: Duration::from_millis(50),
                backoff_max: Duration::from_millis(200),
                http_timeout: Duration::from_secs(5),
                ..RefresherConfig::default()
            });
        let (builder, dir) = match store {
            StoreKind::Memory => (builder.in_memory(), None),
            StoreKind::Sled => {
                let dir = tempfile::tempdir().expect("tempdir");
                (builder.data_dir(dir.path()), Some(dir))
            }
        };
        let pool = builder.start().await.expect("credpool starts");
        World {
            fake,
            registry: pool.registry().clone(),
            client: pool.client(),
            admin: pool.admin(),
            store: Arc::clone(pool.store()),
            providers,
            refresher: pool.refresher().expect("refreshing is on").clone(),
            pool,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            _dir: dir,
        }
    }

    /// Shuts the tree down (`Credpool::shutdown`) and hands back the fake and the store's
    /// directory, so a test can start again on the same store.
    pub async fn shutdown(self) -> (FakeProvider, Option<tempfile::TempDir>) {
        self.pool.shutdown().await.expect("clean shutdown");
        (self.fake, self._dir)
    }

    /// Adds an `xai-oauth` grant from the fake, bound to the fake's API.
    pub async fn add_grant(&self, label: &str) {
        let (access, refresh) = self.fake.grant(label);
        let entry = NewEntry {
            base_url: Some(self.fake.api_url()),
            ..oauth_entry(label, access, refresh, None)
        };
        self.admin
            .run(&xai(), Add(entry))
            .await
            .expect("grant added");
    }

    /// Adds an API key to `provider`, registered with the fake in `mode`.
    pub async fn add_key(
        &self,
        provider: &ProviderId,
        key: &str,
        mode: credpool_test_support::ApiKeyMode,
    ) {
        self.add_labelled_key(provider, key, key, mode).await;
    }

    /// Adds an API key under its own label.
    pub async fn add_labelled_key(
        &self,
        provider: &ProviderId,
        label: &str,
        key: &str,
        mode: credpool_test_support::ApiKeyMode,
    ) {
        self.fake.add_api_key(key, mode);
        let entry = NewEntry {
            base_url: Some(self.fake.api_url()),
            ..api_key_entry(label, Secret::new(key))
        };
        self.admin
            .run(provider, Add(entry))
            .await
            .expect("key added");
    }
}

/// Sends one chat request with `credential` to its endpoint.
pub async fn chat(
    http: &reqwest::Client,
    credential: Credential,
) -> Result<String, RequestFailure> {
    let base = credential.base_url().unwrap_or_default().to_owned();
    chat_at(http, &base, credential).await
}

/// Sends one chat request with `credential` to `base`.
pub async fn chat_at(
    http: &reqwest::Client,
    base: &str,
    credential: Credential,
) -> Result<String, RequestFailure> {
    let (name, value) = credential
        .header()
        .map_err(|error| RequestFailure::transport(error.to_string()))?;
    let response = http
        .post(format!("{base}/chat/completions"))
        .header(name, value)
        .json(&serde_json::json!({ "model": "fake-model", "messages": [] }))
        .send()
        .await
        .map_err(|error| RequestFailure::from_reqwest_error(&error))?;
    if response.status().is_success() {
        Ok(response.text().await.unwrap_or_default())
    } else {
        Err(RequestFailure::from_response(response).await)
    }
}

/// A key the fake answers with 429 and `Retry-After: 0` (throttled, free again at once).
pub fn throttled() -> credpool_test_support::ApiKeyMode {
    credpool_test_support::ApiKeyMode::RateLimited {
        retry_after_secs: 0,
    }
}

/// Awaits workers that each return (succeeded, typed errors) and sums them; every worker must
/// finish within a minute and none may panic.
pub async fn tally(workers: Vec<tokio::task::JoinHandle<(u64, u64)>>) -> (u64, u64) {
    let (mut ok, mut typed) = (0, 0);
    for worker in workers {
        let (o, t) = tokio::time::timeout(Duration::from_secs(60), worker)
            .await
            .expect("every worker finishes")
            .expect("no worker panics");
        ok += o;
        typed += t;
    }
    (ok, typed)
}
