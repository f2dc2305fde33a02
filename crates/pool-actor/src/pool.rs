//! The `PoolActor`: the one owner of a provider's entries.
//!
//! **Invariants:**
//! - Only this actor changes its provider's entries, in memory and in the store.
//! - `Select` touches memory only; it may schedule a write-behind, never perform one.
//! - A status or token change is applied to the store and flushed before the message that
//!   caused it is answered; rotated tokens are flushed before any lease carries them.
//! - At most one refresh per entry is in flight; later requests join it as waiters.
//! - Deadlines only extend (through [`credpool_core::decide_cooldown`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use credpool_core::strategy::{self, LeaseCap};
use credpool_core::{
    Candidate, Classification, Clock, CooldownConfig, CooldownDecision, DeadReason, Entry, EntryId,
    EntryKind, FailureKind, Generation, Outcome, PoolShape, ProviderId, ProviderSpec, Status,
    Strategy, StrategyState, Timestamp, decide_cooldown,
};
use credpool_store::{Change, ProviderState, QuarantinedRecord, RefreshMarker, Store, StoreError};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

use crate::error::PoolError;
use crate::events::{PoolEvent, Subscribers};
use crate::fast::{
    Counters, FastEntry, FastSnapshot, RefreshJoin, Refreshed, Shared, spawn_refresh_watchdog,
};
use crate::handle::PoolHandle;
use crate::lease::{Grant, LeaseTicket, Leased, PoolLink};
use crate::messages::{AuthAnswer, NewEntry, PoolMsg, Reply, Target};
use crate::refresh::{
    RefreshCallback, RefreshFailure, RefreshRequest, RefreshResult, RefreshSeam, TrackUpdate,
};
use crate::view::{EntryIndex, EntryView, PoolSnapshot, PoolStats};

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

/// One entry and what the pool keeps beside it.
struct Slot {
    entry: Entry,
    /// What leases of the current credential carry, built once per change so that a grant
    /// does not allocate; its counters (leases, fast usage) survive [`Slot::replace`].
    leased: Arc<Leased>,
}

impl Slot {
    fn new(entry: Entry, link: &Arc<PoolLink>) -> Self {
        Slot::with_counters(entry, Arc::default(), Arc::clone(link))
    }

    fn with_counters(entry: Entry, counters: Arc<Counters>, link: Arc<PoolLink>) -> Self {
        let leased = Arc::new(Leased {
            id: entry.id,
            generation: entry.generation,
            label: Arc::from(entry.label.as_str()),
            secret: entry.request_secret().clone(),
            base_url: entry.base_url.as_deref().map(Arc::from),
            kind: entry.credential_kind(),
            counters,
            link,
        });
        Slot { entry, leased }
    }

    fn counters(&self) -> &Counters {
        &self.leased.counters
    }

    fn replace(&mut self, entry: Entry) {
        let counters = Arc::clone(&self.leased.counters);
        let link = Arc::clone(&self.leased.link);
        *self = Slot::with_counters(entry, counters, link);
    }
}

/// Where a refresh waiter's lease goes: a `Select` or `TryRefreshCurrent` caller, or a
/// `ReportAuthFailure` caller.
enum WaiterReply {
    Grant(Reply<Grant>),
    Auth(Reply<AuthAnswer>),
}

impl WaiterReply {
    /// Sends the answer; gives the grant back when the caller went away.
    fn send(self, answer: Result<Grant, PoolError>) -> Option<Grant> {
        match self {
            WaiterReply::Grant(reply) => match reply.send(answer) {
                Err(ractor::MessagingErr::SendErr(Ok(grant))) => Some(grant),
                _ => None,
            },
            WaiterReply::Auth(reply) => match reply.send(answer.map(AuthAnswer::Lease)) {
                Err(ractor::MessagingErr::SendErr(Ok(AuthAnswer::Lease(grant)))) => Some(grant),
                _ => None,
            },
        }
    }
}

/// Someone waiting for a refresh of an entry to finish.
struct RefreshWaiter {
    reply: WaiterReply,
    model: Option<String>,
}

struct InFlight {
    generation: Generation,
    after_interruption: bool,
    waiters: Vec<RefreshWaiter>,
    /// What auth-failure callers join (through the snapshot, or by message) and wait on:
    /// settled (at the latest when this is dropped) once the published snapshot no longer
    /// offers it, so the actor wakes thousands of them with one call instead of one grant
    /// each, and they lease the rotated entry from it themselves.
    join: Arc<RefreshJoin>,
    /// Claims of other callers chained to this refresh (settled with it).
    chained: Vec<Arc<RefreshJoin>>,
    /// Callers that joined by message and wait on `done`.
    joined: u64,
    /// Snapshot joins already counted in the stats.
    joins_counted: u64,
}

impl InFlight {
    /// Whether anyone waits for this refresh's outcome.
    fn has_waiters(&self) -> bool {
        !self.waiters.is_empty() || self.joined > 0 || self.joins() > 0
    }

    /// Callers that joined without a message (through the snapshot or a claim).
    fn joins(&self) -> u64 {
        self.join.joined() + self.chained.iter().map(|join| join.joined()).sum::<u64>()
    }

    /// Whether `claim` is settled with this refresh.
    fn owns(&self, claim: &Arc<RefreshJoin>) -> bool {
        Arc::ptr_eq(&self.join, claim) || self.chained.iter().any(|c| Arc::ptr_eq(c, claim))
    }

    /// Snapshot joins not yet counted in the stats.
    fn take_new_joins(&mut self) -> u64 {
        let joined = self.joins();
        let new = joined.saturating_sub(self.joins_counted);
        self.joins_counted = joined;
        new
    }

    /// Wakes everyone who joined; they lease `outcome` (or ask the actor when `None`).
    /// Only the first call per refresh counts.
    fn settle(&self, outcome: Option<Refreshed>) {
        for chained in &self.chained {
            chained.settle(outcome.clone());
        }
        self.join.settle(outcome);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Whatever ended the refresh (a result, a removed entry, a stopped pool), nobody may
        // be left waiting on it.
        self.settle(None);
    }
}

struct CapWaiter {
    id: u64,
    model: Option<String>,
    reply: Reply<Grant>,
}

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
    /// Entries whose counters changed since the last write-behind.
    dirty: HashSet<EntryId>,
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

