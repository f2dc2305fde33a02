//! Pool events and their delivery to subscribers.
//!
//! **Invariant:** events are never dropped silently. Each subscriber has a bounded channel;
//! when it is full the events that do not fit are counted and the subscriber receives a
//! [`PoolEvent::Lagged`] with that count as soon as there is room again.

use credpool_core::{CooldownCause, EntryId, Generation, ProviderId, Timestamp};
use serde::Serialize;
use tokio::sync::mpsc;

/// Something that happened in a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum PoolEvent {
    /// An entry was added.
    Added {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
        /// Its label.
        label: String,
    },
    /// An entry was removed.
    Removed {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
        /// Its label.
        label: String,
    },
    /// An entry was benched.
    CooledDown {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
        /// Until when.
        until: Timestamp,
        /// Why.
        cause: CooldownCause,
        /// The model, when only one model is benched.
        model: Option<String>,
    },
    /// An entry became usable again (deadline passed, reset, refresh).
    Revived {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
    },
    /// An entry died.
    Dead {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
        /// Why.
        reason: String,
    },
    /// An entry's tokens were rotated and committed.
    Refreshed {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
        /// The new generation.
        generation: Generation,
    },
    /// A refresh failed.
    RefreshFailed {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
        /// What failed, without secrets.
        reason: String,
    },
    /// A stored record could not be decoded and was quarantined.
    Quarantined {
        /// The provider.
        provider: ProviderId,
        /// The record's key.
        key: String,
    },
    /// This subscriber fell behind and missed `missed` events.
    Lagged {
        /// How many events did not fit.
        missed: u64,
    },
}

/// A subscription to a pool's events.
#[derive(Debug)]
pub struct EventStream(pub(crate) mpsc::Receiver<PoolEvent>);

impl EventStream {
    /// Waits for the next event; `None` once the pool has stopped.
    pub async fn recv(&mut self) -> Option<PoolEvent> {
        self.0.recv().await
    }

    /// Returns the next event if one is ready.
    pub fn try_recv(&mut self) -> Option<PoolEvent> {
        self.0.try_recv().ok()
    }
}

struct Subscriber {
    sender: mpsc::Sender<PoolEvent>,
    missed: u64,
}

/// The pool's subscribers.
#[derive(Default)]
pub(crate) struct Subscribers(Vec<Subscriber>);

impl Subscribers {
    pub(crate) fn subscribe(&mut self, capacity: usize) -> EventStream {
        let (sender, receiver) = mpsc::channel(capacity.max(2));
        self.0.push(Subscriber { sender, missed: 0 });
        EventStream(receiver)
    }

    pub(crate) fn publish(&mut self, event: &PoolEvent) {
        self.0.retain_mut(|subscriber| {
            if subscriber.missed > 0 {
                match subscriber.sender.try_send(PoolEvent::Lagged {
                    missed: subscriber.missed,
                }) {
                    Ok(()) => subscriber.missed = 0,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        subscriber.missed += 1;
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            match subscriber.sender.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.missed += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
