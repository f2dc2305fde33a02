//! Rekeying a stopped store: open it with its key, quarantine what does not open, re-seal
//! the rest under the new key in one transaction (`sealing.rs`).

use std::path::Path;

use super::sealing::{Resealed, rekey, write_id_file};
use crate::StoreError;
use crate::seal::source;
use crate::seal::{KeyId, MasterKey};

/// What [`SledStore::rekey`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekeyed {
    /// The key the store was sealed with.
    pub from: KeyId,
    /// The key it is sealed with now.
    pub to: KeyId,
    /// Where the old key came from.
    pub old_origin: source::KeyOrigin,
    /// What was re-sealed (nothing when the store was already sealed with the new key).
    pub resealed: Resealed,
}

impl super::SledStore {
    /// Re-seals the stopped store in `dir` under `new`.
    ///
    /// Opens it with `options` (which name its current key), loads every provider (so that a
    /// record that does not open is quarantined, as at any start), then rewrites every sealed
    /// value under `new` and records `new`'s id, in one transaction. A crash at any moment
    /// leaves the store sealed wholly with the old key or wholly with the new one.
    ///
    /// # Errors
    /// The store does not open with its current key, or a write fails (nothing changed then).
    pub fn rekey(
        dir: &Path,
        options: super::open::OpenOptions,
        new: &MasterKey,
    ) -> Result<Rekeyed, StoreError> {
        use crate::Store;
        let (store, _) = super::SledStore::open_with(dir, options)?;
        let old = std::sync::Arc::clone(&store.key);
        let mut rekeyed = Rekeyed {
            from: old.id(),
            to: new.id(),
            old_origin: store.key_origin.clone(),
            resealed: Resealed::default(),
        };
        if old.id() == new.id() {
            return Ok(rekeyed);
        }
        for provider in store.providers()? {
            store.load_provider(&provider)?;
        }
        let guard = store.sled()?;
        let Some(sled) = guard.as_ref() else {
            return Err(StoreError::Io("store closed".to_owned()));
        };
        // Both ids listed while the commit is under way: a crash leaves a store that the early
        // check lets either key reach, and sled's record names the one that opens it.
        write_id_file(dir, &[old.id(), new.id()])?;
        rekeyed.resealed = rekey(sled, &old, new)?;
        write_id_file(dir, &[new.id()])?;
        tracing::info!(
            from = %rekeyed.from,
            to = %rekeyed.to,
            entries = rekeyed.resealed.entries,
            quarantined = rekeyed.resealed.quarantined,
            "re-sealed the store under a new key"
        );
        Ok(rekeyed)
    }
}
