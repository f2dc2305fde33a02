//! Remote leases: the pool leases a process on the other side of the data-plane API holds,
//! by id, each with a deadline.
//!
//! **Invariants:**
//! - A lease id is 128 random bits in hex; it names one pool lease, which the table holds
//!   until the client releases it, reports on it, or its deadline passes.
//! - A lease past its deadline is given back to its pool by the reaper (a client killed
//!   mid-request never holds an entry for good). What it was — provider, entry, generation —
//!   is kept as a tombstone for a while, so a late report still counts by generation.
//! - Taking a lease out of the table (a report, a release) is atomic: two reports of one id
//!   never both get the lease.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use credpool::{EntryId, Generation, Lease, ProviderId, Timestamp};
use rand::Rng;

/// Tombstones kept at most (the oldest go first).
const MAX_TOMBSTONES: usize = 65_536;

/// A lease held for a remote client.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) lease: Lease,
    pub(crate) provider: ProviderId,
    pub(crate) model: Option<String>,
}

/// What a lease was, once its deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tombstone {
    pub(crate) provider: ProviderId,
    pub(crate) entry: EntryId,
    pub(crate) generation: Generation,
    pub(crate) model: Option<String>,
    pub(crate) kind: credpool::CredentialKind,
}

/// What [`LeaseTable::take`] found.
#[derive(Debug)]
pub(crate) enum Taken {
    /// The live lease, now out of the table.
    Live(Held),
    /// The lease expired; what it was.
    Expired(Tombstone),
    /// No such lease (never issued, or expired long ago).
    Unknown,
}

struct Live {
    held: Held,
    deadline: Timestamp,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Live>,
    tombstones: HashMap<String, Tombstone>,
    tombstone_order: VecDeque<String>,
}

/// The remote leases of one service.
pub(crate) struct LeaseTable {
    inner: Mutex<Inner>,
    ttl: Duration,
}

fn new_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl LeaseTable {
    pub(crate) fn new(ttl: Duration) -> LeaseTable {
        LeaseTable {
            inner: Mutex::new(Inner::default()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `held` until `now + ttl`; returns its id and deadline.
    pub(crate) fn insert(&self, held: Held, now: Timestamp) -> (String, Timestamp) {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let deadline = Timestamp(now.0.saturating_add(ttl_ms));
        let id = new_id();
        self.lock().live.insert(id.clone(), Live { held, deadline });
        (id, deadline)
    }

    /// Takes the lease `id` out of the table.
    pub(crate) fn take(&self, id: &str) -> Taken {
        let mut inner = self.lock();
        if let Some(live) = inner.live.remove(id) {
            return Taken::Live(live.held);
        }
        match inner.tombstones.get(id) {
            Some(tombstone) => Taken::Expired(tombstone.clone()),
            None => Taken::Unknown,
        }
    }

    /// Gives back every lease whose deadline is at or before `now`; returns how many.
    pub(crate) fn reap(&self, now: Timestamp) -> usize {
        let expired: Vec<(String, Held)> = {
            let mut inner = self.lock();
            let ids: Vec<String> = inner
                .live
                .iter()
                .filter(|(_, live)| live.deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            let mut expired = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(live) = inner.live.remove(&id) {
                    let held = live.held;
                    let tombstone = Tombstone {
                        provider: held.provider.clone(),
                        entry: held.lease.entry_id(),
                        generation: held.lease.generation(),
                        model: held.model.clone(),
                        kind: held.lease.credential_kind(),
                    };
                    inner.tombstones.insert(id.clone(), tombstone);
                    inner.tombstone_order.push_back(id.clone());
                    while inner.tombstone_order.len() > MAX_TOMBSTONES {
                        if let Some(old) = inner.tombstone_order.pop_front() {
                            inner.tombstones.remove(&old);
                        }
                    }
                    expired.push((id, held));
                }
            }
            expired
        };
        for (id, held) in &expired {
            tracing::info!(
                lease = %&id[..8],
                provider = %held.provider,
                entry = %held.lease.entry_id(),
                "a remote lease expired unreported; its entry is back in the pool"
            );
        }
        // Dropped outside the lock: each drop gives the lease back to its pool.
        expired.len()
    }

    /// Leases held now.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.lock().live.len()
    }
}

#[cfg(test)]
mod tests;
