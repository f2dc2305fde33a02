//! The refresher's timers: why it wakes up for an entry, one map per reason.
//!
//! **Invariant:** a proactive timer and a backoff retry are independent; arming, firing or
//! cancelling one never touches the other.

use std::collections::HashMap;

use credpool_core::{EntryId, Generation, ProviderId};
use tokio::task::JoinHandle;

/// A timer's key: the provider and the entry.
pub(crate) type Key = (ProviderId, EntryId);

/// Why the refresher wakes up for an entry. The two reasons are independent: a proactive
/// timer follows the token's expiry and is re-armed (or dropped) on every token change, while
/// a retry follows a failed attempt and lives until the entry's next token or a terminal end.
/// One never cancels the other (an entry without a known expiry still gets its retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The token is about to expire.
    Proactive,
    /// A transient failure's backoff is over.
    Retry,
}

pub(crate) struct Timer {
    pub(crate) generation: Generation,
    pub(crate) handle: JoinHandle<()>,
}

/// Armed timers, one map per [`Wake`] reason.
#[derive(Default)]
pub(crate) struct Timers {
    pub(crate) proactive: HashMap<Key, Timer>,
    pub(crate) retry: HashMap<Key, Timer>,
}

impl Timers {
    pub(crate) fn of(&mut self, wake: Wake) -> &mut HashMap<Key, Timer> {
        match wake {
            Wake::Proactive => &mut self.proactive,
            Wake::Retry => &mut self.retry,
        }
    }

    /// Cancels the timer armed for `key` for this reason, if any.
    pub(crate) fn cancel(&mut self, key: &Key, wake: Wake) {
        if let Some(timer) = self.of(wake).remove(key) {
            timer.handle.abort();
        }
    }

    /// Removes and reports whether a timer for `key` at `generation` was armed.
    pub(crate) fn take_fired(&mut self, key: &Key, generation: Generation, wake: Wake) -> bool {
        let timers = self.of(wake);
        let current = timers
            .get(key)
            .is_some_and(|timer| timer.generation == generation);
        if current {
            timers.remove(key);
        }
        current
    }

    pub(crate) fn cancel_all(&mut self) {
        for (_, timer) in self.proactive.drain().chain(self.retry.drain()) {
            timer.handle.abort();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.proactive.len() + self.retry.len()
    }
}
