//! The `RefresherActor`: proactive timers and on-demand refreshes over the token endpoint
//! clients, one at a time per credential.
//!
//! The pool decides that a refresh happens and commits its result; this actor only schedules
//! and performs token-endpoint exchanges. It implements the pool's
//! [`RefreshSeam`](credpool_pool_actor::RefreshSeam) through the [`Refresher`] handle.
//!
//! **Invariants:**
//! - At most one exchange per (provider, entry) is in flight; a second request for the same
//!   entry joins the first and receives the same result.
//! - A proactive timer fires at expiry − skew(provider, lifetime) − jitter, jitter uniform in
//!   [0, 10 %] of the skew; it is re-armed on every token change and fires only for the
//!   generation it was armed for.
//! - A transient failure is retried after a jittered exponential backoff (10 s doubling to
//!   5 min by default); the retry goes through the pool (`refresh_due`) so the durable
//!   in-flight marker is written again before the token leaves.
//! - No token reaches a log line or an error.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use credpool_core::registry::{RefreshSkew, TokenEndpointSpec};
use credpool_core::{Clock, EntryId, Generation, ProviderId};
use credpool_pool_actor::{
    PoolHandle, RefreshCallback, RefreshFailure, RefreshRequest, RefreshResult, RefreshSeam,
    TrackUpdate,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::SmallRng;

mod timers;

use self::timers::{Key, Timer, Timers, Wake};
pub use crate::config::RefresherConfig;
use crate::endpoint::{
    EndpointContext, HostRateLimiter, ProviderClient, RefreshError, TokenResponse,
    build_http_client,
};
pub use crate::schedule::{backoff_delay, refresh_due_at};
pub use crate::stats::RefresherStats;

/// Messages of the refresher.
enum RefresherMsg {
    Refresh {
        request: RefreshRequest,
        done: RefreshCallback,
    },
    Track(TrackUpdate),
    RetryLater {
        key: Key,
        generation: Generation,
    },
    Attach(PoolHandle),
    TimerFired {
        key: Key,
        generation: Generation,
        wake: Wake,
    },
    Finished {
        key: Key,
        generation: Generation,
        result: Result<TokenResponse, RefreshError>,
        /// How long the exchange took (tokio's clock, so paused-time tests stay exact).
        elapsed: Duration,
    },
    Stats {
        reply: ractor::RpcReplyPort<RefresherStats>,
    },
    /// Stop starting exchanges; answer once none is in flight.
    Quiesce {
        reply: ractor::RpcReplyPort<()>,
    },
}

struct RefresherState {
    config: RefresherConfig,
    clock: Arc<dyn Clock>,
    context: EndpointContext,
    myself: ActorRef<RefresherMsg>,
    clients: HashMap<(ProviderId, Option<String>, Option<String>), Arc<ProviderClient>>,
    in_flight: HashMap<Key, Vec<RefreshCallback>>,
    timers: Timers,
    pools: HashMap<ProviderId, PoolHandle>,
    /// Consecutive transient failures per entry, for the backoff.
    attempts: HashMap<Key, u32>,
    stats: RefresherStats,
    rng: SmallRng,
    /// Set by [`Refresher::quiesce`]: no new exchange, no timer; answered when idle.
    quiescing: bool,
    quiesce_waiters: Vec<ractor::RpcReplyPort<()>>,
}

struct RefresherActor;

struct RefresherArgs {
    config: RefresherConfig,
    clock: Arc<dyn Clock>,
}

impl RefresherState {
    fn client_for(
        &mut self,
        request: &RefreshRequest,
    ) -> Result<Arc<ProviderClient>, RefreshError> {
        let key = (
            request.provider.clone(),
            request.client.token_endpoint.clone(),
            request.client.client_id.clone(),
        );
        if let Some(client) = self.clients.get(&key) {
            return Ok(Arc::clone(client));
        }
        let mut spec: TokenEndpointSpec = self
            .config
            .providers
            .get(&request.provider)
            .and_then(|spec| spec.token_endpoint)
            .unwrap_or(TokenEndpointSpec {
                urls: Vec::new(),
                discovery_url: None,
                required_domain: None,
                client_id: None,
                json_body: false,
            });
        if let Some(url) = &request.client.token_endpoint {
            spec.urls = vec![url.clone()];
            spec.discovery_url = None;
        }
        if let Some(client_id) = &request.client.client_id {
            spec.client_id = Some(client_id.clone());
        }
        let client = Arc::new(ProviderClient::new(
            &request.provider,
            &spec,
            self.context.clone(),
        )?);
        self.clients.insert(key, Arc::clone(&client));
        Ok(client)
    }

    fn start(&mut self, request: RefreshRequest, done: RefreshCallback) {
        let key = (request.provider.clone(), request.entry);
        if let Some(waiting) = self.in_flight.get_mut(&key) {
            self.stats.joined += 1;
            waiting.push(done);
            return;
        }
        if self.quiescing {
            // Shutting down: the refresh token is not sent. The pool's durable in-flight
            // marker stays, and the next start retries with the same, unspent token.
            tracing::debug!(provider = %request.provider, entry = %request.entry, "refresher stopping; refresh left to the next start");
            drop(done);
            return;
        }
        let client = match self.client_for(&request) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(provider = %request.provider, entry = %request.entry, %error, "no usable token endpoint");
                done.deliver(RefreshResult::Failed(failure_of(&error)));
                return;
            }
        };
        self.stats.exchanges += 1;
        self.in_flight.insert(key.clone(), vec![done]);
        let myself = self.myself.clone();
        let generation = request.generation;
        let refresh_token = request.refresh_token;
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let result = client.refresh(&refresh_token).await;
            let _ = myself.send_message(RefresherMsg::Finished {
                key,
                generation,
                result,
                elapsed: started.elapsed(),
            });
        });
    }

    fn finish(
        &mut self,
        key: Key,
        generation: Generation,
        result: Result<TokenResponse, RefreshError>,
        elapsed: Duration,
    ) {
        self.stats.observe_exchange_latency(elapsed);
        let waiting = self.in_flight.remove(&key).unwrap_or_default();
        let now = self.clock.now();
        let outcome = match result {
            Ok(response) => {
                self.stats.succeeded += 1;
                self.attempts.remove(&key);
                self.timers.cancel(&key, Wake::Retry);
                RefreshResult::Rotated {
                    access: response.access,
                    refresh: response.refresh,
                    expires_at: response.expires_in.map(|lifetime| now.plus(lifetime)),
                }
            }
            Err(error) => {
                let failure = failure_of(&error);
                match &failure {
                    RefreshFailure::Terminal { .. } => {
                        self.stats.failed_terminal += 1;
                        self.attempts.remove(&key);
                        self.timers.cancel(&key, Wake::Retry);
                    }
                    RefreshFailure::Transient { retry_after, .. } => {
                        self.stats.failed_transient += 1;
                        let attempt = self.attempts.entry(key.clone()).or_insert(0);
                        *attempt += 1;
                        let attempt = *attempt;
                        let backoff = backoff_delay(
                            attempt,
                            self.config.backoff_initial,
                            self.config.backoff_max,
                            self.rng.random::<f64>(),
                        );
                        let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
                        tracing::info!(
                            provider = %key.0,
                            entry = %key.1,
                            attempt,
                            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            %error,
                            "refresh failed transiently; retrying after backoff"
                        );
                        self.arm(key.clone(), generation, Wake::Retry, wait);
                    }
                }
                RefreshResult::Failed(failure)
            }
        };
        for done in waiting {
            done.deliver(outcome.clone());
        }
        self.answer_quiesce_if_idle();
    }

    /// Starts quiescing: timers are cancelled, no exchange starts; `reply` is answered once
    /// the exchanges in flight have delivered their results.
    fn quiesce(&mut self, reply: ractor::RpcReplyPort<()>) {
        self.quiescing = true;
        self.timers.cancel_all();
        self.quiesce_waiters.push(reply);
        self.answer_quiesce_if_idle();
    }

    fn answer_quiesce_if_idle(&mut self) {
        if self.quiescing && self.in_flight.is_empty() {
            for reply in self.quiesce_waiters.drain(..) {
                let _ = reply.send(());
            }
        }
    }

    fn arm(&mut self, key: Key, generation: Generation, wake: Wake, wait: Duration) {
        self.timers.cancel(&key, wake);
        if self.quiescing {
            return;
        }
        let myself = self.myself.clone();
        let timer_key = key.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = myself.send_message(RefresherMsg::TimerFired {
                key: timer_key,
                generation,
                wake,
            });
        });
        self.timers
            .of(wake)
            .insert(key, Timer { generation, handle });
    }

    /// A refresh the pool could not even start (its durable marker could not be written):
    /// counted as a transient failure of this entry, retried after the same backoff.
    fn retry_later(&mut self, key: Key, generation: Generation) {
        self.stats.failed_transient += 1;
        let attempt = self.attempts.entry(key.clone()).or_insert(0);
        *attempt += 1;
        let wait = backoff_delay(
            *attempt,
            self.config.backoff_initial,
            self.config.backoff_max,
            self.rng.random::<f64>(),
        );
        tracing::info!(
            provider = %key.0,
            entry = %key.1,
            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "refresh not started; retrying after backoff"
        );
        self.arm(key, generation, Wake::Retry, wait);
    }

    fn track(&mut self, update: TrackUpdate) {
        let key = (update.provider.clone(), update.entry);
        if update.forget {
            self.timers.cancel(&key, Wake::Proactive);
            self.timers.cancel(&key, Wake::Retry);
            self.attempts.remove(&key);
            return;
        }
        // A retry armed for an older token is moot once a newer one exists.
        if self
            .timers
            .retry
            .get(&key)
            .is_some_and(|timer| timer.generation < update.generation)
        {
            self.timers.cancel(&key, Wake::Retry);
            self.attempts.remove(&key);
        }
        let Some(expires_at) = update.expires_at else {
            // Without an expiry the token is refreshed on demand only; a pending retry stays.
            self.timers.cancel(&key, Wake::Proactive);
            return;
        };
        if self
            .timers
            .proactive
            .get(&key)
            .is_some_and(|timer| timer.generation == update.generation)
        {
            return;
        }
        let skew = self
            .config
            .providers
            .get(&update.provider)
            .map(|spec| spec.refresh_skew)
            .unwrap_or(RefreshSkew::fixed(
                credpool_core::registry::DEFAULT_REFRESH_SKEW,
            ));
        let due = refresh_due_at(
            expires_at,
            update.obtained_at,
            &skew,
            self.config.jitter_fraction,
            self.rng.random::<f64>(),
        );
        let wait = due.since(self.clock.now());
        tracing::debug!(provider = %update.provider, entry = %update.entry, due = %due, "proactive refresh armed");
        self.arm(key, update.generation, Wake::Proactive, wait);
    }
}

