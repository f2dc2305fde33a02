//! The store against damage to its own files: whatever happens to them, an open either loads
//! every entry (a quarantine is reported), or fails with a clear error — never a shorter or
//! older pool without a word, and never a panic. Then the manifest's other duties: a
//! rolled-back grant is refused (and killed when the loss is accepted), a lost manifest is
//! noticed, an old store gains one, backups round-trip and refuse to land on a store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use credpool_core::{
    ClientMetadata, DeadReason, Entry, EntryId, EntryKind, Generation, OAuthTokens, ProviderId,
    Secret, SecretSource, Status,
};
use credpool_store::{Change, RefreshMarker, SledStore, Store, StoreError};

mod common;
use common::{copy_dir, files};

const PROVIDERS: [&str; 3] = ["xai-oauth", "openai", "anthropic"];
const PER_PROVIDER: u64 = 12;

fn grant(id: u64, generation: u64) -> Entry {
    let mut entry = Entry::new(
        EntryId(id),
        format!("grant-{id}"),
        EntryKind::OAuth(OAuthTokens {
            access: Secret::new(format!("at-{id}-{generation}")),
            refresh: Some(Secret::new(format!("rt-{id}-{generation}"))),
            expires_at: None,
            client: ClientMetadata::default(),
        }),
        SecretSource::OAuthGrant,
    );
    entry.generation = Generation(generation);
    entry
}

fn key(id: u64) -> Entry {
    Entry::new(
        EntryId(id),
        format!("key-{id}"),
        EntryKind::ApiKey {
            key: Secret::new(format!("sk-{id}")),
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

/// A store with three providers and a dozen entries each; every grant rotated a few times.
/// Returns what it must hold: provider → id → generation.
fn populate(dir: &Path) -> BTreeMap<String, BTreeMap<u64, u64>> {
    let store = SledStore::open(dir).unwrap();
    let mut expected: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    for (p, provider) in PROVIDERS.iter().enumerate() {
        for n in 0..PER_PROVIDER {
            let id = (p as u64 + 1) * 1000 + n + 1;
            let entry = if n % 2 == 0 { grant(id, 1) } else { key(id) };
            store.apply(&[put(provider, entry)]).unwrap();
            expected
                .entry((*provider).to_owned())
                .or_default()
                .insert(id, 1);
        }
    }
    for round in 2..=4 {
        for (p, provider) in PROVIDERS.iter().enumerate() {
            for n in (0..PER_PROVIDER).step_by(2) {
                let id = (p as u64 + 1) * 1000 + n + 1;
                store.apply(&[put(provider, grant(id, round))]).unwrap();
                store.flush().unwrap();
                expected.get_mut(*provider).unwrap().insert(id, round);
            }
        }
    }
    store.flush().unwrap();
    expected
}

/// A named change to one file of a copy.
type Damage = Box<dyn Fn(&Path)>;

/// How an open of a damaged copy went.
#[derive(Debug)]
enum Outcome {
    /// Every entry loaded at its generation, or reported quarantined.
    Complete,
    /// A clear error.
    Refused(String),
}

/// Opens `dir` and checks it against `expected`; panics on a silent loss or a rollback.
fn judge(dir: &Path, expected: &BTreeMap<String, BTreeMap<u64, u64>>, case: &str) -> Outcome {
    let opened = std::panic::catch_unwind(|| SledStore::open(dir));
    let store = match opened {
        Err(_) => panic!("{case}: the open panicked"),
        Ok(Err(error)) => return Outcome::Refused(error.to_string()),
        Ok(Ok(store)) => store,
    };
    for (provider, entries) in expected {
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.load_provider(&ProviderId::new(provider))
        }));
        let snapshot = match loaded {
            Err(_) => panic!("{case}: the load panicked"),
            Ok(Err(error)) => return Outcome::Refused(error.to_string()),
            Ok(Ok(snapshot)) => snapshot,
        };
        let quarantined: Vec<&str> = snapshot
            .quarantined
            .iter()
            .map(|record| record.key.as_str())
            .collect();
        for (id, generation) in entries {
            let found = snapshot.entries.iter().find(|entry| entry.id.0 == *id);
            match found {
                Some(entry) => assert_eq!(
                    entry.generation.0, *generation,
                    "{case}: {provider}/{id} came back at an older generation"
                ),
                None => {
                    let id_text = EntryId(*id).to_string();
                    assert!(
                        quarantined.iter().any(
                            |key| key.contains(&id_text) || key.contains(&format!("{id:016x}"))
                        ),
                        "{case}: {provider}/{id} is gone without a word (quarantined: {quarantined:?})"
                    );
                }
            }
        }
    }
    Outcome::Complete
}

