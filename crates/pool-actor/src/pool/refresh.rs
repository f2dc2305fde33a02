//! Refresh coordination: at most one refresh per entry, its durable marker, and what its
//! result does to the entry and to everyone waiting for it.
//!
//! Every refresh starts through [`PoolState::start_refresh`] with a [`StartRefresh`] (which
//! entry, why, and the claim callers may already wait on), and ends in
//! [`PoolState::conclude`], which settles its join: the one thing every waiter waits on.
//!
//! **Invariants:**
//! - A refresh token leaves only after its marker (entry, generation, fingerprint) is flushed.
//!   A marker the store refuses is a transient refresh failure: the entry is benched as after
//!   an unreachable token endpoint and the refresher retries after its backoff.
//! - Rotated tokens are installed (flushed) before any lease carries them. A pair the store
//!   refuses is kept unexposed under its marker and its commit retried by the write-behind;
//!   meanwhile the entry is benched and no other refresh of it starts.
//! - A join is settled exactly once, after the snapshot no longer offers its refresh.

use std::sync::Arc;

use credpool_core::{EntryId, Generation, Secret};
use credpool_store::{Change, RefreshMarker};

use super::PoolState;
use super::waiting::{InFlight, Why};
use crate::error::{PoolError, Reply};
use crate::events::PoolEvent;
use crate::join::{RefreshJoin, spawn_refresh_watchdog};
use crate::messages::{Answer, PoolMsg};
use crate::refresh::{RefreshCallback, RefreshFailure, RefreshRequest, RefreshResult};

/// What starting a refresh needs.
pub(super) struct StartRefresh {
    pub(super) entry: EntryId,
    pub(super) why: Why,
    /// A join other callers already wait on (see `Shared::claim_refresh`): it becomes the
    /// refresh's join, or is settled with the refresh already in flight.
    pub(super) claim: Option<Arc<RefreshJoin>>,
}

/// Why a refresh did not start.
#[derive(Debug)]
pub(super) enum NotStarted {
    /// The entry is gone.
    NoSuchEntry,
    /// It is not a live grant with a refresh token (or its last rotation awaits its commit).
    NoRefreshToken,
    /// The store refused the marker; the refresh counts as a transient failure.
    Store(PoolError),
}

impl NotStarted {
    pub(super) fn into_error(self, entry: EntryId) -> PoolError {
        match self {
            NotStarted::NoSuchEntry => PoolError::NoSuchEntry(entry.to_string()),
            NotStarted::NoRefreshToken => PoolError::Invalid(format!(
                "entry {entry} is not a live OAuth grant with a refresh token"
            )),
            NotStarted::Store(error) => error,
        }
    }
}

impl PoolState {
    /// The refresh token a refresh of slot `i` would spend: the entry's own, unless a rotation
    /// of it still awaits its commit (that token is spent).
    pub(super) fn refresh_token_to_use(&self, i: usize) -> Option<&Secret> {
        let entry = &self.slots[i].entry;
        if self.unstored_rotations.contains_key(&entry.id) {
            return None;
        }
        entry.refresh_token()
    }

