//! credpool: one owner for the credentials an LLM agent runtime's tasks share.
//!
//! This crate is the facade: [`Credpool::builder`] starts the whole actor tree — the store,
//! the pool registry with one actor per provider, and the refresher — and hands back a
//! [`PoolClient`] for the runtime's workers and an [`AdminClient`] for inspection and
//! steering. [`Credpool::shutdown`] flushes every pool's write-behind and the store.
//!
//! **Invariants** (see `docs/ARCHITECTURE.md`):
//! - One tree per store: a sled data dir is locked while a `Credpool` holds it (until
//!   [`Credpool::shutdown`]; dropping a `Credpool` without it leaves the actors running).
//! - Shutdown loses no rotation: the refresher first stops starting exchanges and waits
//!   (bounded) for those in flight, whose results the pools commit; then the pools flush
//!   write-behind counters and stop; the store is flushed last. A refresh asked for during
//!   shutdown is not sent: its durable marker is settled at the next start with the same,
//!   unspent refresh token.
//! - With [`Builder::refreshing`]`(false)` nothing is ever sent to a token endpoint (offline
//!   inspection of a stopped service's store).
//!
//! # Embedding
//!
//! ```
//! use credpool::admin::Ensure;
//! use credpool::{Credpool, ProviderId, RequestFailure, Secret, api_key_entry};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let pool = Credpool::builder().in_memory().start().await?;
//!     let openai = ProviderId::new("openai");
//!     for key in ["key-one", "key-two"] {
//!         // `Ensure` adds the entry unless one with that label exists: a restart adds nothing.
//!         pool.admin().run(&openai, Ensure(api_key_entry(key, Secret::new(key)))).await?;
//!     }
//!     let workers = ["title", "compression", "vision"].map(|worker| {
//!         let (client, openai) = (pool.client(), openai.clone());
//!         tokio::spawn(async move {
//!             client.with_recovery(&openai, |credential| async move {
//!                 // A real worker sends its request with `credential.header()?` here.
//!                 Ok::<_, RequestFailure>(format!("{worker} used {}", credential.label()))
//!             }).await
//!         })
//!     });
//!     for worker in workers {
//!         println!("{}", worker.await??);
//!     }
//!     pool.shutdown().await?;
//!     Ok(())
//! }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use credpool_pool_actor::{RefreshCallback, RefreshRequest, RefreshSeam, TrackUpdate};

pub use credpool_client::{
    AdminClient, AdminOp, ClientError, Credential, Ensured, EntryView, EventRecord, EventStream,
    FailedRequest, Lease, NewEntry, PoolEvent, PoolMiddleware, PoolSnapshot, PoolStats,
    ProviderSummary, RecoveryConfig, RequestFailure, Target, admin, api_key_entry,
    env_api_key_entry, oauth_entry, with_token_url,
};
pub use credpool_client::{Classification, Decision, Outcome, PoolClient, Timestamp, Verdict};
pub use credpool_core::{
    ClientMetadata, Clock, CooldownConfig, CredentialKind, EntryId, EntryKind, FailureKind,
    Generation, ManualClock, OAuthTokens, ProviderId, ProviderRegistry, ProviderSpec,
    RegistryError, Secret, SecretSource, StatusKind, Strategy, SystemClock, TokenEndpointSpec,
    Unavailable,
};
pub use credpool_pool_actor::{CapMode, PoolConfig, PoolError, PoolRegistry, RegistryConfig};
pub use credpool_refresher::{Refresher, RefresherConfig, RefresherStats};
pub use credpool_store::seal::MasterKey;
pub use credpool_store::seal::source::KeySource;
pub use credpool_store::{MemoryStore, OpenOptions, SledStore, Store, StoreError, StoreHealth};

