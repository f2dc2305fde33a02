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

use credpool_core::registry::{ProviderRegistry, RefreshSkew, TokenEndpointSpec};
use credpool_core::{Clock, EntryId, Generation, ProviderId, Timestamp};
use credpool_pool_actor::{
    PoolHandle, RefreshCallback, RefreshFailure, RefreshRequest, RefreshResult, RefreshSeam,
    TrackUpdate,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::task::JoinHandle;

use crate::endpoint::{
    EndpointContext, HostRateLimit, HostRateLimiter, ProviderClient, RefreshError, TokenResponse,
    build_http_client,
};

/// Settings of the refresher.
#[derive(Debug, Clone)]
pub struct RefresherConfig {
    /// Providers and their token endpoints and skews.
    pub providers: ProviderRegistry,
    /// First wait after a transient failure.
    pub backoff_initial: Duration,
    /// Longest wait between retries.
    pub backoff_max: Duration,
    /// Jitter of proactive timers, as a fraction of the skew (0.10 = up to 10 %).
    pub jitter_fraction: f64,
    /// Timeout of one token-endpoint exchange.
    pub http_timeout: Duration,
    /// Token-endpoint requests admitted per host.
    pub host_limit: HostRateLimit,
    /// Allows `http://127.0.0.1` endpoints (tests and the demo's fake provider only).
    pub allow_insecure_loopback: bool,
}

impl Default for RefresherConfig {
    fn default() -> Self {
        RefresherConfig {
            providers: ProviderRegistry::builtin(),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            jitter_fraction: 0.10,
            http_timeout: Duration::from_secs(20),
            host_limit: HostRateLimit::default(),
            allow_insecure_loopback: false,
        }
    }
}

/// When a proactive refresh is due: `expires_at − skew − jitter`, where the skew depends on
/// the token's lifetime and `jitter_unit` in [0, 1] picks the jitter within
/// `[0, jitter_fraction × skew]`.
///
/// The skew never exceeds half the token's lifetime when the lifetime is known: a 60-minute
/// xAI token with the 3600 s skew would otherwise be due the moment it is issued, and every
/// refresh would schedule the next one at once (a refresh loop).
pub fn refresh_due_at(
    expires_at: Timestamp,
    obtained_at: Option<Timestamp>,
    skew: &RefreshSkew,
    jitter_fraction: f64,
    jitter_unit: f64,
) -> Timestamp {
    let lifetime = obtained_at.map(|obtained| expires_at.since(obtained));
    let skew = match lifetime {
        Some(lifetime) => skew.for_lifetime(Some(lifetime)).min(lifetime / 2),
        None => skew.for_lifetime(None),
    };
    let jitter = skew.mul_f64((jitter_fraction * jitter_unit.clamp(0.0, 1.0)).max(0.0));
    expires_at.minus(skew).minus(jitter)
}

/// The wait before retry number `attempt` (1-based): `initial × 2^(attempt−1)` capped at
/// `max`, then scaled by a jitter factor in [0.5, 1.0] so a fleet does not retry in lockstep.
pub fn backoff_delay(attempt: u32, initial: Duration, max: Duration, jitter_unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let base = initial.saturating_mul(1u32 << exponent).min(max);
    base.mul_f64(0.5 + 0.5 * jitter_unit.clamp(0.0, 1.0))
}

type Key = (ProviderId, EntryId);

/// Messages of the refresher.
enum RefresherMsg {
    Refresh {
        request: RefreshRequest,
        done: RefreshCallback,
    },
    Track(TrackUpdate),
    Attach(PoolHandle),
    TimerFired {
        key: Key,
        generation: Generation,
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

/// Counters of a refresher.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RefresherStats {
    /// Token-endpoint exchanges started.
    pub exchanges: u64,
    /// Refresh requests that joined an exchange already in flight.
    pub joined: u64,
    /// Exchanges that rotated tokens.
    pub succeeded: u64,
    /// Exchanges that failed transiently (retried later).
    pub failed_transient: u64,
    /// Exchanges that failed terminally.
    pub failed_terminal: u64,
    /// Proactive timers that fired.
    pub timers_fired: u64,
    /// Proactive timers armed now.
    pub timers_armed: u64,
    /// Exchanges in flight now.
    pub in_flight: u64,
    /// Finished exchanges (any result) per latency bucket: index `i` counts exchanges that
    /// took at most [`RefresherStats::LATENCY_BUCKETS_MS`]`[i]` and more than the bound
    /// before; the last index counts the slower ones. Empty until the first exchange ends.
    pub exchange_latency_buckets: Vec<u64>,
    /// Finished exchanges measured in the latency histogram.
    pub exchange_latency_count: u64,
    /// Total time of the finished exchanges, in microseconds.
    pub exchange_latency_sum_us: u64,
}

impl RefresherStats {
    /// Upper bounds, in milliseconds, of the exchange latency buckets (the 20 s default
    /// timeout is the last bound).
    pub const LATENCY_BUCKETS_MS: [u64; 12] = [
        5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 20_000,
    ];

    /// Records one finished exchange in the latency histogram.
    fn observe_exchange_latency(&mut self, elapsed: Duration) {
        let buckets = Self::LATENCY_BUCKETS_MS.len() + 1;
        if self.exchange_latency_buckets.len() != buckets {
            self.exchange_latency_buckets.resize(buckets, 0);
        }
        let millis = elapsed.as_millis();
        let index = Self::LATENCY_BUCKETS_MS
            .iter()
            .position(|bound| millis <= u128::from(*bound))
            .unwrap_or(Self::LATENCY_BUCKETS_MS.len());
        if let Some(count) = self.exchange_latency_buckets.get_mut(index) {
            *count += 1;
        }
        self.exchange_latency_count += 1;
        self.exchange_latency_sum_us = self
            .exchange_latency_sum_us
            .saturating_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }
}

struct Timer {
    generation: Generation,
    handle: JoinHandle<()>,
}

struct RefresherState {
    config: RefresherConfig,
    clock: Arc<dyn Clock>,
    context: EndpointContext,
    myself: ActorRef<RefresherMsg>,
    clients: HashMap<(ProviderId, Option<String>, Option<String>), Arc<ProviderClient>>,
    in_flight: HashMap<Key, Vec<RefreshCallback>>,
    timers: HashMap<Key, Timer>,
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
                        self.arm(key.clone(), generation, wait);
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
        for (_, timer) in self.timers.drain() {
            timer.handle.abort();
        }
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

    fn arm(&mut self, key: Key, generation: Generation, wait: Duration) {
        if let Some(old) = self.timers.remove(&key) {
            old.handle.abort();
        }
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
            });
        });
        self.timers.insert(key, Timer { generation, handle });
    }

    fn track(&mut self, update: TrackUpdate) {
        let key = (update.provider.clone(), update.entry);
        if update.forget {
            if let Some(timer) = self.timers.remove(&key) {
                timer.handle.abort();
            }
            self.attempts.remove(&key);
            return;
        }
        let Some(expires_at) = update.expires_at else {
            // Without an expiry the token is refreshed on demand only.
            if let Some(timer) = self.timers.remove(&key) {
                timer.handle.abort();
            }
            return;
        };
        if self
            .timers
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
        self.arm(key, update.generation, wait);
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
            timers: HashMap::new(),
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
        for timer in state.timers.values() {
            timer.handle.abort();
        }
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
            RefresherMsg::Attach(pool) => {
                state.pools.insert(pool.provider().clone(), pool);
            }
            RefresherMsg::TimerFired { key, generation } => {
                let current = state
                    .timers
                    .get(&key)
                    .is_some_and(|timer| timer.generation == generation);
                if current {
                    state.timers.remove(&key);
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

    fn attach(&self, pool: PoolHandle) {
        let _ = self.actor.send_message(RefresherMsg::Attach(pool));
    }
}

#[cfg(test)]
mod tests;
