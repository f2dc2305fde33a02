//! How changes reach the store, the slots, the fast path and the refresher.
//!
//! [`PoolState::install`] is the one step every change of an entry goes through: apply and
//! flush the batch, replace the slots, publish the snapshot, tell the refresher. Counters and
//! the round-robin cursor are written behind instead (every `write_behind_interval`, or once
//! `write_behind_max_dirty` entries are dirty).
//!
//! **Invariants:** nothing is installed in memory before the store accepted and flushed it,
//! except restrictions ([`PoolState::install_restriction`]: a cooldown or a death kept in
//! memory when the store refuses it, retried by the write-behind); a token change is never
//! kept unless stored. Every store error is counted (`store_errors`) and logged.

use std::sync::Arc;

use credpool_core::{Entry, EntryId, Strategy};
use credpool_store::{Change, ProviderState, StoreError};

use super::PoolState;
use super::slot::track_update;
use crate::error::PoolError;
use crate::fast::FastSnapshot;
use crate::pool::CapMode;

fn store_error(error: StoreError) -> PoolError {
    PoolError::Store(error.to_string())
}

/// Runs store work on a blocking thread (a flush takes milliseconds).
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, PoolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| PoolError::Store(format!("store task failed: {error}")))?
        .map_err(store_error)
}

impl PoolState {
    /// Makes `entries` (and `also`, in the same batch) durable, then installs them: replaces
    /// their slots, publishes the snapshot and tells the refresher. Nothing changes in memory
    /// when the store refuses the batch.
    pub(super) async fn install(
        &mut self,
        entries: Vec<Entry>,
        also: Vec<Change>,
    ) -> Result<(), PoolError> {
        if entries.is_empty() && also.is_empty() {
            return Ok(());
        }
        let batch: Vec<Change> = entries
            .iter()
            .map(|entry| Change::PutEntry {
                provider: self.provider.clone(),
                entry: entry.clone(),
            })
            .chain(also)
            .collect();
        self.persist(batch).await?;
        for entry in entries {
            self.dirty.remove(&entry.id);
            self.put_in_memory(entry);
        }
        self.publish_snapshot();
        Ok(())
    }

    /// Installs changes that only restrict an entry's use (a cooldown, a death). When the
    /// store refuses them they are installed in memory anyway — so the entry is not handed
    /// out meanwhile — and marked dirty so that the write-behind keeps trying; the store's
    /// error is returned for the reply.
    pub(super) async fn install_restriction(
        &mut self,
        entries: Vec<Entry>,
        also: Vec<Change>,
    ) -> Result<(), PoolError> {
        let kept = entries.clone();
        let result = self.install(entries, also).await;
        if let Err(error) = &result {
            tracing::error!(
                provider = %self.provider,
                entries = kept.len(),
                %error,
                "could not store a status change; it applies in memory and is retried"
            );
            self.restriction_unflushed = true;
            for entry in kept {
                self.dirty.insert(entry.id);
                self.put_in_memory(entry);
            }
            self.publish_snapshot();
        }
        result
    }

    /// Replaces the slot of `entry` (if it still exists) and tells the refresher.
    fn put_in_memory(&mut self, entry: Entry) {
        let update = track_update(&self.provider, &entry);
        if let Some(&i) = self.index.get(&entry.id) {
            self.slots[i].replace(entry);
        }
        self.refresher.track(update);
    }

    /// Applies and flushes a batch; counts and returns a failure.
    pub(super) async fn persist(&mut self, changes: Vec<Change>) -> Result<(), PoolError> {
        let store = Arc::clone(&self.store);
        let result = blocking(move || {
            store.apply(&changes)?;
            store.flush()
        })
        .await;
        if result.is_err() {
            self.stats.store_errors += 1;
        }
        result
    }

    /// Clears the in-flight marker of `entry`. A marker that cannot be cleared is harmless
    /// (the next refresh rewrites it; at a restart it means one retry with the stored refresh
    /// token), so a failure is logged and counted, not returned.
    pub(super) async fn clear_marker(&mut self, entry: EntryId) {
        let change = Change::ClearMarker {
            provider: self.provider.clone(),
            entry,
        };
        if let Err(error) = self.persist(vec![change]).await {
            tracing::warn!(provider = %self.provider, entry = %entry, %error, "could not clear the refresh marker; the next start retries the refresh once");
        }
    }