/// Errors starting or stopping a [`Credpool`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredpoolError {
    /// The store could not be opened (locked by another process, unreadable, …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The refresher could not start.
    #[error(transparent)]
    Refresher(#[from] credpool_refresher::RefresherError),
    /// The pool registry could not start or stop cleanly.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The builder was given something it cannot use (an unknown provider for a token URL or
    /// a host).
    #[error(transparent)]
    Config(#[from] RegistryError),
}

enum StoreChoice {
    Memory,
    Dir(PathBuf),
    Given(Arc<dyn Store>),
}

/// Configures and starts a [`Credpool`]. Defaults: an in-memory store, the built-in
/// providers, the documented cooldown and refresh defaults, the system clock.
#[must_use = "a builder does nothing until `start` is called"]
pub struct Builder {
    store: StoreChoice,
    providers: ProviderRegistry,
    default_pool: PoolConfig,
    pools: HashMap<ProviderId, PoolConfig>,
    start: Vec<ProviderId>,
    refresher: RefresherConfig,
    /// Kept apart from `refresher` so that the order of the builder's calls never matters.
    allow_insecure_loopback: Option<bool>,
    token_urls: Vec<(ProviderId, String)>,
    hosts: Vec<(String, ProviderId)>,
    recovery: RecoveryConfig,
    clock: Arc<dyn Clock>,
    refreshing: bool,
    /// Where a data dir's master key comes from.
    key: KeySource,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = match &self.store {
            StoreChoice::Memory => "memory".to_owned(),
            StoreChoice::Dir(dir) => dir.display().to_string(),
            StoreChoice::Given(_) => "given".to_owned(),
        };
        f.debug_struct("Builder")
            .field("store", &store)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            store: StoreChoice::Memory,
            providers: ProviderRegistry::builtin(),
            default_pool: PoolConfig::default(),
            pools: HashMap::new(),
            start: Vec::new(),
            refresher: RefresherConfig::default(),
            allow_insecure_loopback: None,
            token_urls: Vec::new(),
            hosts: Vec::new(),
            recovery: RecoveryConfig::default(),
            clock: Arc::new(SystemClock),
            refreshing: true,
            key: KeySource::Standard,
        }
    }
}

