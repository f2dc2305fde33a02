//! The refresher's settings.

use std::time::Duration;

use credpool_core::registry::ProviderRegistry;

use crate::endpoint::HostRateLimit;

/// Settings of the refresher.
#[derive(Debug, Clone)]
pub struct RefresherConfig {
    /// Providers and their token endpoints and skews.
    pub providers: ProviderRegistry,
    /// First wait after a transient failure.
    pub backoff_initial: Duration,
    /// Longest wait between retries.
    pub backoff_max: Duration,
    /// Jitter of proactive timers, as a fraction of the skew (0.10 = up to 10 %).
    pub jitter_fraction: f64,
    /// Timeout of one token-endpoint exchange.
    pub http_timeout: Duration,
    /// Token-endpoint requests admitted per host.
    pub host_limit: HostRateLimit,
    /// Allows `http://127.0.0.1` endpoints (tests and the demo's fake provider only).
    pub allow_insecure_loopback: bool,
}

impl Default for RefresherConfig {
    fn default() -> Self {
        RefresherConfig {
            providers: ProviderRegistry::builtin(),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            jitter_fraction: 0.10,
            http_timeout: Duration::from_secs(20),
            host_limit: HostRateLimit::default(),
            allow_insecure_loopback: false,
        }
    }
}
