//! The sled store's master key: which key a store is sealed with, sealing a store written
//! before sealing (migration), and re-sealing under a new key (rekey).
//!
//! sled's default tree holds `credpool/seal`: a version byte and the id of the key every
//! sealed value is under. The file `sealed-with` beside it repeats the id (two ids while a
//! rekey commits), so that an open with another key is refused before sled is opened at all —
//! sled's own recovery at open writes to its files.
//!
//! **Invariants:**
//! - The key is checked before anything is written at an open: a store sealed with another
//!   key (or whose key is missing) fails with [`StoreError::WrongKey`] /
//!   [`StoreError::KeyMissing`] and nothing on disk changes.
//! - Migration and rekey each rewrite every record they touch *and* the key id in one sled
//!   transaction, flushed before they return: a crash leaves the store wholly under the old
//!   key or wholly under the new one, never mixed.
//! - A key is generated only for a store that records none.

use std::path::Path;

use credpool_core::ProviderId;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use zeroize::Zeroizing;

use super::handles::Sled;
use crate::StoreError;
use crate::batch::TreeName;
use crate::codec::{self, Secrets};
use crate::seal::source::{self, KeySource, ResolvedKey};
use crate::seal::{KeyId, MasterKey};

/// Where the key id is kept in sled's default tree.
const SEAL_KEY: &[u8] = b"credpool/seal";
const SEAL_VERSION: u8 = 1;

fn io(error: sled::Error) -> StoreError {
    StoreError::Io(error.to_string())
}

/// The id of the key the store is sealed with, if it records one.
pub(super) fn stored_key_id(sled: &Sled) -> Result<Option<KeyId>, StoreError> {
    let Some(value) = sled.db.get(SEAL_KEY).map_err(io)? else {
        return Ok(None);
    };
    match value.split_first() {
        Some((&SEAL_VERSION, id)) if id.len() == 8 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(id);
            Ok(Some(KeyId(bytes)))
        }
        _ => Err(StoreError::Corrupt {
            key: "credpool/seal".to_owned(),
            reason: "the record of the store's key id is malformed".to_owned(),
        }),
    }
}

fn key_id_value(id: KeyId) -> Vec<u8> {
    let mut value = vec![SEAL_VERSION];
    value.extend_from_slice(&id.0);
    value
}

/// The file beside sled that names the key(s) the store may be sealed with.
pub(super) const ID_FILE: &str = "sealed-with";

