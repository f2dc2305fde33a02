//! One step of the recovery loop for a caller that drives its own loop: a process on the
//! other side of the data-plane API reports a failure and gets back what to do next.
//!
//! **Invariants:** the decision is exactly what [`crate::PoolClient::with_recovery`] would
//! do at that step (the same classification, the same report to the pool, the same lease
//! handed back); the reported lease is consumed whatever the answer.

use std::collections::BTreeMap;
use std::time::Duration;

use credpool_core::{Classification, Timestamp, Unavailable};
use credpool_pool_actor::Lease;

use crate::client::PoolClient;
use crate::error::ClientError;
use crate::failure::RequestFailure;
use crate::recovery::{Recovery, Step};

/// What a caller does after a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Retry with the lease handed back: the same entry (its refreshed or current token, or
    /// the same token after a transient failure and `retry_after`).
    Retry,
    /// Retry with the lease handed back: another entry (the failing one was benched or killed).
    Rotate,
    /// Nothing is available now; `next_available_at` says until when.
    Wait,
    /// The failure is not the credential's: return the provider's answer to the caller.
    GiveUp,
}

impl Verdict {
    /// The wire name: `retry`, `rotate`, `wait`, `give_up`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Retry => "retry",
            Verdict::Rotate => "rotate",
            Verdict::Wait => "wait",
            Verdict::GiveUp => "give_up",
        }
    }
}

/// What one report decided.
#[derive(Debug)]
pub struct Decision {
    /// How the failure was classified.
    pub classification: Classification,
    /// What to do.
    pub verdict: Verdict,
    /// The lease to retry with (`Retry`, `Rotate`).
    pub lease: Option<Lease>,
    /// How long to wait before retrying (a transient failure's backoff).
    pub retry_after: Duration,
    /// For `Wait`: the earliest moment a credential is available again (`None`: none will be
    /// on its own).
    pub next_available_at: Option<Timestamp>,
    /// For `Wait`: how many entries are unavailable for each reason.
    pub causes: BTreeMap<Unavailable, usize>,
}

impl PoolClient {
    /// Reports a failed request made with `lease` and decides the next step, as one step of
    /// [`PoolClient::with_recovery`] would, for a caller that runs its own retry loop.
    ///
    /// # Errors
    /// The lease names no provider, or the pool is not running.
    pub async fn decide(
        &self,
        lease: Lease,
        failure: RequestFailure,
    ) -> Result<Decision, ClientError> {
        let provider = lease
            .provider()
            .cloned()
            .ok_or_else(|| ClientError::Stopped)?;
        let classification = self.classify(&provider, lease.credential_kind(), &failure);
        let entry = lease.entry_id();
        let mut recovery = Recovery::for_lease(self.context().clone(), &provider).await?;
        let decision = |verdict, lease, retry_after| Decision {
            classification: classification.clone(),
            verdict,
            lease,
            retry_after,
            next_available_at: None,
            causes: BTreeMap::new(),
        };
        Ok(match recovery.failed(lease, failure).await {
            Step::Retry { lease, delay } => {
                let verdict = if lease.entry_id() == entry {
                    Verdict::Retry
                } else {
                    Verdict::Rotate
                };
                decision(verdict, Some(lease), delay)
            }
            Step::Fail(ClientError::Exhausted {
                next_available_at,
                causes,
                ..
            }) => Decision {
                next_available_at,
                causes,
                ..decision(Verdict::Wait, None, Duration::ZERO)
            },
            Step::Fail(ClientError::Request(_) | ClientError::ForeignOrigin(_)) => {
                decision(Verdict::GiveUp, None, Duration::ZERO)
            }
            Step::Fail(other) => return Err(other),
        })
    }
}
