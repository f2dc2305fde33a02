//! The registry: routes by provider id and supervises one `PoolActor` per provider.
//!
//! **Restart policy.** A pool actor that fails (a panic or an error in a handler) is
//! restarted by the registry, and the new actor reloads its provider from the store. What it
//! loses is in-memory only: leases held (their releases become no-ops), refresh waiters
//! (their callers see `Stopped` and retry), and counters not yet written behind. A provider
//! whose pool fails more than `max_restarts` times within `restart_window` is not restarted
//! again: its callers get `Stopped` until the process restarts, and the failure is logged as
//! an error. A pool that stops normally is not restarted.
//!
//! **Invariant:** no process-global actor names; two registries live in one process.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use credpool_core::{Clock, ProviderId, ProviderRegistry, Timestamp};
use credpool_store::Store;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

use crate::admin::Snapshot;
use crate::error::{PoolError, Reply};
use crate::events::{EventStream, Subscription};
use crate::fast::Shared;
use crate::handle::PoolHandle;
use crate::messages::PoolMsg;
use crate::pool::{PoolActor, PoolArgs, PoolConfig};
use crate::refresh::RefreshSeam;
use crate::view::ProviderSummary;

/// Messages of the registry.
enum RegistryMsg {
    /// Returns (spawning if needed) the pool actor of a provider.
    GetPool {
        provider: ProviderId,
        reply: Reply<(ActorRef<PoolMsg>, Arc<Shared>)>,
    },
    /// Lists the running pools.
    ListProviders { reply: Reply<Vec<ProviderSummary>> },
    /// Subscribes to the events of every pool, now and started later.
    SubscribeAll(Subscription),
    /// Kills every pool and the registry without flushing (crash tests).
    Abort,
}

/// Settings of a registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The providers that may have pools.
    pub providers: ProviderRegistry,
    /// Settings for pools without an override.
    pub default_pool: PoolConfig,
    /// Per-provider overrides.
    pub pools: HashMap<ProviderId, PoolConfig>,
    /// Providers whose pools start with the registry (besides those found in the store).
    pub start: Vec<ProviderId>,
    /// Restarts allowed per provider within `restart_window`.
    pub max_restarts: usize,
    /// The window for `max_restarts`.
    pub restart_window: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            providers: ProviderRegistry::builtin(),
            default_pool: PoolConfig::default(),
            pools: HashMap::new(),
            start: Vec::new(),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
        }
    }
}

struct RegistryArgs {
    config: RegistryConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    refresher: Arc<dyn RefreshSeam>,
}

/// How long the registry's stop waits for one pool actor to end.
const POOL_STOP_TIMEOUT: Duration = Duration::from_secs(10);

struct RunningPool {
    actor: ActorRef<PoolMsg>,
    /// The fast path of this actor's run (a restarted actor gets a new one).
    shared: Arc<Shared>,
    restarts: VecDeque<Timestamp>,
}

struct RegistryState {
    args: RegistryArgs,
    /// Subscribers to every pool: each pool started from now on gets them too.
    all_subscribers: Vec<Subscription>,
    pools: HashMap<ProviderId, RunningPool>,
    by_actor: HashMap<ActorId, ProviderId>,
    /// Providers that failed too often; they stay down.
    given_up: HashMap<ProviderId, String>,
}

struct RegistryActor;

impl RegistryState {
    fn pool_config(&self, provider: &ProviderId) -> PoolConfig {
        self.args
            .config
            .pools
            .get(provider)
            .cloned()
            .unwrap_or_else(|| self.args.config.default_pool.clone())
    }

    async fn spawn_pool(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        provider: &ProviderId,
        restarts: VecDeque<Timestamp>,
    ) -> Result<(ActorRef<PoolMsg>, Arc<Shared>), PoolError> {
        let Some(spec) = self.args.config.providers.get(provider) else {
            return Err(PoolError::UnknownProvider(provider.clone()));
        };
        let shared = Arc::new(Shared::new(Arc::clone(&self.args.clock)));
        let args = PoolArgs {
            provider: provider.clone(),
            spec,
            config: self.pool_config(provider),
            store: Arc::clone(&self.args.store),
            clock: Arc::clone(&self.args.clock),
            refresher: Arc::clone(&self.args.refresher),
            shared: Arc::clone(&shared),
        };
        let (actor, _join) = Actor::spawn_linked(None, PoolActor, args, myself.get_cell())
            .await
            .map_err(|error| {
                tracing::error!(provider = %provider, %error, "pool failed to start");
                PoolError::Store(format!("pool for {provider} failed to start: {error}"))
            })?;
        self.all_subscribers
            .retain(|subscription| !subscription.sender.is_closed());
        for subscription in &self.all_subscribers {
            // A pool started after the subscription: everything it records is new.
            let _ = actor.send_message(PoolMsg::Subscribe(Subscription {
                sender: subscription.sender.clone(),
                since: None,
            }));
        }
        self.by_actor.insert(actor.get_id(), provider.clone());
        self.pools.insert(
            provider.clone(),
            RunningPool {
                actor: actor.clone(),
                shared: Arc::clone(&shared),
                restarts,
            },
        );
        Ok((actor, shared))
    }

