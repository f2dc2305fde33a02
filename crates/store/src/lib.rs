//! Persistence for credpool behind a small [`Store`] trait.
//!
//! The trait is shaped so that a distributed backend (etcd: transactions for
//! compare-and-swap on a generation, watches for the change feed) can follow the embedded sled
//! default without changing its callers.
//!
//! **Invariants:**
//! - Only a provider's pool actor calls [`Store::apply`] for that provider (one owner).
//! - Borrowed secrets (env var, file) are never written: only their fingerprint and metadata.
//! - A record that fails to decode is moved to quarantine and reported; it is never dropped
//!   silently, and an unreadable database is an error, never an empty pool.
//! - [`Store::apply`] is atomic per batch; it is durable only after [`Store::flush`] returns.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use credpool_core::{Entry, EntryId, Fingerprint, Generation, ProviderId, Strategy, Timestamp};
use serde::{Deserialize, Serialize};

mod batch;
pub mod codec;
#[cfg(test)]
mod fixtures;
mod health;
mod hydrate;
pub mod manifest;
mod memory;
pub mod seal;
mod sled_store;

pub use health::StoreHealth;
pub use hydrate::{
    HydrateError, HydrateReport, Hydrated, MAX_SECRET_FILE_BYTES, hydrate_borrowed,
    hydrate_borrowed_with, read_secret_file,
};
pub use memory::MemoryStore;
pub use sled_store::SledStore;
pub use sled_store::backup::{BACKUP_MAGIC, Backup};
pub use sled_store::integrity::{Damage, Recovered};
pub use sled_store::open::OpenOptions;
pub use sled_store::rekey::Rekeyed;
pub use sled_store::sealing::Resealed;

/// Per-provider state that is not an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderState {
    /// The selection strategy.
    pub strategy: Strategy,
    /// Where `round_robin` continues (written behind).
    pub round_robin_cursor: usize,
}

/// A durable note that a refresh token is about to be sent, written and flushed before the
/// request leaves; cleared once the rotated pair is committed.
///
/// Found at start, it means a crash fell inside a refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshMarker {
    /// The provider.
    pub provider: ProviderId,
    /// The entry being refreshed.
    pub entry: EntryId,
    /// The entry's generation when the refresh started.
    pub generation: Generation,
    /// Fingerprint of the refresh token being sent.
    pub refresh_fingerprint: Fingerprint,
    /// When the refresh started.
    pub started_at: Timestamp,
}

/// A record that could not be decoded, kept aside with its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedRecord {
    /// The provider the record belonged to, if the key says.
    pub provider: Option<ProviderId>,
    /// The record's key, printable.
    pub key: String,
    /// Why it could not be decoded.
    pub error: String,
    /// When it was quarantined.
    pub quarantined_at: Timestamp,
}

/// Everything stored for one provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderSnapshot {
    /// The entries, in no particular order.
    pub entries: Vec<Entry>,
    /// Strategy and cursor, if ever written.
    pub state: Option<ProviderState>,
    /// Refresh markers left behind (a crash inside a refresh).
    pub markers: Vec<RefreshMarker>,
    /// Records of this provider that failed to decode (now and earlier).
    pub quarantined: Vec<QuarantinedRecord>,
    /// For each entry whose secret was not stored (borrowed), the fingerprint of the value
    /// it had when last written; [`ProviderSnapshot::hydrate`] compares the value read now
    /// against it to tell a user's rotation from an unchanged key.
    pub borrowed_fingerprints: BTreeMap<EntryId, Fingerprint>,
}

/// One change in an atomic batch.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "batches are short-lived and small; boxing the entry would complicate every caller"
)]
pub enum Change {
    /// Writes an entry (insert or replace).
    PutEntry {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: Entry,
    },
    /// Removes an entry (and any marker for it).
    RemoveEntry {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
    },
    /// Writes a provider's strategy and cursor.
    PutProviderState {
        /// The provider.
        provider: ProviderId,
        /// The state.
        state: ProviderState,
    },
    /// Writes a refresh marker.
    PutMarker(RefreshMarker),
    /// Clears a refresh marker.
    ClearMarker {
        /// The provider.
        provider: ProviderId,
        /// The entry.
        entry: EntryId,
    },
}

/// What kind of change a [`Change`] is (for fault injection and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// [`Change::PutEntry`].
    PutEntry,
    /// [`Change::RemoveEntry`].
    RemoveEntry,
    /// [`Change::PutProviderState`].
    PutProviderState,
    /// [`Change::PutMarker`].
    PutMarker,
    /// [`Change::ClearMarker`].
    ClearMarker,
}

impl Change {
    /// Returns what kind of change this is.
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::PutEntry { .. } => ChangeKind::PutEntry,
            Change::RemoveEntry { .. } => ChangeKind::RemoveEntry,
            Change::PutProviderState { .. } => ChangeKind::PutProviderState,
            Change::PutMarker(_) => ChangeKind::PutMarker,
            Change::ClearMarker { .. } => ChangeKind::ClearMarker,
        }
    }

    /// Returns the provider this change belongs to.
    pub fn provider(&self) -> &ProviderId {
        match self {
            Change::PutEntry { provider, .. }
            | Change::RemoveEntry { provider, .. }
            | Change::PutProviderState { provider, .. }
            | Change::ClearMarker { provider, .. } => provider,
            Change::PutMarker(marker) => &marker.provider,
        }
    }
}

