//! What the store holds, checked against its manifest at every open.
//!
//! **Invariants:** a store that comes back with fewer entries than its manifest records, or
//! with an older generation of one, is [`StoreError::Damaged`] naming what is missing; it is
//! never presented as a shorter pool. Only an operator's explicit acceptance
//! (`accept_loss`) lets it open: the missing entries are forgotten, a rolled-back OAuth
//! grant is marked dead (`store_rolled_back` — its refresh token may be spent, so it is
//! never sent), and the manifest is rebuilt from what is left. A record that no longer
//! decodes is present (quarantined and reported at load), not missing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use credpool_core::{CredentialKind, DeadReason, EntryId, ProviderId, Status, Timestamp};

use super::handles::Sled;
use crate::StoreError;
use crate::batch::TreeName;
use crate::codec::{self, Secrets};
use crate::manifest::{self, Journal, JournalRead, MANIFEST_FILE, ManifestState, Recorded};
use crate::seal::MasterKey;

/// Marks, in sled's default tree, a store that keeps a manifest: without the file it is
/// damaged, not new.
const TRACKED_KEY: &[u8] = b"credpool/manifest";

/// The longest list of problems an error names; the rest are counted.
const SHOWN_PROBLEMS: usize = 10;

/// One way the store differs from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The store keeps a manifest, and it is gone.
    ManifestMissing,
    /// sled's files were there but hold nothing readable, and there is no manifest to say
    /// what they held.
    NothingReadable,
    /// The manifest does not read past `offset`.
    ManifestUnreadable {
        /// Where the bad record starts.
        offset: u64,
    },
    /// An entry the manifest records is not in the store.
    Missing {
        /// Its provider.
        provider: String,
        /// The entry.
        entry: EntryId,
        /// Its label when recorded.
        label: String,
    },
    /// An entry is in the store at an older generation than committed.
    RolledBack {
        /// Its provider.
        provider: String,
        /// The entry.
        entry: EntryId,
        /// Its label.
        label: String,
        /// The generation the store holds.
        stored: u64,
        /// The generation the manifest recorded.
        recorded: u64,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::ManifestMissing => f.write_str("its manifest is missing"),
            Damage::NothingReadable => f.write_str(
                "its database files hold nothing readable and it has no manifest to say what they held",
            ),
            Damage::ManifestUnreadable { offset } => {
                write!(f, "its manifest is unreadable from byte {offset}")
            }
            Damage::Missing {
                provider,
                entry,
                label,
            } => write!(f, "entry {provider}/{label} ({entry}) is missing"),
            Damage::RolledBack {
                provider,
                entry,
                label,
                stored,
                recorded,
            } => write!(
                f,
                "entry {provider}/{label} ({entry}) is at generation {stored}, older than the committed {recorded}"
            ),
        }
    }
}

/// What an open that accepted a loss did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The damage that was accepted (empty when the store was whole).
    pub damage: Vec<Damage>,
    /// Rolled-back OAuth grants marked dead (`store_rolled_back`).
    pub killed: Vec<(ProviderId, EntryId)>,
}

/// An entry as sled holds it.
struct Found {
    /// Its generation, label and kind; `None` when the record does not decode (it will be
    /// quarantined at load) or is quarantined already.
    decoded: Option<(u64, String, CredentialKind)>,
}

