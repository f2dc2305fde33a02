//! Selection through the actor: leases for what the snapshot could not decide, why nothing
//! is available (typed causes), and the callers that wait for a lease (a grant's first token,
//! a strict cap).
//!
//! **Invariant:** nothing here performs I/O; a revived cooldown is a change in memory only
//! (an expired cooldown is available whether or not its revival was ever written).

use std::collections::BTreeMap;

use credpool_core::strategy::{self, LeaseCap};
use credpool_core::{Candidate, Status, Strategy, Timestamp, Unavailable};
use rand::Rng;

use super::PoolState;
use super::waiting::CapWaiter;
use crate::error::{PoolError, Reply};
use crate::events::PoolEvent;
use crate::lease::{Grant, LeaseTicket};
use crate::messages::{Answer, PoolMsg};
use crate::pool::CapMode;

impl PoolState {
    /// Answers a `Select`: a lease, a refresh to wait for (a grant's first token), a parked
    /// wait (strict cap), or why nothing is available.
    pub(super) fn answer_select(&mut self, model: Option<String>, reply: Reply<Answer>) {
        match self.select(model.as_deref()) {
            Ok(grant) => self.send_answer(reply, Ok(Answer::Lease(grant))),
            Err(error) => self.wait_or_refuse(model, reply, error),
        }
    }

    /// Picks an entry with the pool's strategy and leases it, or says why none is available.
    pub(super) fn select(&mut self, model: Option<&str>) -> Result<Grant, PoolError> {
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

    /// Leases slot `i` (reviving an expired cooldown on the way).
    pub(super) fn grant(&mut self, i: usize, now: Timestamp) -> Grant {
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
            leased: std::sync::Arc::clone(&slot.leased),
            position: i,
        };
        self.shared.set_current(Some(id));
        self.stats.selections += 1;
        self.last_exhausted_log = None;
        self.mark_dirty(id);
        grant
    }

    /// Why nothing is available for `model`: each entry's cause and the earliest moment one
    /// comes back.
    pub(super) fn exhausted(&mut self, now: Timestamp, model: Option<&str>) -> PoolError {
        let mut causes: BTreeMap<Unavailable, usize> = BTreeMap::new();
        let mut next_available_at: Option<Timestamp> = None;
        for slot in &self.slots {
            let entry = &slot.entry;
            let refreshing = self.refreshing.contains_key(&entry.id);
            let cause =
                Unavailable::of(entry, now, model, refreshing).unwrap_or(Unavailable::AtLeaseCap);
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

    /// A `Select` that found nothing: it waits for the first grant (in priority order) whose
    /// first token is being fetched, or — with a strict cap and entries at it — for a lease
    /// to come back; otherwise it gets the error.
    fn wait_or_refuse(&mut self, model: Option<String>, reply: Reply<Answer>, error: PoolError) {
        if let PoolError::Exhausted { causes, .. } = &error {
            if causes.contains_key(&Unavailable::Refreshing)
                && let Some(answer) = self.await_first_token()
            {
                self.send_answer(reply, Ok(answer));
                return;
            }
            if let CapMode::Strict { wait } = self.config.cap_mode
                && causes.contains_key(&Unavailable::AtLeaseCap)
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

    /// The refresh to wait for when the first grant in priority order that has no secret yet
    /// is being refreshed for its first token.
    fn await_first_token(&mut self) -> Option<Answer> {
        let (position, slot) = self.slots.iter().enumerate().find(|(_, slot)| {
            slot.entry.request_secret().is_empty() && self.refreshing.contains_key(&slot.entry.id)
        })?;
        let (entry, reported) = (slot.entry.id, slot.entry.generation);
        self.refreshing
            .get_mut(&entry)
            .map(|inflight| inflight.answer_by_message(entry, reported, position))
    }

    pub(super) fn expire_waiter(&mut self, waiter: u64) {
        if let Some(position) = self.cap_waiters.iter().position(|w| w.id == waiter)
            && let Some(waiter) = self.cap_waiters.remove(position)
        {
            let now = self.clock.now();
            let error = self.exhausted(now, waiter.model.as_deref());
            let _ = waiter.reply.send(Err(error));
        }
    }

    /// Takes a lease back (a report consumed it) and serves strict-cap waiters.
    pub(super) fn release(&mut self, ticket: LeaseTicket) {
        if let Some(&i) = self.index.get(&ticket.entry) {
            self.slots[i].counters().release();
        }
        self.serve_cap_waiters();
    }

    pub(super) fn serve_cap_waiters(&mut self) {
        while let Some(waiter) = self.cap_waiters.pop_front() {
            match self.select(waiter.model.as_deref()) {
                Ok(grant) => self.send_answer(waiter.reply, Ok(Answer::Lease(grant))),
                Err(_) => {
                    self.cap_waiters.push_front(waiter);
                    return;
                }
            }
        }
    }

    /// Sends an answer; takes the lease back when the caller went away.
    pub(super) fn send_answer(&mut self, reply: Reply<Answer>, answer: Result<Answer, PoolError>) {
        if let Err(ractor::MessagingErr::SendErr(Ok(Answer::Lease(grant)))) = reply.send(answer) {
            self.release(grant.ticket);
        }
    }
}
