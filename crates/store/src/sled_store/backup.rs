//! Backups: a consistent copy of every record, and a restore into an empty data directory.
//!
//! A backup file is `CPBACKv1 ++ bincode(body) ++ SHA-256 of everything before it`. Its body
//! holds every record of every tree as stored (secrets exactly as the store holds them —
//! keep the file as private as the data directory; it is written 0600) and the manifest's
//! list of spent first-generation refresh tokens.
//!
//! **Invariants:** an export sees no batch half applied (writes wait while it runs); a
//! restore refuses a data directory that holds any entry, checks the whole file before it
//! writes anything, and rebuilds the manifest from what it wrote.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::PoisonError;

use bincode::Options;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{SledStore, integrity};
use crate::batch::TreeName;
use crate::codec;
use crate::{Store, StoreError};

/// The first bytes of a backup file.
pub const BACKUP_MAGIC: &[u8; 8] = b"CPBACKv1";

/// The largest backup read.
const BACKUP_LIMIT: u64 = 1 << 30;

#[derive(Serialize, Deserialize)]
struct Body {
    /// (tree index, key, value) for every record.
    records: Vec<(u8, Vec<u8>, Vec<u8>)>,
    spent: Vec<String>,
}

impl Drop for Body {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for (_, _, value) in &mut self.records {
            value.zeroize();
        }
    }
}

/// What a backup holds, as counted when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Records of every tree.
    pub records: usize,
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .reject_trailing_bytes()
        .with_limit(BACKUP_LIMIT)
}

impl SledStore {
    /// Writes every record into a backup file's bytes; writes wait until it is done.
    pub fn export(&self) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let io = |error: sled::Error| StoreError::Io(error.to_string());
        let guard = self.sled.write().unwrap_or_else(PoisonError::into_inner);
        let Some(sled) = guard.as_ref() else {
            return Err(StoreError::Io("store closed".to_owned()));
        };
        let mut records = Vec::new();
        for tree in TreeName::ALL {
            for item in sled.trees[tree as usize].iter() {
                let (key, value) = item.map_err(io)?;
                records.push((tree as u8, key.to_vec(), value.to_vec()));
            }
        }
        drop(guard);
        let spent = self.journal().state().spent.iter().cloned().collect();
        let body = Body { records, spent };
        let payload = Zeroizing::new(
            options()
                .serialize(&body)
                .map_err(|error| StoreError::Encode(error.to_string()))?,
        );
        let mut out = Zeroizing::new(Vec::with_capacity(payload.len() + 40));
        out.extend_from_slice(BACKUP_MAGIC);
        out.extend_from_slice(&payload);
        let digest = Sha256::digest(out.as_slice());
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Restores a backup into `dir`, which must hold no entry, and returns the open store.
    ///
    /// # Errors
    /// The file is not a whole backup (wrong magic, checksum, or body), or the directory
    /// already holds entries (restoring over them could bring back spent refresh tokens).
    pub fn restore(dir: &Path, bytes: &[u8]) -> Result<(SledStore, Backup), StoreError> {
        SledStore::restore_with(dir, bytes, super::open::OpenOptions::default())
    }

    /// [`SledStore::restore`] opening the new store with `options` (its master key): the
    /// backup's sealed records must open with that key — the one the backed-up store was
    /// sealed with. Records of a backup taken before sealing are sealed as they are restored.
    ///
    /// # Errors
    /// As [`SledStore::restore`], and a backup sealed with another key than the one given.
    pub fn restore_with(
        dir: &Path,
        bytes: &[u8],
        open: super::open::OpenOptions,
    ) -> Result<(SledStore, Backup), StoreError> {
        let bad = |reason: &str| StoreError::Unreadable {
            path: "the backup".to_owned(),
            reason: reason.to_owned(),
        };
        let body_bytes = bytes
            .strip_prefix(BACKUP_MAGIC.as_slice())
            .ok_or_else(|| bad("not a credpool backup (wrong magic)"))?;
        if body_bytes.len() < 32 {
            return Err(bad("truncated"));
        }
        let (payload, sum) = body_bytes.split_at(body_bytes.len() - 32);
        let digest = Sha256::digest(&bytes[..bytes.len() - 32]);
        if digest.as_slice() != sum {
            return Err(bad("checksum mismatch: the file is damaged or truncated"));
        }
        let body: Body = options()
            .deserialize(payload)
            .map_err(|_| bad("its body does not decode"))?;
        check_key(&body, dir, &open)?;
        let (store, _) = SledStore::open_with(dir, open)?;
        if !store.providers()?.is_empty() {
            return Err(StoreError::Unreadable {
                path: dir.display().to_string(),
                reason: "the data directory already holds a store; restore into an empty one"
                    .to_owned(),
            });
        }
        {
            let io = |error: sled::Error| StoreError::Io(error.to_string());
            let guard = store.sled.read().unwrap_or_else(PoisonError::into_inner);
            let Some(sled) = guard.as_ref() else {
                return Err(StoreError::Io("store closed".to_owned()));
            };
            for (tree, key, value) in &body.records {
                let tree = TreeName::ALL
                    .get(usize::from(*tree))
                    .ok_or_else(|| bad("a record names an unknown tree"))?;
                sled.trees[*tree as usize]
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(io)?;
            }
            sled.db.flush().map_err(io)?;
            super::sealing::migrate(sled, &store.key)?;
            let spent: BTreeSet<String> = body.spent.iter().cloned().collect();
            let journal = integrity::rebuild(dir, sled, spent)?;
            *store.journal() = journal;
        }
        let backup = Backup {
            records: body.records.len(),
        };
        Ok((store, backup))
    }
}

/// Refuses a backup sealed with another key than the one `options` name, before anything
/// is written (a backup taken before sealing needs none).
fn check_key(
    body: &Body,
    dir: &Path,
    options: &super::open::OpenOptions,
) -> Result<(), StoreError> {
    let sealed_with = body.records.iter().find_map(|(tree, _, value)| {
        (usize::from(*tree) == TreeName::Entries as usize)
            .then(|| codec::sealed_key_id(value))
            .flatten()
    });
    let Some(sealed_with) = sealed_with else {
        return Ok(());
    };
    let given = crate::seal::source::find(&options.key, dir)?;
    match given {
        Some(given) if given.key.id() == sealed_with => Ok(()),
        Some(given) => Err(StoreError::WrongKey {
            path: "the backup".to_owned(),
            stored: sealed_with,
            given: given.key.id(),
            origin: given.origin.to_string(),
        }),
        None => Err(StoreError::KeyMissing {
            path: dir.display().to_string(),
            stored: sealed_with,
        }),
    }
}