impl Builder {
    /// Persists state in a sled store in `dir` (created 0700 if absent; locked while open).
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.store = StoreChoice::Dir(dir.as_ref().to_path_buf());
        self
    }

    /// Reads the data dir's master key from this file (base64 of 32 bytes) unless
    /// `CREDPOOL_MASTER_KEY` is set. Without it (and without the variable) the key is
    /// `<data_dir>/master.key`, generated on a new store's first start.
    pub fn master_key_file(mut self, path: impl AsRef<Path>) -> Self {
        self.key = KeySource::File(path.as_ref().to_path_buf());
        self
    }

    /// Seals the data dir's secrets with this key and nothing else (the environment and
    /// `<data_dir>/master.key` are not read).
    pub fn master_key(mut self, key: Arc<MasterKey>) -> Self {
        self.key = KeySource::Key(key);
        self
    }

    /// Keeps state in memory only (lost when the process ends). The default.
    pub fn in_memory(mut self) -> Self {
        self.store = StoreChoice::Memory;
        self
    }

    /// Uses a store the caller opened.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = StoreChoice::Given(store);
        self
    }

    /// Replaces the provider registry (hosts, skews, token endpoints).
    pub fn providers(mut self, providers: ProviderRegistry) -> Self {
        self.providers = providers;
        self
    }

    /// Adds or replaces one provider's spec.
    pub fn provider(mut self, spec: ProviderSpec) -> Self {
        self.providers.insert(spec);
        self
    }

    /// Settings of every pool without its own override.
    pub fn default_pool(mut self, config: PoolConfig) -> Self {
        self.default_pool = config;
        self
    }

    /// Settings of one provider's pool; the pool also starts with the tree.
    pub fn pool(mut self, provider: ProviderId, config: PoolConfig) -> Self {
        if !self.start.contains(&provider) {
            self.start.push(provider.clone());
        }
        self.pools.insert(provider, config);
        self
    }

    /// The refresher's settings (backoff, timeouts, per-host budget). Its provider registry
    /// is replaced by the builder's at `start`, and [`Builder::allow_insecure_loopback`]
    /// wins over its flag whichever is called first.
    pub fn refresher(mut self, config: RefresherConfig) -> Self {
        self.refresher = config;
        self
    }

    /// Allows `http://127.0.0.1` token endpoints (tests and the demo's fake provider).
    pub fn allow_insecure_loopback(mut self, allow: bool) -> Self {
        self.allow_insecure_loopback = Some(allow);
        self
    }

    /// Refreshes the grants of OAuth provider `provider` at `url` alone (no discovery, no
    /// domain check): a self-hosted or test token endpoint. An unknown or API-key provider
    /// makes [`Builder::start`] fail with [`CredpoolError::Config`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), credpool::CredpoolError> {
    /// let pool = credpool::Credpool::builder()
    ///     .token_url("xai-oauth", "https://auth.internal.example/oauth2/token")
    ///     .start()
    ///     .await?;
    /// # pool.shutdown().await
    /// # }
    /// ```
    pub fn token_url(mut self, provider: &str, url: &str) -> Self {
        self.token_urls
            .push((ProviderId::new(provider), url.to_owned()));
        self
    }

    /// Makes `host` (and its subdomains) resolve to `provider` for
    /// [`PoolClient::acquire_for_url`] and [`PoolMiddleware::auto`]. A `custom:<name>`
    /// provider not known yet is added as an API-key provider.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = credpool::Credpool::builder()
    ///     .host("llm.corp.example", "custom:corp")
    ///     .start()
    ///     .await?;
    /// let provider = pool.client().provider_for_url("https://llm.corp.example/v1")?;
    /// assert_eq!(provider.as_str(), "custom:corp");
    /// # pool.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub fn host(mut self, host: &str, provider: &str) -> Self {
        self.hosts
            .push((host.to_owned(), ProviderId::new(provider)));
        self
    }

    /// Whether OAuth tokens are refreshed (default `true`). With `false` no refresher runs and
    /// nothing is sent to a token endpoint: refreshes the pools ask for stay pending under
    /// their durable markers and are settled by the next start with refreshing on. For
    /// read-mostly tools working on a stopped service's store.
    pub fn refreshing(mut self, refreshing: bool) -> Self {
        self.refreshing = refreshing;
        self
    }

    /// How [`PoolClient::with_recovery`] retries.
    pub fn recovery(mut self, config: RecoveryConfig) -> Self {
        self.recovery = config;
        self
    }

    /// The clock of every deadline (an injected clock for tests and simulations).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Opens the store and starts the refresher, the registry and the pools found in the
    /// store or configured with [`Builder::pool`].
    ///
    /// # Errors
    /// The store cannot be opened (e.g. another process holds the data dir) or an actor
    /// fails to start.
    pub async fn start(mut self) -> Result<Credpool, CredpoolError> {
        for (provider, url) in &self.token_urls {
            self.providers.set_token_url(provider, url)?;
        }
        for (host, provider) in &self.hosts {
            self.providers.add_host(provider, host)?;
        }
        if let Some(allow) = self.allow_insecure_loopback {
            self.refresher.allow_insecure_loopback = allow;
        }
        // Opening sled reads and recovers its log: blocking work, off the async threads.
        let choice = self.store;
        let key = self.key;
        let (store, resumed_from_store) = blocking(move || {
            let store: Arc<dyn Store> = match choice {
                StoreChoice::Memory => Arc::new(MemoryStore::new()),
                StoreChoice::Dir(dir) => {
                    let options = OpenOptions {
                        key,
                        ..OpenOptions::default()
                    };
                    let (store, _) = SledStore::open_with(&dir, options)?;
                    let (id, origin) = store.key_info();
                    tracing::info!(key_id = %id, from = %origin, "store opened; secrets sealed");
                    Arc::new(store)
                }
                StoreChoice::Given(store) => store,
            };
            let resumed = !store.providers()?.is_empty();
            Ok::<_, StoreError>((store, resumed))
        })
        .await?;
        let refresher = if self.refreshing {
            Some(
                Refresher::start(
                    RefresherConfig {
                        providers: self.providers.clone(),
                        ..self.refresher.clone()
                    },
                    Arc::clone(&self.clock),
                )
                .await?,
            )
        } else {
            None
        };
        let seam: Arc<dyn RefreshSeam> = match &refresher {
            Some(refresher) => Arc::new(refresher.clone()),
            None => Arc::new(Parked),
        };
        let registry = match PoolRegistry::start(
            RegistryConfig {
                providers: self.providers.clone(),
                default_pool: self.default_pool,
                pools: self.pools,
                start: self.start,
                ..RegistryConfig::default()
            },
            Arc::clone(&store),
            Arc::clone(&self.clock),
            seam,
        )
        .await
        {
            Ok(registry) => registry,
            Err(error) => {
                if let Some(refresher) = &refresher {
                    refresher.stop();
                }
                return Err(error.into());
            }
        };
        let client = PoolClient::new(registry.clone(), self.providers.clone(), self.recovery)
            .with_clock(Arc::clone(&self.clock));
        let admin = AdminClient::new(registry.clone());
        Ok(Credpool {
            client,
            admin,
            registry,
            refresher,
            settle_timeout: self.refresher.http_timeout + Duration::from_secs(1),
            store,
            providers: self.providers,
            clock: self.clock,
            resumed_from_store,
        })
    }
}

