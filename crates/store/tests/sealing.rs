//! Secrets sealed at rest, through the public API: a store written before sealing migrates
//! with nothing lost; another key, or none, is refused with nothing changed on disk; a sealed
//! value that is tampered with or copied onto another entry is quarantined
//! (`seal_open_failed`) while the rest loads; a rekey moves every record to the new key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use credpool_core::{
    ClientMetadata, Entry, EntryId, EntryKind, Generation, OAuthTokens, ProviderId, Secret,
    SecretSource,
};
use credpool_store::seal::MasterKey;
use credpool_store::seal::source::KeySource;
use credpool_store::{Change, OpenOptions, SledStore, Store, StoreError};
use serde_json::Value;

mod common;
use common::{contents, copy_dir};

fn key_options(key: &Arc<MasterKey>) -> OpenOptions {
    OpenOptions {
        key: KeySource::Key(Arc::clone(key)),
        ..OpenOptions::default()
    }
}

fn open_with(dir: &Path, key: &Arc<MasterKey>) -> Result<SledStore, StoreError> {
    SledStore::open_with(dir, key_options(key)).map(|(store, _)| store)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn grant(id: u64, access: &str, refresh: &str) -> Entry {
    let mut entry = Entry::new(
        EntryId(id),
        format!("grant-{id}"),
        EntryKind::OAuth(OAuthTokens {
            access: Secret::new(access),
            refresh: Some(Secret::new(refresh)),
            expires_at: None,
            client: ClientMetadata::default(),
        }),
        SecretSource::OAuthGrant,
    );
    entry.generation = Generation(2);
    entry
}

fn api_key(id: u64, key: &str) -> Entry {
    Entry::new(
        EntryId(id),
        format!("key-{id}"),
        EntryKind::ApiKey {
            key: Secret::new(key),
        },
        SecretSource::Manual,
    )
}

fn put(provider: &str, entry: Entry) -> Change {
    Change::PutEntry {
        provider: ProviderId::new(provider),
        entry,
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture written by the release before sealing opens with every entry — ids, labels,
/// kinds, generations and the secrets behind their fingerprints (decoding checks each value
/// against its fingerprint) — and its records are sealed: reopened, they need the key.
#[test]
fn a_store_written_before_sealing_is_sealed_at_its_first_open_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    copy_dir(&fixture().join("v1-store"), &dir);
    let expected: Vec<Value> =
        serde_json::from_slice(&std::fs::read(fixture().join("v1-store.expected.json")).unwrap())
            .unwrap();
    assert_eq!(expected.len(), 8);

    let key = Arc::new(MasterKey::generate().0);
    let store = open_with(&dir, &key).unwrap();
    let mut loaded = BTreeMap::new();
    let mut owned_secrets = Vec::new();
    for provider in store.providers().unwrap() {
        let snapshot = store.load_provider(&provider).unwrap();
        assert!(
            snapshot.quarantined.is_empty(),
            "{:?}",
            snapshot.quarantined
        );
        for entry in snapshot.entries {
            if entry.secrets_owned() {
                owned_secrets.push(entry.request_secret().expose().to_owned());
                if let Some(refresh) = entry.oauth().and_then(|tokens| tokens.refresh.as_ref()) {
                    owned_secrets.push(refresh.expose().to_owned());
                }
            }
            loaded.insert(entry.id.to_string(), (provider.clone(), entry));
        }
    }
    assert_eq!(loaded.len(), expected.len());
    for want in &expected {
        let (provider, entry) = &loaded[want["id"].as_str().unwrap()];
        assert_eq!(provider.as_str(), want["provider"]);
        assert_eq!(entry.label, want["label"].as_str().unwrap());
        assert_eq!(entry.generation.0, want["generation"].as_u64().unwrap());
        assert_eq!(
            serde_json::to_value(entry.credential_kind()).unwrap(),
            want["kind"]
        );
        let fingerprint = entry
            .oauth()
            .and_then(|tokens| tokens.refresh.as_ref())
            .filter(|_| entry.request_secret().is_empty())
            .map_or_else(|| entry.request_secret().fingerprint(), Secret::fingerprint);
        if !entry.request_secret().is_empty() {
            assert_eq!(
                fingerprint.as_str(),
                want["fingerprint"].as_str().unwrap(),
                "{}",
                entry.label
            );
        }
    }
    assert!(
        owned_secrets
            .iter()
            .any(|s| s == "sk-fixture-admin-added-0123456789abcdef")
    );
    assert!(owned_secrets.len() >= 8, "{}", owned_secrets.len());
    drop(store);

    // Sealed now: the records open with the key only, and the manifest still agrees.
    let other = Arc::new(MasterKey::generate().0);
    let error = open_with(&dir, &other).unwrap_err();
    assert!(matches!(error, StoreError::WrongKey { .. }), "{error}");
    let store = open_with(&dir, &key).unwrap();
    assert_eq!(
        store
            .providers()
            .unwrap()
            .iter()
            .map(|p| store.load_provider(p).unwrap().entries.len())
            .sum::<usize>(),
        8
    );
}

/// Opening with another key, or with none, names the key the store is sealed with (and the
/// one given) and changes nothing: no byte of any file, nothing quarantined.
#[test]
fn another_key_or_none_is_refused_and_nothing_on_disk_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let key = Arc::new(MasterKey::generate().0);
    {
        let store = open_with(&dir, &key).unwrap();
        store
            .apply(&[
                put("openai", api_key(1, "sk-sealed-one")),
                put("xai-oauth", grant(2, "at-sealed", "rt-sealed")),
            ])
            .unwrap();
        store.flush().unwrap();
    }
    let before = contents(&dir);
    let other = Arc::new(MasterKey::generate().0);
    let error = open_with(&dir, &other).unwrap_err().to_string();
    assert!(
        error.contains(&format!("sealed with key {}", key.id()))
            && error.contains(&format!("given key {}", other.id())),
        "{error}"
    );
    let error = SledStore::open(&dir).unwrap_err();
    assert!(matches!(error, StoreError::KeyMissing { .. }), "{error}");
    assert!(error.to_string().contains(&key.id().to_string()), "{error}");
    assert!(
        !dir.join("master.key").exists(),
        "no key generated for a sealed store"
    );
    let after = contents(&dir);
    let changed: Vec<&PathBuf> = after
        .keys()
        .chain(before.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        .collect();
    assert!(changed.is_empty(), "a refused open changed {changed:?}");

    let store = open_with(&dir, &key).unwrap();
    for provider in store.providers().unwrap() {
        let snapshot = store.load_provider(&provider).unwrap();
        assert_eq!(snapshot.entries.len(), 1);
        assert!(snapshot.quarantined.is_empty());
    }
}

/// A key of the wrong length or bad base64 is an error naming its source, never its value.
#[test]
fn a_bad_key_file_is_named_never_quoted() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("key.b64");
    for (content, problem) in [
        ("c2hvcnQta2V5LXRleHQ=", "14 bytes where a key has 32"),
        ("not!base64!at-all", "not base64"),
    ] {
        std::fs::write(&file, content).unwrap();
        let options = OpenOptions {
            key: KeySource::File(file.clone()),
            ..OpenOptions::default()
        };
        let error = SledStore::open_with(&tmp.path().join("data"), options)
            .unwrap_err()
            .to_string();
        assert!(error.contains(&file.display().to_string()), "{error}");
        assert!(error.contains(problem), "{error}");
        assert!(!error.contains(content), "{error}");
    }
}

/// A sealed value with one bit flipped, and a record copied onto another entry's key, are
/// quarantined with `seal_open_failed`; the rest of the pool loads.
#[test]
fn a_tampered_or_moved_sealed_value_is_quarantined_and_the_rest_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let key = Arc::new(MasterKey::generate().0);
    {
        let store = open_with(&dir, &key).unwrap();
        store
            .apply(&[
                put("openai", api_key(1, "sk-one-0123456789")),
                put("openai", api_key(2, "sk-two-0123456789")),
                put("openai", api_key(3, "sk-three-0123456789")),
            ])
            .unwrap();
        store.flush().unwrap();
    }
    {
        let db = sled::open(&dir).unwrap();
        let entries = db.open_tree("entries").unwrap();
        let entry_key = |id: u64| {
            credpool_store::codec::entry_key(&ProviderId::new("openai"), EntryId(id)).unwrap()
        };
        // Entry 1: flip the last byte (inside the sealed key's tag).
        let mut one = entries.get(entry_key(1)).unwrap().unwrap().to_vec();
        let last = one.len() - 1;
        one[last] ^= 1;
        entries.insert(entry_key(1), one).unwrap();
        // Entry 2 gets entry 3's record (its id fixed so only the seal can tell).
        let three = entries.get(entry_key(3)).unwrap().unwrap().to_vec();
        let mut moved = three.clone();
        // The id is the payload's first varint: 3 → 2.
        assert_eq!(moved[1], 3);
        moved[1] = 2;
        entries.insert(entry_key(2), moved).unwrap();
        db.flush().unwrap();
    }
    let store = open_with(&dir, &key).unwrap();
    let snapshot = store.load_provider(&ProviderId::new("openai")).unwrap();
    assert_eq!(snapshot.entries.len(), 1, "entry 3 loads");
    assert_eq!(
        snapshot.entries[0].request_secret().expose(),
        "sk-three-0123456789"
    );
    assert_eq!(snapshot.quarantined.len(), 2, "{:?}", snapshot.quarantined);
    for record in &snapshot.quarantined {
        assert!(
            record.error.starts_with("seal_open_failed"),
            "{}",
            record.error
        );
    }
    // Quarantined raw bytes are sealed too: nothing of the keys in clear anywhere.
    drop(store);
    for (path, bytes) in contents(&dir) {
        for secret in [
            "sk-one-0123456789",
            "sk-two-0123456789",
            "sk-three-0123456789",
        ] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{secret} in {}",
                path.display()
            );
        }
    }
}