/// Maps an endpoint error onto what the pool needs to know.
fn failure_of(error: &RefreshError) -> RefreshFailure {
    match error {
        RefreshError::Terminal { code, .. } => RefreshFailure::Terminal { code: code.clone() },
        RefreshError::Denied { code, .. } => RefreshFailure::Transient {
            reason: format!("refresh denied: {code}"),
            // Entitlement: retrying soon will not help; the pool benches the entry meanwhile.
            retry_after: Some(Duration::from_secs(3600)),
        },
        other => RefreshFailure::Transient {
            reason: other.to_string(),
            retry_after: other.retry_after(),
        },
    }
}

impl Actor for RefresherActor {
    type Msg = RefresherMsg;
    type State = RefresherState;
    type Arguments = RefresherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RefresherMsg>,
        args: RefresherArgs,
    ) -> Result<RefresherState, ActorProcessingErr> {
        let http = build_http_client(args.config.http_timeout)?;
        let limiter = Arc::new(HostRateLimiter::new(
            Arc::clone(&args.clock),
            args.config.host_limit,
        ));
        let context = EndpointContext::new(http, Arc::clone(&args.clock))
            .with_limiter(limiter)
            .with_insecure_loopback(args.config.allow_insecure_loopback);
        Ok(RefresherState {
            config: args.config,
            clock: args.clock,
            context,
            myself,
            clients: HashMap::new(),
            in_flight: HashMap::new(),
            timers: Timers::default(),
            pools: HashMap::new(),
            attempts: HashMap::new(),
            stats: RefresherStats::default(),
            rng: SmallRng::from_os_rng(),
            quiescing: false,
            quiesce_waiters: Vec::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RefresherMsg>,
        state: &mut RefresherState,
    ) -> Result<(), ActorProcessingErr> {
        state.timers.cancel_all();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<RefresherMsg>,
        message: RefresherMsg,
        state: &mut RefresherState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RefresherMsg::Refresh { request, done } => state.start(request, done),
            RefresherMsg::Track(update) => state.track(update),
            RefresherMsg::RetryLater { key, generation } => state.retry_later(key, generation),
            RefresherMsg::Attach(pool) => {
                state.pools.insert(pool.provider().clone(), pool);
            }
            RefresherMsg::TimerFired {
                key,
                generation,
                wake,
            } => {
                if state.timers.take_fired(&key, generation, wake) {
                    state.stats.timers_fired += 1;
                    if let Some(pool) = state.pools.get(&key.0) {
                        pool.refresh_due(key.1, generation);
                    }
                }
            }
            RefresherMsg::Finished {
                key,
                generation,
                result,
                elapsed,
            } => state.finish(key, generation, result, elapsed),
            RefresherMsg::Quiesce { reply } => state.quiesce(reply),
            RefresherMsg::Stats { reply } => {
                let mut stats = state.stats.clone();
                stats.timers_armed = u64::try_from(state.timers.len()).unwrap_or(u64::MAX);
                stats.in_flight = u64::try_from(state.in_flight.len()).unwrap_or(u64::MAX);
                let _ = reply.send(stats);
            }
        }
        Ok(())
    }
}