fn store_error(error: StoreError) -> PoolError {
    PoolError::Store(error.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, PoolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| PoolError::Store(format!("store task failed: {error}")))?
        .map_err(store_error)
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
        let store = Arc::clone(&args.store);
        let provider = args.provider.clone();
        let mut snapshot = blocking(move || store.load_provider(&provider)).await?;
        let report = snapshot.hydrate();
        for error in &report.errors {
            tracing::warn!(
                provider = %args.provider,
                %error,
                "borrowed secret unavailable; entry skipped until it is"
            );
        }
        let rotated: Vec<Change> = snapshot
            .entries
            .iter()
            .filter(|entry| report.rotated.contains(&entry.id))
            .map(|entry| Change::PutEntry {
                provider: args.provider.clone(),
                entry: entry.clone(),
            })
            .collect();
        if !rotated.is_empty() {
            tracing::info!(provider = %args.provider, entries = rotated.len(), "borrowed secrets changed at their source; adopted");
            let store = Arc::clone(&args.store);
            blocking(move || {
                store.apply(&rotated)?;
                store.flush()
            })
            .await?;
        }
        let entries = std::mem::take(&mut snapshot.entries);
        for record in &snapshot.quarantined {
            tracing::error!(
                provider = %args.provider,
                key = %record.key,
                error = %record.error,
                "stored record quarantined: it could not be decoded"
            );
        }
        let (strategy, cursor) = snapshot.state.map_or((args.config.strategy, 0), |s| {
            (s.strategy, s.round_robin_cursor)
        });
        let mut state = PoolState {
            link: Arc::new(PoolLink::new(args.provider.clone(), myself.clone())),
            provider: args.provider,
            spec: args.spec,
            config: args.config,
            store: args.store,
            clock: args.clock,
            refresher: args.refresher,
            myself: myself.clone(),
            slots: Vec::new(),
            index: HashMap::new(),
            strategy,
            strategy_state: StrategyState {
                round_robin_cursor: cursor,
            },
            shared: args.shared,
            snapshot_stale: true,
            publishes: 0,
            refreshing: HashMap::new(),
            dirty: HashSet::new(),
            provider_state_dirty: false,
            write_behind_scheduled: false,
            cap_waiters: VecDeque::new(),
            next_waiter_id: 1,
            subscribers: Subscribers::default(),
            stats: PoolStats::default(),
            last_exhausted_log: None,
            quarantined: snapshot.quarantined,
            rng: SmallRng::from_os_rng(),
            write_behind_timer: None,
        };
        let link = Arc::clone(&state.link);
        state.slots = entries
            .into_iter()
            .map(|entry| Slot::new(entry, &link))
            .collect();
        state.sort_slots();
        state.stats.provider = Some(state.provider.clone());
        let period = state.config.write_behind_interval;
        state.write_behind_timer = Some(myself.send_interval(period, || PoolMsg::WriteBehind));
        state.refresher.attach(state.handle());
        for slot in &state.slots {
            state
                .refresher
                .track(track_update(&state.provider, &slot.entry));
        }
        tracing::info!(
            provider = %state.provider,
            entries = state.slots.len(),
            quarantined = state.quarantined.len(),
            "pool started"
        );
        // Refreshes interrupted by a crash, and grants that have no access token yet.
        let mut resume = Vec::new();
        for marker in snapshot.markers {
            match state.index.get(&marker.entry) {
                Some(&i) if state.slots[i].entry.generation == marker.generation => {
                    resume.push((marker.entry, true));
                }
                _ => {
                    let provider = state.provider.clone();
                    let entry = marker.entry;
                    let store = Arc::clone(&state.store);
                    blocking(move || {
                        store.apply(&[Change::ClearMarker { provider, entry }])?;
                        store.flush()
                    })
                    .await?;
                }
            }
        }
        for slot in &state.slots {
            if needs_first_token(&slot.entry) && !resume.iter().any(|(id, _)| *id == slot.entry.id)
            {
                resume.push((slot.entry.id, false));
            }
        }
        for (entry, after_interruption) in resume {
            if after_interruption {
                tracing::warn!(
                    provider = %state.provider,
                    entry = %entry,
                    "a refresh was interrupted by a crash; retrying it once with the stored refresh token"
                );
            }
            state
                .start_refresh(entry, None, after_interruption, None)
                .await;
        }
        state.publish_snapshot();
        Ok(state)
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
            PoolMsg::Select { model, reply } => match state.select(model.as_deref()) {
                Ok(grant) => {
                    let _ = reply.send(Ok(grant));
                }
                Err(error) => state.wait_or_refuse(model, reply, error),
            },
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
        let state = self;
        if message_shows_usage(&message) {
            state.fold_fast_usage();
        }
        match message {
            PoolMsg::Select { .. } | PoolMsg::Release => {}
            PoolMsg::Current { reply } => {
                let now = state.clock.now();
                let view = state
                    .shared
                    .current()
                    .and_then(|id| state.index.get(&id).copied())
                    .map(|i| state.view(i, now));
                let _ = reply.send(Ok(view));
            }
            PoolMsg::TryRefreshCurrent { reply } => state.try_refresh_current(reply).await,
            PoolMsg::ReportAuthFailure {
                ticket,
                failure,
                model,
                claim,
                reply,
            } => {
                state
                    .report_auth_failure(ticket, failure, model, claim, reply)
                    .await
            }
            PoolMsg::ReportOutcome {
                ticket,
                outcome,
                model,
                reply,
            } => {
                let result = state
                    .report_outcome(ticket, outcome, model.as_deref())
                    .await;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            PoolMsg::RefreshFinished {
                entry,
                generation,
                result,
            } => state.finish_refresh(entry, generation, result).await,
            PoolMsg::RefreshDue { entry, generation } => {
                let due = state
                    .index
                    .get(&entry)
                    .is_some_and(|&i| state.slots[i].entry.generation == generation);
                if due {
                    state.start_refresh(entry, None, false, None).await;
                }
            }
            PoolMsg::WaiterTimeout { waiter } => state.expire_waiter(waiter),
            PoolMsg::WriteBehind => {
                state.write_behind_scheduled = false;
                if let Err(error) = state.write_behind(false).await {
                    tracing::error!(provider = %state.provider, %error, "write-behind failed");
                }
            }
            PoolMsg::Snapshot { reply } => {
                let _ = reply.send(Ok(state.snapshot()));
            }
            PoolMsg::AddEntry { entry, reply } => {
                let result = state.add_entry(entry).await;
                let _ = reply.send(result);
            }
            PoolMsg::RemoveEntry { target, reply } => {
                let result = state.remove_entry(&target).await;
                let _ = reply.send(result);
            }
            PoolMsg::ResetEntry { target, reply } => {
                let result = state.reset_entry(&target).await;
                let _ = reply.send(result);
            }
            PoolMsg::RefreshEntry { target, reply } => {
                let result = state.refresh_entry(&target).await;
                let _ = reply.send(result);
            }
            PoolMsg::MoveEntry {
                target,
                position,
                reply,
            } => {
                let result = state.move_entry(&target, position).await;
                let _ = reply.send(result);
            }
            PoolMsg::SetStrategy { strategy, reply } => {
                let result = state.set_strategy(strategy).await;
                let _ = reply.send(result);
            }
            PoolMsg::Stats { reply } => {
                let _ = reply.send(Ok(state.stats()));
            }
            PoolMsg::Subscribe { capacity, reply } => {
                let stream = state.subscribers.subscribe(capacity);
                let _ = reply.send(stream);
            }
            PoolMsg::Flush { reply } => {
                let result = state.write_behind(true).await;
                let _ = reply.send(result);
            }
            PoolMsg::Crash => return Err("crash requested".into()),
        }
        Ok(())
    }
}

