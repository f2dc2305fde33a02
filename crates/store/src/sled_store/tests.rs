use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;

use credpool_core::{EntryId, Fingerprint, ManualClock, Secret, SecretSource, Strategy, Timestamp};
use tempfile::TempDir;

use super::handles::LOCK_FILE;
use super::*;
use crate::fixtures::{
    self, ENV_CANARY, FILE_CANARY, OWNED_CANARY, REFRESH_CANARY, provider, views,
};
use crate::{ChangeNotice, ProviderState, RefreshMarker};

fn open(dir: &Path) -> SledStore {
    SledStore::open(dir).expect("opens")
}

fn put(provider: &ProviderId, entry: &Entry) -> Change {
    Change::PutEntry {
        provider: provider.clone(),
        entry: entry.clone(),
    }
}

fn marker(entry: u64) -> RefreshMarker {
    RefreshMarker {
        provider: provider(),
        entry: EntryId(entry),
        generation: credpool_core::Generation(7),
        refresh_fingerprint: Fingerprint::of("rt"),
        started_at: Timestamp(1_700_000_000_000),
    }
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for item in fs::read_dir(dir).expect("lists") {
        let path = item.expect("item").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn any_file_contains(dir: &Path, needle: &str) -> bool {
    files_under(dir).iter().any(|path| {
        let bytes = fs::read(path).expect("reads");
        bytes
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    })
}

#[test]
fn restart_keeps_everything_written() {
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path().join("data");
    let other = ProviderId::new("xai-oauth");
    let entries = vec![
        fixtures::busy(1),
        fixtures::dead(2),
        fixtures::oauth(3, "at-3", Some("rt-3"), SecretSource::OAuthGrant),
    ];
    let state = ProviderState {
        strategy: Strategy::RoundRobin,
        round_robin_cursor: 17,
    };
    {
        let store = open(&dir);
        let mut changes: Vec<Change> = entries.iter().map(|e| put(&provider(), e)).collect();
        changes.push(Change::PutProviderState {
            provider: provider(),
            state: state.clone(),
        });
        changes.push(Change::PutMarker(marker(3)));
        changes.push(put(&other, &fixtures::busy(1)));
        store.apply(&changes).expect("applies");
        store.flush().expect("flushes");
    }
    let store = open(&dir);
    assert_eq!(store.providers().expect("lists"), vec![provider(), other]);
    let snapshot = store.load_provider(&provider()).expect("loads");
    assert_eq!(views(&snapshot.entries), views(&entries));
    assert_eq!(snapshot.state, Some(state));
    assert_eq!(snapshot.markers, vec![marker(3)]);
    assert!(snapshot.quarantined.is_empty());
    assert!(snapshot.borrowed_fingerprints.is_empty());
    let grant = snapshot
        .entries
        .iter()
        .find(|e| e.id == EntryId(3))
        .and_then(|e| e.oauth())
        .expect("grant");
    assert_eq!(grant.access.expose(), "at-3");
    assert_eq!(grant.refresh.as_ref().map(Secret::expose), Some("rt-3"));
}

#[test]
fn a_second_open_is_locked_and_names_the_path() {
    let tmp = TempDir::new().expect("tempdir");
    let first = open(tmp.path());
    let error = SledStore::open(tmp.path()).expect_err("second open succeeded");
    assert!(matches!(error, StoreError::Locked { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&tmp.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("another process holds it"), "{message}");
    drop(first);
    open(tmp.path());
}

#[test]
fn an_unusable_path_is_unreadable_not_empty() {
    let tmp = TempDir::new().expect("tempdir");
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"x").expect("writes");
    let error = SledStore::open(&file).expect_err("opened a file");
    assert!(matches!(error, StoreError::Unreadable { .. }), "{error:?}");
    assert!(error.to_string().contains("not-a-dir"), "{error}");

    // A database whose files are garbage does not open as an empty pool.
    let broken = tmp.path().join("broken");
    {
        let store = open(&broken);
        store
            .apply(&[put(&provider(), &fixtures::busy(1))])
            .expect("applies");
        store.flush().expect("flushes");
    }
    for path in files_under(&broken) {
        // The key stays readable: this is about the database's files.
        if path
            .file_name()
            .is_some_and(|n| n != LOCK_FILE && n != "master.key")
        {
            fs::write(&path, b"\xde\xad\xbe\xef garbage").expect("writes");
        }
    }
    let error = SledStore::open(&broken).expect_err("garbage opened");
    assert!(matches!(error, StoreError::Unreadable { .. }), "{error:?}");
}

#[test]
fn the_directory_is_0700_and_every_file_0600() {
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path().join("data");
    fs::create_dir(&dir).expect("creates");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let store = open(&dir);
    store
        .apply(&[put(&provider(), &fixtures::busy(1))])
        .expect("applies");
    store.flush().expect("flushes");
    let mode = |path: &Path| fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let files = files_under(&dir);
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    for item in fs::read_dir(&dir).expect("lists") {
        let path = item.expect("item").path();
        if path.is_dir() {
            assert_eq!(mode(&path), 0o700, "{}", path.display());
        }
    }
}

#[test]
fn borrowed_secrets_never_reach_the_disk_and_owned_ones_only_sealed() {
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path().join("data");
    let key_file = tmp.path().join("key.txt");
    fs::write(&key_file, format!("{FILE_CANARY}\n")).expect("writes");
    let env = |name: &str| match name {
        "OPENAI_API_KEY" => Ok(ENV_CANARY.to_owned()),
        "XAI_REFRESH" => Ok(REFRESH_CANARY.to_owned()),
        _ => Err(std::env::VarError::NotPresent),
    };

    let mut from_env = fixtures::api_key(1, "", fixtures::env("OPENAI_API_KEY"));
    let mut from_file = fixtures::api_key(2, "", fixtures::file(&key_file));
    let mut grant = fixtures::oauth(3, "", None, fixtures::env("XAI_REFRESH"));
    grant.generation = credpool_core::Generation::FIRST;
    for entry in [&mut from_env, &mut from_file, &mut grant] {
        crate::hydrate_borrowed_with(entry, None, &env).expect("hydrates");
    }
    assert_eq!(from_env.request_secret().expose(), ENV_CANARY);
    assert_eq!(from_file.request_secret().expose(), FILE_CANARY);
    let owned = fixtures::api_key(4, OWNED_CANARY, SecretSource::Manual);

    {
        let store = open(&dir);
        let changes: Vec<Change> = [&from_env, &from_file, &grant, &owned]
            .into_iter()
            .map(|e| put(&provider(), e))
            .collect();
        store.apply(&changes).expect("applies");
        store.flush().expect("flushes");
        // Written twice (a status change), still never the borrowed value.
        store.apply(&changes).expect("applies");
        store.flush().expect("flushes");
    }
    for canary in [ENV_CANARY, FILE_CANARY, REFRESH_CANARY, OWNED_CANARY] {
        assert!(
            !any_file_contains(&dir, canary),
            "{canary} on disk in clear"
        );
    }

    // After a restart the borrowed values come back from their sources, unrotated.
    let store = open(&dir);
    let mut snapshot = store.load_provider(&provider()).expect("loads");
    assert_eq!(snapshot.borrowed_fingerprints.len(), 3);
    let report = snapshot.hydrate_with(&env);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.rotated.is_empty());
    assert_eq!(
        views(&snapshot.entries),
        views(&[from_env, from_file, grant, owned])
    );
}

#[test]
fn compare_and_swap_writes_only_over_the_expected_generation() {
    let tmp = TempDir::new().expect("tempdir");
    let store = open(tmp.path());
    let mut entry = fixtures::oauth(1, "at-1", Some("rt-1"), SecretSource::OAuthGrant);
    let absent = store
        .compare_and_swap(&provider(), entry.generation, &entry)
        .expect("cas");
    assert_eq!(absent, CasOutcome::Conflict { found: None });

    store.apply(&[put(&provider(), &entry)]).expect("applies");
    let before = entry.generation;
    entry.replace_tokens(
        Secret::new("at-2"),
        Some(Secret::new("rt-2")),
        None,
        Timestamp(5),
    );
    let swapped = store
        .compare_and_swap(&provider(), before, &entry)
        .expect("cas");
    assert_eq!(swapped, CasOutcome::Swapped);

    let mut stale = entry.clone();
    stale.replace_tokens(Secret::new("at-x"), None, None, Timestamp(6));
    let conflict = store
        .compare_and_swap(&provider(), before, &stale)
        .expect("cas");
    assert_eq!(
        conflict,
        CasOutcome::Conflict {
            found: Some(entry.generation)
        }
    );
    let loaded = store.load_provider(&provider()).expect("loads");
    assert_eq!(views(&loaded.entries), views(&[entry]));
}

#[test]
fn a_batch_is_all_or_nothing() {
    let tmp = TempDir::new().expect("tempdir");
    let store = open(tmp.path());
    let bad = ProviderId::new("bad\0name");
    let error = store
        .apply(&[
            put(&provider(), &fixtures::busy(1)),
            put(&bad, &fixtures::busy(2)),
        ])
        .expect_err("a nul provider encodes");
    assert!(matches!(error, StoreError::Encode(_)), "{error:?}");
    assert!(store.providers().expect("lists").is_empty());

    store
        .apply(&[
            put(&provider(), &fixtures::busy(1)),
            put(&provider(), &fixtures::dead(2)),
            Change::PutMarker(marker(2)),
            Change::PutProviderState {
                provider: provider(),
                state: ProviderState {
                    strategy: Strategy::LeastUsed,
                    round_robin_cursor: 0,
                },
            },
        ])
        .expect("applies");
    store
        .apply(&[
            Change::RemoveEntry {
                provider: provider(),
                entry: EntryId(2),
            },
            Change::ClearMarker {
                provider: provider(),
                entry: EntryId(1),
            },
        ])
        .expect("applies");
    let snapshot = store.load_provider(&provider()).expect("loads");
    assert_eq!(views(&snapshot.entries), views(&[fixtures::busy(1)]));
    assert!(
        snapshot.markers.is_empty(),
        "removing an entry clears its marker"
    );
    assert_eq!(
        snapshot.state.map(|s| s.strategy),
        Some(Strategy::LeastUsed)
    );
}

#[test]
fn corrupt_records_are_quarantined_and_the_rest_loads() {
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path().join("data");
    let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
    {
        let store = open(&dir);
        store
            .apply(&[
                put(&provider(), &fixtures::busy(1)),
                put(&provider(), &fixtures::dead(2)),
                Change::PutMarker(marker(1)),
            ])
            .expect("applies");
        store.flush().expect("flushes");
    }
    {
        let db = sled::open(&dir).expect("raw sled opens");
        let entries = db.open_tree(codec::ENTRIES_TREE).expect("tree");
        let key = codec::entry_key(&provider(), EntryId(3)).expect("key");
        entries.insert(key, &b"\x01garbage"[..]).expect("inserts");
        let markers = db.open_tree(codec::MARKERS_TREE).expect("tree");
        let key = codec::entry_key(&provider(), EntryId(1)).expect("key");
        markers.insert(key, &b"\x09future"[..]).expect("inserts");
        db.flush().expect("flushes");
    }
    let store = SledStore::open_with_clock(&dir, clock).expect("opens");
    let snapshot = store.load_provider(&provider()).expect("loads");
    assert_eq!(
        views(&snapshot.entries),
        views(&[fixtures::busy(1), fixtures::dead(2)])
    );
    assert!(snapshot.markers.is_empty());
    let keys: Vec<&str> = snapshot
        .quarantined
        .iter()
        .map(|q| q.key.as_str())
        .collect();
    assert_eq!(
        keys,
        vec!["entries/openai/000000000003", "markers/openai/000000000001"]
    );
    assert!(snapshot.quarantined[1].error.contains("version 9"));
    assert_eq!(
        snapshot.quarantined[0].quarantined_at,
        Timestamp(1_700_000_000_000)
    );
    assert_eq!(store.quarantined().expect("lists"), snapshot.quarantined);
    store.flush().expect("flushes");
    drop(store);

    // Moved, not copied: the next load decodes cleanly and still reports the quarantine.
    let store = open(&dir);
    let again = store.load_provider(&provider()).expect("loads");
    assert_eq!(again.entries.len(), 2);
    assert_eq!(again.quarantined, snapshot.quarantined);
    assert_eq!(store.providers().expect("lists"), vec![provider()]);
}

#[test]
fn hooks_fire_after_applied_batches_and_swaps() {
    let tmp = TempDir::new().expect("tempdir");
    let store = open(tmp.path());
    let seen: Arc<Mutex<Vec<ChangeNotice>>> = Arc::default();
    let sink = Arc::clone(&seen);
    store.watch(Arc::new(move |notice: &ChangeNotice| {
        sink.lock().expect("lock").push(notice.clone());
    }));
    let other = ProviderId::new("anthropic");
    let entry = fixtures::busy(1);
    store
        .apply(&[
            put(&provider(), &entry),
            put(&other, &fixtures::dead(9)),
            Change::PutMarker(marker(1)),
            Change::RemoveEntry {
                provider: provider(),
                entry: EntryId(5),
            },
        ])
        .expect("applies");
    let _ = store.apply(&[put(&ProviderId::new("bad\0"), &entry)]);
    store
        .compare_and_swap(&provider(), entry.generation, &entry)
        .expect("cas");
    store
        .compare_and_swap(&provider(), credpool_core::Generation(1), &entry)
        .expect("cas");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![
            ChangeNotice {
                provider: provider(),
                entries: vec![EntryId(1), EntryId(5)],
            },
            ChangeNotice {
                provider: other,
                entries: vec![EntryId(9)],
            },
            ChangeNotice {
                provider: provider(),
                entries: vec![EntryId(1)],
            },
        ]
    );
}

#[test]
fn compare_and_swap_over_a_corrupt_record_is_an_error() {
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path().join("data");
    {
        let db = sled::open(&dir).expect("raw sled opens");
        let entries = db.open_tree(codec::ENTRIES_TREE).expect("tree");
        let key = codec::entry_key(&provider(), EntryId(1)).expect("key");
        entries.insert(key, &b"\x01\x00"[..]).expect("inserts");
        db.flush().expect("flushes");
    }
    let store = open(&dir);
    let entry = fixtures::busy(1);
    let error = store
        .compare_and_swap(&provider(), entry.generation, &entry)
        .expect_err("swapped over garbage");
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("entries/openai/000000000001"));
    assert!(matches!(
        store.load_provider(&provider()),
        Ok(snapshot) if snapshot.entries.is_empty() && snapshot.quarantined.len() == 1
    ));
}
