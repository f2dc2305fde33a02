//! The admin operations, as the pool actor carries them out: one handler per operation of
//! [`crate::admin`], each durable before it answers and each announced by an event.

use credpool_core::{Entry, EntryId, EntryKind, Strategy, Timestamp};
use credpool_store::Change;
use rand::Rng;

use super::PoolState;
use super::refresh::StartRefresh;
use super::slot::{Slot, track_update};
use super::waiting::Why;
use crate::admin::{
    Add, AdminMsg, Ensure, Ensured, Move, NewEntry, Refresh, Remove, Reset, SetStrategy, Target,
    check_label, resolve_target,
};
use crate::error::PoolError;
use crate::events::PoolEvent;
use crate::refresh::TrackUpdate;
use crate::view::{EntryView, PoolSnapshot, PoolStats};

impl PoolState {
    /// Carries out one admin operation and answers it.
    pub(super) async fn handle_admin(&mut self, request: AdminMsg) {
        match request {
            AdminMsg::Snapshot(_, reply) => {
                let _ = reply.send(Ok(self.snapshot()));
            }
            AdminMsg::Stats(_, reply) => {
                let _ = reply.send(Ok(self.stats()));
            }
            AdminMsg::Add(Add(entry), reply) => {
                let _ = reply.send(self.add_entry(entry).await);
            }
            AdminMsg::Ensure(Ensure(entry), reply) => {
                let _ = reply.send(self.ensure_entry(entry).await);
            }
            AdminMsg::Remove(Remove(target), reply) => {
                let _ = reply.send(self.remove_entry(&target).await);
            }
            AdminMsg::Reset(Reset(target), reply) => {
                let _ = reply.send(self.reset_entry(&target).await);
            }
            AdminMsg::Refresh(Refresh(target), reply) => {
                let _ = reply.send(self.refresh_entry(&target).await);
            }
            AdminMsg::Move(Move { target, position }, reply) => {
                let _ = reply.send(self.move_entry(&target, position).await);
            }
            AdminMsg::SetStrategy(SetStrategy(strategy), reply) => {
                let _ = reply.send(self.set_strategy(strategy).await);
            }
        }
    }

    pub(super) fn view(&self, i: usize, now: Timestamp) -> EntryView {
        let slot = &self.slots[i];
        EntryView::of(&slot.entry, i, slot.counters().leases(), now)
    }

    fn view_now(&self, id: EntryId) -> Result<EntryView, PoolError> {
        let now = self.clock.now();
        self.index
            .get(&id)
            .map(|&i| self.view(i, now))
            .ok_or_else(|| PoolError::NoSuchEntry(id.to_string()))
    }

    fn resolve(&self, target: &Target) -> Result<usize, PoolError> {
        resolve_target(
            target,
            self.slots
                .iter()
                .map(|slot| (slot.entry.id, slot.entry.label.as_str())),
        )
    }

    fn snapshot(&self) -> PoolSnapshot {
        let now = self.clock.now();
        PoolSnapshot {
            provider: self.provider.clone(),
            strategy: self.strategy,
            entries: (0..self.slots.len()).map(|i| self.view(i, now)).collect(),
            quarantined: self.quarantined.clone(),
        }
    }

    fn stats(&self) -> PoolStats {
        let now = self.clock.now();
        let mut stats = self.stats.clone();
        stats.entries_by_status.clear();
        for slot in &self.slots {
            let kind = slot.entry.status.kind_at(now);
            *stats.entries_by_status.entry(kind).or_default() += 1;
        }
        stats.leases_held = self
            .slots
            .iter()
            .map(|s| u64::from(s.counters().leases()))
            .sum();
        stats.unstored_rotations = self.unstored_rotations.len() as u64;
        stats
    }

