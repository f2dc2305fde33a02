//! Backend-independent halves of the store: turning a batch of [`Change`]s into keyed writes,
//! the change notices they produce, and assembling a [`ProviderSnapshot`] from raw records.
//!
//! Both backends (sled and memory) go through these functions, so the in-memory store used by
//! fast tests exercises the same keys, codec and quarantine rules as the durable one.
//!
//! **Invariant:** nothing here performs I/O; a record that fails to decode is returned as a
//! [`Corrupt`] for the backend to move, never dropped.

use std::collections::BTreeMap;

use credpool_core::{EntryId, ProviderId, Timestamp};
use zeroize::Zeroizing;

use crate::codec::{self, CodecError, Secrets};
use crate::seal::MasterKey;
use crate::{Change, ChangeHook, ChangeNotice, ProviderSnapshot, QuarantinedRecord, StoreError};

/// The trees (key spaces) of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TreeName {
    Entries,
    Providers,
    Markers,
    Quarantine,
}

impl TreeName {
    /// Every tree, in a fixed order.
    pub(crate) const ALL: [TreeName; 4] = [
        TreeName::Entries,
        TreeName::Providers,
        TreeName::Markers,
        TreeName::Quarantine,
    ];

    /// Returns the tree's name on disk.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TreeName::Entries => codec::ENTRIES_TREE,
            TreeName::Providers => codec::PROVIDERS_TREE,
            TreeName::Markers => codec::MARKERS_TREE,
            TreeName::Quarantine => codec::QUARANTINE_TREE,
        }
    }
}

/// One keyed write: `Some` inserts or replaces, `None` removes.
pub(crate) struct Op {
    pub(crate) tree: TreeName,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Zeroizing<Vec<u8>>>,
}

impl From<CodecError> for StoreError {
    fn from(error: CodecError) -> Self {
        StoreError::Encode(error.to_string())
    }
}

/// Encodes a batch before any backend transaction starts (a transaction may run its body more
/// than once; encoding is done once).
pub(crate) fn encode_changes(changes: &[Change], key: &MasterKey) -> Result<Vec<Op>, StoreError> {
    let mut ops = Vec::with_capacity(changes.len());
    for change in changes {
        match change {
            Change::PutEntry { provider, entry } => ops.push(Op {
                tree: TreeName::Entries,
                key: codec::entry_key(provider, entry.id)?,
                value: Some(codec::encode_entry(provider, entry, key)?),
            }),
            Change::RemoveEntry { provider, entry } => {
                let key = codec::entry_key(provider, *entry)?;
                ops.push(Op {
                    tree: TreeName::Markers,
                    key: key.clone(),
                    value: None,
                });
                ops.push(Op {
                    tree: TreeName::Entries,
                    key,
                    value: None,
                });
            }
            Change::PutProviderState { provider, state } => ops.push(Op {
                tree: TreeName::Providers,
                key: codec::provider_key(provider)?,
                value: Some(codec::encode_provider_state(state)?),
            }),
            Change::PutMarker(marker) => ops.push(Op {
                tree: TreeName::Markers,
                key: codec::entry_key(&marker.provider, marker.entry)?,
                value: Some(codec::encode_marker(marker)?),
            }),
            Change::ClearMarker { provider, entry } => ops.push(Op {
                tree: TreeName::Markers,
                key: codec::entry_key(provider, *entry)?,
                value: None,
            }),
        }
    }
    Ok(ops)
}

/// Returns one notice per provider touched by the batch, in order of first appearance, naming
/// the entries written or removed.
pub(crate) fn notices(changes: &[Change]) -> Vec<ChangeNotice> {
    let mut out: Vec<ChangeNotice> = Vec::new();
    for change in changes {
        let provider = change.provider();
        let index = match out.iter().position(|n| &n.provider == provider) {
            Some(index) => index,
            None => {
                out.push(ChangeNotice {
                    provider: provider.clone(),
                    entries: Vec::new(),
                });
                out.len() - 1
            }
        };
        let entry = match change {
            Change::PutEntry { entry, .. } => Some(entry.id),
            Change::RemoveEntry { entry, .. } => Some(*entry),
            _ => None,
        };
        if let Some(entry) = entry
            && !out[index].entries.contains(&entry)
        {
            out[index].entries.push(entry);
        }
    }
    out
}

/// A record as a backend read it: its key and its bytes (zeroized on drop: they may hold
/// secrets).
pub(crate) type RawRecord = (Vec<u8>, Zeroizing<Vec<u8>>);

/// The raw records of one provider, as a backend read them.
#[derive(Default)]
pub(crate) struct RawProvider {
    pub(crate) entries: Vec<RawRecord>,
    pub(crate) state: Option<RawRecord>,
    pub(crate) markers: Vec<RawRecord>,
    pub(crate) quarantine: Vec<RawRecord>,
}

/// A record that failed to decode and must be moved to quarantine.
pub(crate) struct Corrupt {
    /// Where it was found.
    pub(crate) tree: TreeName,
    /// Its key there.
    pub(crate) key: Vec<u8>,
    /// The bytes found, which the move must still find there (else it was rewritten).
    pub(crate) raw: Zeroizing<Vec<u8>>,
    /// Its key in the quarantine tree.
    pub(crate) quarantine_key: Vec<u8>,
    /// The encoded quarantine record.
    pub(crate) quarantine_value: Zeroizing<Vec<u8>>,
    /// What is reported.
    pub(crate) record: QuarantinedRecord,
}

