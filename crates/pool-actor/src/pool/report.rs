//! What a reported outcome does: counters, the cooldown policy (on the entry and every
//! entry holding the same secret), and auth failures, which a refresh may fix.
//!
//! **Invariants:** a report against an older generation than the entry's changes nothing
//! (an auth failure is answered with the current token); a refresh is started only for an
//! expired OAuth token whose grant was not refreshed within `refresh_loop_guard`.

use std::sync::Arc;

use credpool_core::entry::LastError;
use credpool_core::{
    Classification, CooldownCause, CooldownDecision, FailureKind, Outcome, PoolShape,
    RateLimitScope, Status, Timestamp, decide_cooldown,
};

use super::PoolState;
use super::refresh::StartRefresh;
use super::waiting::Why;
use crate::error::{PoolError, Reply};
use crate::events::PoolEvent;
use crate::join::RefreshJoin;
use crate::lease::LeaseTicket;
use crate::messages::Answer;

impl PoolState {
    /// Handles an auth failure; `claim` is what other callers of the same expired token wait
    /// on (see `Shared::claim_refresh`): a refresh it leads to (or joins) settles it, any
    /// other answer releases them at once to ask for a lease themselves.
    pub(super) async fn report_auth_failure(
        &mut self,
        ticket: LeaseTicket,
        failure: Classification,
        model: Option<String>,
        claim: Option<Arc<RefreshJoin>>,
        reply: Reply<Answer>,
    ) {
        let claim = claim.filter(|join| !join.is_settled());
        let answer = self
            .answer_auth_failure(ticket, failure, model.as_deref(), claim.as_ref())
            .await;
        self.send_answer(reply, answer);
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
        model: Option<&str>,
        claim: Option<&Arc<RefreshJoin>>,
    ) -> Result<Answer, PoolError> {
        self.release(ticket);
        let now = self.clock.now();
        let Some(&i) = self.index.get(&ticket.entry) else {
            // The entry was removed meanwhile: rotate.
            self.stats.rotations += 1;
            return self.select(model).map(Answer::Lease);
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
            let grant = if entry.is_available_at(now, model) {
                Ok(self.grant(i, now))
            } else {
                self.select(model)
            };
            return grant.map(Answer::Lease);
        }
        let recently_refreshed = entry
            .last_refresh_at
            .is_some_and(|at| now.since(at) < self.config.refresh_loop_guard && at <= now);
        let wants_refresh = failure.kind == FailureKind::AuthExpired && !recently_refreshed;
        let joining = self.refreshing.contains_key(&ticket.entry);
        if joining || (wants_refresh && self.refresh_token_to_use(i).is_some()) {
            // Joins the refresh in flight, or starts one.
            let start = StartRefresh {
                entry: ticket.entry,
                why: Why::Rejected,
                claim: claim.cloned(),
            };
            if let Ok(join) = self.start_refresh(start).await {
                if joining {
                    self.stats.joined_refreshes += 1;
                }
                return Ok(self.await_answer(ticket.entry, ticket.generation, &join));
            }
            // Not started (the store refused its marker): the entry is benched as after a
            // failed refresh; rotate.
            self.stats.rotations += 1;
            return self.select(model).map(Answer::Lease);
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
        // A status the store refused still applies in memory; the caller needs a lease.
        let _ = self.apply_failure(i, &failure, model, now).await;
        self.stats.rotations += 1;
        let grant = self.select(model)?;
        let label = &self.slots[grant.position].leased.label;
        tracing::info!(provider = %self.provider, entry = %grant.ticket.entry, label = %label, "rotated");
        Ok(Answer::Lease(grant))
    }

    pub(super) async fn report_outcome(
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
    /// and makes the change durable (or keeps it in memory when the store refuses it).
    pub(super) async fn apply_failure(
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
                    scope: RateLimitScope::Model
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
        let last_error = LastError {
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
            let event = match &decision {
                CooldownDecision::Keep => None,
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
                    *self
                        .stats
                        .cooldowns
                        .entry(cause.as_str().to_owned())
                        .or_default() += 1;
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
                    Some(PoolEvent::CooledDown {
                        provider: self.provider.clone(),
                        entry: entry.id,
                        until,
                        cause: *cause,
                        model: None,
                    })
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
                    Some(PoolEvent::CooledDown {
                        provider: self.provider.clone(),
                        entry: entry.id,
                        until: slot_until,
                        cause: CooldownCause::RateLimited,
                        model: Some(model.clone()),
                    })
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
                    Some(PoolEvent::Dead {
                        provider: self.provider.clone(),
                        entry: entry.id,
                        reason: reason.as_str().to_owned(),
                    })
                }
            };
            events.extend(event);
            changes.push(entry);
        }
        let result = self.install_restriction(changes, Vec::new()).await;
        for event in events {
            self.publish(event);
        }
        result
    }
}