/// A running refresher: hand it to the pool registry as its
/// [`RefreshSeam`](credpool_pool_actor::RefreshSeam). Cheap to clone.
#[derive(Clone)]
pub struct Refresher {
    actor: ActorRef<RefresherMsg>,
}

impl fmt::Debug for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher").finish_non_exhaustive()
    }
}

/// Errors starting a refresher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefresherError {
    /// The actor could not start (the HTTP client could not be built).
    #[error("refresher failed to start: {0}")]
    Start(String),
    /// The refresher has stopped.
    #[error("refresher stopped")]
    Stopped,
}

impl Refresher {
    /// Starts a refresher.
    pub async fn start(
        config: RefresherConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Refresher, RefresherError> {
        let (actor, _join) = Actor::spawn(None, RefresherActor, RefresherArgs { config, clock })
            .await
            .map_err(|error| RefresherError::Start(error.to_string()))?;
        Ok(Refresher { actor })
    }

    /// Returns the refresher's counters.
    pub async fn stats(&self) -> Result<RefresherStats, RefresherError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.actor
            .send_message(RefresherMsg::Stats {
                reply: sender.into(),
            })
            .map_err(|_| RefresherError::Stopped)?;
        receiver.await.map_err(|_| RefresherError::Stopped)
    }

    /// Prepares a clean stop: cancels every proactive timer, starts no new exchange (a
    /// refresh asked for from now on is left to the next start, under the pool's durable
    /// marker), and returns once the exchanges in flight have delivered their results to
    /// their pools, or after `timeout`. Returns whether it settled in time.
    pub async fn quiesce(&self, timeout: Duration) -> bool {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        if self
            .actor
            .send_message(RefresherMsg::Quiesce {
                reply: sender.into(),
            })
            .is_err()
        {
            return true;
        }
        matches!(tokio::time::timeout(timeout, receiver).await, Ok(Ok(())))
    }

    /// Stops the refresher; exchanges in flight are abandoned (their entries keep their
    /// durable in-flight markers, handled at the next start).
    pub fn stop(&self) {
        self.actor.stop(None);
    }
}

impl RefreshSeam for Refresher {
    fn refresh(&self, request: RefreshRequest, done: RefreshCallback) {
        if let Err(ractor::MessagingErr::SendErr(RefresherMsg::Refresh { done, .. })) = self
            .actor
            .send_message(RefresherMsg::Refresh { request, done })
        {
            done.deliver(RefreshResult::Failed(RefreshFailure::Transient {
                reason: "refresher stopped".to_owned(),
                retry_after: None,
            }));
        }
    }

    fn track(&self, update: TrackUpdate) {
        let _ = self.actor.send_message(RefresherMsg::Track(update));
    }

    fn retry_later(&self, provider: &ProviderId, entry: EntryId, generation: Generation) {
        let _ = self.actor.send_message(RefresherMsg::RetryLater {
            key: (provider.clone(), entry),
            generation,
        });
    }

    fn attach(&self, pool: PoolHandle) {
        let _ = self.actor.send_message(RefresherMsg::Attach(pool));
    }
}