    /// Starts a refresh or joins the one in flight; returns the join to wait on.
    pub(super) async fn start_refresh(
        &mut self,
        start: StartRefresh,
    ) -> Result<Arc<RefreshJoin>, NotStarted> {
        let StartRefresh { entry, why, claim } = start;
        if let Some(inflight) = self.refreshing.get_mut(&entry) {
            if let Some(claim) = claim
                && !inflight.owns(&claim)
            {
                inflight.chained.push(claim);
            }
            return Ok(Arc::clone(&inflight.join));
        }
        let i = *self.index.get(&entry).ok_or(NotStarted::NoSuchEntry)?;
        let refresh_token = self
            .refresh_token_to_use(i)
            .cloned()
            .ok_or(NotStarted::NoRefreshToken)?;
        let current = &self.slots[i].entry;
        let generation = current.generation;
        let client = current
            .oauth()
            .map(|tokens| tokens.client.clone())
            .unwrap_or_default();
        // One timer per refresh bounds every waiter's wait (see `RefreshJoin::wait`); a claim
        // got its own when it was made.
        let join = match claim.filter(|claim| claim.generation == generation) {
            Some(claim) => claim,
            None => {
                let join = Arc::new(RefreshJoin::new(generation));
                spawn_refresh_watchdog(Arc::clone(&join), self.config.call_timeout / 2);
                join
            }
        };
        let mut inflight = InFlight {
            generation,
            why,
            marker_written: false,
            join: Arc::clone(&join),
            chained: Vec::new(),
            joined_by_message: 0,
            joins_counted: 0,
        };
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
                "could not record the refresh marker; the refresh token was not sent and the refresh is retried after a backoff"
            );
            self.refresher
                .retry_later(&self.provider, entry, generation);
            let failure = RefreshFailure::Transient {
                reason: format!("store unavailable: {error}"),
                retry_after: None,
            };
            self.conclude(entry, inflight, RefreshResult::Failed(failure))
                .await;
            return Err(NotStarted::Store(error));
        }
        inflight.marker_written = true;
        self.stats.refreshes_started += 1;
        self.refreshing.insert(entry, inflight);
        // Later reports join through the snapshot, without a message.
        self.snapshot_stale = true;
        self.publish(PoolEvent::RefreshStarted {
            provider: self.provider.clone(),
            entry,
            generation,
        });
        let myself = self.myself.clone();
        let request = RefreshRequest {
            provider: self.provider.clone(),
            entry,
            generation,
            refresh_token,
            client,
            after_interruption: why == Why::AfterInterruption,
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
        Ok(join)
    }

    /// The answer telling a caller who reported `entry` at `reported` to wait on `join` (the
    /// refresh in flight, or one already concluded — then its join is settled).
    pub(super) fn await_answer(
        &mut self,
        entry: EntryId,
        reported: Generation,
        join: &Arc<RefreshJoin>,
    ) -> Answer {
        let position = self.index.get(&entry).copied().unwrap_or_default();
        match self.refreshing.get_mut(&entry) {
            Some(inflight) => inflight.answer_by_message(entry, reported, position),
            None => Answer::AwaitRefresh {
                entry,
                reported,
                position,
                join: Arc::clone(join),
            },
        }
    }

    /// The refresher's timer fired for (entry, generation): refresh it if it is still that
    /// generation.
    pub(super) async fn refresh_due(&mut self, entry: EntryId, generation: Generation) {
        let due = self
            .index
            .get(&entry)
            .is_some_and(|&i| self.slots[i].entry.generation == generation);
        if due {
            let start = StartRefresh {
                entry,
                why: Why::Due,
                claim: None,
            };
            let _ = self.start_refresh(start).await;
        }
    }

    /// Refreshes the entry last handed out (or the first live grant) and answers with the
    /// refresh to wait for.
    pub(super) async fn try_refresh_current(&mut self, reply: Reply<Answer>) {
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
        let Some(entry) = target else {
            let _ = reply.send(Err(PoolError::Invalid(
                "no current entry to refresh".to_owned(),
            )));
            return;
        };
        let reported = self
            .index
            .get(&entry)
            .map(|&i| self.slots[i].entry.generation);
        let start = StartRefresh {
            entry,
            why: Why::Forced,
            claim: None,
        };
        let answer = match self.start_refresh(start).await {
            Ok(join) => Ok(self.await_answer(entry, reported.unwrap_or_default(), &join)),
            Err(not_started) => Err(not_started.into_error(entry)),
        };
        self.send_answer(reply, answer);
    }

    /// A refresh this pool started came back.
    pub(super) async fn finish_refresh(
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
        if let Some(inflight) = self.refreshing.remove(&entry) {
            self.conclude(entry, inflight, result).await;
        }
    }

    /// Ends a refresh: applies its result, publishes, and settles its join.
    async fn conclude(&mut self, entry: EntryId, mut inflight: InFlight, result: RefreshResult) {
        self.stats.joined_refreshes += inflight.take_new_joins();
        let published = self.publishes;
        let outcome = self.apply_refresh_result(entry, &inflight, result).await;
        // Woken callers look at the snapshot: it must no longer offer this refresh (nor,
        // after a rotation, the old token) before they are.
        if self.publishes == published {
            self.publish_snapshot();
        }
        self.shared.drop_claims(entry, inflight.generation);
        if outcome.is_none() && inflight.token_rejected() {
            self.stats.rotations += inflight.joined_by_message + inflight.joins();
        }
        inflight.settle(outcome);
        self.serve_cap_waiters();
    }
}
