//! Why an entry cannot be handed out right now: the typed causes behind an exhausted pool.
//!
//! **Invariant:** control flow matches on [`Unavailable`]; its names ([`Unavailable::as_str`])
//! appear only at the edges (JSON, metrics, tables).

use std::fmt;

use serde::{Serialize, Serializer};

use crate::clock::Timestamp;
use crate::entry::{CooldownCause, Entry, Status};

/// Why one entry is not selectable at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unavailable {
    /// Terminal until re-authorised or reset.
    Dead,
    /// Benched for this cause until a deadline.
    CoolingDown(CooldownCause),
    /// Its secret is being fetched: a grant's first access token is being refreshed.
    Refreshing,
    /// It has no secret and none is coming (a borrowed source that could not be read).
    MissingSecret,
    /// Benched for the requested model only (or, without a model, for some model).
    ModelCooldown,
    /// Available, but at its lease cap (strict caps only refuse on this).
    AtLeaseCap,
}

impl Unavailable {
    /// Why `entry` is not available at `now` for `model`, judged on the entry alone;
    /// `refreshing` tells whether a refresh of it is in flight. `None` when it is available
    /// (the caller then knows it is only at its lease cap).
    pub fn of(
        entry: &Entry,
        now: Timestamp,
        model: Option<&str>,
        refreshing: bool,
    ) -> Option<Unavailable> {
        match &entry.status {
            Status::Dead { .. } => return Some(Unavailable::Dead),
            Status::CoolingDown { until, cause } if *until > now => {
                return Some(Unavailable::CoolingDown(*cause));
            }
            _ => {}
        }
        if entry.request_secret().is_empty() {
            return Some(if refreshing {
                Unavailable::Refreshing
            } else {
                Unavailable::MissingSecret
            });
        }
        (!entry.is_available_at(now, model)).then_some(Unavailable::ModelCooldown)
    }

    /// The snake_case name used in JSON, metrics and tables: a cooldown's cause
    /// (`rate_limited`, `billing`, …), `dead`, `refreshing`, `missing_secret`,
    /// `model_cooldown` or `at_lease_cap`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::Dead => "dead",
            Unavailable::CoolingDown(cause) => cause.as_str(),
            Unavailable::Refreshing => "refreshing",
            Unavailable::MissingSecret => "missing_secret",
            Unavailable::ModelCooldown => "model_cooldown",
            Unavailable::AtLeaseCap => "at_lease_cap",
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Unavailable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
