//! A slot: one entry and what the pool keeps beside it, and what the fast path and the
//! refresher are told about it.

use std::sync::Arc;

use credpool_core::{Entry, ProviderId, Status, Timestamp};

use crate::fast::FastEntry;
use crate::lease::{Counters, Leased, PoolLink};
use crate::refresh::TrackUpdate;

/// One entry and what the pool keeps beside it.
pub(super) struct Slot {
    pub(super) entry: Entry,
    /// What leases of the current credential carry, built once per change so that a grant
    /// does not allocate; its counters (leases, fast usage) survive [`Slot::replace`].
    pub(super) leased: Arc<Leased>,
}

impl Slot {
    pub(super) fn new(entry: Entry, link: &Arc<PoolLink>) -> Self {
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

    pub(super) fn counters(&self) -> &Counters {
        &self.leased.counters
    }

    /// Replaces the entry, keeping its lease counters.
    pub(super) fn replace(&mut self, entry: Entry) {
        let counters = Arc::clone(&self.leased.counters);
        let link = Arc::clone(&self.leased.link);
        *self = Slot::with_counters(entry, counters, link);
    }

    /// What the fast path sees of the slot. Entries no `Select` can pick until the actor
    /// changes them (dead, or without a secret yet) are never ready.
    pub(super) fn fast_entry(&self) -> FastEntry {
        let entry = &self.entry;
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
            leased: Arc::clone(&self.leased),
            ready_from,
            revive_first,
        }
    }
}

/// What the refresher is told about an entry's tokens.
pub(super) fn track_update(provider: &ProviderId, entry: &Entry) -> TrackUpdate {
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
