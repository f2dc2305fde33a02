//! Opening a data directory: its permissions, the lock, sled, and the manifest check.

use std::fs::{self, OpenOptions as FileOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use credpool_core::{Clock, SystemClock};

use super::SledStore;
use super::handles::{DIR_MODE, FILE_MODE, LOCK_FILE, open_sled, restrict_permissions};
use super::{integrity, sealing};
use crate::StoreError;
use crate::seal::source::KeySource;

/// How a store is opened.
#[derive(Clone)]
pub struct OpenOptions {
    /// Stamps quarantined records (tests inject a clock).
    pub clock: Arc<dyn Clock>,
    /// Accept a store that came back shorter or older than its manifest: the missing
    /// entries are forgotten, rolled-back OAuth grants are marked dead
    /// (`store_rolled_back`), and the manifest is rebuilt from what is left. What was
    /// accepted is returned by [`SledStore::recover`].
    pub accept_loss: bool,
    /// Where the master key comes from (by default `CREDPOOL_MASTER_KEY`, else
    /// `<dir>/master.key`, generated for a new store).
    pub key: KeySource,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            clock: Arc::new(SystemClock),
            accept_loss: false,
            key: KeySource::Standard,
        }
    }
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("accept_loss", &self.accept_loss)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, stamping quarantined records with the system
    /// clock.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with(dir, OpenOptions::default()).map(|(store, _)| store)
    }

    /// Opens (or creates) the store in `dir` with an injected clock.
    pub fn open_with_clock(dir: &Path, clock: Arc<dyn Clock>) -> Result<SledStore, StoreError> {
        let options = OpenOptions {
            clock,
            ..OpenOptions::default()
        };
        SledStore::open_with(dir, options).map(|(store, _)| store)
    }

    /// Opens a store that its manifest says is damaged, accepting the loss (see
    /// [`OpenOptions::accept_loss`]); returns what was accepted. A store that is not
    /// damaged opens as usual, with nothing to report.
    pub fn recover(dir: &Path) -> Result<(SledStore, integrity::Recovered), StoreError> {
        let options = OpenOptions {
            accept_loss: true,
            ..OpenOptions::default()
        };
        SledStore::open_with(dir, options)
    }

    /// Opens (or creates) the store in `dir`.
    ///
    /// Creates the directory with mode 0700 (tightening an existing one), takes the lock,
    /// opens sled, makes every file under the directory 0600, and checks what sled holds
    /// against the manifest.
    pub fn open_with(
        dir: &Path,
        options: OpenOptions,
    ) -> Result<(SledStore, integrity::Recovered), StoreError> {
        let path = dir.display().to_string();
        let unreadable = |reason: String| StoreError::Unreadable {
            path: path.clone(),
            reason,
        };
        fs::create_dir_all(dir)
            .map_err(|error| unreadable(format!("cannot create the data directory: {error}")))?;
        fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
            .map_err(|error| unreadable(format!("cannot restrict the data directory: {error}")))?;
        let lock = FileOptions::new()
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
        let found = sealing::precheck(dir, &options.key)?;
        let had_files = fs::metadata(dir.join("db")).is_ok_and(|meta| meta.len() > 0);
        let sled = open_sled(dir)?;
        let resolved = sealing::resolve(dir, &sled, found)?;
        let (journal, history_is_new, recovered) = integrity::check(
            dir,
            &sled,
            had_files,
            options.accept_loss,
            options.clock.now(),
            &resolved.key,
        )?;
        sealing::migrate(&sled, &resolved.key)?;
        sealing::write_id_file(dir, &[resolved.key.id()])?;
        restrict_permissions(dir).map_err(|error| {
            unreadable(format!(
                "cannot restrict permissions of the data files: {error}"
            ))
        })?;
        let store = SledStore {
            dir: dir.to_path_buf(),
            sled: RwLock::new(Some(sled)),
            journal: Mutex::new(journal),
            broken: Mutex::new(None),
            history_is_new,
            hooks: crate::batch::Hooks::default(),
            health: crate::health::HealthTracker::default(),
            clock: options.clock,
            key: resolved.key,
            key_origin: resolved.origin,
            _lock: lock,
        };
        Ok((store, recovered))
    }
}