/// Messages whose answers or effects show usage counters (the fast path's are folded first).
fn message_shows_usage(message: &PoolMsg) -> bool {
    matches!(
        message,
        PoolMsg::Current { .. }
            | PoolMsg::Snapshot { .. }
            | PoolMsg::Stats { .. }
            | PoolMsg::AddEntry { .. }
            | PoolMsg::RemoveEntry { .. }
            | PoolMsg::ResetEntry { .. }
            | PoolMsg::RefreshEntry { .. }
            | PoolMsg::MoveEntry { .. }
            | PoolMsg::SetStrategy { .. }
    )
}

fn needs_first_token(entry: &Entry) -> bool {
    !entry.status.is_dead()
        && entry.oauth().is_some_and(|tokens| {
            tokens.access.is_empty() && tokens.refresh.as_ref().is_some_and(|r| !r.is_empty())
        })
}

/// What the fast path sees of a slot. Entries no `Select` can pick until the actor changes
/// them (dead, or without a secret yet) are never ready.
fn fast_entry(slot: &Slot) -> FastEntry {
    let entry = &slot.entry;
    let never = Timestamp(i64::MAX);
    let (status_ready_from, revive_first) = match &entry.status {
        _ if entry.request_secret().is_empty() => (never, false),
        Status::Ok => (Timestamp(i64::MIN), false),
        Status::CoolingDown { until, .. } => (*until, true),
        Status::Dead { .. } => (never, false),
    };
    let ready_from = entry
        .model_cooldowns
        .values()
        .copied()
        .fold(status_ready_from, Timestamp::max);
    FastEntry {
        leased: Arc::clone(&slot.leased),
        ready_from,
        revive_first,
    }
}

fn track_update(provider: &ProviderId, entry: &Entry) -> TrackUpdate {
    let tokens = entry.oauth();
    TrackUpdate {
        provider: provider.clone(),
        entry: entry.id,
        generation: entry.generation,
        expires_at: tokens.and_then(|t| t.expires_at),
        obtained_at: tokens.and_then(|t| t.client.obtained_at),
        forget: tokens.is_none() || entry.status.is_dead(),
    }
}

/// Codes that mean a retried refresh token had already been spent.
fn is_reuse_answer(code: &str) -> bool {
    matches!(
        code,
        "invalid_grant" | "refresh_token_reused" | "token_revoked" | "invalid_token"
    )
}

impl PoolState {
    fn handle(&self) -> PoolHandle {
        PoolHandle::new(
            self.provider.clone(),
            self.myself.clone(),
            Arc::clone(&self.shared),
            self.config.call_timeout,
        )
    }