/// Runs blocking store work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Io(format!("store task failed: {error}")))?
}

/// The refresh seam of a tree started with `refreshing(false)`: tracks nothing, sends
/// nothing, and leaves a requested refresh pending (its callback is dropped undelivered, so
/// waiters time out and the pool's durable marker stays for the next start). Unlike
/// `NoRefresher`, it never answers with a failure, which would bench the entry.
#[derive(Debug)]
struct Parked;

impl RefreshSeam for Parked {
    fn refresh(&self, request: RefreshRequest, done: RefreshCallback) {
        tracing::debug!(provider = %request.provider, entry = %request.entry, "refreshing is off; refresh left to the next start");
        drop(done);
    }

    fn track(&self, _update: TrackUpdate) {}
}

/// A running credpool: the store, the pools and the refresher. Clone the [`PoolClient`] into
/// every worker; call [`Credpool::shutdown`] before the process ends.
pub struct Credpool {
    client: PoolClient,
    admin: AdminClient,
    registry: PoolRegistry,
    refresher: Option<Refresher>,
    settle_timeout: Duration,
    store: Arc<dyn Store>,
    providers: ProviderRegistry,
    clock: Arc<dyn Clock>,
    resumed_from_store: bool,
}

impl fmt::Debug for Credpool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credpool")
            .field("resumed_from_store", &self.resumed_from_store)
            .finish_non_exhaustive()
    }
}

impl Credpool {
    /// A builder with the defaults (in-memory store, built-in providers).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The handle workers hold (cheap to clone).
    pub fn client(&self) -> PoolClient {
        self.client.clone()
    }

    /// The typed admin handle (cheap to clone).
    pub fn admin(&self) -> AdminClient {
        self.admin.clone()
    }

    /// The pool registry (for callers that talk to pool handles directly).
    pub fn registry(&self) -> &PoolRegistry {
        &self.registry
    }

    /// The refresher (its counters); `None` when started with `refreshing(false)`.
    pub fn refresher(&self) -> Option<&Refresher> {
        self.refresher.as_ref()
    }

    /// The store the tree persists to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The provider registry the tree was started with.
    pub fn providers(&self) -> &ProviderRegistry {
        &self.providers
    }

    /// The clock of every deadline.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Whether the store already held at least one provider's pool when the tree started.
    pub fn resumed_from_store(&self) -> bool {
        self.resumed_from_store
    }

    /// Stops the tree without losing a rotation: the refresher starts no new exchange and
    /// the exchanges in flight finish (bounded by the refresher's HTTP timeout + 1 s) and are
    /// committed by their pools; then every pool flushes its write-behind and stops, the
    /// refresher stops, and the store is flushed. An exchange still running after the bound
    /// keeps its pool's durable marker and is settled at the next start (see
    /// `docs/SEMANTICS.md`).
    ///
    /// # Errors
    /// A pool or the store failed to flush; the tree is stopped either way.
    pub async fn shutdown(self) -> Result<(), CredpoolError> {
        if let Some(refresher) = &self.refresher
            && !refresher.quiesce(self.settle_timeout).await
        {
            tracing::warn!(
                "a token exchange was still running at shutdown; its pool's marker settles it at the next start"
            );
        }
        let pools = self.registry.shutdown().await;
        if let Some(refresher) = &self.refresher {
            refresher.stop();
        }
        let store = Arc::clone(&self.store);
        let flushed = blocking(move || store.flush()).await;
        pools?;
        flushed?;
        Ok(())
    }
}

/// The README's Rust examples, compiled and run as doc-tests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
