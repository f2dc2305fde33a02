//! An in-memory [`Store`] for fast tests, with fault injection.
//!
//! Records go through the same codec and key layout as [`crate::SledStore`] and are kept as
//! encoded bytes in ordered maps, so a test on this store still catches codec mistakes.
//!
//! **Invariants:**
//! - Applied changes are visible at once; [`MemoryStore::crash`] discards those applied since
//!   the last successful [`Store::flush`], as a crash of the durable backend would.
//! - While [`MemoryStore::set_fail_writes`] is on, every write ([`Store::apply`],
//!   [`Store::compare_and_swap`], [`Store::flush`]) fails with [`StoreError::Io`] and changes
//!   nothing. [`MemoryStore::fail_batches_with`] fails only the next batches that hold a change
//!   of one kind (a refresh marker, its removal, an entry), whole.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use credpool_core::{Clock, Entry, EntryId, Generation, ProviderId, SystemClock};
use zeroize::Zeroizing;

use crate::batch::{self, RawProvider, RawRecord, TreeName};
use crate::codec::{self, Secrets};
use crate::seal::MasterKey;
use crate::{
    CasOutcome, Change, ChangeHook, ChangeKind, ChangeNotice, ProviderSnapshot, QuarantinedRecord,
    Store, StoreError,
};

type Tree = BTreeMap<Vec<u8>, Zeroizing<Vec<u8>>>;

#[derive(Default, Clone)]
struct Trees {
    /// Indexed by [`TreeName`] in [`TreeName::ALL`] order.
    trees: [Tree; 4],
}

impl Trees {
    fn tree(&self, name: TreeName) -> &Tree {
        &self.trees[name as usize]
    }

    fn tree_mut(&mut self, name: TreeName) -> &mut Tree {
        &mut self.trees[name as usize]
    }

    fn scan(&self, name: TreeName, prefix: &[u8]) -> Vec<RawRecord> {
        self.tree(name)
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

#[derive(Default)]
struct State {
    /// What the store holds now.
    live: Trees,
    /// What it held at the last flush; what a crash returns to.
    durable: Trees,
}

/// A [`Store`] in memory, with write-failure injection and a flush counter.
pub struct MemoryStore {
    state: Mutex<State>,
    hooks: batch::Hooks,
    fail_writes: AtomicBool,
    health: crate::health::HealthTracker,
    /// Fails this many more batches holding a change of this kind.
    fail_kind: Mutex<Option<(ChangeKind, u32)>>,
    flushes: AtomicU64,
    /// Stamps quarantined records; injected so tests control time.
    clock: Arc<dyn Clock>,
    /// Seals secrets exactly as the sled store does (a key of its own, made at creation).
    key: Arc<MasterKey>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("fail_writes", &self.fail_writes.load(Ordering::Relaxed))
            .field("flushes", &self.flush_count())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// Creates an empty store stamping quarantined records with the system clock.
    pub fn new() -> Self {
        MemoryStore::with_clock(Arc::new(SystemClock))
    }

    /// Creates an empty store with an injected clock.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            hooks: batch::Hooks::default(),
            fail_writes: AtomicBool::new(false),
            health: crate::health::HealthTracker::default(),
            fail_kind: Mutex::new(None),
            flushes: AtomicU64::new(0),
            clock,
            key: Arc::new(MasterKey::generate().0),
        }
    }

    /// The key that seals this store's secrets.
    pub fn master_key(&self) -> &Arc<MasterKey> {
        &self.key
    }

    /// Makes every following write fail with [`StoreError::Io`] (`true`) or succeed again.
    pub fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Makes the next `count` batches that hold a change of `kind` fail with
    /// [`StoreError::Io`], whole (`u32::MAX`: until called again with 0).
    pub fn fail_batches_with(&self, kind: ChangeKind, count: u32) {
        *self
            .fail_kind
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (count > 0).then_some((kind, count));
    }

    /// Returns how many flushes succeeded.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// Discards every change applied since the last successful flush, as a crash would.
    pub fn crash(&self) {
        let mut state = self.lock();
        state.live = state.durable.clone();
    }

