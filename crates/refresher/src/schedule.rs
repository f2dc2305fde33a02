//! When the refresher wakes up: the pure arithmetic of proactive timers and backoff retries.
//!
//! **Invariants:** a proactive refresh is never due before half the token's lifetime; a retry
//! wait is never longer than the configured maximum.

use std::time::Duration;

use credpool_core::Timestamp;
use credpool_core::registry::RefreshSkew;

/// When a proactive refresh is due: `expires_at − skew − jitter`, where the skew depends on
/// the token's lifetime and `jitter_unit` in [0, 1] picks the jitter within
/// `[0, jitter_fraction × skew]`.
///
/// The skew never exceeds half the token's lifetime when the lifetime is known: a 60-minute
/// xAI token with the 3600 s skew would otherwise be due the moment it is issued, and every
/// refresh would schedule the next one at once (a refresh loop).
pub fn refresh_due_at(
    expires_at: Timestamp,
    obtained_at: Option<Timestamp>,
    skew: &RefreshSkew,
    jitter_fraction: f64,
    jitter_unit: f64,
) -> Timestamp {
    let lifetime = obtained_at.map(|obtained| expires_at.since(obtained));
    let skew = match lifetime {
        Some(lifetime) => skew.for_lifetime(Some(lifetime)).min(lifetime / 2),
        None => skew.for_lifetime(None),
    };
    let jitter = skew.mul_f64((jitter_fraction * jitter_unit.clamp(0.0, 1.0)).max(0.0));
    expires_at.minus(skew).minus(jitter)
}

/// The wait before retry number `attempt` (1-based): `initial × 2^(attempt−1)` capped at
/// `max`, then scaled by a jitter factor in [0.5, 1.0] so a fleet does not retry in lockstep.
pub fn backoff_delay(attempt: u32, initial: Duration, max: Duration, jitter_unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let base = initial.saturating_mul(1u32 << exponent).min(max);
    base.mul_f64(0.5 + 0.5 * jitter_unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests;
