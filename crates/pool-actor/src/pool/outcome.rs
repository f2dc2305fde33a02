//! What a refresh's result does to its entry: a rotated pair installed (or kept unexposed
//! while the store refuses it), a dead grant, or a bench after a transient failure.
//!
//! **Invariants:** a rotated pair is handed out only once flushed with the removal of its
//! marker; the marker of a pair the store refused stays until the pair is stored, so a crash
//! meanwhile is handled as an interrupted refresh. A transient failure never kills a grant,
//! and a proactive refresh that fails leaves a token that still works in service.

use std::sync::Arc;
use std::time::Duration;

use credpool_core::entry::LastError;
use credpool_core::{CooldownCause, DeadReason, EntryId, Status};
use credpool_store::Change;

use super::PoolState;
use super::waiting::{InFlight, UnstoredRotation, Why};
use crate::error::PoolError;
use crate::events::PoolEvent;
use crate::join::Refreshed;
use crate::refresh::{RefreshFailure, RefreshResult};

/// Codes that mean a retried refresh token had already been spent.
fn is_reuse_answer(code: &str) -> bool {
    matches!(
        code,
        "invalid_grant" | "refresh_token_reused" | "token_revoked" | "invalid_token"
    )
}

impl PoolState {
    /// Commits what a refresh returned; returns what its waiters lease, if anything.
    pub(super) async fn apply_refresh_result(
        &mut self,
        entry: EntryId,
        inflight: &InFlight,
        result: RefreshResult,
    ) -> Option<Refreshed> {
        let now = self.clock.now();
        let Some(&i) = self.index.get(&entry) else {
            if inflight.marker_written {
                self.clear_marker(entry).await;
            }
            return None;
        };
        match result {
            RefreshResult::Rotated {
                access,
                refresh,
                expires_at,
            } => {
                let rotation = UnstoredRotation {
                    access,
                    refresh,
                    expires_at,
                    at: now,
                };
                self.commit_rotation(i, rotation, inflight).await
            }
            RefreshResult::Failed(RefreshFailure::Terminal { code }) => {
                self.kill_after_refresh(i, code, inflight.why).await;
                None
            }
            RefreshResult::Failed(RefreshFailure::Transient {
                reason,
                retry_after,
            }) => {
                if inflight.marker_written {
                    self.clear_marker(entry).await;
                }
                self.after_transient_failure(i, reason, retry_after, inflight.token_rejected())
                    .await;
                None
            }
        }
    }

    /// Stores a rotated pair and installs it; a pair the store refuses is kept unexposed and
    /// its commit retried.
    async fn commit_rotation(
        &mut self,
        i: usize,
        rotation: UnstoredRotation,
        inflight: &InFlight,
    ) -> Option<Refreshed> {
        let entry = self.slots[i].entry.id;
        match self.install_rotation(i, &rotation).await {
            Ok(refreshed) => refreshed,
            Err(error) => {
                tracing::error!(
                    provider = %self.provider,
                    entry = %entry,
                    %error,
                    "rotated tokens could not be stored; they are kept unexposed, their commit is retried, and the entry is benched meanwhile"
                );
                self.unstored_rotations.insert(entry, rotation);
                let reason = format!("rotated tokens not stored yet: {error}");
                self.after_transient_failure(i, reason, None, inflight.token_rejected())
                    .await;
                None
            }
        }
    }

    /// Installs a rotation of slot `i` with the removal of its marker, in one flushed batch.
    async fn install_rotation(
        &mut self,
        i: usize,
        rotation: &UnstoredRotation,
    ) -> Result<Option<Refreshed>, PoolError> {
        let now = rotation.at;
        let entry = self.slots[i].entry.id;
        let was_benched = !self.slots[i].entry.status.is_available_at(now);
        let updated = rotation.applied_to(&self.slots[i].entry);
        let clear_marker = Change::ClearMarker {
            provider: self.provider.clone(),
            entry,
        };
        self.install(vec![updated], vec![clear_marker]).await?;
        let slot = &self.slots[i];
        let generation = slot.entry.generation;
        self.stats.refreshes_succeeded += 1;
        tracing::info!(provider = %self.provider, entry = %entry, %generation, "tokens rotated and stored");
        self.publish(PoolEvent::Refreshed {
            provider: self.provider.clone(),
            entry,
            generation,
        });
        if was_benched {
            self.publish(PoolEvent::Revived {
                provider: self.provider.clone(),
                entry,
            });
        }
        let slot = &self.slots[i];
        Ok(slot.entry.is_available_at(now, None).then(|| Refreshed {
            leased: Arc::clone(&slot.leased),
            position: i,
            at: now,
        }))
    }

