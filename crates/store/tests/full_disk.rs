//! A store on a full disk: the failed write is reported (health), every later write fails at
//! once — sled refuses writes after an i/o error even once space is back, and cannot be
//! reopened in the same process — and nothing acknowledged is lost: a new process (here a new
//! open after the broken store is gone) finds every write that succeeded. `credpool serve`
//! restarts itself for that (see the binary's tests). Runs on a 2 MiB tmpfs; where mounting
//! one is not allowed (not root, a container without the capability) the test says so and
//! passes without running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use credpool_core::{Entry, EntryId, EntryKind, ProviderId, Secret, SecretSource};
use credpool_store::{Change, SledStore, Store, StoreHealth};

/// A tmpfs mounted for the test; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        mounted.status.success().then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: an abandoned broken store may still hold files open there.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn key(id: u64, value: &str) -> Change {
    Change::PutEntry {
        provider: ProviderId::new("openai"),
        entry: Entry::new(
            EntryId(id),
            format!("key-{id}"),
            EntryKind::ApiKey {
                key: Secret::new(value),
            },
            SecretSource::Manual,
        ),
    }
}

/// Fills the file system under `dir` until a write fails; returns the filler.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file
        .write_all(&block)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
    path
}

#[test]
fn a_full_disk_is_reported_and_nothing_acknowledged_is_lost() {
    let Some(tmpfs) = Tmpfs::mount("2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (run as root to test a full disk)");
        return;
    };
    let dir = tmpfs.path().join("data");
    let store = SledStore::open(&dir).unwrap();
    store.apply(&[key(1, "sk-before")]).unwrap();
    store.flush().unwrap();
    assert_eq!(store.health(), StoreHealth::Ok);

    let filler = fill(tmpfs.path());
    let big = "x".repeat(256 * 1024);
    let mut failed = false;
    for id in 2..40 {
        if store
            .apply(&[key(id, &big)])
            .and_then(|()| store.flush())
            .is_err()
        {
            failed = true;
            break;
        }
    }
    assert!(failed, "a full disk refuses writes");
    assert!(
        matches!(store.health(), StoreHealth::Failing { .. }),
        "{:?}",
        store.health()
    );

    std::fs::remove_file(&filler).unwrap();
    // Space is back, and the broken store still refuses (fast, and says why).
    let refused = store
        .apply(&[key(100, "sk-after")])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("restart the process"), "{refused}");
    assert!(matches!(store.health(), StoreHealth::Failing { .. }));
    // Dropping it does not hang (the broken sled is left alone).
    drop(store);
    // The process restarts: a new open (the lock is free once the old instance is gone in a
    // real restart; here sled's own lock is still held by the abandoned instance, so the
    // data is read from a copy).
    let copy = tempfile::tempdir().unwrap();
    for item in std::fs::read_dir(&dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_file() && !path.ends_with("credpool.lock") {
            std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let reopened = SledStore::open(copy.path()).unwrap();
    let snapshot = reopened.load_provider(&ProviderId::new("openai")).unwrap();
    let ids: Vec<u64> = snapshot.entries.iter().map(|entry| entry.id.0).collect();
    assert!(ids.contains(&1), "what was acknowledged is kept: {ids:?}");
}
