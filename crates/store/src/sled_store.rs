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

use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use credpool_core::{Clock, Entry, Generation, ProviderId, SystemClock};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tracing::warn;
use zeroize::Zeroizing;

use crate::batch::{self, Corrupt, Op, RawProvider, RawRecord, TreeName};
use crate::codec;
use crate::{
    CasOutcome, Change, ChangeHook, ChangeNotice, ProviderSnapshot, QuarantinedRecord, Store,
    StoreError,
};

/// The lock file held for the store's life.
pub(crate) const LOCK_FILE: &str = "credpool.lock";

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// A [`Store`] on sled in a private directory.
pub struct SledStore {
    dir: PathBuf,
    db: sled::Db,
    /// Indexed by [`TreeName`] in [`TreeName::ALL`] order.
    trees: [sled::Tree; 4],
    hooks: batch::Hooks,
    health: crate::health::HealthTracker,
    /// Stamps quarantined records; injected so tests control time.
    clock: Arc<dyn Clock>,
    /// Holds the exclusive lock on `credpool.lock` until the store drops.
    _lock: File,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore").field("dir", &self.dir).finish()
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, stamping quarantined records with the system
    /// clock.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with_clock(dir, Arc::new(SystemClock))
    }

    /// Opens (or creates) the store in `dir` with an injected clock.
    ///
    /// Creates the directory with mode 0700 (tightening an existing one), takes the lock, opens
    /// sled and makes every file under the directory 0600.
    pub fn open_with_clock(dir: &Path, clock: Arc<dyn Clock>) -> Result<SledStore, StoreError> {
        let path = dir.display().to_string();
        let unreadable = |reason: String| StoreError::Unreadable {
            path: path.clone(),
            reason,
        };

        fs::create_dir_all(dir)
            .map_err(|error| unreadable(format!("cannot create the data directory: {error}")))?;
        fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
            .map_err(|error| unreadable(format!("cannot restrict the data directory: {error}")))?;

        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(dir.join(LOCK_FILE))
            .map_err(|error| unreadable(format!("cannot open the lock file: {error}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path }),
            Err(fs::TryLockError::Error(error)) => {
                return Err(unreadable(format!(
                    "cannot lock the data directory: {error}"
                )));
            }
        }

        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|error| match error {
                // Only reachable when something other than credpool opened sled here.
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::Locked { path: path.clone() }
                }
                other => unreadable(other.to_string()),
            })?;
        let open_tree = |tree: TreeName| {
            db.open_tree(tree.as_str())
                .map_err(|error| unreadable(format!("cannot open tree {}: {error}", tree.as_str())))
        };
        let trees = [
            open_tree(TreeName::ALL[0])?,
            open_tree(TreeName::ALL[1])?,
            open_tree(TreeName::ALL[2])?,
            open_tree(TreeName::ALL[3])?,
        ];
        restrict_permissions(dir).map_err(|error| {
            unreadable(format!(
                "cannot restrict permissions of the data files: {error}"
            ))
        })?;

        Ok(SledStore {
            dir: dir.to_path_buf(),
            db,
            trees,
            hooks: batch::Hooks::default(),
            health: crate::health::HealthTracker::default(),
            clock,
            _lock: lock,
        })
    }

    fn tree(&self, name: TreeName) -> &sled::Tree {
        &self.trees[name as usize]
    }

    /// Runs keyed writes in one transaction over every tree.
    fn write_ops(&self, ops: &[Op]) -> Result<(), StoreError> {
        let result: Result<(), TransactionError<()>> = self.trees[..].transaction(|trees| {
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

    fn notify(&self, notices: &[ChangeNotice]) {
        self.hooks.notify(notices);
    }

    fn scan(&self, tree: TreeName, prefix: &[u8]) -> Result<Vec<RawRecord>, StoreError> {
        self.tree(tree)
            .scan_prefix(prefix)
            .map(|item| {
                item.map(|(key, value)| (key.to_vec(), Zeroizing::new(value.to_vec())))
                    .map_err(|error| StoreError::Io(error.to_string()))
            })
            .collect()
    }

    /// Moves a corrupt record to quarantine in one transaction.
    fn quarantine(&self, corrupt: &Corrupt) -> Result<(), StoreError> {
        let source = self.tree(corrupt.tree);
        let quarantine = self.tree(TreeName::Quarantine);
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

/// Maps the failure of a transaction that never aborts.
fn storage_error(error: TransactionError<()>) -> StoreError {
    match error {
        TransactionError::Abort(()) => StoreError::Io("transaction aborted".to_owned()),
        TransactionError::Storage(error) => StoreError::Io(error.to_string()),
    }
}

/// Makes `dir` and every directory under it 0700 and every file 0600; symlinks are left alone
/// (sled creates none).
fn restrict_permissions(dir: &Path) -> std::io::Result<()> {
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
    for item in fs::read_dir(dir)? {
        let item = item?;
        let file_type = item.file_type()?;
        if file_type.is_dir() {
            restrict_permissions(&item.path())?;
        } else if file_type.is_file() {
            let path = item.path();
            if fs::metadata(&path)?.permissions().mode() & 0o777 != FILE_MODE {
                fs::set_permissions(&path, Permissions::from_mode(FILE_MODE))?;
            }
        }
    }
    Ok(())
}

impl Store for SledStore {
    fn providers(&self) -> Result<Vec<crate::ProviderId>, StoreError> {
        let mut keys = Vec::new();
        for tree in TreeName::ALL {
            for key in self.tree(tree).iter().keys() {
                keys.push(key.map_err(|error| StoreError::Io(error.to_string()))?);
            }
        }
        Ok(batch::providers_of_keys(keys.iter().map(|key| &key[..])))
    }

    fn load_provider(&self, provider: &ProviderId) -> Result<ProviderSnapshot, StoreError> {
        let prefix = codec::provider_prefix(provider)?;
        let state_key = codec::provider_key(provider)?;
        let raw = RawProvider {
            entries: self.scan(TreeName::Entries, &prefix)?,
            state: self
                .tree(TreeName::Providers)
                .get(&state_key)
                .map_err(|error| StoreError::Io(error.to_string()))?
                .map(|value| (state_key.clone(), Zeroizing::new(value.to_vec()))),
            markers: self.scan(TreeName::Markers, &prefix)?,
            quarantine: self.scan(TreeName::Quarantine, &prefix)?,
        };
        let (snapshot, corrupted) = batch::assemble(provider, raw, self.clock.now())?;
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
        let ops = batch::encode_changes(changes)?;
        let written = self.write_ops(&ops);
        self.health.record(self.clock.now(), written)?;
        self.notify(&batch::notices(changes));
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let flushed = self
            .db
            .flush()
            .map_err(|error| StoreError::Io(error.to_string()))
            .and_then(|_| {
                restrict_permissions(&self.dir).map_err(|error| StoreError::Io(error.to_string()))
            });
        self.health.record(self.clock.now(), flushed)
    }

    fn health(&self) -> crate::StoreHealth {
        self.health.health()
    }

    fn compare_and_swap(
        &self,
        provider: &ProviderId,
        expected: Generation,
        entry: &Entry,
    ) -> Result<CasOutcome, StoreError> {
        let key = codec::entry_key(provider, entry.id)?;
        let value = codec::encode_entry(entry)?;
        let result: Result<CasOutcome, TransactionError<StoreError>> =
            self.tree(TreeName::Entries).transaction(|tree| {
                let Some(stored) = tree.get(key.as_slice())? else {
                    return Ok(CasOutcome::Conflict { found: None });
                };
                let found = codec::decode_entry(&stored)
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
        let outcome = result.map_err(|error| match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => StoreError::Io(error.to_string()),
        })?;
        if outcome == CasOutcome::Swapped {
            self.notify(&[batch::cas_notice(provider, entry.id)]);
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
}

#[cfg(test)]
mod tests;