    /// Writes behind the dirty entries and the provider state (and flushes when asked), after
    /// retrying the commits of rotations the store refused.
    pub(super) async fn write_behind(&mut self, flush: bool) -> Result<(), PoolError> {
        self.retry_unstored_rotations().await;
        let flush = flush || self.restriction_unflushed;
        self.fold_fast_usage();
        let mut batch: Vec<Change> = self
            .dirty
            .iter()
            .filter_map(|id| self.index.get(id).copied())
            .map(|i| Change::PutEntry {
                provider: self.provider.clone(),
                entry: self.slots[i].entry.clone(),
            })
            .collect();
        if self.provider_state_dirty {
            batch.push(self.provider_state_change(self.strategy));
        }
        if batch.is_empty() && !flush {
            return Ok(());
        }
        let store = Arc::clone(&self.store);
        let result = blocking(move || {
            if !batch.is_empty() {
                store.apply(&batch)?;
            }
            if flush {
                store.flush()?;
            }
            Ok(())
        })
        .await;
        match &result {
            Ok(()) => {
                self.dirty.clear();
                self.provider_state_dirty = false;
                self.restriction_unflushed = false;
            }
            // Kept dirty: the next write-behind tries again.
            Err(_) => self.stats.store_errors += 1,
        }
        result
    }

    /// The provider's strategy and cursor as a change.
    pub(super) fn provider_state_change(&self, strategy: Strategy) -> Change {
        Change::PutProviderState {
            provider: self.provider.clone(),
            state: ProviderState {
                strategy,
                round_robin_cursor: self.strategy_state.round_robin_cursor,
            },
        }
    }

    /// Marks an entry's counters for the write-behind; schedules one early when many are.
    pub(super) fn mark_dirty(&mut self, id: EntryId) {
        self.dirty.insert(id);
        if self.dirty.len() >= self.config.write_behind_max_dirty && !self.write_behind_scheduled {
            self.write_behind_scheduled = true;
            let _ = self.myself.send_message(super::PoolMsg::WriteBehind);
        }
    }

    /// Orders the slots by (priority, id), rebuilds the index and publishes.
    pub(super) fn sort_slots(&mut self) {
        self.slots
            .sort_by_key(|slot| (slot.entry.priority, slot.entry.id));
        self.index = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, slot)| (slot.entry.id, i))
            .collect();
        self.publish_snapshot();
    }

    /// Publishes what the fast path may pick from (see [`crate::fast`]); called after every
    /// change `Select` depends on and before the reply to the message that caused it.
    pub(super) fn publish_snapshot(&mut self) {
        self.snapshot_stale = false;
        self.publishes = self.publishes.wrapping_add(1);
        let enabled =
            self.strategy == Strategy::FillFirst && matches!(self.config.cap_mode, CapMode::Soft);
        let entries = self.slots.iter().map(|slot| slot.fast_entry()).collect();
        let refreshing = self
            .refreshing
            .iter()
            .map(|(id, inflight)| (*id, Arc::clone(&inflight.join)))
            .collect();
        self.link
            .set_notify_release(matches!(self.config.cap_mode, CapMode::Strict { .. }));
        self.shared.publish(FastSnapshot {
            enabled,
            max_leases: self.config.max_leases_per_entry.max(1),
            entries,
            refreshing,
        });
    }

    /// Folds the fast path's selections into the entries' usage (marking them for
    /// write-behind) and its counts into the stats.
    pub(super) fn fold_fast_usage(&mut self) {
        let mut touched = Vec::new();
        for slot in &mut self.slots {
            if let Some(fast) = slot.counters().take_fast_usage() {
                let usage = &mut slot.entry.usage;
                usage.selections += fast.selections;
                usage.successes += fast.successes;
                if let Some(last_used) = fast.last_used {
                    usage.last_used_at =
                        Some(usage.last_used_at.map_or(last_used, |at| at.max(last_used)));
                }
                touched.push(slot.entry.id);
                self.stats.selections += fast.selections;
            }
        }
        self.dirty.extend(touched);
        self.stats.stale_reports += self.shared.take_stale_reports();
        for inflight in self.refreshing.values_mut() {
            self.stats.joined_refreshes += inflight.take_new_joins();
        }
    }
}
