//! Who and what waits in a pool: refreshes in flight (and everyone waiting on their join),
//! rotated pairs waiting for the store, and `Select`s parked at a strict cap. Data only: the
//! rooms of `pool` act on them.

use std::sync::Arc;

use credpool_core::{Entry, EntryId, Generation, Secret, Status, Timestamp};

use crate::error::Reply;
use crate::join::{RefreshJoin, Refreshed};
use crate::messages::Answer;

/// Why a refresh starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// A caller reported the token rejected.
    Rejected,
    /// The refresher's timer fired: proactive, or a retry after a transient failure.
    Due,
    /// An admin (or `try_refresh_current`) asked for it.
    Forced,
    /// A grant seeded from a refresh token alone needs its first access token.
    FirstToken,
    /// A marker found at start: a crash fell inside this refresh; it is retried once.
    AfterInterruption,
}

/// One refresh in flight.
pub(super) struct InFlight {
    pub(super) generation: Generation,
    pub(super) why: Why,
    /// Whether its marker reached the store (a refresh refused before it did has none).
    pub(super) marker_written: bool,
    /// What every caller waiting for this refresh waits on.
    pub(super) join: Arc<RefreshJoin>,
    /// Claims of other callers chained to this refresh (settled with it).
    pub(super) chained: Vec<Arc<RefreshJoin>>,
    /// Callers the actor told by message to wait on `join`.
    pub(super) joined_by_message: u64,
    /// Joins through the snapshot already counted in the stats.
    pub(super) joins_counted: u64,
}

impl InFlight {
    /// Whether the token was rejected (someone reported it or waits for the refresh), as
    /// opposed to a proactive refresh of a token that still works.
    pub(super) fn token_rejected(&self) -> bool {
        self.why == Why::Rejected || self.joined_by_message > 0 || self.joins() > 0
    }

    /// Callers that joined without a message (through the snapshot or a claim).
    pub(super) fn joins(&self) -> u64 {
        self.join.joined() + self.chained.iter().map(|join| join.joined()).sum::<u64>()
    }

    /// Whether `claim` is settled with this refresh.
    pub(super) fn owns(&self, claim: &Arc<RefreshJoin>) -> bool {
        Arc::ptr_eq(&self.join, claim) || self.chained.iter().any(|c| Arc::ptr_eq(c, claim))
    }

    /// Snapshot joins not yet counted in the stats.
    pub(super) fn take_new_joins(&mut self) -> u64 {
        let joined = self.joins();
        let new = joined.saturating_sub(self.joins_counted);
        self.joins_counted = joined;
        new
    }

    /// The answer telling a caller who reported `entry` at `reported` to wait for this
    /// refresh; the caller counts as waiting.
    pub(super) fn answer_by_message(
        &mut self,
        entry: EntryId,
        reported: Generation,
        position: usize,
    ) -> Answer {
        self.joined_by_message += 1;
        Answer::AwaitRefresh {
            entry,
            reported,
            position,
            join: Arc::clone(&self.join),
        }
    }

    /// Wakes everyone who waits; they lease `outcome` (or ask the actor when `None`). Only
    /// the first call counts.
    pub(super) fn settle(&self, outcome: Option<Refreshed>) {
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

/// A rotated pair, as the token endpoint returned it.
pub(super) struct UnstoredRotation {
    pub(super) access: Secret,
    pub(super) refresh: Option<Secret>,
    pub(super) expires_at: Option<Timestamp>,
    pub(super) at: Timestamp,
}

impl UnstoredRotation {
    /// `entry` with the pair installed (generation + 1) and any cooldown cleared: the refresh
    /// worked.
    pub(super) fn applied_to(&self, entry: &Entry) -> Entry {
        let mut updated = entry.clone();
        updated.replace_tokens(
            self.access.clone(),
            self.refresh.clone(),
            self.expires_at,
            self.at,
        );
        if matches!(updated.status, Status::CoolingDown { .. }) {
            updated.status = Status::Ok;
        }
        updated
    }
}

/// A `Select` parked until a lease comes back (strict caps).
pub(super) struct CapWaiter {
    pub(super) id: u64,
    pub(super) model: Option<String>,
    pub(super) reply: Reply<Answer>,
}