    /// Writes raw bytes under an entry's key, bypassing the codec: a corrupt record for tests.
    /// Not counted as a write (fault injection does not apply).
    pub fn put_raw_entry(
        &self,
        provider: &ProviderId,
        entry: EntryId,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let key = codec::entry_key(provider, entry)?;
        self.lock()
            .live
            .tree_mut(TreeName::Entries)
            .insert(key, Zeroizing::new(bytes.to_vec()));
        Ok(())
    }

    fn apply_unchecked(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.check_writable()?;
        {
            let mut fail_kind = self
                .fail_kind
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((kind, left)) = fail_kind.as_mut()
                && changes.iter().any(|change| change.kind() == *kind)
            {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    *fail_kind = None;
                }
                return Err(StoreError::Io("injected write failure".to_owned()));
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let ops = batch::encode_changes(changes, &self.key)?;
        {
            let mut state = self.lock();
            for op in ops {
                let tree = state.live.tree_mut(op.tree);
                match op.value {
                    Some(value) => {
                        tree.insert(op.key, value);
                    }
                    None => {
                        tree.remove(&op.key);
                    }
                }
            }
        }
        self.notify(&batch::notices(changes));
        Ok(())
    }

    fn flush_unchecked(&self) -> Result<(), StoreError> {
        self.check_writable()?;
        let mut state = self.lock();
        state.durable = state.live.clone();
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Io("injected write failure".to_owned()));
        }
        Ok(())
    }

    fn notify(&self, notices: &[ChangeNotice]) {
        self.hooks.notify(notices);
    }
}

impl Store for MemoryStore {
    fn providers(&self) -> Result<Vec<ProviderId>, StoreError> {
        let state = self.lock();
        Ok(batch::providers_of_keys(
            state
                .live
                .trees
                .iter()
                .flat_map(|tree| tree.keys().map(Vec::as_slice)),
        ))
    }

    fn load_provider(&self, provider: &ProviderId) -> Result<ProviderSnapshot, StoreError> {
        let prefix = codec::provider_prefix(provider)?;
        let state_key = codec::provider_key(provider)?;
        let mut state = self.lock();
        let raw = RawProvider {
            entries: state.live.scan(TreeName::Entries, &prefix),
            state: state
                .live
                .tree(TreeName::Providers)
                .get(&state_key)
                .map(|value| (state_key.clone(), value.clone())),
            markers: state.live.scan(TreeName::Markers, &prefix),
            quarantine: state.live.scan(TreeName::Quarantine, &prefix),
        };
        let reading = batch::Reading {
            provider,
            now: self.clock.now(),
            key: &self.key,
        };
        let (snapshot, corrupted) = batch::assemble(&reading, raw)?;
        for corrupt in corrupted {
            let source = state.live.tree_mut(corrupt.tree);
            if source.get(&corrupt.key) == Some(&corrupt.raw) {
                source.remove(&corrupt.key);
            }
            state
                .live
                .tree_mut(TreeName::Quarantine)
                .insert(corrupt.quarantine_key, corrupt.quarantine_value);
            tracing::warn!(
                provider = %provider,
                key = %corrupt.record.key,
                error = %corrupt.record.error,
                "quarantined an undecodable record"
            );
        }
        Ok(snapshot)
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let result = self.apply_unchecked(changes);
        self.health.record(self.clock.now(), result)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let result = self.flush_unchecked();
        self.health.record(self.clock.now(), result)
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
        self.check_writable()?;
        let key = codec::entry_key(provider, entry.id)?;
        let value = codec::encode_entry(provider, entry, &self.key)?;
        let outcome = {
            let mut state = self.lock();
            let tree = state.live.tree_mut(TreeName::Entries);
            match tree.get(&key) {
                None => CasOutcome::Conflict { found: None },
                Some(stored) => {
                    let found = codec::decode_entry(provider, stored, Secrets::Skip)
                        .map_err(|error| StoreError::Corrupt {
                            key: codec::printable_key(codec::ENTRIES_TREE, &key),
                            reason: error.to_string(),
                        })?
                        .entry
                        .generation;
                    if found == expected {
                        tree.insert(key, value);
                        CasOutcome::Swapped
                    } else {
                        CasOutcome::Conflict { found: Some(found) }
                    }
                }
            }
        };
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
        let state = self.lock();
        Ok(state
            .live
            .tree(TreeName::Quarantine)
            .iter()
            .map(|(key, value)| batch::quarantined_from_raw(key, value, now))
            .collect())
    }
}

#[cfg(test)]
mod tests;