    fn sort_slots(&mut self) {
        self.slots
            .sort_by_key(|slot| (slot.entry.priority, slot.entry.id));
        self.index = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, slot)| (slot.entry.id, i))
            .collect();
        self.publish_snapshot();
    }

    /// Publishes what the fast path may pick from (see [`crate::fast`]); called after every
    /// change `Select` depends on and before the reply to the message that caused it.
    fn publish_snapshot(&mut self) {
        self.snapshot_stale = false;
        self.publishes = self.publishes.wrapping_add(1);
        let enabled =
            self.strategy == Strategy::FillFirst && matches!(self.config.cap_mode, CapMode::Soft);
        let entries = self.slots.iter().map(fast_entry).collect();
        let refreshing = self
            .refreshing
            .iter()
            .map(|(id, inflight)| (*id, Arc::clone(&inflight.join)))
            .collect();
        self.link
            .set_notify_release(matches!(self.config.cap_mode, CapMode::Strict { .. }));
        self.shared.publish(FastSnapshot {
            enabled,
            max_leases: self.config.max_leases_per_entry.max(1),
            entries,
            refreshing,
        });
    }

    /// Folds the fast path's selections into the entries' usage (marking them for
    /// write-behind) and its count into the stats.
    fn fold_fast_usage(&mut self) {
        let mut touched = Vec::new();
        for slot in &mut self.slots {
            if let Some((count, last_used)) = slot.counters().take_fast_usage() {
                let usage = &mut slot.entry.usage;
                usage.selections += count;
                usage.last_used_at =
                    Some(usage.last_used_at.map_or(last_used, |at| at.max(last_used)));
                touched.push(slot.entry.id);
                self.stats.selections += count;
            }
        }
        self.dirty.extend(touched);
        self.stats.stale_reports += self.shared.take_stale_reports();
        for inflight in self.refreshing.values_mut() {
            self.stats.joined_refreshes += inflight.take_new_joins();
        }
    }

    fn publish(&mut self, event: PoolEvent) {
        if !self.subscribers.is_empty() {
            self.subscribers.publish(&event);
        }
    }

    fn view(&self, i: usize, now: Timestamp) -> EntryView {
        let slot = &self.slots[i];
        EntryView::of(&slot.entry, i, slot.counters().leases(), now)
    }

    // ---------------------------------------------------------------- selection

    fn select(&mut self, model: Option<&str>) -> Result<Grant, PoolError> {
        let now = self.clock.now();
        let cap = LeaseCap {
            max_leases: self.config.max_leases_per_entry.max(1),
            allow_over_cap: matches!(self.config.cap_mode, CapMode::Soft),
        };
        let random = match self.strategy {
            Strategy::Random | Strategy::WeightedRandom => self.rng.random::<u64>(),
            _ => 0,
        };
        let slots = &self.slots;
        let picked = strategy::pick(
            self.strategy,
            slots.len(),
            |i| {
                let slot = &slots[i];
                slot.entry.is_available_at(now, model).then_some(Candidate {
                    uses: slot.entry.usage.selections,
                    leases: slot.counters().leases(),
                    weight: slot.entry.weight,
                })
            },
            cap,
            &mut self.strategy_state,
            random,
        );
        if self.strategy == Strategy::RoundRobin {
            self.provider_state_dirty = true;
        }
        match picked {
            Some(i) => Ok(self.grant(i, now)),
            None => Err(self.exhausted(now, model)),
        }
    }

    fn grant(&mut self, i: usize, now: Timestamp) -> Grant {
        let provider = self.provider.clone();
        let slot = &mut self.slots[i];
        if let Status::CoolingDown { until, .. } = slot.entry.status
            && until <= now
        {
            slot.entry.status = Status::Ok;
            tracing::info!(provider = %provider, entry = %slot.entry.id, "cooldown over; entry back in rotation");
            let entry = slot.entry.id;
            self.snapshot_stale = true;
            self.publish(PoolEvent::Revived { provider, entry });
        }
        let slot = &mut self.slots[i];
        slot.counters().acquire();
        slot.entry.usage.selections += 1;
        slot.entry.usage.last_used_at = Some(now);
        let id = slot.entry.id;
        let grant = Grant {
            ticket: LeaseTicket {
                lease_id: self.shared.next_lease_id(),
                entry: id,
                generation: slot.entry.generation,
            },
            leased: Arc::clone(&slot.leased),
            position: i,
        };
        self.shared.set_current(Some(id));
        self.stats.selections += 1;
        self.last_exhausted_log = None;
        self.mark_dirty(id);
        grant
    }

    fn mark_dirty(&mut self, id: EntryId) {
        self.dirty.insert(id);
        if self.dirty.len() >= self.config.write_behind_max_dirty && !self.write_behind_scheduled {
            self.write_behind_scheduled = true;
            let _ = self.myself.send_message(PoolMsg::WriteBehind);
        }
    }

    fn exhausted(&mut self, now: Timestamp, model: Option<&str>) -> PoolError {
        let mut causes: BTreeMap<String, usize> = BTreeMap::new();
        let mut next_available_at: Option<Timestamp> = None;
        for slot in &self.slots {
            let entry = &slot.entry;
            let cause = match &entry.status {
                Status::Dead { .. } => "dead".to_owned(),
                Status::CoolingDown { until, cause } if *until > now => cause.as_str().to_owned(),
                _ if entry.request_secret().is_empty() => {
                    if self.refreshing.contains_key(&entry.id) {
                        "refreshing".to_owned()
                    } else {
                        "missing_secret".to_owned()
                    }
                }
                _ if !entry.is_available_at(now, model) => "model_cooldown".to_owned(),
                _ => "at_lease_cap".to_owned(),
            };
            *causes.entry(cause).or_default() += 1;
            if let Some(at) = entry.available_again_at(now, model) {
                next_available_at = Some(next_available_at.map_or(at, |n| n.min(at)));
            }
        }
        self.stats.exhausted += 1;
        let log_due = self
            .last_exhausted_log
            .is_none_or(|at| now.since(at) >= self.config.exhausted_log_interval);
        if log_due {
            self.last_exhausted_log = Some(now);
            tracing::info!(
                provider = %self.provider,
                entries = self.slots.len(),
                next_available_at = ?next_available_at,
                "no available entries"
            );
        }
        PoolError::Exhausted {
            provider: self.provider.clone(),
            next_available_at,
            causes,
        }
    }

    /// Parks a `Select` that found nothing when waiting can help (strict cap, or a first token
    /// being fetched); answers the error otherwise.
    fn wait_or_refuse(&mut self, model: Option<String>, reply: Reply<Grant>, error: PoolError) {
        if let PoolError::Exhausted { causes, .. } = &error {
            if causes.contains_key("refreshing")
                && let Some(inflight) = self.refreshing.values_mut().next()
            {
                inflight.waiters.push(RefreshWaiter {
                    reply: WaiterReply::Grant(reply),
                    model,
                });
                return;
            }
            if let CapMode::Strict { wait } = self.config.cap_mode
                && causes.contains_key("at_lease_cap")
            {
                let id = self.next_waiter_id;
                self.next_waiter_id += 1;
                self.cap_waiters.push_back(CapWaiter { id, model, reply });
                self.myself
                    .send_after(wait, move || PoolMsg::WaiterTimeout { waiter: id });
                return;
            }
        }
        let _ = reply.send(Err(error));
    }

    fn expire_waiter(&mut self, waiter: u64) {
        if let Some(position) = self.cap_waiters.iter().position(|w| w.id == waiter)
            && let Some(waiter) = self.cap_waiters.remove(position)
        {
            let now = self.clock.now();
            let error = self.exhausted(now, waiter.model.as_deref());
            let _ = waiter.reply.send(Err(error));
        }
    }

    fn release(&mut self, ticket: LeaseTicket) {
        if let Some(&i) = self.index.get(&ticket.entry) {
            self.slots[i].counters().release();
        }
        self.serve_cap_waiters();
    }

    fn serve_cap_waiters(&mut self) {
        while let Some(waiter) = self.cap_waiters.pop_front() {
            match self.select(waiter.model.as_deref()) {
                Ok(grant) => {
                    if let Err(ractor::MessagingErr::SendErr(Ok(grant))) =
                        waiter.reply.send(Ok(grant))
                    {
                        self.release(grant.ticket);
                    }
                }
                Err(_) => {
                    self.cap_waiters.push_front(waiter);
                    return;
                }
            }
        }
    }

    // ---------------------------------------------------------------- reports

    /// Handles an auth failure; `claim` is what other callers of the same expired token wait
    /// on (see `Shared::claim_refresh`): a refresh it leads to (or joins) settles it, any
    /// other answer releases them at once to ask for a lease themselves.
    async fn report_auth_failure(
        &mut self,
        ticket: LeaseTicket,
        failure: Classification,
        model: Option<String>,
        claim: Option<Arc<RefreshJoin>>,
        reply: Reply<AuthAnswer>,
    ) {
        let claim = claim.filter(|join| !join.is_settled());
        self.answer_auth_failure(ticket, failure, model, claim.as_ref(), reply)
            .await;
        let Some(claim) = claim else {
            return;
        };
        if self
            .refreshing
            .get(&ticket.entry)
            .is_some_and(|inflight| inflight.owns(&claim))
        {
            return;
        }
        if self.snapshot_stale {
            self.publish_snapshot();
        }
        self.shared.drop_claims(ticket.entry, ticket.generation);
        claim.settle(None);
    }

    async fn answer_auth_failure(
        &mut self,
        ticket: LeaseTicket,
        failure: Classification,
        model: Option<String>,
        claim: Option<&Arc<RefreshJoin>>,
        reply: Reply<AuthAnswer>,
    ) {
        self.release(ticket);
        let now = self.clock.now();
        let Some(&i) = self.index.get(&ticket.entry) else {
            // The entry was removed meanwhile: rotate.
            self.stats.rotations += 1;
            let answer = self.select(model.as_deref());
            let _ = reply.send(answer.map(AuthAnswer::Lease));
            return;
        };
        let entry = &self.slots[i].entry;
        if ticket.generation < entry.generation {
            // Someone already rotated this token: hand out the current one, change nothing.
            self.stats.stale_reports += 1;
            tracing::debug!(
                provider = %self.provider,
                entry = %entry.id,
                reported = %ticket.generation,
                current = %entry.generation,
                "auth failure against an older generation; answering with the current token"
            );
            let answer = if entry.is_available_at(now, model.as_deref()) {
                Ok(self.grant(i, now))
            } else {
                self.select(model.as_deref())
            };
            let _ = reply.send(answer.map(AuthAnswer::Lease));
            return;
        }
        if let Some(inflight) = self.refreshing.get_mut(&ticket.entry) {
            self.stats.joined_refreshes += 1;
            if let Some(claim) = claim
                && !inflight.owns(claim)
            {
                inflight.chained.push(Arc::clone(claim));
            }
            if model.is_none() {
                inflight.joined += 1;
                let _ = reply.send(Ok(AuthAnswer::AwaitRefresh {
                    entry: ticket.entry,
                    reported: ticket.generation,
                    position: i,
                    join: Arc::clone(&inflight.join),
                }));
            } else {
                inflight.waiters.push(RefreshWaiter {
                    reply: WaiterReply::Auth(reply),
                    model,
                });
            }
            return;
        }
        let refreshable = entry
            .oauth()
            .is_some_and(|t| t.refresh.as_ref().is_some_and(|r| !r.is_empty()));
        let recently_refreshed = entry
            .last_refresh_at
            .is_some_and(|at| now.since(at) < self.config.refresh_loop_guard && at <= now);
        if failure.kind == FailureKind::AuthExpired && refreshable && !recently_refreshed {
            self.start_refresh(
                ticket.entry,
                Some(RefreshWaiter {
                    reply: WaiterReply::Auth(reply),
                    model,
                }),
                false,
                claim.cloned(),
            )
            .await;
            return;
        }
        let failure = if recently_refreshed && failure.kind == FailureKind::AuthExpired {
            tracing::warn!(
                provider = %self.provider,
                entry = %entry.id,
                "a freshly refreshed token was rejected; benching instead of refreshing again"
            );
            Classification {
                kind: FailureKind::AuthInvalid { terminal: false },
                ..failure
            }
        } else {
            failure
        };
        if let Err(error) = self.apply_failure(i, &failure, model.as_deref(), now).await {
            let _ = reply.send(Err(error));
            return;
        }
        self.stats.rotations += 1;
        let answer = self.select(model.as_deref());
        if let Ok(grant) = &answer {
            let label = self.slots[self.index[&grant.ticket.entry]]
                .entry
                .label
                .clone();
            tracing::info!(provider = %self.provider, entry = %grant.ticket.entry, label = %label, "rotated");
        }
        let _ = reply.send(answer.map(AuthAnswer::Lease));
    }

    async fn report_outcome(
        &mut self,
        ticket: LeaseTicket,
        outcome: Outcome,
        model: Option<&str>,
    ) -> Result<(), PoolError> {
        self.release(ticket);
        let Some(&i) = self.index.get(&ticket.entry) else {
            return Ok(());
        };
        let now = self.clock.now();
        match outcome {
            Outcome::Success => {
                self.slots[i].entry.usage.successes += 1;
                self.mark_dirty(ticket.entry);
                Ok(())
            }
            Outcome::Failure(failure) => {
                self.slots[i].entry.usage.failures += 1;
                self.mark_dirty(ticket.entry);
                if ticket.generation < self.slots[i].entry.generation {
                    self.stats.stale_reports += 1;
                    return Ok(());
                }
                if matches!(failure.kind, FailureKind::Transient { .. }) {
                    return Ok(());
                }
                self.apply_failure(i, &failure, model, now).await
            }
        }
    }

    /// Applies the cooldown policy to an entry and every sibling holding the same secret,
    /// and makes the change durable.
    async fn apply_failure(
        &mut self,
        i: usize,
        failure: &Classification,
        model: Option<&str>,
        now: Timestamp,
    ) -> Result<(), PoolError> {
        let live_entries = self
            .slots
            .iter()
            .filter(|slot| !slot.entry.status.is_dead())
            .count();
        let shape = PoolShape { live_entries };
        let model_scoped = matches!(
            failure.kind,
            FailureKind::ModelEntitlement
                | FailureKind::RateLimited {
                    scope: credpool_core::RateLimitScope::Model
                }
        );
        let entry = &self.slots[i].entry;
        let existing = match (model, &entry.status) {
            (Some(model), _) if model_scoped => entry.model_cooldowns.get(model).copied(),
            (_, Status::CoolingDown { until, .. }) => Some(*until),
            _ => None,
        };
        let decision = decide_cooldown(failure, shape, existing, model, now, &self.config.cooldown);
        if decision == CooldownDecision::Keep {
            return Ok(());
        }
        let secret = self.slots[i].entry.request_secret().clone();
        let targets: Vec<usize> = (0..self.slots.len())
            .filter(|&j| {
                j == i
                    || (!secret.is_empty()
                        && self.slots[j].entry.request_secret().same_value(&secret))
            })
            .collect();
        let last_error = credpool_core::entry::LastError {
            kind: failure.kind.name().to_owned(),
            status: failure.status,
            reason: failure.reason.clone(),
            message: failure.message.clone(),
            at: now,
        };
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for &j in &targets {
            let mut entry = self.slots[j].entry.clone();
            entry.last_error = Some(last_error.clone());
            match &decision {
                CooldownDecision::Keep => {}
                CooldownDecision::CoolDown { until, cause } => {
                    if entry.status.is_dead() {
                        continue;
                    }
                    let until = match entry.status {
                        Status::CoolingDown { until: old, .. } => old.max(*until),
                        _ => *until,
                    };
                    entry.status = Status::CoolingDown {
                        until,
                        cause: *cause,
                    };
                    self.stats
                        .cooldowns
                        .entry(cause.as_str().to_owned())
                        .and_modify(|n| *n += 1)
                        .or_insert(1);
                    tracing::info!(
                        provider = %self.provider,
                        entry = %entry.id,
                        label = %entry.label,
                        cause = cause.as_str(),
                        status = ?failure.status,
                        reason = ?failure.reason,
                        until = %until,
                        "entry cooling down"
                    );
                    events.push(PoolEvent::CooledDown {
                        provider: self.provider.clone(),
                        entry: entry.id,
                        until,
                        cause: *cause,
                        model: None,
                    });
                }
                CooldownDecision::CoolDownModel { model, until } => {
                    let slot_until = entry
                        .model_cooldowns
                        .get(model)
                        .map_or(*until, |old| (*old).max(*until));
                    entry.model_cooldowns.insert(model.clone(), slot_until);
                    tracing::info!(
                        provider = %self.provider,
                        entry = %entry.id,
                        model = %model,
                        until = %slot_until,
                        "entry benched for one model"
                    );
                    events.push(PoolEvent::CooledDown {
                        provider: self.provider.clone(),
                        entry: entry.id,
                        until: slot_until,
                        cause: credpool_core::CooldownCause::RateLimited,
                        model: Some(model.clone()),
                    });
                }
                CooldownDecision::Dead { reason } => {
                    if entry.status.is_dead() {
                        continue;
                    }
                    entry.status = Status::Dead {
                        reason: reason.clone(),
                        since: now,
                    };
                    tracing::warn!(
                        provider = %self.provider,
                        entry = %entry.id,
                        label = %entry.label,
                        reason = reason.as_str(),
                        "entry is dead and will not be used again until it is re-authorised or reset"
                    );
                    events.push(PoolEvent::Dead {
                        provider: self.provider.clone(),
                        entry: entry.id,
                        reason: reason.as_str().to_owned(),
                    });
                }
            }
            changes.push(entry);
        }
        self.commit_entries(changes).await?;
        for event in events {
            self.publish(event);
        }
        Ok(())
    }

    /// Writes entries through (apply + flush), then installs them in memory.
    async fn commit_entries(&mut self, entries: Vec<Entry>) -> Result<(), PoolError> {
        if entries.is_empty() {
            return Ok(());
        }
        let batch: Vec<Change> = entries
            .iter()
            .map(|entry| Change::PutEntry {
                provider: self.provider.clone(),
                entry: entry.clone(),
            })
            .collect();
        self.persist(batch).await?;
        for entry in entries {
            self.dirty.remove(&entry.id);
            let update = track_update(&self.provider, &entry);
            if let Some(&i) = self.index.get(&entry.id) {
                self.slots[i].replace(entry);
            }
            self.refresher.track(update);
        }
        self.publish_snapshot();
        Ok(())
    }

    async fn persist(&self, changes: Vec<Change>) -> Result<(), PoolError> {
        let store = Arc::clone(&self.store);
        blocking(move || {
            store.apply(&changes)?;
            store.flush()
        })
        .await
    }

    // ---------------------------------------------------------------- refresh

    async fn try_refresh_current(&mut self, reply: Reply<Grant>) {
        let target = self
            .shared
            .current()
            .filter(|id| self.index.contains_key(id))
            .or_else(|| {
                self.slots
                    .iter()
                    .find(|s| s.entry.oauth().is_some() && !s.entry.status.is_dead())
                    .map(|s| s.entry.id)
            });
        match target {
            Some(entry) if !self.refreshable(entry) => {
                let _ = reply.send(Err(PoolError::Invalid(format!(
                    "entry {entry} has no refresh token"
                ))));
            }
            Some(entry) => {
                self.start_refresh(
                    entry,
                    Some(RefreshWaiter {
                        reply: WaiterReply::Grant(reply),
                        model: None,
                    }),
                    false,
                    None,
                )
                .await;
            }
            None => {
                let _ = reply.send(Err(PoolError::Invalid(
                    "no current entry to refresh".to_owned(),
                )));
            }
        }
    }

    fn refreshable(&self, entry: EntryId) -> bool {
        self.index.get(&entry).is_some_and(|&i| {
            let entry = &self.slots[i].entry;
            !entry.status.is_dead()
                && entry
                    .oauth()
                    .is_some_and(|t| t.refresh.as_ref().is_some_and(|r| !r.is_empty()))
        })
    }

    /// Starts a refresh of `entry` or joins the one in flight. The in-flight marker is made
    /// durable before the refresh token leaves.
    /// `claim` becomes the refresh's join (callers already wait on it).
    async fn start_refresh(
        &mut self,
        entry: EntryId,
        waiter: Option<RefreshWaiter>,
        after_interruption: bool,
        claim: Option<Arc<RefreshJoin>>,
    ) {
        if let Some(inflight) = self.refreshing.get_mut(&entry) {
            if let Some(waiter) = waiter {
                self.stats.joined_refreshes += 1;
                inflight.waiters.push(waiter);
            }
            return;
        }
        let Some(&i) = self.index.get(&entry) else {
            if let Some(waiter) = waiter {
                let _ = waiter
                    .reply
                    .send(Err(PoolError::NoSuchEntry(entry.to_string())));
            }
            return;
        };
        let current = &self.slots[i].entry;
        let Some(tokens) = current.oauth().filter(|_| !current.status.is_dead()) else {
            if let Some(waiter) = waiter {
                let answer = self.select(waiter.model.as_deref());
                let _ = waiter.reply.send(answer);
            }
            return;
        };
        let Some(refresh_token) = tokens.refresh.clone().filter(|r| !r.is_empty()) else {
            if let Some(waiter) = waiter {
                let answer = self.select(waiter.model.as_deref());
                let _ = waiter.reply.send(answer);
            }
            return;
        };
        let generation = current.generation;
        let client = tokens.client.clone();
        let marker = RefreshMarker {
            provider: self.provider.clone(),
            entry,
            generation,
            refresh_fingerprint: refresh_token.fingerprint(),
            started_at: self.clock.now(),
        };
        if let Err(error) = self.persist(vec![Change::PutMarker(marker)]).await {
            tracing::error!(
                provider = %self.provider,
                entry = %entry,
                %error,
                "could not record the refresh marker; refresh not started"
            );
            if let Some(waiter) = waiter {
                let _ = waiter.reply.send(Err(error));
            }
            return;
        }
        self.stats.refreshes_started += 1;
        // One timer per refresh bounds every joined caller's wait (see `RefreshJoin::wait`);
        // a claim got its own when it was made.
        let join = match claim.filter(|claim| claim.generation == generation) {
            Some(claim) => claim,
            None => {
                let join = Arc::new(RefreshJoin::new(generation));
                spawn_refresh_watchdog(Arc::clone(&join), self.config.call_timeout / 2);
                join
            }
        };
        self.refreshing.insert(
            entry,
            InFlight {
                generation,
                after_interruption,
                waiters: waiter.into_iter().collect(),
                join,
                chained: Vec::new(),
                joined: 0,
                joins_counted: 0,
            },
        );
        // Later reports join through the snapshot, without a message.
        self.snapshot_stale = true;
        let myself = self.myself.clone();
        let request = RefreshRequest {
            provider: self.provider.clone(),
            entry,
            generation,
            refresh_token,
            client,
            after_interruption,
        };
        tracing::debug!(provider = %self.provider, entry = %entry, %generation, "refresh started");
        self.refresher.refresh(
            request,
            RefreshCallback::new(move |result| {
                let _ = myself.send_message(PoolMsg::RefreshFinished {
                    entry,
                    generation,
                    result,
                });
            }),
        );
    }

    async fn finish_refresh(
        &mut self,
        entry: EntryId,
        generation: Generation,
        result: RefreshResult,
    ) {
        if self
            .refreshing
            .get(&entry)
            .is_none_or(|inflight| inflight.generation != generation)
        {
            return;
        }
        let Some(mut inflight) = self.refreshing.remove(&entry) else {
            return;
        };
        self.stats.joined_refreshes += inflight.take_new_joins();
        let published = self.publishes;
        self.apply_refresh_result(entry, &mut inflight, result)
            .await;
        // Joined callers look at the snapshot once woken: it must no longer offer this
        // refresh (nor, after a rotation, the old token) before they are.
        if self.publishes == published {
            self.publish_snapshot();
        }
        self.shared.drop_claims(entry, generation);
        inflight.settle(None);
    }

    /// Commits what a refresh returned and answers its message waiters; `finish_refresh`
    /// wakes the joined callers.
    async fn apply_refresh_result(
        &mut self,
        entry: EntryId,
        inflight: &mut InFlight,
        result: RefreshResult,
    ) {
        let waiters = std::mem::take(&mut inflight.waiters);
        let now = self.clock.now();
        let clear_marker = Change::ClearMarker {
            provider: self.provider.clone(),
            entry,
        };
        let Some(&i) = self.index.get(&entry) else {
            let _ = self.persist(vec![clear_marker]).await;
            self.rotate_waiters(waiters);
            return;
        };
        match result {
            RefreshResult::Rotated {
                access,
                refresh,
                expires_at,
            } => {
                let mut updated = self.slots[i].entry.clone();
                updated.replace_tokens(access, refresh, expires_at, now);
                let was_benched = !updated.status.is_available_at(now);
                if matches!(updated.status, Status::CoolingDown { .. }) {
                    updated.status = Status::Ok;
                }
                let batch = vec![
                    Change::PutEntry {
                        provider: self.provider.clone(),
                        entry: updated.clone(),
                    },
                    clear_marker,
                ];
                match self.persist(batch).await {
                    Ok(()) => {
                        let new_generation = updated.generation;
                        self.dirty.remove(&entry);
                        self.slots[i].replace(updated);
                        self.publish_snapshot();
                        self.stats.refreshes_succeeded += 1;
                        tracing::info!(provider = %self.provider, entry = %entry, generation = %new_generation, "tokens rotated and stored");
                        self.refresher
                            .track(track_update(&self.provider, &self.slots[i].entry));
                        self.publish(PoolEvent::Refreshed {
                            provider: self.provider.clone(),
                            entry,
                            generation: new_generation,
                        });
                        if was_benched {
                            self.publish(PoolEvent::Revived {
                                provider: self.provider.clone(),
                                entry,
                            });
                        }
                        // The snapshot with the new token is published: wake the joiners.
                        let slot = &self.slots[i];
                        inflight.settle(slot.entry.is_available_at(now, None).then(|| Refreshed {
                            leased: Arc::clone(&slot.leased),
                            position: i,
                            at: now,
                        }));
                        for waiter in waiters {
                            let answer = if self.slots[i]
                                .entry
                                .is_available_at(now, waiter.model.as_deref())
                            {
                                Ok(self.grant(i, now))
                            } else {
                                self.select(waiter.model.as_deref())
                            };
                            self.send_grant(waiter.reply, answer);
                        }
                        self.serve_cap_waiters();
                    }
                    Err(error) => {
                        // The new pair was never handed out and cannot be: the old refresh
                        // token is spent at the provider and the new one is not stored.
                        self.stats.refreshes_failed += 1;
                        tracing::error!(
                            provider = %self.provider,
                            entry = %entry,
                            %error,
                            "rotated tokens could not be stored; the entry is dead (credential_persist_failed) and the new tokens were discarded"
                        );
                        self.kill_in_memory(i, DeadReason::CREDENTIAL_PERSIST_FAILED, now);
                        self.rotate_waiters(waiters);
                    }
                }
            }
            RefreshResult::Failed(RefreshFailure::Terminal { code }) => {
                self.stats.refreshes_failed += 1;
                let reason = if inflight.after_interruption && is_reuse_answer(&code) {
                    DeadReason::REFRESH_INTERRUPTED.to_owned()
                } else {
                    code.clone()
                };
                let label = self.slots[i].entry.label.clone();
                tracing::warn!(
                    provider = %self.provider,
                    entry = %entry,
                    label = %label,
                    code = %code,
                    reason = %reason,
                    "refresh token rejected; sign in again and add the grant with `credpool admin add`"
                );
                let mut updated = self.slots[i].entry.clone();
                updated.status = Status::Dead {
                    reason: DeadReason::new(reason.clone()),
                    since: now,
                };
                let batch = vec![
                    Change::PutEntry {
                        provider: self.provider.clone(),
                        entry: updated.clone(),
                    },
                    clear_marker,
                ];
                if let Err(error) = self.persist(batch).await {
                    tracing::error!(provider = %self.provider, entry = %entry, %error, "could not store the dead status");
                }
                self.slots[i].replace(updated);
                self.publish_snapshot();
                self.refresher
                    .track(track_update(&self.provider, &self.slots[i].entry));
                self.publish(PoolEvent::RefreshFailed {
                    provider: self.provider.clone(),
                    entry,
                    reason: code,
                });
                self.publish(PoolEvent::Dead {
                    provider: self.provider.clone(),
                    entry,
                    reason,
                });
                self.rotate_waiters(waiters);
            }
            RefreshResult::Failed(RefreshFailure::Transient {
                reason,
                retry_after,
            }) => {
                self.stats.refreshes_failed += 1;
                tracing::warn!(provider = %self.provider, entry = %entry, reason = %reason, "refresh failed; will retry");
                let _ = self.persist(vec![clear_marker]).await;
                self.publish(PoolEvent::RefreshFailed {
                    provider: self.provider.clone(),
                    entry,
                    reason,
                });
                let still_valid = self.slots[i].entry.oauth().is_some_and(|t| {
                    !t.access.is_empty() && t.expires_at.is_some_and(|at| at > now)
                });
                if still_valid && waiters.is_empty() && !inflight.has_waiters() {
                    // A proactive refresh failed: keep serving the valid token.
                    return;
                }
                let wait = retry_after
                    .unwrap_or(self.config.cooldown.refresh_failed)
                    .max(self.config.cooldown.refresh_failed)
                    .min(self.config.cooldown.reset_ceiling);
                let mut updated = self.slots[i].entry.clone();
                let until = match updated.status {
                    Status::CoolingDown { until, .. } => until.max(now.plus(wait)),
                    _ => now.plus(wait),
                };
                updated.status = Status::CoolingDown {
                    until,
                    cause: credpool_core::CooldownCause::RefreshFailed,
                };
                if let Err(error) = self.commit_entries(vec![updated]).await {
                    tracing::error!(provider = %self.provider, entry = %entry, %error, "could not store the cooldown");
                }
                self.publish(PoolEvent::CooledDown {
                    provider: self.provider.clone(),
                    entry,
                    until,
                    cause: credpool_core::CooldownCause::RefreshFailed,
                    model: None,
                });
                self.rotate_waiters(waiters);
            }
        }
    }

    fn kill_in_memory(&mut self, i: usize, reason: &str, now: Timestamp) {
        let entry = &mut self.slots[i].entry;
        entry.status = Status::Dead {
            reason: DeadReason::new(reason),
            since: now,
        };
        let id = entry.id;
        let update = track_update(&self.provider, entry);
        self.publish_snapshot();
        self.refresher.track(update);
        self.publish(PoolEvent::Dead {
            provider: self.provider.clone(),
            entry: id,
            reason: reason.to_owned(),
        });
    }

    fn rotate_waiters(&mut self, waiters: Vec<RefreshWaiter>) {
        for waiter in waiters {
            self.stats.rotations += 1;
            let answer = self.select(waiter.model.as_deref());
            self.send_grant(waiter.reply, answer);
        }
    }

    fn send_grant(&mut self, reply: WaiterReply, answer: Result<Grant, PoolError>) {
        if let Some(grant) = reply.send(answer) {
            // The caller went away: return the lease it would have held.
            self.release(grant.ticket);
        }
    }

    // ---------------------------------------------------------------- write-behind

    async fn write_behind(&mut self, flush: bool) -> Result<(), PoolError> {
        self.fold_fast_usage();
        let mut batch: Vec<Change> = self
            .dirty
            .drain()
            .filter_map(|id| self.index.get(&id).copied())
            .map(|i| Change::PutEntry {
                provider: self.provider.clone(),
                entry: self.slots[i].entry.clone(),
            })
            .collect();
        if self.provider_state_dirty {
            self.provider_state_dirty = false;
            batch.push(Change::PutProviderState {
                provider: self.provider.clone(),
                state: ProviderState {
                    strategy: self.strategy,
                    round_robin_cursor: self.strategy_state.round_robin_cursor,
                },
            });
        }
        if batch.is_empty() && !flush {
            return Ok(());
        }
        let store = Arc::clone(&self.store);
        blocking(move || {
            if !batch.is_empty() {
                store.apply(&batch)?;
            }
            if flush {
                store.flush()?;
            }
            Ok(())
        })
        .await
    }

    // ---------------------------------------------------------------- admin

    fn resolve(&self, target: &Target) -> Result<usize, PoolError> {
        let text = target.0.trim();
        if text.is_empty() {
            return Err(PoolError::Invalid("no entry target given".to_owned()));
        }
        if let Ok(id) = text.parse::<EntryId>()
            && let Some(&i) = self.index.get(&id)
        {
            return Ok(i);
        }
        let by_label: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.entry.label.eq_ignore_ascii_case(text))
            .map(|(i, _)| i)
            .collect();
        match by_label.as_slice() {
            [i] => return Ok(*i),
            [] => {}
            _ => return Err(PoolError::AmbiguousTarget(text.to_owned())),
        }
        if let Ok(position) = text.parse::<usize>() {
            return if (1..=self.slots.len()).contains(&position) {
                Ok(position - 1)
            } else {
                Err(PoolError::NoSuchEntry(format!("#{position}")))
            };
        }
        Err(PoolError::NoSuchEntry(text.to_owned()))
    }

    fn snapshot(&self) -> PoolSnapshot {
        let now = self.clock.now();
        PoolSnapshot {
            provider: self.provider.clone(),
            strategy: self.strategy,
            entries: (0..self.slots.len()).map(|i| self.view(i, now)).collect(),
            quarantined: self.quarantined.clone(),
        }
    }

    fn stats(&self) -> PoolStats {
        let now = self.clock.now();
        let mut stats = self.stats.clone();
        stats.entries_by_status.clear();
        for slot in &self.slots {
            let name = match &slot.entry.status {
                Status::CoolingDown { until, .. } if *until <= now => "ok",
                status => status.name(),
            };
            *stats.entries_by_status.entry(name.to_owned()).or_default() += 1;
        }
        stats.leases_held = self
            .slots
            .iter()
            .map(|s| u64::from(s.counters().leases()))
            .sum();
        stats
    }

    async fn add_entry(&mut self, new: NewEntry) -> Result<EntryView, PoolError> {
        let label = new.label.trim().to_owned();
        if label.is_empty() {
            return Err(PoolError::Invalid("label must not be empty".to_owned()));
        }
        let has_refresh_token = matches!(
            &new.kind,
            EntryKind::OAuth(tokens) if tokens.refresh.as_ref().is_some_and(|r| !r.is_empty())
        );
        if new.kind.request_secret().is_empty() && !has_refresh_token && !new.source.is_borrowed() {
            return Err(PoolError::Invalid("secret must not be empty".to_owned()));
        }
        let mut id = EntryId::from_random(self.rng.random());
        while self.index.contains_key(&id) || id.0 == 0 {
            id = EntryId::from_random(self.rng.random());
        }
        let mut entry = Entry::new(id, label, new.kind, new.source);
        entry.priority = new.priority.unwrap_or_else(|| {
            self.slots
                .iter()
                .map(|s| s.entry.priority.saturating_add(1))
                .max()
                .unwrap_or(0)
        });
        entry.weight = new.weight.unwrap_or(1).max(1);
        entry.base_url = new.base_url.or_else(|| self.spec.base_url.clone());
        self.persist(vec![Change::PutEntry {
            provider: self.provider.clone(),
            entry: entry.clone(),
        }])
        .await?;
        let first_token = needs_first_token(&entry);
        let update = track_update(&self.provider, &entry);
        let label = entry.label.clone();
        self.slots.push(Slot::new(entry, &self.link));
        self.sort_slots();
        self.refresher.track(update);
        tracing::info!(provider = %self.provider, entry = %id, label = %label, "entry added");
        self.publish(PoolEvent::Added {
            provider: self.provider.clone(),
            entry: id,
            label,
        });
        if first_token {
            self.start_refresh(id, None, false, None).await;
        }
        self.serve_cap_waiters();
        let now = self.clock.now();
        Ok(self.view(self.index[&id], now))
    }

    async fn remove_entry(&mut self, target: &Target) -> Result<EntryView, PoolError> {
        let i = self.resolve(target)?;
        let now = self.clock.now();
        let view = self.view(i, now);
        let id = view.id;
        self.persist(vec![Change::RemoveEntry {
            provider: self.provider.clone(),
            entry: id,
        }])
        .await?;
        self.slots.remove(i);
        self.sort_slots();
        self.dirty.remove(&id);
        if self.shared.current() == Some(id) {
            self.shared.set_current(None);
        }
        self.refresher.track(TrackUpdate {
            provider: self.provider.clone(),
            entry: id,
            generation: view.generation,
            expires_at: None,
            obtained_at: None,
            forget: true,
        });
        tracing::info!(provider = %self.provider, entry = %id, label = %view.label, "entry removed");
        self.publish(PoolEvent::Removed {
            provider: self.provider.clone(),
            entry: id,
            label: view.label.clone(),
        });
        if let Some(mut inflight) = self.refreshing.remove(&id) {
            // The snapshot without the entry is published; dropping `inflight` wakes the
            // joined callers.
            self.shared.drop_claims(id, inflight.generation);
            self.stats.joined_refreshes += inflight.take_new_joins();
            let waiters = std::mem::take(&mut inflight.waiters);
            self.rotate_waiters(waiters);
        }
        Ok(view)
    }

    async fn reset_entry(&mut self, target: &Target) -> Result<EntryView, PoolError> {
        let i = self.resolve(target)?;
        let mut entry = self.slots[i].entry.clone();
        entry.revive();
        let id = entry.id;
        self.commit_entries(vec![entry]).await?;
        tracing::info!(provider = %self.provider, entry = %id, "entry reset");
        self.publish(PoolEvent::Revived {
            provider: self.provider.clone(),
            entry: id,
        });
        self.serve_cap_waiters();
        let now = self.clock.now();
        Ok(self.view(self.index[&id], now))
    }

    async fn refresh_entry(&mut self, target: &Target) -> Result<EntryView, PoolError> {
        let i = self.resolve(target)?;
        let id = self.slots[i].entry.id;
        if !self.refreshable(id) {
            return Err(PoolError::Invalid(format!(
                "entry {id} is not a live OAuth grant with a refresh token"
            )));
        }
        self.start_refresh(id, None, false, None).await;
        let now = self.clock.now();
        Ok(self.view(self.index[&id], now))
    }

    async fn move_entry(
        &mut self,
        target: &Target,
        position: usize,
    ) -> Result<EntryView, PoolError> {
        let i = self.resolve(target)?;
        if position == 0 {
            return Err(PoolError::Invalid("positions start at 1".to_owned()));
        }
        let to = (position - 1).min(self.slots.len() - 1);
        let slot = self.slots.remove(i);
        let id = slot.entry.id;
        self.slots.insert(to, slot);
        let mut changed = Vec::new();
        for (priority, slot) in self.slots.iter().enumerate() {
            let priority = u32::try_from(priority).unwrap_or(u32::MAX);
            if slot.entry.priority != priority {
                let mut entry = slot.entry.clone();
                entry.priority = priority;
                changed.push(entry);
            }
        }
        let result = self.commit_entries(changed).await;
        self.sort_slots();
        result?;
        let now = self.clock.now();
        Ok(self.view(self.index[&id], now))
    }

    async fn set_strategy(&mut self, strategy: Strategy) -> Result<(), PoolError> {
        self.persist(vec![Change::PutProviderState {
            provider: self.provider.clone(),
            state: ProviderState {
                strategy,
                round_robin_cursor: self.strategy_state.round_robin_cursor,
            },
        }])
        .await?;
        self.strategy = strategy;
        self.fold_fast_usage();
        self.publish_snapshot();
        tracing::info!(provider = %self.provider, strategy = strategy.as_str(), "strategy set");
        Ok(())
    }
}
