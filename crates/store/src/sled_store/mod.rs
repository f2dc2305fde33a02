//! The embedded default backend: sled 0.34.7 in a private data directory.
//!
//! Layout: one sled database in the data directory with the trees named in [`crate::codec`],
//! and a `credpool.lock` file holding an exclusive lock for the store's life.
//!
//! **Invariants:**
//! - One [`SledStore`] per data directory at a time, across processes *and* inside one process:
//!   a second open fails with [`StoreError::Locked`] naming the path. sled's own lock has the
//!   same effect but reports it as an untyped i/o error, so credpool takes its own
//!   (`File::try_lock`, an `flock` on Linux, released when the store drops) before sled opens.
//! - The data directory is mode 0700 and every file under it 0600. The process umask is
//!   process-global and is left alone; instead the directory is tightened when opened (even if
//!   it existed with wider permissions) and every file and directory under it is chmod-ed
//!   after open and after every flush, which catches the snapshot files sled creates later.
//!   The 0700 directory is what keeps other users out in between.
//! - An open that fails for any reason but the lock is [`StoreError::Unreadable`]: a store that
//!   cannot be read is never presented as an empty pool.
//! - Each [`Store::apply`] batch and each compare-and-swap is one sled transaction; it is
//!   durable once [`Store::flush`] returns (sled also flushes in the background about every
//!   half second, but nothing relies on that).
//! - The manifest ([`crate::manifest`]) records what the store must hold; an open that finds
//!   sled shorter or older than it is [`StoreError::Damaged`], never a smaller pool
//!   (`integrity.rs`).
//! - A write that fails (a full disk, an i/o error) breaks the store for the rest of the
//!   process: sled refuses every later write even once the cause is gone, and neither
//!   dropping nor reopening it works in-process (its drop waits forever for a flush that
//!   cannot happen, and its file lock stays). Later writes fail at once, health says so, and
//!   the broken sled is never dropped; a restart of the process reopens the store
//!   (`credpool serve` restarts itself once the disk takes writes again).
//! - A backup ([`SledStore::export`]) sees no batch half applied: writes wait while it runs.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use credpool_core::{Clock, Entry, Fingerprint, Generation, ProviderId};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tracing::warn;
use zeroize::Zeroizing;

use crate::batch::{self, Corrupt, Op, RawProvider, RawRecord, TreeName};
use crate::codec::{self, Secrets};
use crate::manifest::Journal;
use crate::seal::MasterKey;
use crate::seal::source::KeyOrigin;
use crate::{
    CasOutcome, Change, ChangeHook, ProviderSnapshot, QuarantinedRecord, Store, StoreError,
};

pub(crate) mod backup;
mod handles;
pub(crate) mod integrity;
pub(crate) mod open;
pub(crate) mod rekey;
pub(crate) mod sealing;

use self::handles::Sled;

/// A [`Store`] on sled in a private directory.
pub struct SledStore {
    dir: PathBuf,
    /// Always `Some` but while a backup or drop takes it.
    sled: RwLock<Option<Sled>>,
    /// The manifest's journal (one writer at a time; never held across sled's lock).
    journal: Mutex<Journal>,
    /// A write failed: sled refuses writes until the process restarts.
    broken: Mutex<Option<String>>,
    /// The manifest began at this open on an empty store (a new data dir, or one that lost
    /// everything including its manifest).
    history_is_new: bool,
    hooks: batch::Hooks,
    health: crate::health::HealthTracker,
    /// Stamps quarantined records; injected so tests control time.
    clock: Arc<dyn Clock>,
    /// Seals and opens the secrets of records.
    key: Arc<MasterKey>,
    /// Where the key came from.
    key_origin: KeyOrigin,
    /// Holds the exclusive lock on `credpool.lock` until the store drops.
    _lock: File,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore").field("dir", &self.dir).finish()
    }
}

fn io_error(error: impl fmt::Display) -> StoreError {
    StoreError::Io(error.to_string())
}

