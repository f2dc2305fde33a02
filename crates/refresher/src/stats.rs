//! The refresher's counters, read by `credpool serve`'s metrics and the tests.

use std::time::Duration;

/// Counters of a refresher.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RefresherStats {
    /// Token-endpoint exchanges started.
    pub exchanges: u64,
    /// Refresh requests that joined an exchange already in flight.
    pub joined: u64,
    /// Exchanges that rotated tokens.
    pub succeeded: u64,
    /// Exchanges that failed transiently (retried later).
    pub failed_transient: u64,
    /// Exchanges that failed terminally.
    pub failed_terminal: u64,
    /// Timers that fired (proactive and retries).
    pub timers_fired: u64,
    /// Timers armed now: proactive ones and backoff retries.
    pub timers_armed: u64,
    /// Of those, backoff retries armed now.
    pub retries_armed: u64,
    /// Exchanges in flight now.
    pub in_flight: u64,
    /// Finished exchanges (any result) per latency bucket: index `i` counts exchanges that
    /// took at most [`RefresherStats::LATENCY_BUCKETS_MS`]`[i]` and more than the bound
    /// before; the last index counts the slower ones. Empty until the first exchange ends.
    pub exchange_latency_buckets: Vec<u64>,
    /// Finished exchanges measured in the latency histogram.
    pub exchange_latency_count: u64,
    /// Total time of the finished exchanges, in microseconds.
    pub exchange_latency_sum_us: u64,
}

impl RefresherStats {
    /// Upper bounds, in milliseconds, of the exchange latency buckets (the 20 s default
    /// timeout is the last bound).
    pub const LATENCY_BUCKETS_MS: [u64; 12] = [
        5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 20_000,
    ];

    /// Records one finished exchange in the latency histogram.
    pub(crate) fn observe_exchange_latency(&mut self, elapsed: Duration) {
        let buckets = Self::LATENCY_BUCKETS_MS.len() + 1;
        if self.exchange_latency_buckets.len() != buckets {
            self.exchange_latency_buckets.resize(buckets, 0);
        }
        let millis = elapsed.as_millis();
        let index = Self::LATENCY_BUCKETS_MS
            .iter()
            .position(|bound| millis <= u128::from(*bound))
            .unwrap_or(Self::LATENCY_BUCKETS_MS.len());
        if let Some(count) = self.exchange_latency_buckets.get_mut(index) {
            *count += 1;
        }
        self.exchange_latency_count += 1;
        self.exchange_latency_sum_us = self
            .exchange_latency_sum_us
            .saturating_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests;