    fn find_label(&self, label: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| slot.entry.label.eq_ignore_ascii_case(label))
    }

    async fn ensure_entry(&mut self, new: NewEntry) -> Result<Ensured, PoolError> {
        let label = check_label(&new.label)?;
        if let Some(i) = self.find_label(label) {
            let now = self.clock.now();
            return Ok(Ensured {
                entry: self.view(i, now),
                added: false,
            });
        }
        let entry = self.add_entry(new).await?;
        Ok(Ensured { entry, added: true })
    }

    async fn add_entry(&mut self, new: NewEntry) -> Result<EntryView, PoolError> {
        let label = check_label(&new.label)?.to_owned();
        if self.find_label(&label).is_some() {
            return Err(PoolError::LabelTaken(label));
        }
        let has_refresh_token = matches!(
            &new.kind,
            EntryKind::OAuth(tokens) if tokens.refresh.as_ref().is_some_and(|r| !r.is_empty())
        );
        if new.kind.request_secret().is_empty() && !has_refresh_token && !new.source.is_borrowed() {
            return Err(PoolError::Invalid("secret must not be empty".to_owned()));
        }
        if new.weight == Some(0) {
            return Err(PoolError::Invalid("weight must be at least 1".to_owned()));
        }
        let mut id = EntryId::from_random(self.rng.random());
        while self.index.contains_key(&id) || id.0 == 0 {
            id = EntryId::from_random(self.rng.random());
        }
        let mut entry = Entry::new(id, label.clone(), new.kind, new.source);
        entry.priority = new.priority.unwrap_or_else(|| {
            self.slots
                .iter()
                .map(|s| s.entry.priority.saturating_add(1))
                .max()
                .unwrap_or(0)
        });
        entry.weight = new.weight.unwrap_or(1);
        entry.base_url = new.base_url.or_else(|| self.spec.base_url.clone());
        let change = Change::PutEntry {
            provider: self.provider.clone(),
            entry: entry.clone(),
        };
        self.persist(vec![change]).await?;
        let first_token = entry.needs_first_token();
        let update = track_update(&self.provider, &entry);
        self.slots.push(Slot::new(entry, &self.link));
        self.sort_slots();
        self.refresher.track(update);
        tracing::info!(provider = %self.provider, entry = %id, label = %label, "entry added");
        self.publish(PoolEvent::Added {
            provider: self.provider.clone(),
            entry: id,
            label,
        });
        if first_token {
            let start = StartRefresh {
                entry: id,
                why: Why::FirstToken,
                claim: None,
            };
            let _ = self.start_refresh(start).await;
        }
        self.serve_cap_waiters();
        self.view_now(id)
    }

    async fn remove_entry(&mut self, target: &Target) -> Result<EntryView, PoolError> {
        let i = self.resolve(target)?;
        let now = self.clock.now();
        let view = self.view(i, now);
        let id = view.id;
        let change = Change::RemoveEntry {
            provider: self.provider.clone(),
            entry: id,
        };
        self.persist(vec![change]).await?;
        self.slots.remove(i);
        self.sort_slots();
        self.dirty.remove(&id);
        self.unstored_rotations.remove(&id);
        if self.shared.current() == Some(id) {
            self.shared.set_current(None);
        }
        self.refresher.track(TrackUpdate {
            provider: self.provider.clone(),
            entry: id,
            generation: view.generation,
            expires_at: None,
            obtained_at: None,
            forget: true,
        });
        tracing::info!(provider = %self.provider, entry = %id, label = %view.label, "entry removed");
        self.publish(PoolEvent::Removed {
            provider: self.provider.clone(),
            entry: id,
            label: view.label.clone(),
        });
        if let Some(mut inflight) = self.refreshing.remove(&id) {
            // The snapshot without the entry is published; dropping `inflight` wakes its
            // waiters, who ask for another lease.
            self.shared.drop_claims(id, inflight.generation);
            self.stats.joined_refreshes += inflight.take_new_joins();
        }
        Ok(view)
    }

    async fn reset_entry(&mut self, target: &Target) -> Result<EntryView, PoolError> {
        let i = self.resolve(target)?;
        let now = self.clock.now();
        let was_unusable = !self.slots[i].entry.is_available_at(now, None);
        let mut entry = self.slots[i].entry.clone();
        entry.revive();
        let id = entry.id;
        self.install(vec![entry], Vec::new()).await?;
        tracing::info!(provider = %self.provider, entry = %id, "entry reset");
        self.publish(PoolEvent::Reset {
            provider: self.provider.clone(),
            entry: id,
        });
        if was_unusable {
            self.publish(PoolEvent::Revived {
                provider: self.provider.clone(),
                entry: id,
            });
        }
        self.serve_cap_waiters();
        self.view_now(id)
    }

    async fn refresh_entry(&mut self, target: &Target) -> Result<EntryView, PoolError> {
        let i = self.resolve(target)?;
        let id = self.slots[i].entry.id;
        let start = StartRefresh {
            entry: id,
            why: Why::Forced,
            claim: None,
        };
        self.start_refresh(start)
            .await
            .map_err(|not_started| not_started.into_error(id))?;
        self.view_now(id)
    }

    async fn move_entry(
        &mut self,
        target: &Target,
        position: usize,
    ) -> Result<EntryView, PoolError> {
        let i = self.resolve(target)?;
        if position == 0 {
            return Err(PoolError::Invalid("positions start at 1".to_owned()));
        }
        let to = (position - 1).min(self.slots.len() - 1);
        let mut order: Vec<EntryId> = self.slots.iter().map(|slot| slot.entry.id).collect();
        let id = order.remove(i);
        order.insert(to, id);
        let changed: Vec<Entry> = order
            .iter()
            .enumerate()
            .filter_map(|(priority, id)| {
                let priority = u32::try_from(priority).unwrap_or(u32::MAX);
                let entry = &self.slots[self.index[id]].entry;
                (entry.priority != priority).then(|| {
                    let mut entry = entry.clone();
                    entry.priority = priority;
                    entry
                })
            })
            .collect();
        self.install(changed, Vec::new()).await?;
        self.sort_slots();
        tracing::info!(provider = %self.provider, entry = %id, position = to + 1, "entry moved");
        self.publish(PoolEvent::Moved {
            provider: self.provider.clone(),
            entry: id,
            position: to + 1,
        });
        self.view_now(id)
    }

    async fn set_strategy(&mut self, strategy: Strategy) -> Result<Strategy, PoolError> {
        let change = self.provider_state_change(strategy);
        self.persist(vec![change]).await?;
        self.strategy = strategy;
        self.fold_fast_usage();
        self.publish_snapshot();
        tracing::info!(provider = %self.provider, strategy = strategy.as_str(), "strategy set");
        self.publish(PoolEvent::StrategySet {
            provider: self.provider.clone(),
            strategy,
        });
        Ok(strategy)
    }
}