/// A rekey re-seals every record (entries and quarantined ones) under the new key: the old key
/// no longer opens the store, the new one opens all of it.
#[test]
fn a_rekey_moves_every_record_to_the_new_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let old = Arc::new(MasterKey::generate().0);
    let new = MasterKey::generate().0;
    {
        let store = open_with(&dir, &old).unwrap();
        let mut changes = Vec::new();
        for id in 1..=50 {
            changes.push(put("openai", api_key(id, &format!("sk-rekey-{id:04}"))));
            changes.push(put(
                "xai-oauth",
                grant(
                    100 + id,
                    &format!("at-rekey-{id}"),
                    &format!("rt-rekey-{id}"),
                ),
            ));
        }
        store.apply(&changes).unwrap();
        store.flush().unwrap();
    }
    let rekeyed = SledStore::rekey(&dir, key_options(&old), &new).unwrap();
    assert_eq!(rekeyed.from, old.id());
    assert_eq!(rekeyed.to, new.id());
    assert_eq!(rekeyed.resealed.entries, 100);
    let error = open_with(&dir, &old).unwrap_err().to_string();
    assert!(
        error.contains(&format!("sealed with key {}", new.id())),
        "{error}"
    );
    let new = Arc::new(new);
    let store = open_with(&dir, &new).unwrap();
    let openai = store.load_provider(&ProviderId::new("openai")).unwrap();
    assert_eq!(openai.entries.len(), 50);
    assert!(openai.quarantined.is_empty());
    assert_eq!(openai.entries[0].request_secret().expose(), "sk-rekey-0001");
    let xai = store.load_provider(&ProviderId::new("xai-oauth")).unwrap();
    assert_eq!(xai.entries.len(), 50);
    // Rekeying to the key it already has changes nothing.
    drop(store);
    let again = SledStore::rekey(&dir, key_options(&new), &new).unwrap();
    assert_eq!(again.resealed.entries, 0);
}