/// Every entry sled holds (quarantined ones too), by provider and id.
fn survey(sled: &Sled) -> Result<BTreeMap<(String, u64), Found>, StoreError> {
    let io = |error: sled::Error| StoreError::Io(error.to_string());
    let mut found = BTreeMap::new();
    for item in sled.trees[TreeName::Entries as usize].iter() {
        let (key, value) = item.map_err(io)?;
        let (Some(provider), Some(id)) =
            (codec::provider_of_key(&key), codec::entry_id_of_key(&key))
        else {
            continue;
        };
        let decoded = codec::decode_entry(&provider, &value, Secrets::Skip)
            .ok()
            .map(|decoded| {
                let entry = decoded.entry;
                (
                    entry.generation.0,
                    entry.label.clone(),
                    entry.credential_kind(),
                )
            });
        found.insert((provider.as_str().to_owned(), id.0), Found { decoded });
    }
    let entries_tree = format!("{}\0", codec::ENTRIES_TREE);
    for item in sled.trees[TreeName::Quarantine as usize].iter() {
        let (key, _) = item.map_err(io)?;
        let Some(provider) = codec::provider_of_key(&key) else {
            continue;
        };
        let after_provider = key.get(provider.as_str().len() + 1..).unwrap_or_default();
        if !after_provider.starts_with(entries_tree.as_bytes()) {
            continue;
        }
        if let Some(id) = codec::entry_id_of_key(&key) {
            found
                .entry((provider.as_str().to_owned(), id.0))
                .or_insert(Found { decoded: None });
        }
    }
    Ok(found)
}

/// What the manifest records but the store lacks or holds older.
fn compare(state: &ManifestState, found: &BTreeMap<(String, u64), Found>) -> Vec<Damage> {
    let mut damage = Vec::new();
    for (provider, entries) in &state.providers {
        for (id, recorded) in entries {
            match found.get(&(provider.clone(), *id)) {
                None => damage.push(Damage::Missing {
                    provider: provider.clone(),
                    entry: EntryId(*id),
                    label: recorded.label.clone(),
                }),
                Some(Found {
                    decoded: Some((stored, _, _)),
                }) if *stored < recorded.generation => damage.push(Damage::RolledBack {
                    provider: provider.clone(),
                    entry: EntryId(*id),
                    label: recorded.label.clone(),
                    stored: *stored,
                    recorded: recorded.generation,
                }),
                Some(_) => {}
            }
        }
    }
    damage
}

/// The manifest of what sled holds now (a first open, or an accepted loss).
fn state_of(found: &BTreeMap<(String, u64), Found>, spent: ManifestState) -> ManifestState {
    let mut state = ManifestState {
        providers: BTreeMap::new(),
        spent: spent.spent,
    };
    for ((provider, id), entry) in found {
        let (generation, label) = match &entry.decoded {
            Some((generation, label, _)) => (*generation, label.clone()),
            None => (0, String::new()),
        };
        state
            .providers
            .entry(provider.clone())
            .or_default()
            .insert(*id, Recorded { generation, label });
    }
    state
}

/// Tells whether sled holds no record at all, in any tree.
fn blank(sled: &Sled) -> bool {
    sled.db.is_empty() && sled.trees.iter().all(sled::Tree::is_empty)
}

/// Checks sled against the manifest in `dir`; returns the open journal, whether the store's
/// history begins now, and what an accepted loss did. `had_files`: sled's database file held
/// bytes before this open (so a blank sled without a manifest is damage, not a new store).
pub(super) fn check(
    dir: &Path,
    sled: &Sled,
    had_files: bool,
    accept_loss: bool,
    now: Timestamp,
    key: &MasterKey,
) -> Result<(Journal, bool, Recovered), StoreError> {
    let io = |error: std::io::Error| StoreError::Io(format!("manifest: {error}"));
    let path = dir.join(MANIFEST_FILE);
    let found = survey(sled)?;
    let tracked = sled
        .db
        .get(TRACKED_KEY)
        .map_err(|error| StoreError::Io(error.to_string()))?
        .is_some();
    let (damage, earlier) = match manifest::read(&path).map_err(io)? {
        JournalRead::Absent if !tracked && had_files && blank(sled) => {
            (vec![Damage::NothingReadable], ManifestState::default())
        }
        JournalRead::Absent if !tracked => {
            // A new store, or one written before manifests: the manifest starts from it.
            let history_is_new = found.is_empty();
            let journal =
                Journal::create(&path, state_of(&found, ManifestState::default())).map_err(io)?;
            mark_tracked(sled)?;
            return Ok((journal, history_is_new, Recovered::default()));
        }
        JournalRead::Absent => (vec![Damage::ManifestMissing], ManifestState::default()),
        JournalRead::Damaged { offset } => (
            vec![Damage::ManifestUnreadable { offset }],
            ManifestState::default(),
        ),
        JournalRead::State(state, records) => {
            let damage = compare(&state, &found);
            if damage.is_empty() {
                if !tracked {
                    mark_tracked(sled)?;
                }
                let journal = Journal::open(&path, state, records).map_err(io)?;
                return Ok((journal, false, Recovered::default()));
            }
            (damage, state)
        }
    };
    if !accept_loss {
        return Err(damaged(dir, &damage));
    }
    let killed = kill_rolled_back(sled, &damage, &found, now, key)?;
    let journal = Journal::create(&path, state_of(&found, earlier)).map_err(io)?;
    mark_tracked(sled)?;
    for problem in &damage {
        tracing::warn!(%problem, "store damage accepted");
    }
    Ok((journal, false, Recovered { damage, killed }))
}

