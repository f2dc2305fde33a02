//! Whether a store's writes succeed: the last failure and since when, cleared by the next
//! write that succeeds. Read by `/healthz` and `/metrics`.

use std::sync::{Mutex, PoisonError};

use credpool_core::Timestamp;
use serde::Serialize;

use crate::StoreError;

/// How a store's writes are going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum StoreHealth {
    /// The last write (or flush) succeeded, or none failed yet.
    Ok,
    /// Writes fail: since the first failure of this run of failures, with the last error.
    Failing {
        /// When the first failing write of this run happened.
        since: Timestamp,
        /// The last error, as text (paths and system errors; never a record's content).
        reason: String,
    },
}

/// Tracks [`StoreHealth`] for a backend.
#[derive(Debug, Default)]
pub(crate) struct HealthTracker {
    failing: Mutex<Option<(Timestamp, String)>>,
}

impl HealthTracker {
    /// Records the outcome of a write at `now`; returns it unchanged.
    pub(crate) fn record<T>(
        &self,
        now: Timestamp,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(_) => {
                if failing.take().is_some() {
                    tracing::info!("store writes succeed again");
                }
            }
            Err(error) => {
                let since = failing.as_ref().map_or(now, |(since, _)| *since);
                if failing.is_none() {
                    tracing::error!(%error, "store writes are failing");
                }
                *failing = Some((since, error.to_string()));
            }
        }
        result
    }

    /// The current health.
    pub(crate) fn health(&self) -> StoreHealth {
        match &*self.failing.lock().unwrap_or_else(PoisonError::into_inner) {
            None => StoreHealth::Ok,
            Some((since, reason)) => StoreHealth::Failing {
                since: *since,
                reason: reason.clone(),
            },
        }
    }
}