    async fn get_pool(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        provider: &ProviderId,
    ) -> Result<(ActorRef<PoolMsg>, Arc<Shared>), PoolError> {
        if let Some(running) = self.pools.get(provider) {
            return Ok((running.actor.clone(), Arc::clone(&running.shared)));
        }
        if let Some(reason) = self.given_up.get(provider) {
            tracing::debug!(provider = %provider, reason = %reason, "pool is down");
            return Err(PoolError::Stopped);
        }
        self.spawn_pool(myself, provider, VecDeque::new()).await
    }
}

impl Actor for RegistryActor {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RegistryMsg>,
        args: RegistryArgs,
    ) -> Result<RegistryState, ActorProcessingErr> {
        let store = Arc::clone(&args.store);
        let stored = tokio::task::spawn_blocking(move || store.providers())
            .await
            .map_err(|error| format!("store task failed: {error}"))??;
        let mut state = RegistryState {
            args,
            all_subscribers: Vec::new(),
            pools: HashMap::new(),
            by_actor: HashMap::new(),
            given_up: HashMap::new(),
        };
        let mut start: Vec<ProviderId> = state.args.config.start.clone();
        start.extend(stored);
        start.sort();
        start.dedup();
        for provider in start {
            if !state.args.config.providers.contains(&provider) {
                // A stored provider no configuration knows: keep it reachable as API-key pool.
                state
                    .args
                    .config
                    .providers
                    .insert(credpool_core::ProviderSpec::api_key(provider.as_str()));
            }
            state
                .spawn_pool(&myself, &provider, VecDeque::new())
                .await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        message: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegistryMsg::GetPool { provider, reply } => {
                let result = state.get_pool(&myself, &provider).await;
                let _ = reply.send(result);
            }
            RegistryMsg::SubscribeAll(subscription) => {
                state
                    .all_subscribers
                    .retain(|subscription| !subscription.sender.is_closed());
                for running in state.pools.values() {
                    let _ = running
                        .actor
                        .send_message(PoolMsg::Subscribe(subscription.clone()));
                }
                state.all_subscribers.push(subscription);
            }
            RegistryMsg::Abort => {
                for running in state.pools.values() {
                    running.actor.kill();
                }
                state.pools.clear();
                myself.kill();
            }
            RegistryMsg::ListProviders { reply } => {
                let pools: Vec<(ProviderId, PoolHandle)> = state
                    .pools
                    .iter()
                    .map(|(id, running)| {
                        (
                            id.clone(),
                            PoolHandle::new(
                                id.clone(),
                                running.actor.clone(),
                                Arc::clone(&running.shared),
                                Duration::from_secs(5),
                            ),
                        )
                    })
                    .collect();
                // Ask the pools without blocking the registry.
                tokio::spawn(async move {
                    let mut summaries = Vec::new();
                    for (provider, handle) in pools {
                        if let Ok(snapshot) = handle.admin(Snapshot).await {
                            let available =
                                snapshot.entries.iter().filter(|e| e.is_available()).count();
                            summaries.push(ProviderSummary {
                                provider,
                                entries: snapshot.entries.len(),
                                available,
                                strategy: snapshot.strategy,
                            });
                        }
                    }
                    summaries.sort_by(|a, b| a.provider.cmp(&b.provider));
                    let _ = reply.send(Ok(summaries));
                });
            }
        }
        Ok(())
    }

    // Restart policy: see the module documentation.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RegistryMsg>,
        event: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(provider) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                let now = state.args.clock.now();
                let mut restarts = state
                    .pools
                    .remove(&provider)
                    .map(|p| p.restarts)
                    .unwrap_or_default();
                let window = state.args.config.restart_window;
                restarts.retain(|at| now.since(*at) < window);
                if restarts.len() >= state.args.config.max_restarts {
                    tracing::error!(
                        provider = %provider,
                        error = %error,
                        restarts = restarts.len(),
                        "pool failed too often; not restarting it"
                    );
                    state.given_up.insert(provider, error.to_string());
                    return Ok(());
                }
                restarts.push_back(now);
                tracing::error!(provider = %provider, error = %error, "pool failed; restarting it from the store");
                if let Err(error) = state.spawn_pool(&myself, &provider, restarts).await {
                    tracing::error!(provider = %provider, %error, "pool restart failed");
                    state.given_up.insert(provider, error.to_string());
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(provider) = state.by_actor.remove(&cell.get_id()) {
                    state.pools.remove(&provider);
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RegistryMsg>,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        // Wait for every pool to end, so nothing of the tree (a pool's store handle above all:
        // it holds the data dir's lock) outlives the registry's stop.
        for running in state.pools.values() {
            let _ = running
                .actor
                .stop_and_wait(None, Some(POOL_STOP_TIMEOUT))
                .await;
        }
        Ok(())
    }
}

