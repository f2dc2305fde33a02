//! A pool actor's start: its provider loaded from the store (borrowed secrets read again,
//! quarantined records reported), the refresher told about every grant, and the refreshes a
//! crash interrupted or a first token needs started.
//!
//! **Invariant:** a marker whose generation equals the entry's means a crash fell between
//! sending that refresh token and committing the answer: the refresh is retried exactly once
//! (a reuse answer then kills the grant with `refresh_interrupted`); an older marker is stale
//! and cleared.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use credpool_core::{EntryId, StrategyState};
use credpool_store::Change;
use ractor::{ActorProcessingErr, ActorRef};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::commit::blocking;
use super::refresh::{NotStarted, StartRefresh};
use super::slot::{Slot, track_update};
use super::waiting::Why;
use super::{PoolArgs, PoolState};
use crate::events::Subscribers;
use crate::lease::PoolLink;
use crate::messages::PoolMsg;
use crate::view::PoolStats;

impl PoolState {
    /// Loads the provider and builds the state; starts the refreshes that are due.
    pub(super) async fn start(
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
        let link_actor = myself.clone();
        let link = Arc::new(PoolLink::new(args.provider.clone(), move || {
            let _ = link_actor.send_message(PoolMsg::Release);
        }));
        let mut state = PoolState {
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
            link: Arc::clone(&link),
            snapshot_stale: true,
            publishes: 0,
            refreshing: HashMap::new(),
            unstored_rotations: HashMap::new(),
            dirty: HashSet::new(),
            restriction_unflushed: false,
            provider_state_dirty: false,
            write_behind_scheduled: false,
            cap_waiters: VecDeque::new(),
            next_waiter_id: 1,
            subscribers: Subscribers::default(),
            stats: PoolStats::default(),
            last_exhausted_log: None,
            quarantined: std::mem::take(&mut snapshot.quarantined),
            rng: SmallRng::from_os_rng(),
            write_behind_timer: None,
        };
        state.slots = std::mem::take(&mut snapshot.entries)
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
        state
            .resume_refreshes(snapshot.markers.iter().map(|m| (m.entry, m.generation)))
            .await;
        state.publish_snapshot();
        Ok(state)
    }

    /// Retries the refreshes that markers show a crash interrupted (once), clears stale
    /// markers, and fetches the first token of grants that have none.
    async fn resume_refreshes(
        &mut self,
        markers: impl Iterator<Item = (EntryId, credpool_core::Generation)>,
    ) {
        let mut interrupted = Vec::new();
        for (entry, generation) in markers {
            let current = self
                .index
                .get(&entry)
                .map(|&i| self.slots[i].entry.generation);
            if current == Some(generation) {
                interrupted.push(entry);
            } else {
                self.clear_marker(entry).await;
            }
        }
        let first_token: Vec<EntryId> = self
            .slots
            .iter()
            .filter(|slot| slot.entry.needs_first_token() && !interrupted.contains(&slot.entry.id))
            .map(|slot| slot.entry.id)
            .collect();
        for entry in interrupted {
            tracing::warn!(
                provider = %self.provider,
                entry = %entry,
                "a refresh was interrupted by a crash; retrying it once with the stored refresh token"
            );
            let start = StartRefresh {
                entry,
                why: Why::AfterInterruption,
                claim: None,
            };
            match self.start_refresh(start).await {
                Ok(_) => {}
                // Dead, gone or without a refresh token: nothing to retry.
                Err(NotStarted::NoRefreshToken | NotStarted::NoSuchEntry) => {
                    self.clear_marker(entry).await;
                }
                // The marker stays; the refresher retries after its backoff.
                Err(NotStarted::Store(_)) => {}
            }
        }
        for entry in first_token {
            let start = StartRefresh {
                entry,
                why: Why::FirstToken,
                claim: None,
            };
            let _ = self.start_refresh(start).await;
        }
    }
}
