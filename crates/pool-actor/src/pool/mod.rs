//! The `PoolActor`: the one owner of a provider's entries.
//!
//! Its state is [`PoolState`], split into rooms by job:
//! - `startup` — loading the provider from the store and resuming interrupted refreshes;
//! - `select` — leases, exhaustion (typed causes) and strict-cap waiters;
//! - `report` — what a reported outcome does to an entry (cooldown policy, auth failures);
//! - `refresh` — refresh coordination: durable markers, one refresh per entry, its join;
//! - `outcome` — what a refresh's result does to its entry;
//! - `commit` — [`PoolState::install`], the one step every change of an entry goes through,
//!   and the write-behind of counters;
//! - `admin` — the admin operations;
//! - `slot` — an entry and what the pool keeps beside it;
//! - `waiting` — refreshes in flight, unstored rotations and parked `Select`s (data only).
//!
//! **Invariants:**
//! - Only this actor changes its provider's entries, in memory and in the store.
//! - `Select` touches memory only; it may schedule a write-behind, never perform one.
//! - A status or token change is applied to the store and flushed before the message that
//!   caused it is answered; rotated tokens are flushed before any lease carries them. When the
//!   store refuses a change that only restricts use (a cooldown, a death), it is kept in memory
//!   and retried by the write-behind; a token change is never kept unless stored.
//! - At most one refresh per entry is in flight; everyone who waits for it waits on its join.
//! - Deadlines only extend (through [`credpool_core::decide_cooldown`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use credpool_core::{
    Clock, CooldownConfig, EntryId, ProviderId, ProviderSpec, Strategy, StrategyState, Timestamp,
};
use credpool_store::{QuarantinedRecord, Store};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::rngs::SmallRng;
use tokio::task::JoinHandle;

use crate::events::{PoolEvent, Subscribers};
use crate::fast::Shared;
use crate::handle::PoolHandle;
use crate::lease::PoolLink;
use crate::messages::PoolMsg;
use crate::refresh::RefreshSeam;
use crate::view::{EntryIndex, PoolStats};

mod admin;
mod commit;
mod outcome;
mod refresh;
mod report;
mod select;
mod slot;
mod startup;
mod waiting;

use self::slot::Slot;
use self::waiting::{CapWaiter, InFlight, UnstoredRotation};

/// What a pool does when every entry is at its lease cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapMode {
    /// Prefer entries under the cap, otherwise hand out the least-leased one (never blocks).
    Soft,
    /// Wait up to `wait` for a lease to come back, then answer `Exhausted`.
    Strict {
        /// How long a `Select` may wait.
        wait: Duration,
    },
}

/// Settings of one provider's pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The cooldown policy's numbers.
    pub cooldown: CooldownConfig,
    /// The strategy used until an admin sets another (stored then).
    pub strategy: Strategy,
    /// Leases one entry may hold before others are preferred.
    pub max_leases_per_entry: u32,
    /// Soft or strict cap.
    pub cap_mode: CapMode,
    /// How often usage counters and the round-robin cursor are written behind.
    pub write_behind_interval: Duration,
    /// Write behind early once this many entries have unsaved counters.
    pub write_behind_max_dirty: usize,
    /// A token refreshed this recently and still rejected is benched, not refreshed again:
    /// this stops refresh loops.
    pub refresh_loop_guard: Duration,
    /// "no available entries" is logged at most once per this interval.
    pub exhausted_log_interval: Duration,
    /// Timeout of handle calls other than `select`.
    pub call_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            cooldown: CooldownConfig::default(),
            strategy: Strategy::FillFirst,
            max_leases_per_entry: 1,
            cap_mode: CapMode::Soft,
            write_behind_interval: Duration::from_millis(250),
            write_behind_max_dirty: 1000,
            refresh_loop_guard: Duration::from_secs(30),
            exhausted_log_interval: Duration::from_secs(60),
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// What a pool actor starts from.
pub(crate) struct PoolArgs {
    pub(crate) provider: ProviderId,
    pub(crate) spec: ProviderSpec,
    pub(crate) config: PoolConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) refresher: Arc<dyn RefreshSeam>,
    /// Published snapshot, lease ids and the current entry, shared with the handles.
    pub(crate) shared: Arc<Shared>,
}

/// The actor; its state is [`PoolState`].
pub(crate) struct PoolActor;