/// The check word of an ids line: 8 hex digits of its SHA-256, so that a damaged file is
/// ignored rather than read as another key.
fn check_word(ids: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(ids.as_bytes());
    digest[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The ids `sealed-with` lists (none when it is absent or damaged: sled's record decides).
fn read_id_file(dir: &Path) -> Vec<KeyId> {
    let Ok(text) = std::fs::read_to_string(dir.join(ID_FILE)) else {
        return Vec::new();
    };
    let Some((ids, check)) = text.trim_end().rsplit_once(' ') else {
        return Vec::new();
    };
    if check_word(ids) != check {
        return Vec::new();
    }
    ids.split_whitespace()
        .filter_map(|word| {
            let bytes = word.as_bytes();
            if bytes.len() != 16 {
                return None;
            }
            let mut id = [0u8; 8];
            for (i, pair) in bytes.chunks(2).enumerate() {
                let pair = std::str::from_utf8(pair).ok()?;
                id[i] = u8::from_str_radix(pair, 16).ok()?;
            }
            Some(KeyId(id))
        })
        .collect()
}

/// Replaces `sealed-with` (written to a temporary file, synced, renamed, directory synced).
pub(super) fn write_id_file(dir: &Path, ids: &[KeyId]) -> Result<(), StoreError> {
    use std::io::Write;
    let io = |error: std::io::Error| StoreError::Io(format!("{ID_FILE}: {error}"));
    if read_id_file(dir) == ids {
        return Ok(());
    }
    use std::os::unix::fs::OpenOptionsExt;
    let text: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let line = text.join(" ");
    let temporary = dir.join(format!("{ID_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io)?;
    file.write_all(format!("{line} {}\n", check_word(&line)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&temporary, dir.join(ID_FILE)).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io)
}

/// Before sled opens: finds the key `key_source` names and refuses it when `sealed-with`
/// lists other ids (or no key is found for a store that lists one). Nothing is written.
pub(super) fn precheck(
    dir: &Path,
    key_source: &KeySource,
) -> Result<Option<ResolvedKey>, StoreError> {
    let path = dir.display().to_string();
    let listed = read_id_file(dir);
    let found = source::find(key_source, dir)?;
    let Some(&stored) = listed.last() else {
        return Ok(found);
    };
    match &found {
        None => Err(StoreError::KeyMissing { path, stored }),
        Some(found) if !listed.contains(&found.key.id()) => Err(StoreError::WrongKey {
            path,
            stored,
            given: found.key.id(),
            origin: found.origin.to_string(),
        }),
        Some(_) => Ok(found),
    }
}

/// Checks the key found before sled opened against the id the store records; generates
/// `<dir>/master.key` for a store that records none and has no key given.
pub(super) fn resolve(
    dir: &Path,
    sled: &Sled,
    found: Option<ResolvedKey>,
) -> Result<ResolvedKey, StoreError> {
    let path = dir.display().to_string();
    let stored = stored_key_id(sled)?;
    let resolved = match (found, stored) {
        (Some(found), _) => found,
        (None, Some(stored)) => return Err(StoreError::KeyMissing { path, stored }),
        (None, None) => source::generate_in(dir)?,
    };
    if let Some(stored) = stored
        && stored != resolved.key.id()
    {
        return Err(StoreError::WrongKey {
            path,
            stored,
            given: resolved.key.id(),
            origin: resolved.origin.to_string(),
        });
    }
    Ok(resolved)
}

/// What sealing rewrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Entry records rewritten.
    pub entries: usize,
    /// Quarantine records rewritten.
    pub quarantined: usize,
}

/// The rewrites of one migration or rekey, computed before the transaction.
struct Rewrites {
    entries: Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    quarantine: Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>,
}

/// Seals every record still in clear (format 1) under `key` and records its id, in one
/// transaction; returns what was rewritten. Records that do not decode are left for the
/// load to quarantine (sealed).
pub(super) fn migrate(sled: &Sled, key: &MasterKey) -> Result<Resealed, StoreError> {
    let mut rewrites = Rewrites {
        entries: Vec::new(),
        quarantine: Vec::new(),
    };
    for item in sled.tree(TreeName::Entries).iter() {
        let (tree_key, value) = item.map_err(io)?;
        if value.first() != Some(&codec::FORMAT_V1) {
            continue;
        }
        let Some(provider) = codec::provider_of_key(&tree_key) else {
            continue;
        };
        let Ok(decoded) = codec::decode_entry(&provider, &value, Secrets::Migrate(key)) else {
            continue;
        };
        let sealed = codec::encode_entry(&provider, &decoded.entry, key)?;
        rewrites.entries.push((tree_key.to_vec(), sealed));
    }
    for item in sled.tree(TreeName::Quarantine).iter() {
        let (tree_key, value) = item.map_err(io)?;
        if !codec::quarantined_in_clear(&value) {
            continue;
        }
        let Ok((record, raw)) = codec::decode_quarantined(&value) else {
            continue;
        };
        let sealed = codec::encode_quarantined(&record, &raw, &tree_key, key)?;
        rewrites.quarantine.push((tree_key.to_vec(), sealed));
    }
    let recorded = stored_key_id(sled)? == Some(key.id());
    if recorded && rewrites.entries.is_empty() && rewrites.quarantine.is_empty() {
        return Ok(Resealed::default());
    }
    let done = commit(sled, &rewrites, key.id())?;
    if done.entries + done.quarantined > 0 {
        tracing::info!(
            entries = done.entries,
            quarantined = done.quarantined,
            key_id = %key.id(),
            "sealed the records of a store written before sealing"
        );
    }
    Ok(done)
}

/// Re-seals every sealed record under `new` and records its id, in one transaction. Every
/// entry must open with `old` (load the store first: what does not open is quarantined).
pub(super) fn rekey(sled: &Sled, old: &MasterKey, new: &MasterKey) -> Result<Resealed, StoreError> {
    let mut rewrites = Rewrites {
        entries: Vec::new(),
        quarantine: Vec::new(),
    };
    for item in sled.tree(TreeName::Entries).iter() {
        let (tree_key, value) = item.map_err(io)?;
        let provider = codec::provider_of_key(&tree_key).unwrap_or_else(|| ProviderId::new(""));
        let decoded =
            codec::decode_entry(&provider, &value, Secrets::Migrate(old)).map_err(|error| {
                StoreError::Corrupt {
                    key: codec::printable_key(codec::ENTRIES_TREE, &tree_key),
                    reason: format!("{error}; open the store once to quarantine it, then rekey"),
                }
            })?;
        let sealed = codec::encode_entry(&provider, &decoded.entry, new)?;
        rewrites.entries.push((tree_key.to_vec(), sealed));
    }
    for item in sled.tree(TreeName::Quarantine).iter() {
        let (tree_key, value) = item.map_err(io)?;
        let raw = if codec::quarantined_in_clear(&value) {
            codec::decode_quarantined(&value).map(|(_, raw)| raw)
        } else {
            codec::open_quarantined_raw(&value, &tree_key, old)
        };
        let (Ok(raw), Ok((record, _))) = (raw, codec::decode_quarantined(&value)) else {
            // A quarantine record that is itself unreadable is kept as it is.
            continue;
        };
        let sealed = codec::encode_quarantined(&record, &raw, &tree_key, new)?;
        rewrites.quarantine.push((tree_key.to_vec(), sealed));
    }
    commit(sled, &rewrites, new.id())
}

/// Writes the rewrites and the key id in one transaction, then flushes.
fn commit(sled: &Sled, rewrites: &Rewrites, id: KeyId) -> Result<Resealed, StoreError> {
    let entries = sled.tree(TreeName::Entries);
    let quarantine = sled.tree(TreeName::Quarantine);
    let default: &sled::Tree = &sled.db;
    let result: Result<(), TransactionError<()>> =
        (entries, quarantine, default).transaction(|(entries, quarantine, default)| {
            for (key, value) in &rewrites.entries {
                entries.insert(key.as_slice(), value.as_slice())?;
            }
            for (key, value) in &rewrites.quarantine {
                quarantine.insert(key.as_slice(), value.as_slice())?;
            }
            default.insert(SEAL_KEY, key_id_value(id))?;
            Ok::<(), ConflictableTransactionError<()>>(())
        });
    result.map_err(super::storage_error)?;
    sled.db.flush().map_err(io)?;
    Ok(Resealed {
        entries: rewrites.entries.len(),
        quarantined: rewrites.quarantine.len(),
    })
}
