//! The cooldown policy: what happens to a credential after a classified failure.
//!
//! **Invariant:** a new deadline never shortens an existing one ([`decide_cooldown`] returns
//! `max(existing, new)`); provider-supplied reset times are clamped to
//! [`CooldownConfig::reset_ceiling`]; billing is never shortened by the sole-credential rule;
//! terminal auth failures are `Dead`.
//!
//! How the sources combine: reset hints from the provider (headers, JSON fields, message
//! phrases) are parsed by [`crate::reset`] into one `reset_at` (by tier, see there). When a
//! reset time is present it *wins* over the table for throttles (a 30 s `Retry-After` benches a
//! key for 30 s, not an hour). For billing the longer of the table and the reset time applies.
//! Without a reset time the table applies, and a sole credential's non-billing throttle is cut
//! to [`CooldownConfig::sole_credential`]. Finally the result is combined with the existing
//! deadline by max.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entry::{CooldownCause, DeadReason};
use crate::outcome::{Classification, FailureKind, RateLimitScope};

/// The numbers of the cooldown policy; every one configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CooldownConfig {
    /// After an auth failure that a refresh cannot fix (the seed's 401 rule).
    #[serde(with = "secs")]
    pub auth: Duration,
    /// After a rate limit with no reset time.
    #[serde(with = "secs")]
    pub rate_limited: Duration,
    /// After billing or quota exhaustion.
    #[serde(with = "secs")]
    pub billing: Duration,
    /// After any other failure reported against a credential.
    #[serde(with = "secs")]
    pub other: Duration,
    /// The cap on a non-billing throttle when the credential is the only live one.
    #[serde(with = "secs")]
    pub sole_credential: Duration,
    /// How long a model the account may not use stays benched for that credential.
    #[serde(with = "secs")]
    pub model_entitlement: Duration,
    /// After a refresh failed transiently and the access token has expired.
    #[serde(with = "secs")]
    pub refresh_failed: Duration,
    /// The ceiling on provider-supplied reset times.
    #[serde(with = "secs")]
    pub reset_ceiling: Duration,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        CooldownConfig {
            auth: Duration::from_secs(300),
            rate_limited: Duration::from_secs(3600),
            billing: Duration::from_secs(3600),
            other: Duration::from_secs(3600),
            sole_credential: Duration::from_secs(60),
            model_entitlement: Duration::from_secs(7 * 24 * 3600),
            refresh_failed: Duration::from_secs(60),
            reset_ceiling: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

/// The shape of the pool at the time of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Entries that are not dead, including the failing one.
    pub live_entries: usize,
}

impl PoolShape {
    /// Tells whether the failing entry is the only live one.
    pub fn is_sole(self) -> bool {
        self.live_entries <= 1
    }
}

/// What to do with a credential after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CooldownDecision {
    /// Leave the credential alone (transient failures, bad requests not reported against it).
    Keep,
    /// Bench the credential until `until`.
    CoolDown {
        /// The new deadline (already combined with the existing one).
        until: Timestamp,
        /// Why.
        cause: CooldownCause,
    },
    /// Bench the credential for one model only.
    CoolDownModel {
        /// The model.
        model: String,
        /// The new deadline for it (already combined with the existing one).
        until: Timestamp,
    },
    /// The credential is dead until re-auth.
    Dead {
        /// Why.
        reason: DeadReason,
    },
}

/// Decides what a failure does to a credential.
///
/// `existing` is the current deadline that would be extended (the status deadline, or the
/// model's deadline for model-scoped failures); `model` is the model the request was for.
pub fn decide_cooldown(
    failure: &Classification,
    shape: PoolShape,
    existing: Option<Timestamp>,
    model: Option<&str>,
    now: Timestamp,
    config: &CooldownConfig,
) -> CooldownDecision {
    let reset_at = failure
        .reset_at
        .map(|at| at.min(now.plus(config.reset_ceiling)));
    let throttle = |base: Duration| -> Timestamp {
        match reset_at {
            Some(at) => at,
            None if shape.is_sole() => now.plus(base.min(config.sole_credential)),
            None => now.plus(base),
        }
    };
    let extend = |until: Timestamp| existing.map_or(until, |e| e.max(until));
    let (until, cause) = match &failure.kind {
        FailureKind::Transient { .. } => return CooldownDecision::Keep,
        FailureKind::AuthInvalid { terminal: true } => {
            let reason = failure
                .reason
                .clone()
                .unwrap_or_else(|| "auth_invalid".to_owned());
            return CooldownDecision::Dead {
                reason: DeadReason::new(reason),
            };
        }
        FailureKind::AuthExpired | FailureKind::AuthInvalid { terminal: false } => {
            (now.plus(config.auth), CooldownCause::Auth)
        }
        FailureKind::Billing { .. } => {
            let table = now.plus(config.billing);
            (
                reset_at.map_or(table, |at| at.max(table)),
                CooldownCause::Billing,
            )
        }
        FailureKind::RateLimited {
            scope: RateLimitScope::Model,
        } => {
            if let Some(model) = model {
                return CooldownDecision::CoolDownModel {
                    model: model.to_owned(),
                    until: extend(throttle(config.rate_limited)),
                };
            }
            (throttle(config.rate_limited), CooldownCause::RateLimited)
        }
        FailureKind::RateLimited {
            scope: RateLimitScope::Account,
        } => (throttle(config.rate_limited), CooldownCause::RateLimited),
        FailureKind::ModelEntitlement => {
            if let Some(model) = model {
                return CooldownDecision::CoolDownModel {
                    model: model.to_owned(),
                    until: extend(now.plus(config.model_entitlement)),
                };
            }
            (throttle(config.other), CooldownCause::Other)
        }
        FailureKind::Other => (throttle(config.other), CooldownCause::Other),
    };
    CooldownDecision::CoolDown {
        until: extend(until),
        cause,
    }
}

/// Returns how long the default policy benches a credential in a pool of several, for display
/// (`credpool classify`'s `cooldown_s`); `None` for transient failures, `Some(None)`-like dead
/// credentials report `None` too.
pub fn default_cooldown_secs(failure: &Classification, now: Timestamp) -> Option<u64> {
    match decide_cooldown(
        failure,
        PoolShape { live_entries: 2 },
        None,
        Some("model"),
        now,
        &CooldownConfig::default(),
    ) {
        CooldownDecision::CoolDown { until, .. }
        | CooldownDecision::CoolDownModel { until, .. } => Some(until.since(now).as_secs()),
        CooldownDecision::Keep | CooldownDecision::Dead { .. } => None,
    }
}

#[cfg(test)]
mod tests;