#[test]
fn damage_to_any_file_is_a_complete_load_or_a_clear_error() {
    let pristine = tempfile::tempdir().unwrap();
    let expected = populate(pristine.path());
    let mut refused = 0;
    let mut complete = 0;
    let mut cases = 0;
    for file in files(pristine.path()) {
        let relative = file.strip_prefix(pristine.path()).unwrap().to_path_buf();
        let length = std::fs::metadata(&file).unwrap().len() as usize;
        let mut damages: Vec<(String, Damage)> = Vec::new();
        for step in 0..20 {
            let at = length * step / 20;
            damages.push((
                format!("{} flipped at {at}", relative.display()),
                Box::new(move |path: &Path| {
                    let mut bytes = std::fs::read(path).unwrap();
                    for byte in bytes.iter_mut().skip(at).take(16) {
                        *byte ^= 0x5a;
                    }
                    std::fs::write(path, bytes).unwrap();
                }),
            ));
        }
        for cut in [
            0,
            length / 4,
            length / 2,
            length * 3 / 4,
            length.saturating_sub(1),
        ] {
            damages.push((
                format!("{} truncated to {cut}", relative.display()),
                Box::new(move |path: &Path| {
                    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                    file.set_len(cut as u64).unwrap();
                }),
            ));
        }
        damages.push((
            format!("{} deleted", relative.display()),
            Box::new(|path: &Path| std::fs::remove_file(path).unwrap()),
        ));
        for (case, damage) in damages {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(pristine.path(), copy.path());
            damage(&copy.path().join(&relative));
            cases += 1;
            match judge(copy.path(), &expected, &case) {
                Outcome::Complete => complete += 1,
                Outcome::Refused(error) => {
                    assert!(!error.is_empty(), "{case}");
                    refused += 1;
                }
            }
        }
    }
    assert!(cases >= 50, "{cases} cases");
    eprintln!("{cases} damaged copies: {complete} loaded whole, {refused} refused clearly");
}

#[test]
fn a_rolled_back_grant_is_refused_and_killed_when_the_loss_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let early = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .apply(&[put("xai-oauth", grant(1, 1)), put("openai", key(2))])
            .unwrap();
        store.apply(&[put("xai-oauth", grant(1, 2))]).unwrap();
        store.flush().unwrap();
    }
    copy_dir(dir.path(), early.path());
    {
        let store = SledStore::open(dir.path()).unwrap();
        for generation in 3..=4 {
            store
                .apply(&[put("xai-oauth", grant(1, generation))])
                .unwrap();
            store.flush().unwrap();
        }
    }
    // sled's files from generation 2, the manifest from generation 4.
    for file in files(early.path()) {
        if !file.ends_with("manifest.log") {
            let relative = file.strip_prefix(early.path()).unwrap();
            std::fs::copy(&file, dir.path().join(relative)).unwrap();
        }
    }
    let error = SledStore::open(dir.path()).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StoreError::Damaged { .. }), "{text}");
    assert!(text.contains("xai-oauth/grant-1"), "{text}");
    assert!(
        text.contains("generation 2, older than the committed 4"),
        "{text}"
    );
    assert!(text.contains("recover --accept-loss"), "{text}");
    assert!(!text.contains("rt-1"), "no secret in the error: {text}");

    let (store, recovered) = SledStore::recover(dir.path()).unwrap();
    assert_eq!(recovered.damage.len(), 1);
    assert_eq!(
        recovered.killed,
        vec![(ProviderId::new("xai-oauth"), EntryId(1))]
    );
    let snapshot = store.load_provider(&ProviderId::new("xai-oauth")).unwrap();
    assert!(matches!(
        &snapshot.entries[0].status,
        Status::Dead { reason, .. } if reason.as_str() == DeadReason::STORE_ROLLED_BACK
    ));
    drop(store);
    // Accepted once: the next open is clean.
    SledStore::open(dir.path()).unwrap();
}

#[test]
fn a_store_that_lost_entries_or_its_manifest_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let early = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.apply(&[put("openai", key(1))]).unwrap();
        store.flush().unwrap();
    }
    copy_dir(dir.path(), early.path());
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .apply(&[put("openai", key(2)), put("anthropic", key(3))])
            .unwrap();
        store.flush().unwrap();
    }
    let manifest = std::fs::read(dir.path().join("manifest.log")).unwrap();
    // sled as it was with one entry, the manifest that knows three
    let shorter = tempfile::tempdir().unwrap();
    copy_dir(early.path(), shorter.path());
    std::fs::write(shorter.path().join("manifest.log"), &manifest).unwrap();
    let text = SledStore::open(shorter.path()).unwrap_err().to_string();
    assert!(text.contains("openai/key-2"), "{text}");
    assert!(text.contains("anthropic/key-3"), "{text}");
    // everything of sled gone, the manifest left
    let emptied = tempfile::tempdir().unwrap();
    std::fs::write(emptied.path().join("manifest.log"), &manifest).unwrap();
    let text = SledStore::open(emptied.path()).unwrap_err().to_string();
    assert!(
        text.contains("openai/key-1") && text.contains("is missing"),
        "{text}"
    );
    // the manifest gone from a store that keeps one
    std::fs::remove_file(dir.path().join("manifest.log")).unwrap();
    let text = SledStore::open(dir.path()).unwrap_err().to_string();
    assert!(text.contains("its manifest is missing"), "{text}");
    let (store, recovered) = SledStore::recover(dir.path()).unwrap();
    assert_eq!(recovered.damage.len(), 1);
    assert_eq!(
        store.providers().unwrap().len(),
        2,
        "nothing of sled is lost"
    );
}

