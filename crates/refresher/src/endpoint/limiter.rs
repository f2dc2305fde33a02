//! A per-host budget for token-endpoint requests (a sliding window).
//!
//! Nous Portal's WAF allows about 25 POSTs per IP per 60 s and answers an HTML 429 beyond
//! (hermes #102455); the default budget stays inside that for every host.
//!
//! **Invariants:** the limiter never sleeps: it admits a request or says how long until one
//! would be admitted; time comes from the injected [`Clock`], so tests need no sleeps; at most
//! `max_requests` requests per host are admitted in any window of `window`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use credpool_core::{Clock, Timestamp};

use super::error::RefreshError;

/// A budget: at most `max_requests` in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRateLimit {
    /// Requests admitted per window.
    pub max_requests: u32,
    /// The window length.
    pub window: Duration,
}

impl Default for HostRateLimit {
    fn default() -> Self {
        HostRateLimit {
            max_requests: 25,
            window: Duration::from_secs(60),
        }
    }
}

/// Sliding-window limiter keyed by lower-cased host.
#[derive(Debug)]
pub struct HostRateLimiter {
    clock: Arc<dyn Clock>,
    default_limit: HostRateLimit,
    per_host: HashMap<String, HostRateLimit>,
    /// Admission times per host, oldest first, trimmed to the window on every call.
    admitted: Mutex<HashMap<String, VecDeque<Timestamp>>>,
}

impl HostRateLimiter {
    /// Creates a limiter applying `default_limit` to every host.
    pub fn new(clock: Arc<dyn Clock>, default_limit: HostRateLimit) -> Self {
        HostRateLimiter {
            clock,
            default_limit,
            per_host: HashMap::new(),
            admitted: Mutex::new(HashMap::new()),
        }
    }

    /// Gives one host its own budget.
    #[must_use]
    pub fn with_host_limit(mut self, host: &str, limit: HostRateLimit) -> Self {
        self.per_host.insert(host.to_ascii_lowercase(), limit);
        self
    }

    /// Admits one request to `host`, or returns [`RefreshError::RateLimited`] with the wait
    /// until the oldest admission in the window expires.
    pub fn try_acquire(&self, host: &str) -> Result<(), RefreshError> {
        let host = host.to_ascii_lowercase();
        let limit = self
            .per_host
            .get(&host)
            .copied()
            .unwrap_or(self.default_limit);
        let now = self.clock.now();
        let window_start = now.minus(limit.window);
        let mut admitted = self.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        let times = admitted.entry(host.clone()).or_default();
        while times.front().is_some_and(|t| *t <= window_start) {
            times.pop_front();
        }
        if times.len() < limit.max_requests as usize {
            times.push_back(now);
            return Ok(());
        }
        let retry_after = times
            .front()
            .map_or(limit.window, |oldest| oldest.plus(limit.window).since(now));
        Err(RefreshError::RateLimited {
            host,
            retry_after: retry_after.max(Duration::from_millis(1)),
        })
    }
}
