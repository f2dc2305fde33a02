//! The manifest: an independent record of what the store must hold, kept beside sled's files.
//!
//! sled treats a damaged section of its log as the end of the log: a flipped byte can make a
//! store reopen shorter, empty, or with a grant rolled back to an older generation — whose
//! refresh token is spent at the provider. The manifest lets a store that comes back shorter
//! or older than it was refuse to start instead of passing for a fresh or smaller pool.
//!
//! It holds, per provider, every entry's id, label and highest generation, and the
//! fingerprints of the first-generation refresh tokens ever sent (so a seed whose token was
//! spent is never seeded again). It is a journal, `manifest.log`: each record is
//! `length (u32 LE) ++ first 4 bytes of SHA-256(payload) ++ payload` (bincode, varint, the
//! store's codec options), and a compaction rewrites it as one snapshot record (written to a
//! new file, synced, renamed over the old one).
//!
//! **Durability.** The manifest must never record more than sled made durable, or a healthy
//! store would look damaged. So a removal is appended and synced *before* it reaches sled,
//! and everything else only *after* sled's next successful flush; appended records are synced
//! at most a second later (at a flush) or when the store closes.
//! A process crash (`kill -9`) loses nothing of it (the kernel holds the written bytes); a
//! power loss within that second can lose the last records, which only makes the manifest
//! older — it then detects less, never more.
//!
//! **Invariants:** reading stops at the first record that does not check out; a torn last
//! record (a crash while appending) is dropped, while a bad record followed by good ones is
//! damage and is reported. Nothing here holds a secret: ids, labels, generations, fingerprints.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bincode::Options;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Change;

/// The journal's file name in the data directory.
pub const MANIFEST_FILE: &str = "manifest.log";

/// A compaction happens once the journal holds this many records past its snapshot.
const COMPACT_AFTER: u64 = 4096;

/// The longest record read (a snapshot of a large pool included).
const RECORD_LIMIT: u64 = 64 << 20;

/// How long appended records may wait for their sync.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// What the manifest knows of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Its highest generation ever committed.
    pub generation: u64,
    /// Its label (for the operator's error messages).
    pub label: String,
}

/// The manifest's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestState {
    /// Provider → entry id → what was recorded.
    pub providers: BTreeMap<String, BTreeMap<u64, Recorded>>,
    /// Fingerprints of first-generation refresh tokens that were sent.
    pub spent: BTreeSet<String>,
}

/// One journal record.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Record {
    /// The whole state (the first record after a compaction).
    Snapshot(ManifestState),
    /// An entry was written at this generation.
    Put {
        provider: String,
        entry: u64,
        generation: u64,
        label: String,
    },
    /// An entry was removed.
    Remove { provider: String, entry: u64 },
    /// A first-generation refresh token was sent.
    Spent { fingerprint: String },
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .reject_trailing_bytes()
        .with_limit(RECORD_LIMIT)
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(payload);
    [digest[0], digest[1], digest[2], digest[3]]
}

fn frame(record: &Record) -> io::Result<Vec<u8>> {
    let payload = options()
        .serialize(record)
        .map_err(|error| io::Error::other(error.to_string()))?;
    let length = u32::try_from(payload.len()).map_err(io::Error::other)?;
    let mut framed = Vec::with_capacity(payload.len() + 8);
    framed.extend_from_slice(&length.to_le_bytes());
    framed.extend_from_slice(&checksum(&payload));
    framed.extend_from_slice(&payload);
    Ok(framed)
}

/// What reading a journal found.
#[derive(Debug)]
pub enum JournalRead {
    /// No journal file.
    Absent,
    /// The state it records (a torn last record dropped).
    State(ManifestState, u64),
    /// A record in the middle does not check out.
    Damaged {
        /// Where the bad record starts.
        offset: u64,
    },
}

impl ManifestState {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Snapshot(state) => *self = state,
            Record::Put {
                provider,
                entry,
                generation,
                label,
            } => {
                let entries = self.providers.entry(provider).or_default();
                let generation = entries
                    .get(&entry)
                    .map_or(generation, |old| old.generation.max(generation));
                entries.insert(entry, Recorded { generation, label });
            }
            Record::Remove { provider, entry } => {
                if let Some(entries) = self.providers.get_mut(&provider) {
                    entries.remove(&entry);
                    if entries.is_empty() {
                        self.providers.remove(&provider);
                    }
                }
            }
            Record::Spent { fingerprint } => {
                self.spent.insert(fingerprint);
            }
        }
    }

    /// The records a batch adds to the manifest: entries whose generation or label changed,
    /// removals, first-generation markers. Removals come first in the returned pair.
    fn records_of(&self, changes: &[Change]) -> (Vec<Record>, Vec<Record>) {
        let mut removals = Vec::new();
        let mut others = Vec::new();
        for change in changes {
            match change {
                Change::PutEntry { provider, entry } => {
                    let known = self
                        .providers
                        .get(provider.as_str())
                        .and_then(|entries| entries.get(&entry.id.0));
                    let changed = known.is_none_or(|recorded| {
                        recorded.generation < entry.generation.0 || recorded.label != entry.label
                    });
                    if changed {
                        others.push(Record::Put {
                            provider: provider.as_str().to_owned(),
                            entry: entry.id.0,
                            generation: entry.generation.0,
                            label: entry.label.clone(),
                        });
                    }
                }
                Change::RemoveEntry { provider, entry } => removals.push(Record::Remove {
                    provider: provider.as_str().to_owned(),
                    entry: entry.0,
                }),
                Change::PutMarker(marker)
                    if marker.generation == credpool_core::Generation::FIRST =>
                {
                    let fingerprint = marker.refresh_fingerprint.as_str().to_owned();
                    if !self.spent.contains(&fingerprint) {
                        others.push(Record::Spent { fingerprint });
                    }
                }
                _ => {}
            }
        }
        (removals, others)
    }
}

