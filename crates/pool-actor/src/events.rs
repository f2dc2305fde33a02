//! Pool events, their history and their delivery to subscribers.
//!
//! Every event is an [`EventRecord`]: an id, the time it happened (the pool's clock) and the
//! [`PoolEvent`]. Ids increase across every pool of the process (they are taken from one
//! counter seeded from the wall clock at the first event, so they also keep increasing across
//! restarts), so a subscriber that names the last id it saw ([`Subscription::since`], SSE's
//! `Last-Event-ID`) gets what it missed from each pool's history first.
//!
//! **Invariants:** events are never dropped silently. Each subscriber has a bounded channel;
//! when it is full the events that do not fit are counted and the subscriber receives a
//! [`PoolEvent::Lagged`] with that count as soon as there is room again. A resumed
//! subscription that asks for events older than the history holds gets a `Lagged` first.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use credpool_core::{CooldownCause, EntryId, Generation, ProviderId, Strategy, Timestamp};
use serde::Serialize;
use tokio::sync::mpsc;

/// How many events each pool keeps for subscribers that resume.
pub const EVENT_HISTORY: usize = 1024;

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
    /// An admin reset an entry (its cooldowns, benches and death are cleared).
    Reset {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
    },
    /// An admin moved an entry in priority order.
    Moved {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
        /// Its 1-based position now.
        position: usize,
    },
    /// An admin set the pool's strategy.
    StrategySet {
        /// The provider.
        provider: ProviderId,
        /// The strategy now.
        strategy: Strategy,
    },
    /// A refresh started: the entry's refresh token is about to be sent (its durable marker
    /// is written).
    RefreshStarted {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
        /// The generation whose refresh token is being spent.
        generation: Generation,
    },
    /// An entry became usable again (deadline passed, reset of an unusable entry, refresh).
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

impl PoolEvent {
    /// The snake_case name of the event (its `event` field in JSON).
    pub fn name(&self) -> &'static str {
        match self {
            PoolEvent::Added { .. } => "added",
            PoolEvent::Removed { .. } => "removed",
            PoolEvent::CooledDown { .. } => "cooled_down",
            PoolEvent::Reset { .. } => "reset",
            PoolEvent::Moved { .. } => "moved",
            PoolEvent::StrategySet { .. } => "strategy_set",
            PoolEvent::RefreshStarted { .. } => "refresh_started",
            PoolEvent::Revived { .. } => "revived",
            PoolEvent::Dead { .. } => "dead",
            PoolEvent::Refreshed { .. } => "refreshed",
            PoolEvent::RefreshFailed { .. } => "refresh_failed",
            PoolEvent::Quarantined { .. } => "quarantined",
            PoolEvent::Lagged { .. } => "lagged",
        }
    }

    /// The provider the event is about (`None` for [`PoolEvent::Lagged`]).
    pub fn provider(&self) -> Option<&ProviderId> {
        match self {
            PoolEvent::Added { provider, .. }
            | PoolEvent::Removed { provider, .. }
            | PoolEvent::CooledDown { provider, .. }
            | PoolEvent::Reset { provider, .. }
            | PoolEvent::Moved { provider, .. }
            | PoolEvent::StrategySet { provider, .. }
            | PoolEvent::RefreshStarted { provider, .. }
            | PoolEvent::Revived { provider, .. }
            | PoolEvent::Dead { provider, .. }
            | PoolEvent::Refreshed { provider, .. }
            | PoolEvent::RefreshFailed { provider, .. }
            | PoolEvent::Quarantined { provider, .. } => Some(provider),
            PoolEvent::Lagged { .. } => None,
        }
    }
}

/// One event as subscribers receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// Increases with every event of the process (the SSE `id:`).
    pub id: u64,
    /// When it happened, by the pool's clock.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub event: PoolEvent,
}

/// Returns the next event id: one process-wide counter, seeded with the wall clock in
/// microseconds at the first event so ids keep increasing across restarts.
fn next_event_id() -> u64 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| u64::try_from(since.as_micros()).unwrap_or(1));
        AtomicU64::new(micros.max(1))
    })
    .fetch_add(1, Ordering::Relaxed)
}

/// A subscription to the events of one pool or several (every pool given the same sender).
#[derive(Debug)]
pub struct EventStream(pub(crate) mpsc::Receiver<EventRecord>);

impl EventStream {
    /// A stream and the subscription that feeds it: `capacity` events of buffer, resuming
    /// after event `since` when given.
    pub(crate) fn channel(capacity: usize, since: Option<u64>) -> (Subscription, EventStream) {
        let (sender, receiver) = mpsc::channel(capacity.max(2));
        (Subscription { sender, since }, EventStream(receiver))
    }

    /// Waits for the next event; `None` once every pool it follows has stopped.
    pub async fn recv(&mut self) -> Option<EventRecord> {
        self.0.recv().await
    }

    /// Returns the next event if one is ready.
    pub fn try_recv(&mut self) -> Option<EventRecord> {
        self.0.try_recv().ok()
    }
}

/// What a pool needs to serve one subscriber: where to send, and from which event on.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub(crate) sender: mpsc::Sender<EventRecord>,
    /// Replay the history after this event id first.
    pub(crate) since: Option<u64>,
}

struct Subscriber {
    sender: mpsc::Sender<EventRecord>,
    missed: u64,
}

impl Subscriber {
    /// Sends `record`, first telling the subscriber how many it missed; `false` once it has
    /// gone away.
    fn offer(&mut self, record: &EventRecord) -> bool {
        if self.missed > 0 {
            let lagged = EventRecord {
                id: record.id,
                at: record.at,
                event: PoolEvent::Lagged {
                    missed: self.missed,
                },
            };
            match self.sender.try_send(lagged) {
                Ok(()) => self.missed = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.missed += 1;
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        match self.sender.try_send(record.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// A pool's subscribers and its recent history.
#[derive(Default)]
pub(crate) struct Subscribers {
    subscribers: Vec<Subscriber>,
    history: VecDeque<EventRecord>,
    /// The id of the newest event that fell out of the history (0: none).
    evicted_up_to: u64,
}

impl Subscribers {
    /// Adds a subscriber, replaying the history after its `since` first.
    pub(crate) fn subscribe(&mut self, subscription: Subscription) {
        // Subscribers that left are dropped here too, not only at the next event: a pool
        // without events must not keep every subscriber that ever came.
        self.subscribers
            .retain(|subscriber| !subscriber.sender.is_closed());
        let mut subscriber = Subscriber {
            sender: subscription.sender,
            missed: 0,
        };
        if let Some(since) = subscription.since {
            if since < self.evicted_up_to {
                // Some of what it asks for is gone: at least one event, maybe more.
                subscriber.missed = 1;
            }
            for record in self.history.iter().filter(|record| record.id > since) {
                if !subscriber.offer(record) {
                    return;
                }
            }
        }
        self.subscribers.push(subscriber);
    }

    /// Records an event that happened `at` and sends it to every subscriber.
    pub(crate) fn publish(&mut self, event: PoolEvent, at: Timestamp) {
        let record = EventRecord {
            id: next_event_id(),
            at,
            event,
        };
        self.subscribers
            .retain_mut(|subscriber| subscriber.offer(&record));
        if self.history.len() >= EVENT_HISTORY
            && let Some(oldest) = self.history.pop_front()
        {
            self.evicted_up_to = oldest.id;
        }
        self.history.push_back(record);
    }
}

#[cfg(test)]
mod tests;
