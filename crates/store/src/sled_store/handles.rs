//! sled's handles and the files of a data directory: what every room of the sled store uses.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::StoreError;
use crate::batch::TreeName;

pub(crate) const DIR_MODE: u32 = 0o700;
pub(crate) const FILE_MODE: u32 = 0o600;

/// The lock file held for the store's life.
pub(crate) const LOCK_FILE: &str = "credpool.lock";

/// sled's handles: replaced when sled is reopened after a failure.
pub(crate) struct Sled {
    pub(crate) db: sled::Db,
    /// Indexed by [`TreeName`] in [`TreeName::ALL`] order.
    pub(crate) trees: [sled::Tree; 4],
}

impl Sled {
    pub(crate) fn tree(&self, name: TreeName) -> &sled::Tree {
        &self.trees[name as usize]
    }
}

/// Opens sled and its trees in `dir` (the caller holds the directory's lock).
pub(crate) fn open_sled(dir: &Path) -> Result<Sled, StoreError> {
    let path = dir.display().to_string();
    let unreadable = |reason: String| StoreError::Unreadable {
        path: path.clone(),
        reason,
    };
    let db = open_sled_db(dir).map_err(|error| match error {
        // Only reachable when something other than credpool opened sled here.
        sled::Error::Io(io) if is_lock_error(&io) => StoreError::Locked { path: path.clone() },
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
    Ok(Sled { db, trees })
}

/// How long sled's own lock is waited for while credpool's lock is held.
const SLED_LOCK_WAIT: Duration = Duration::from_secs(5);

fn is_lock_error(error: &std::io::Error) -> bool {
    error.to_string().contains("could not acquire lock")
}

/// Opens sled. The caller holds credpool's lock, so a sled lock still held is a store of this
/// process that was just dropped: sled's background threads let go of its files a moment after
/// the last handle goes. Waits for them (up to [`SLED_LOCK_WAIT`]) rather than failing.
fn open_sled_db(dir: &Path) -> sled::Result<sled::Db> {
    let started = Instant::now();
    loop {
        match sled::Config::new().path(dir).open() {
            Err(sled::Error::Io(io))
                if is_lock_error(&io) && started.elapsed() < SLED_LOCK_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Makes `dir` and every directory under it 0700 and every file 0600; symlinks are left alone
/// (sled creates none).
pub(super) fn restrict_permissions(dir: &Path) -> std::io::Result<()> {
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