/// The state of a pool actor.
pub(crate) struct PoolState {
    provider: ProviderId,
    spec: ProviderSpec,
    config: PoolConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    refresher: Arc<dyn RefreshSeam>,
    myself: ActorRef<PoolMsg>,
    /// Entries in priority order (priority, then id).
    slots: Vec<Slot>,
    index: EntryIndex,
    strategy: Strategy,
    strategy_state: StrategyState,
    /// Shared with the handles: the fast path's snapshot, lease ids, the current entry.
    shared: Arc<Shared>,
    /// Shared with every lease: where a returned lease reports.
    link: Arc<PoolLink>,
    /// Something `Select` depends on changed since the last published snapshot.
    snapshot_stale: bool,
    /// Snapshots published so far (to tell whether a step published one).
    publishes: u64,
    refreshing: HashMap<EntryId, InFlight>,
    /// Rotated pairs the store refused: never handed out; the write-behind retries their
    /// commit (their durable markers stay until it succeeds).
    unstored_rotations: HashMap<EntryId, UnstoredRotation>,
    /// Entries whose counters (or kept, unstored restrictions) changed since the last
    /// write-behind.
    dirty: HashSet<EntryId>,
    /// A restriction the store refused is among the dirty entries: the write-behind that
    /// stores it also flushes, so it is durable as soon as the store takes writes again.
    restriction_unflushed: bool,
    provider_state_dirty: bool,
    write_behind_scheduled: bool,
    cap_waiters: VecDeque<CapWaiter>,
    next_waiter_id: u64,
    subscribers: Subscribers,
    stats: PoolStats,
    last_exhausted_log: Option<Timestamp>,
    quarantined: Vec<QuarantinedRecord>,
    rng: SmallRng,
    write_behind_timer: Option<JoinHandle<()>>,
}

impl Actor for PoolActor {
    type Msg = PoolMsg;
    type State = PoolState;
    type Arguments = PoolArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PoolMsg>,
        args: PoolArgs,
    ) -> Result<PoolState, ActorProcessingErr> {
        PoolState::start(myself, args).await
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<PoolMsg>,
        state: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        // Durability never depends on this running; it only saves the last counters early.
        if let Some(timer) = state.write_behind_timer.take() {
            timer.abort();
        }
        let _ = state.write_behind(true).await;
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<PoolMsg>,
        message: PoolMsg,
        state: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        // The hot messages are answered inline; the rest run in a boxed future so that this
        // one stays small (ractor moves it on every message).
        match message {
            PoolMsg::Select { model, reply } => state.answer_select(model, reply),
            // The lease already gave its count back; only strict-cap waiters need serving.
            PoolMsg::Release => state.serve_cap_waiters(),
            other => Box::pin(state.handle_other(other)).await?,
        }
        if state.snapshot_stale {
            state.publish_snapshot();
        }
        Ok(())
    }
}

impl PoolState {
    async fn handle_other(&mut self, message: PoolMsg) -> Result<(), ActorProcessingErr> {
        if message_shows_usage(&message) {
            self.fold_fast_usage();
        }
        match message {
            PoolMsg::Select { .. } | PoolMsg::Release => {}
            PoolMsg::Current { reply } => {
                let now = self.clock.now();
                let view = self
                    .shared
                    .current()
                    .and_then(|id| self.index.get(&id).copied())
                    .map(|i| self.view(i, now));
                let _ = reply.send(Ok(view));
            }
            PoolMsg::TryRefreshCurrent { reply } => self.try_refresh_current(reply).await,
            PoolMsg::ReportAuthFailure {
                ticket,
                failure,
                model,
                claim,
                reply,
            } => {
                self.report_auth_failure(ticket, failure, model, claim, reply)
                    .await;
            }
            PoolMsg::ReportOutcome {
                ticket,
                outcome,
                model,
                reply,
            } => {
                let result = self.report_outcome(ticket, outcome, model.as_deref()).await;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            PoolMsg::RefreshFinished {
                entry,
                generation,
                result,
            } => self.finish_refresh(entry, generation, result).await,
            PoolMsg::RefreshDue { entry, generation } => {
                self.refresh_due(entry, generation).await;
            }
            PoolMsg::WaiterTimeout { waiter } => self.expire_waiter(waiter),
            PoolMsg::WriteBehind => {
                self.write_behind_scheduled = false;
                if let Err(error) = self.write_behind(false).await {
                    tracing::error!(provider = %self.provider, %error, "write-behind failed");
                }
            }
            PoolMsg::Admin(request) => self.handle_admin(request).await,
            PoolMsg::Subscribe(subscription) => self.subscribers.subscribe(subscription),
            PoolMsg::Flush { reply } => {
                let result = self.write_behind(true).await;
                let _ = reply.send(result);
            }
            PoolMsg::Crash => return Err("crash requested".into()),
        }
        Ok(())
    }

    fn handle(&self) -> PoolHandle {
        PoolHandle::new(
            self.provider.clone(),
            self.myself.clone(),
            Arc::clone(&self.shared),
            self.config.call_timeout,
        )
    }

    /// Records an event (history and subscribers), stamped with the pool's clock.
    fn publish(&mut self, event: PoolEvent) {
        let now = self.clock.now();
        self.subscribers.publish(event, now);
    }
}

/// Messages whose answers or effects show usage counters (the fast path's are folded first).
fn message_shows_usage(message: &PoolMsg) -> bool {
    matches!(
        message,
        PoolMsg::Current { .. } | PoolMsg::Admin(_) | PoolMsg::Flush { .. }
    )
}