impl SledStore {
    /// The id of the key that seals this store, and where the key came from.
    pub fn key_info(&self) -> (crate::seal::KeyId, &KeyOrigin) {
        (self.key.id(), &self.key_origin)
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// sled's handles for a read or a write.
    fn sled(&self) -> Result<RwLockReadGuard<'_, Option<Sled>>, StoreError> {
        let guard = self.sled.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(StoreError::Io(
                "the store is closed after a failure; it reopens at the next write".to_owned(),
            ));
        }
        Ok(guard)
    }

    /// Before a write: fails at once when an earlier write broke the store.
    fn writable(&self) -> Result<(), StoreError> {
        match &*self.broken.lock().unwrap_or_else(PoisonError::into_inner) {
            None => Ok(()),
            Some(first) => Err(StoreError::Io(format!(
                "the store refuses writes since an earlier one failed ({first}); restart the process once the cause is fixed"
            ))),
        }
    }

    /// Records a write's outcome; the first failure breaks the store.
    fn outcome<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result {
            let mut broken = self.broken.lock().unwrap_or_else(PoisonError::into_inner);
            if broken.is_none() {
                tracing::error!(%error, "the store refused a write; it refuses every write until the process restarts");
                *broken = Some(error.to_string());
            }
        }
        self.health.record(self.clock.now(), result)
    }

    /// Runs keyed writes in one transaction over every tree.
    fn write_ops(&self, ops: &[Op]) -> Result<(), StoreError> {
        let guard = self.sled()?;
        let Some(sled) = guard.as_ref() else {
            return Err(io_error("store closed"));
        };
        let result: Result<(), TransactionError<()>> = sled.trees[..].transaction(|trees| {
            for op in ops {
                let tree = &trees[op.tree as usize];
                match &op.value {
                    Some(value) => {
                        tree.insert(op.key.as_slice(), value.as_slice())?;
                    }
                    None => {
                        tree.remove(op.key.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        result.map_err(storage_error)
    }

    fn scan(&self, tree: TreeName, prefix: &[u8]) -> Result<Vec<RawRecord>, StoreError> {
        let guard = self.sled()?;
        let Some(sled) = guard.as_ref() else {
            return Err(io_error("store closed"));
        };
        sled.tree(tree)
            .scan_prefix(prefix)
            .map(|item| {
                item.map(|(key, value)| (key.to_vec(), Zeroizing::new(value.to_vec())))
                    .map_err(io_error)
            })
            .collect()
    }

    /// Moves a corrupt record to quarantine in one transaction.
    fn quarantine(&self, corrupt: &Corrupt) -> Result<(), StoreError> {
        let guard = self.sled()?;
        let Some(sled) = guard.as_ref() else {
            return Err(io_error("store closed"));
        };
        let source = sled.tree(corrupt.tree);
        let quarantine = sled.tree(TreeName::Quarantine);
        let result: Result<(), TransactionError<()>> =
            (source, quarantine).transaction(|(source, quarantine)| {
                if source.get(corrupt.key.as_slice())?.as_deref() == Some(corrupt.raw.as_slice()) {
                    source.remove(corrupt.key.as_slice())?;
                }
                quarantine.insert(
                    corrupt.quarantine_key.as_slice(),
                    corrupt.quarantine_value.as_slice(),
                )?;
                Ok(())
            });
        result.map_err(storage_error)
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        let broken = self
            .broken
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if broken {
            // Dropping a sled that refused a write waits forever for a flush it cannot make;
            // the process is going away (or restarting to reopen the store): leave it.
            if let Some(sled) = self
                .sled
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                std::mem::forget(sled);
            }
        }
    }
}

/// Maps the failure of a transaction that never aborts.
fn storage_error(error: TransactionError<()>) -> StoreError {
    match error {
        TransactionError::Abort(()) => StoreError::Io("transaction aborted".to_owned()),
        TransactionError::Storage(error) => StoreError::Io(error.to_string()),
    }
}

impl Store for SledStore {
    fn providers(&self) -> Result<Vec<crate::ProviderId>, StoreError> {
        let guard = self.sled()?;
        let Some(sled) = guard.as_ref() else {
            return Err(io_error("store closed"));
        };
        let mut keys = Vec::new();
        for tree in TreeName::ALL {
            for key in sled.tree(tree).iter().keys() {
                keys.push(key.map_err(io_error)?);
            }
        }
        Ok(batch::providers_of_keys(keys.iter().map(|key| &key[..])))
    }

    fn load_provider(&self, provider: &ProviderId) -> Result<ProviderSnapshot, StoreError> {
        let prefix = codec::provider_prefix(provider)?;
        let state_key = codec::provider_key(provider)?;
        let state = {
            let guard = self.sled()?;
            let Some(sled) = guard.as_ref() else {
                return Err(io_error("store closed"));
            };
            sled.tree(TreeName::Providers)
                .get(&state_key)
                .map_err(io_error)?
                .map(|value| (state_key.clone(), Zeroizing::new(value.to_vec())))
        };
        let raw = RawProvider {
            entries: self.scan(TreeName::Entries, &prefix)?,
            state,
            markers: self.scan(TreeName::Markers, &prefix)?,
            quarantine: self.scan(TreeName::Quarantine, &prefix)?,
        };
        let reading = batch::Reading {
            provider,
            now: self.clock.now(),
            key: &self.key,
        };
        let (snapshot, corrupted) = batch::assemble(&reading, raw)?;
        for corrupt in &corrupted {
            self.quarantine(corrupt)?;
            warn!(
                provider = %provider,
                key = %corrupt.record.key,
                error = %corrupt.record.error,
                "quarantined an undecodable record"
            );
        }
        Ok(snapshot)
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let ops = batch::encode_changes(changes, &self.key)?;
        self.outcome(self.writable())?;
        let written = self
            .journal()
            .before_batch(changes)
            .map_err(|error| io_error(format!("cannot write the manifest: {error}")))
            .and_then(|()| self.write_ops(&ops));
        self.outcome(written)?;
        self.journal().after_batch(changes);
        self.hooks.notify(&batch::notices(changes));
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let flushed = self
            .writable()
            .and_then(|()| self.sled())
            .and_then(|guard| {
                let Some(sled) = guard.as_ref() else {
                    return Err(io_error("store closed"));
                };
                sled.db.flush().map_err(io_error)?;
                handles::restrict_permissions(&self.dir).map_err(io_error)
            });
        let flushed = self.outcome(flushed);
        if flushed.is_ok()
            && let Err(error) = self.journal().maintain()
        {
            // sled holds the batch; the manifest is only behind (it detects less, never more).
            tracing::warn!(%error, "cannot write the manifest");
        }
        flushed
    }

    fn compare_and_swap(
        &self,
        provider: &ProviderId,
        expected: Generation,
        entry: &Entry,
    ) -> Result<CasOutcome, StoreError> {
        let key = codec::entry_key(provider, entry.id)?;
        let value = codec::encode_entry(provider, entry, &self.key)?;
        self.outcome(self.writable())?;
        let guard = self.sled()?;
        let Some(sled) = guard.as_ref() else {
            return Err(io_error("store closed"));
        };
        let result: Result<CasOutcome, TransactionError<StoreError>> =
            sled.tree(TreeName::Entries).transaction(|tree| {
                let Some(stored) = tree.get(key.as_slice())? else {
                    return Ok(CasOutcome::Conflict { found: None });
                };
                let found = codec::decode_entry(provider, &stored, Secrets::Skip)
                    .map_err(|error| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt {
                            key: codec::printable_key(codec::ENTRIES_TREE, &key),
                            reason: error.to_string(),
                        })
                    })?
                    .entry
                    .generation;
                if found != expected {
                    return Ok(CasOutcome::Conflict { found: Some(found) });
                }
                tree.insert(key.as_slice(), value.as_slice())?;
                Ok(CasOutcome::Swapped)
            });
        drop(guard);
        let outcome = result.map_err(|error| match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => StoreError::Io(error.to_string()),
        });
        let outcome = self.outcome(outcome)?;
        if outcome == CasOutcome::Swapped {
            let change = [Change::PutEntry {
                provider: provider.clone(),
                entry: entry.clone(),
            }];
            self.journal().after_batch(&change);
            self.hooks.notify(&[batch::cas_notice(provider, entry.id)]);
        }
        Ok(outcome)
    }

    fn watch(&self, hook: ChangeHook) {
        self.hooks.add(hook);
    }

    fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .scan(TreeName::Quarantine, &[])?
            .into_iter()
            .map(|(key, value)| batch::quarantined_from_raw(&key, &value, now))
            .collect())
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn health(&self) -> crate::StoreHealth {
        self.health.health()
    }

    fn export(&self) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        SledStore::export(self)
    }

    fn refresh_token_spent(&self, fingerprint: &Fingerprint) -> bool {
        self.journal().state().spent.contains(fingerprint.as_str())
    }

    fn history_is_new(&self) -> bool {
        self.history_is_new
    }
}

#[cfg(test)]
mod tests;