/// How one provider's records are read: whose they are, when, and the key that opens them.
pub(crate) struct Reading<'a> {
    pub(crate) provider: &'a ProviderId,
    pub(crate) now: Timestamp,
    pub(crate) key: &'a MasterKey,
}

fn corrupt(
    reading: &Reading<'_>,
    tree: TreeName,
    key: Vec<u8>,
    raw: Zeroizing<Vec<u8>>,
    error: &CodecError,
) -> Result<Corrupt, StoreError> {
    let provider = reading.provider;
    let record = QuarantinedRecord {
        provider: Some(provider.clone()),
        key: codec::printable_key(tree.as_str(), &key),
        error: error.to_string(),
        quarantined_at: reading.now,
    };
    let quarantine_key = codec::quarantine_key(provider, tree.as_str(), &key)?;
    Ok(Corrupt {
        quarantine_value: codec::encode_quarantined(&record, &raw, &quarantine_key, reading.key)?,
        quarantine_key,
        tree,
        key,
        raw,
        record,
    })
}

/// Decodes one provider's raw records. Records that fail to decode (or whose content
/// contradicts their key) are returned as [`Corrupt`] and also listed in the snapshot's
/// `quarantined`, after the ones quarantined earlier.
pub(crate) fn assemble(
    reading: &Reading<'_>,
    raw: RawProvider,
) -> Result<(ProviderSnapshot, Vec<Corrupt>), StoreError> {
    let provider = reading.provider;
    let now = reading.now;
    let mut snapshot = ProviderSnapshot::default();
    let mut corrupted = Vec::new();

    for (key, bytes) in raw.entries {
        let decoded =
            codec::decode_entry(provider, &bytes, Secrets::Open(reading.key)).and_then(|decoded| {
                if codec::entry_id_of_key(&key) == Some(decoded.entry.id) {
                    Ok(decoded)
                } else {
                    Err(CodecError::Invalid(
                        "entry id does not match its key".to_owned(),
                    ))
                }
            });
        match decoded {
            Ok(decoded) => {
                if let Some(fingerprint) = decoded.borrowed_fingerprint {
                    snapshot
                        .borrowed_fingerprints
                        .insert(decoded.entry.id, fingerprint);
                }
                snapshot.entries.push(decoded.entry);
            }
            Err(error) => corrupted.push(corrupt(reading, TreeName::Entries, key, bytes, &error)?),
        }
    }

    if let Some((key, bytes)) = raw.state {
        match codec::decode_provider_state(&bytes) {
            Ok(state) => snapshot.state = Some(state),
            Err(error) => {
                corrupted.push(corrupt(reading, TreeName::Providers, key, bytes, &error)?)
            }
        }
    }

    for (key, bytes) in raw.markers {
        let decoded = codec::decode_marker(&bytes).and_then(|marker| {
            if &marker.provider == provider && codec::entry_id_of_key(&key) == Some(marker.entry) {
                Ok(marker)
            } else {
                Err(CodecError::Invalid(
                    "marker does not match its key".to_owned(),
                ))
            }
        });
        match decoded {
            Ok(marker) => snapshot.markers.push(marker),
            Err(error) => corrupted.push(corrupt(reading, TreeName::Markers, key, bytes, &error)?),
        }
    }

    let mut quarantined: BTreeMap<Vec<u8>, QuarantinedRecord> = BTreeMap::new();
    for (key, bytes) in raw.quarantine {
        let record = quarantined_from_raw(&key, &bytes, now);
        quarantined.insert(key, record);
    }
    for item in &corrupted {
        quarantined.insert(item.quarantine_key.clone(), item.record.clone());
    }
    snapshot.quarantined = quarantined.into_values().collect();
    Ok((snapshot, corrupted))
}

/// Lists every provider named by a key of any tree, sorted and without duplicates.
pub(crate) fn providers_of_keys<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Vec<ProviderId> {
    let mut providers: Vec<ProviderId> = keys
        .into_iter()
        .filter_map(codec::provider_of_key)
        .collect();
    providers.sort();
    providers.dedup();
    providers
}

/// Decodes a record of the quarantine tree; one that does not decode itself is still listed,
/// under its quarantine key, stamped `now`.
pub(crate) fn quarantined_from_raw(key: &[u8], bytes: &[u8], now: Timestamp) -> QuarantinedRecord {
    match codec::decode_quarantined(bytes) {
        Ok((record, _raw)) => record,
        Err(error) => QuarantinedRecord {
            provider: codec::provider_of_key(key),
            key: codec::printable_key(codec::QUARANTINE_TREE, key),
            error: format!("quarantine record unreadable: {error}"),
            quarantined_at: now,
        },
    }
}

/// Returns the entry written by a batch's notices, for hooks; helper for CAS.
pub(crate) fn cas_notice(provider: &ProviderId, entry: EntryId) -> ChangeNotice {
    ChangeNotice {
        provider: provider.clone(),
        entries: vec![entry],
    }
}

/// The change hooks of a store (both backends): registered by `Store::watch`, called after a
/// write is applied, outside the hook list's lock (a hook may register another).
#[derive(Default)]
pub(crate) struct Hooks(std::sync::RwLock<Vec<ChangeHook>>);

impl Hooks {
    /// Registers a hook.
    pub(crate) fn add(&self, hook: ChangeHook) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(hook);
    }

    /// Calls every hook with every notice, in order.
    pub(crate) fn notify(&self, notices: &[ChangeNotice]) {
        let hooks: Vec<ChangeHook> = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for notice in notices {
            for hook in &hooks {
                hook(notice);
            }
        }
    }
}