/// A running registry of pools: the entry point of the actor tree. Cheap to clone.
#[derive(Clone)]
pub struct PoolRegistry {
    actor: ActorRef<RegistryMsg>,
    call_timeout: Duration,
}

impl fmt::Debug for PoolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolRegistry").finish_non_exhaustive()
    }
}

impl PoolRegistry {
    /// Starts a registry; pools found in the store and those listed in `config.start` start
    /// with it.
    pub async fn start(
        config: RegistryConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        refresher: Arc<dyn RefreshSeam>,
    ) -> Result<PoolRegistry, PoolError> {
        let call_timeout = config.default_pool.call_timeout;
        let args = RegistryArgs {
            config,
            store,
            clock,
            refresher,
        };
        let (actor, _join) = Actor::spawn(None, RegistryActor, args)
            .await
            .map_err(|error| PoolError::Store(format!("registry failed to start: {error}")))?;
        Ok(PoolRegistry {
            actor,
            call_timeout,
        })
    }

    async fn ask<T>(&self, build: impl FnOnce(Reply<T>) -> RegistryMsg) -> Result<T, PoolError> {
        let (sender, receiver) = oneshot::channel();
        self.actor
            .send_message(build(sender.into()))
            .map_err(|_| PoolError::Stopped)?;
        tokio::time::timeout(self.call_timeout, receiver)
            .await
            .map_err(|_| PoolError::Timeout)?
            .map_err(|_| PoolError::Stopped)?
    }

    /// Returns the pool of a provider, starting it if needed.
    pub async fn pool(&self, provider: &ProviderId) -> Result<PoolHandle, PoolError> {
        let provider = provider.clone();
        let call_timeout = self.call_timeout;
        let (actor, shared) = self
            .ask(|reply| RegistryMsg::GetPool {
                provider: provider.clone(),
                reply,
            })
            .await?;
        Ok(PoolHandle::new(provider, actor, shared, call_timeout))
    }

    /// Lists running pools.
    pub async fn list_providers(&self) -> Result<Vec<ProviderSummary>, PoolError> {
        self.ask(|reply| RegistryMsg::ListProviders { reply }).await
    }

    /// Subscribes to the events of every pool — those running now and those started later —
    /// with a buffer of `capacity` events; with `since`, what each running pool's history
    /// holds after that id comes first.
    pub async fn subscribe_all(
        &self,
        capacity: usize,
        since: Option<u64>,
    ) -> Result<EventStream, PoolError> {
        let (subscription, stream) = EventStream::channel(capacity, since);
        self.actor
            .send_message(RegistryMsg::SubscribeAll(subscription))
            .map_err(|_| PoolError::Stopped)?;
        Ok(stream)
    }

    /// Flushes every running pool and stops the tree.
    pub async fn shutdown(&self) -> Result<(), PoolError> {
        let summaries = self.list_providers().await.unwrap_or_default();
        let mut first_error = None;
        for summary in summaries {
            if let Ok(pool) = self.pool(&summary.provider).await
                && let Err(error) = pool.flush().await
            {
                first_error.get_or_insert(error);
            }
        }
        self.actor
            .stop_and_wait(None, Some(self.call_timeout))
            .await
            .map_err(|_| PoolError::Timeout)?;
        first_error.map_or(Ok(()), Err)
    }

    /// Kills every pool and the registry at once, without flushing, as `kill -9` would stop
    /// them (crash tests). Returns when the registry has stopped.
    #[doc(hidden)]
    pub async fn abort_for_test(&self) {
        let _ = self.actor.send_message(RegistryMsg::Abort);
        while !matches!(self.actor.get_status(), ractor::ActorStatus::Stopped) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Kills a provider's pool actor as a crash would (tests of the restart policy).
    #[doc(hidden)]
    pub async fn crash_pool_for_test(&self, provider: &ProviderId) -> Result<(), PoolError> {
        let pool = self.pool(provider).await?;
        pool.actor()
            .send_message(PoolMsg::Crash)
            .map_err(|_| PoolError::Stopped)
    }
}