/// The answer of [`Store::compare_and_swap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The stored generation was the expected one; the entry is written.
    Swapped,
    /// The stored generation differs (or the entry is gone); nothing was written.
    Conflict {
        /// The generation found, if the entry exists.
        found: Option<Generation>,
    },
}

/// What the change feed reports after a batch is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNotice {
    /// The provider whose records changed.
    pub provider: ProviderId,
    /// The entries written or removed.
    pub entries: Vec<EntryId>,
}

/// A callback run after every applied batch; the hook for a change feed. It must not block.
pub type ChangeHook = Arc<dyn Fn(&ChangeNotice) + Send + Sync>;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process holds the database.
    #[error("store at {path} is locked: another process holds it")]
    Locked {
        /// The data directory.
        path: String,
    },
    /// The database could not be opened or read.
    #[error("store at {path} is unreadable: {reason}")]
    Unreadable {
        /// The data directory.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The store came back shorter or older than its manifest records (see
    /// `SledStore::recover` to accept the loss, or restore a backup).
    #[error("store at {path} is damaged: {}; restore a backup (`credpool admin restore`) or accept the loss (`credpool admin recover --accept-loss`)", .problems.join("; "))]
    Damaged {
        /// The data directory.
        path: String,
        /// What is missing or older, one line each (ids and labels, never a secret).
        problems: Vec<String>,
    },
    /// The master key could not be read (the message names its source, never the value).
    #[error("{0}")]
    Key(#[from] seal::source::KeyError),
    /// The store is sealed with another key than the one given; nothing was changed.
    #[error(
        "store at {path} is sealed with key {stored}, given key {given} (from {origin}); give the key it was sealed with"
    )]
    WrongKey {
        /// The data directory.
        path: String,
        /// The id of the key the store is sealed with.
        stored: seal::KeyId,
        /// The id of the key given.
        given: seal::KeyId,
        /// Where the given key came from.
        origin: String,
    },
    /// The store is sealed and no key was found for it; nothing was changed.
    #[error("store at {path} is sealed with key {stored}, and no key was given: set {env} or master_key_file, or put the key back in {path}/{file}", env = seal::source::ENV_VAR, file = seal::source::KEY_FILE)]
    KeyMissing {
        /// The data directory.
        path: String,
        /// The id of the key the store is sealed with.
        stored: seal::KeyId,
    },
    /// A read, write or flush failed.
    #[error("store i/o failed: {0}")]
    Io(String),
    /// A record could not be encoded.
    #[error("record encoding failed: {0}")]
    Encode(String),
    /// A stored record that an operation must read (the entry of a compare-and-swap) does not
    /// decode. [`Store::load_provider`] quarantines such records instead.
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt {
        /// The record's printable key.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
}

/// Durable storage of every provider's entries.
///
/// Calls block (sled's flush can take milliseconds): async callers run them on a blocking
/// thread.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Lists the providers that have any record.
    fn providers(&self) -> Result<Vec<ProviderId>, StoreError>;

    /// Loads one provider; undecodable records are quarantined and reported in the snapshot.
    fn load_provider(&self, provider: &ProviderId) -> Result<ProviderSnapshot, StoreError>;

    /// Applies a batch atomically (all or nothing). Durable only after [`Store::flush`].
    fn apply(&self, changes: &[Change]) -> Result<(), StoreError>;

    /// Makes every applied change durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Writes `entry` only if the stored generation of that entry is `expected`.
    fn compare_and_swap(
        &self,
        provider: &ProviderId,
        expected: Generation,
        entry: &Entry,
    ) -> Result<CasOutcome, StoreError>;

    /// Registers a hook called after every applied batch.
    fn watch(&self, hook: ChangeHook);

    /// Lists every quarantined record.
    fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, StoreError>;

    /// Returns the data directory, for embedded backends.
    fn path(&self) -> Option<&Path> {
        None
    }

    /// Whether writes succeed: failing from a write that fails until one succeeds.
    fn health(&self) -> StoreHealth {
        StoreHealth::Ok
    }

    /// A consistent backup of every record (see `SledStore::export`); stores that cannot
    /// make one answer an error.
    fn export(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        Err(StoreError::Io("this store cannot make backups".to_owned()))
    }

    /// Whether this store ever sent the first-generation refresh token with this
    /// fingerprint (a seed that was used): seeding it again would replay a spent token.
    /// Stores without a manifest know nothing and answer `false`.
    fn refresh_token_spent(&self, _fingerprint: &Fingerprint) -> bool {
        false
    }

    /// Whether the store's history began at this open on an empty store: a data dir that
    /// shows earlier use (an admin token) and a new history has lost its store.
    fn history_is_new(&self) -> bool {
        false
    }
}