/// Reads a journal file.
pub fn read(path: &Path) -> io::Result<JournalRead> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)?;
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(JournalRead::Absent),
        Err(error) => return Err(error),
    }
    let mut state = ManifestState::default();
    let mut offset = 0usize;
    let mut records = 0u64;
    while offset < bytes.len() {
        match parse_record(&bytes[offset..]) {
            Some((record, used)) => {
                state.apply(record);
                offset += used;
                records += 1;
            }
            None => {
                // A torn last record is a crash while appending; anything after a bad record
                // that still parses means the middle was damaged.
                let rest = &bytes[offset..];
                let later_record =
                    (1..rest.len()).any(|skip| parse_record(&rest[skip..]).is_some());
                if later_record {
                    return Ok(JournalRead::Damaged {
                        offset: offset as u64,
                    });
                }
                break;
            }
        }
    }
    Ok(JournalRead::State(state, records))
}

fn parse_record(bytes: &[u8]) -> Option<(Record, usize)> {
    let length = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let sum: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
    let payload = bytes.get(8..8usize.checked_add(length)?)?;
    if length == 0 || checksum(payload) != sum {
        return None;
    }
    let record = options().deserialize(payload).ok()?;
    Some((record, 8 + length))
}

/// The open journal of a store.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    state: ManifestState,
    /// Records appended since the last snapshot.
    records: u64,
    /// Records of batches sled took but has not flushed yet (already in `state`).
    pending: Vec<Record>,
    /// Appended but not yet synced.
    unsynced: bool,
    last_sync: Instant,
}

impl Journal {
    /// Opens (or creates, with mode 0600) the journal at `path` holding `state`, which has
    /// `records` records after its snapshot.
    pub fn open(path: &Path, state: ManifestState, records: u64) -> io::Result<Journal> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            state,
            records,
            pending: Vec::new(),
            unsynced: false,
            last_sync: Instant::now(),
        })
    }

    /// Starts a new journal holding `state` (a first open, a recovery): one snapshot record,
    /// synced and renamed into place.
    pub fn create(path: &Path, state: ManifestState) -> io::Result<Journal> {
        write_snapshot(path, &state)?;
        Journal::open(path, state, 1)
    }

    /// What the journal records.
    pub fn state(&self) -> &ManifestState {
        &self.state
    }

    /// Records what a batch removes, synced: call before the batch reaches the store.
    pub fn before_batch(&mut self, changes: &[Change]) -> io::Result<()> {
        let (removals, _) = self.state.records_of(changes);
        if removals.is_empty() {
            return Ok(());
        }
        self.append(removals)?;
        self.sync()
    }

    /// Notes what a batch the store took adds; written once the store made it durable
    /// ([`Journal::durable`]).
    pub fn after_batch(&mut self, changes: &[Change]) {
        let (_, others) = self.state.records_of(changes);
        for record in others {
            self.state.apply(record.clone());
            self.pending.push(record);
        }
    }

    /// The store flushed: what it took is durable, and so may the manifest record it (synced
    /// within [`SYNC_EVERY`]).
    pub fn durable(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending);
        self.write(&records)
    }

    fn append(&mut self, records: Vec<Record>) -> io::Result<()> {
        self.write(&records)?;
        for record in records {
            self.state.apply(record);
        }
        Ok(())
    }

    /// Appends records (already applied to `state`) to the file.
    fn write(&mut self, records: &[Record]) -> io::Result<()> {
        let mut bytes = Vec::new();
        for record in records {
            bytes.extend(frame(record)?);
        }
        self.file.write_all(&bytes)?;
        self.unsynced = true;
        self.records += records.len() as u64;
        Ok(())
    }

    /// After a successful flush of the store: writes what became durable, syncs it when it
    /// waited long enough, and compacts a long journal.
    pub fn maintain(&mut self) -> io::Result<()> {
        self.durable()?;
        if self.unsynced && self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        if self.records > COMPACT_AFTER && self.pending.is_empty() {
            write_snapshot(&self.path, &self.state)?;
            self.file = OpenOptions::new().append(true).open(&self.path)?;
            self.records = 1;
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Syncs what was appended.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// Writes `state` as a one-record journal: a new file, synced, renamed over `path`, the
/// directory synced.
fn write_snapshot(path: &Path, state: &ManifestState) -> io::Result<()> {
    let fresh = path.with_extension("log.new");
    {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&fresh)?;
        file.write_all(&frame(&Record::Snapshot(state.clone()))?)?;
        file.sync_all()?;
    }
    fs::rename(&fresh, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