    /// Retries the commits of rotations the store refused; stops at the first refusal.
    pub(super) async fn retry_unstored_rotations(&mut self) {
        let pending: Vec<EntryId> = self.unstored_rotations.keys().copied().collect();
        for entry in pending {
            let Some(&i) = self.index.get(&entry) else {
                self.unstored_rotations.remove(&entry);
                continue;
            };
            let Some(rotation) = self.unstored_rotations.remove(&entry) else {
                continue;
            };
            if let Err(error) = self.install_rotation(i, &rotation).await {
                tracing::debug!(provider = %self.provider, entry = %entry, %error, "rotated tokens still not stored");
                self.unstored_rotations.insert(entry, rotation);
                return;
            }
            tracing::info!(provider = %self.provider, entry = %entry, "the store took the rotated tokens it had refused");
        }
    }

    /// The token endpoint refused the grant: it is dead.
    async fn kill_after_refresh(&mut self, i: usize, code: String, why: Why) {
        let now = self.clock.now();
        self.stats.refreshes_failed += 1;
        let entry = self.slots[i].entry.id;
        let reason = if why == Why::AfterInterruption && is_reuse_answer(&code) {
            DeadReason::REFRESH_INTERRUPTED.to_owned()
        } else {
            code.clone()
        };
        tracing::warn!(
            provider = %self.provider,
            entry = %entry,
            label = %self.slots[i].entry.label,
            code = %code,
            reason = %reason,
            "refresh token rejected; sign in again and add the grant with `credpool admin add`"
        );
        let mut updated = self.slots[i].entry.clone();
        updated.status = Status::Dead {
            reason: DeadReason::new(reason.clone()),
            since: now,
        };
        updated.last_error = Some(LastError {
            kind: "refresh_failed".to_owned(),
            status: None,
            reason: Some(code.clone()),
            message: None,
            at: now,
        });
        let clear_marker = Change::ClearMarker {
            provider: self.provider.clone(),
            entry,
        };
        let _ = self
            .install_restriction(vec![updated], vec![clear_marker])
            .await;
        self.publish(PoolEvent::RefreshFailed {
            provider: self.provider.clone(),
            entry,
            reason: code,
        });
        self.publish(PoolEvent::Dead {
            provider: self.provider.clone(),
            entry,
            reason,
        });
    }

    /// A refresh failed transiently (or could not be sent or stored): a proactive refresh
    /// of a token that still works changes nothing; otherwise the entry is benched for
    /// `refresh_failed` (or what the endpoint asked, when longer).
    async fn after_transient_failure(
        &mut self,
        i: usize,
        reason: String,
        retry_after: Option<Duration>,
        token_rejected: bool,
    ) {
        let now = self.clock.now();
        self.stats.refreshes_failed += 1;
        let entry = self.slots[i].entry.id;
        tracing::warn!(provider = %self.provider, entry = %entry, reason = %reason, "refresh failed; will retry");
        self.publish(PoolEvent::RefreshFailed {
            provider: self.provider.clone(),
            entry,
            reason: reason.clone(),
        });
        let still_valid = self.slots[i]
            .entry
            .oauth()
            .is_some_and(|t| !t.access.is_empty() && t.expires_at.is_some_and(|at| at > now));
        if still_valid && !token_rejected {
            // A proactive refresh failed: keep serving the valid token.
            return;
        }
        let wait = retry_after
            .unwrap_or(self.config.cooldown.refresh_failed)
            .max(self.config.cooldown.refresh_failed)
            .min(self.config.cooldown.reset_ceiling);
        let mut updated = self.slots[i].entry.clone();
        let until = match updated.status {
            Status::CoolingDown { until, .. } => until.max(now.plus(wait)),
            _ => now.plus(wait),
        };
        updated.status = Status::CoolingDown {
            until,
            cause: CooldownCause::RefreshFailed,
        };
        updated.last_error = Some(LastError {
            kind: "refresh_failed".to_owned(),
            status: None,
            reason: Some(reason),
            message: None,
            at: now,
        });
        let _ = self.install_restriction(vec![updated], Vec::new()).await;
        self.publish(PoolEvent::CooledDown {
            provider: self.provider.clone(),
            entry,
            until,
            cause: CooldownCause::RefreshFailed,
            model: None,
        });
    }
}