/// Both records lost: sled's database overwritten with noise and no manifest. What the files
/// held cannot be known, so it is damage, not a new store; a data dir never used opens empty.
#[test]
fn database_files_with_nothing_readable_and_no_manifest_are_damage_not_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("db"), &noise).unwrap();
    let text = SledStore::open(dir.path()).unwrap_err().to_string();
    assert!(text.contains("hold nothing readable"), "{text}");
    assert!(text.contains("recover --accept-loss"), "{text}");
    let (store, recovered) = SledStore::recover(dir.path()).unwrap();
    assert_eq!(recovered.damage.len(), 1);
    assert!(store.providers().unwrap().is_empty());
    drop(store);
    SledStore::open(dir.path()).expect("accepted once, it opens as it is");

    let never_used = tempfile::tempdir().unwrap();
    let store = SledStore::open(never_used.path()).expect("a new store");
    assert!(store.history_is_new());
}

#[test]
fn a_store_from_before_manifests_gains_one_and_its_history_is_old() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        assert!(store.history_is_new(), "a new data dir");
        store.apply(&[put("openai", key(1))]).unwrap();
        store.flush().unwrap();
    }
    // As a store written before manifests: neither the file nor sled's mark.
    std::fs::remove_file(dir.path().join("manifest.log")).unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.remove(b"credpool/manifest").unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert!(!store.history_is_new());
    assert!(dir.path().join("manifest.log").exists());
    assert_eq!(
        store
            .load_provider(&ProviderId::new("openai"))
            .unwrap()
            .entries
            .len(),
        1
    );
}

#[test]
fn a_first_generation_refresh_token_sent_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let seed = Secret::new("rt-seed");
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.apply(&[put("xai-oauth", grant(1, 1))]).unwrap();
        store
            .apply(&[Change::PutMarker(RefreshMarker {
                provider: ProviderId::new("xai-oauth"),
                entry: EntryId(1),
                generation: Generation::FIRST,
                refresh_fingerprint: seed.fingerprint(),
                started_at: credpool_core::Timestamp(0),
            })])
            .unwrap();
        store.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert!(store.refresh_token_spent(&seed.fingerprint()));
    assert!(!store.refresh_token_spent(&Secret::new("rt-other").fingerprint()));
}

#[test]
fn a_backup_restores_into_an_empty_dir_and_nowhere_else() {
    let source = tempfile::tempdir().unwrap();
    let expected = populate(source.path());
    let bytes = {
        let store = SledStore::open(source.path()).unwrap();
        store.export().unwrap()
    };
    assert!(bytes.starts_with(credpool_store::BACKUP_MAGIC));
    // A sealed backup needs the key it was sealed with: none, or another, is refused before
    // anything is written.
    let target = tempfile::tempdir().unwrap();
    let error = SledStore::restore(target.path(), &bytes).unwrap_err();
    assert!(matches!(error, StoreError::KeyMissing { .. }), "{error}");
    let (other, _) = credpool_store::seal::MasterKey::generate();
    let with_key = |key: credpool_store::seal::MasterKey| credpool_store::OpenOptions {
        key: credpool_store::seal::source::KeySource::Key(std::sync::Arc::new(key)),
        ..Default::default()
    };
    let error = SledStore::restore_with(target.path(), &bytes, with_key(other)).unwrap_err();
    assert!(matches!(error, StoreError::WrongKey { .. }), "{error}");
    assert!(!target.path().join("db").exists(), "nothing written");
    // The key put where the standard lookup finds it.
    std::fs::copy(
        source.path().join("master.key"),
        target.path().join("master.key"),
    )
    .unwrap();
    let (store, backup) = SledStore::restore(target.path(), &bytes).unwrap();
    assert!(backup.records >= 36);
    drop(store);
    assert!(matches!(
        judge(target.path(), &expected, "restored"),
        Outcome::Complete
    ));
    // onto a store that holds entries: refused
    let error = SledStore::restore(source.path(), &bytes);
    assert!(error.is_err());
    // a damaged file: refused before anything is written
    let mut damaged = bytes.to_vec();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    let fresh = tempfile::tempdir().unwrap();
    let text = SledStore::restore(fresh.path(), &damaged)
        .unwrap_err()
        .to_string();
    assert!(text.contains("checksum"), "{text}");
    assert!(!fresh.path().join("db").exists(), "nothing written");
}