fn mark_tracked(sled: &Sled) -> Result<(), StoreError> {
    let io = |error: sled::Error| StoreError::Io(error.to_string());
    sled.db.insert(TRACKED_KEY, b"1".as_slice()).map_err(io)?;
    sled.db.flush().map_err(io)?;
    Ok(())
}

fn damaged(dir: &Path, damage: &[Damage]) -> StoreError {
    let mut problems: Vec<String> = damage
        .iter()
        .take(SHOWN_PROBLEMS)
        .map(ToString::to_string)
        .collect();
    if damage.len() > SHOWN_PROBLEMS {
        problems.push(format!("and {} more", damage.len() - SHOWN_PROBLEMS));
    }
    StoreError::Damaged {
        path: dir.display().to_string(),
        problems,
    }
}

/// Marks every rolled-back OAuth grant dead in sled (its stored refresh token may be spent).
fn kill_rolled_back(
    sled: &Sled,
    damage: &[Damage],
    found: &BTreeMap<(String, u64), Found>,
    now: Timestamp,
    key: &MasterKey,
) -> Result<Vec<(ProviderId, EntryId)>, StoreError> {
    let io = |error: sled::Error| StoreError::Io(error.to_string());
    let entries = &sled.trees[TreeName::Entries as usize];
    let mut killed = Vec::new();
    for problem in damage {
        let Damage::RolledBack {
            provider, entry, ..
        } = problem
        else {
            continue;
        };
        let oauth = found
            .get(&(provider.clone(), entry.0))
            .is_some_and(|f| matches!(f.decoded, Some((_, _, CredentialKind::OAuth))));
        if !oauth {
            continue;
        }
        let provider_id = ProviderId::new(provider);
        let entry_key = codec::entry_key(&provider_id, *entry)?;
        let Some(bytes) = entries.get(&entry_key).map_err(io)? else {
            continue;
        };
        let mut decoded = codec::decode_entry(&provider_id, &bytes, Secrets::Migrate(key))?;
        decoded.entry.status = Status::Dead {
            reason: DeadReason::new(DeadReason::STORE_ROLLED_BACK),
            since: now,
        };
        entries
            .insert(
                entry_key,
                codec::encode_entry(&provider_id, &decoded.entry, key)?.as_slice(),
            )
            .map_err(io)?;
        killed.push((provider_id, *entry));
    }
    sled.db.flush().map_err(io)?;
    Ok(killed)
}

/// Replaces the manifest with one built from what sled holds now (a restore).
pub(super) fn rebuild(
    dir: &Path,
    sled: &Sled,
    spent: std::collections::BTreeSet<String>,
) -> Result<Journal, StoreError> {
    let found = survey(sled)?;
    let earlier = ManifestState {
        providers: BTreeMap::new(),
        spent,
    };
    Journal::create(&dir.join(MANIFEST_FILE), state_of(&found, earlier))
        .map_err(|error| StoreError::Io(format!("manifest: {error}")))
}
