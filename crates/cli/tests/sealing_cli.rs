#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Secrets sealed at rest, through the `credpool` command: nothing a service stored is on
//! disk in clear, base64 or hex; another key, a missing one or a malformed one is refused
//! with a clear error and a non-zero exit, and changes nothing; `admin rekey` moves the store
//! to a new key, and a `kill -9` at any moment of it leaves a store that opens with the old
//! key or the new one and has lost nothing.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use support::*;

/// A fresh key in base64 (as `openssl rand -base64 32` prints one).
fn new_key() -> String {
    credpool_store::seal::MasterKey::generate().1.to_string()
}

fn key_id(base64: &str) -> String {
    credpool_store::seal::MasterKey::from_base64(base64)
        .unwrap()
        .id()
        .to_string()
}

/// Every file's bytes under `dir` but the lock file.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .filter(|path| !path.ends_with("credpool.lock"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// A service with admin-added API keys and an OAuth grant rotated several times by a fake
/// token endpoint on loopback: after it stops, no secret it held — the keys, every token the
/// fake issued — is anywhere in the data dir, in clear, base64 or hex. The master key
/// (generated into `master.key`) is the one file left out.
#[test]
fn a_service_leaves_no_secret_in_clear_on_disk() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(credpool_test_support::FakeProvider::start_default());
    let (_, refresh) = fake.grant("grok");
    let setup = Setup::with_top_level(
        "allow_insecure_loopback = true\n",
        &format!(
            "[[providers]]\nid = \"openai\"\n\n[[providers]]\nid = \"xai-oauth\"\ntoken_url = \"{}\"\n",
            fake.token_url()
        ),
    );
    let server = setup.serve(&[]);
    let token = setup.token();
    let keys = [
        "sk-sealed-admin-added-7f3a9c1e5b",
        "sk-sealed-admin-added-second-04d2",
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = format!(r#"{{"label":"key-{i}","api_key":"{key}"}}"#);
        let (status, text) = http(
            "POST",
            &format!("{}/v1/providers/openai/entries", server.url),
            Some(&token),
            Some(&body),
        );
        assert_eq!(status, 201, "{text}");
    }
    let body = format!(
        r#"{{"label":"grok","refresh_token":"{}","token_url":"{}"}}"#,
        refresh.expose(),
        fake.token_url()
    );
    let entries = format!("{}/v1/providers/xai-oauth/entries", server.url);
    let (status, text) = http("POST", &entries, Some(&token), Some(&body));
    assert_eq!(status, 201, "{text}");
    let generation = || {
        let (_, text) = http("GET", &format!("{entries}/grok"), Some(&token), None);
        json(&text)["generation"].as_u64().unwrap_or(0)
    };
    assert!(
        eventually(STARTUP, || generation() >= 2),
        "{}",
        server.log_text()
    );
    for round in 3..=5 {
        let (status, text) = http(
            "POST",
            &format!("{entries}/grok/refresh"),
            Some(&token),
            None,
        );
        assert_eq!(status, 200, "{text}");
        assert!(
            eventually(STARTUP, || generation() >= round),
            "rotation {round}: {}",
            server.log_text()
        );
    }
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    let state = serde_json::to_value(fake.export_state()).unwrap();
    let mut secrets = tokens_of_fake_state(&state);
    assert!(
        secrets.len() >= 8,
        "the fake issued {} tokens",
        secrets.len()
    );
    secrets.extend(keys.iter().map(|key| (*key).to_owned()));
    assert_nothing_in_clear(&setup.data_dir(), &secrets, &["master.key"]);
    // …and the store holds them: a restart serves the rotated grant without a refresh.
    let refreshes = fake.refreshes();
    let again = setup.serve(&[]);
    let (_, text) = http(
        "GET",
        &format!("{}/v1/providers/xai-oauth/entries/grok", again.url),
        Some(&token),
        None,
    );
    assert_eq!(json(&text)["generation"].as_u64(), Some(5), "{text}");
    assert_eq!(json(&text)["status"], "ok", "{text}");
    let (exit, log) = again.terminate();
    assert!(exit.success(), "{log}");
    assert_eq!(fake.refreshes(), refreshes);
}

/// The key from the environment: the store is sealed with it and no `master.key` is written;
/// another key, no key, or a malformed one exits non-zero with a clear error (both key ids,
/// the variable's name, never a value) and changes no byte on disk.
#[test]
fn a_store_opens_only_with_its_key_and_a_refused_open_changes_nothing() {
    let key = new_key();
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let env = [("CREDPOOL_MASTER_KEY", key.as_str())];
    let server = setup.serve(&env);
    let (status, text) = http(
        "POST",
        &format!("{}/v1/providers/openai/entries", server.url),
        Some(&setup.token()),
        Some(r#"{"label":"team","api_key":"sk-sealed-by-env-key-99"}"#),
    );
    assert_eq!(status, 201, "{text}");
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains(&key_id(&key)),
        "the start names the key id: {log}"
    );
    assert!(!log.contains(&key), "{log}");
    let data = setup.data_dir();
    assert!(
        !data.join("master.key").exists(),
        "a key from the environment is not written"
    );
    let before = contents(&data);

    let other = new_key();
    let data_arg = data.to_str().unwrap();
    let wrong = admin(
        &["--data-dir", data_arg, "status"],
        &[("CREDPOOL_MASTER_KEY", other.as_str())],
    );
    assert!(!wrong.status.success());
    let text = stderr(&wrong);
    assert!(
        text.contains(&format!("sealed with key {}", key_id(&key)))
            && text.contains(&format!("given key {}", key_id(&other)))
            && text.contains("CREDPOOL_MASTER_KEY"),
        "{text}"
    );
    assert!(!text.contains(&other) && !text.contains(&key), "{text}");
    let missing = admin(&["--data-dir", data_arg, "status"], &[]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no key was given"),
        "{}",
        stderr(&missing)
    );
    for (value, problem) in [
        ("c2hvcnQ=", "5 bytes where a key has 32"),
        ("%%%%", "not base64"),
    ] {
        let bad = admin(
            &["--data-dir", data_arg, "status"],
            &[("CREDPOOL_MASTER_KEY", value)],
        );
        assert!(!bad.status.success());
        let text = stderr(&bad);
        assert!(
            text.contains("CREDPOOL_MASTER_KEY") && text.contains(problem),
            "{text}"
        );
        assert!(!text.contains(value), "{text}");
    }
    let after = contents(&data);
    let changed: Vec<&PathBuf> = after
        .keys()
        .chain(before.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        .collect();
    assert!(changed.is_empty(), "refused opens changed {changed:?}");

    let status = admin(&["--data-dir", data_arg, "status", "--json"], &env);
    let snapshots = status_json(&status);
    assert_eq!(snapshots[0]["entries"][0]["label"], "team");
    assert!(
        snapshots[0]["quarantined"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
}

/// `admin rekey` on a store whose key was generated into `<data_dir>/master.key` re-seals it
/// and replaces that file: the next start needs nothing new, and the old key is refused.
#[test]
fn rekey_replaces_a_generated_key_file_and_the_old_key_is_refused() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let (status, _) = http(
        "POST",
        &format!("{}/v1/providers/openai/entries", server.url),
        Some(&setup.token()),
        Some(r#"{"label":"team","api_key":"sk-before-the-rekey-1"}"#),
    );
    assert_eq!(status, 201);
    let (exit, log) = server.terminate();
    assert!(exit.success());
    assert!(log.contains("generated the master key"), "{log}");
    let data = setup.data_dir();
    let old = std::fs::read_to_string(data.join("master.key")).unwrap();
    let new = new_key();
    let new_file = setup.dir.path().join("new.key");
    std::fs::write(&new_file, &new).unwrap();
    let rekeyed = admin(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "rekey",
            "--new-key-file",
            new_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_ok(&rekeyed);
    let text = stdout(&rekeyed);
    assert!(
        text.contains(&key_id(old.trim())) && text.contains(&key_id(&new)),
        "{text}"
    );
    assert!(text.contains("master.key now holds the new key"), "{text}");
    assert_eq!(
        std::fs::read_to_string(data.join("master.key"))
            .unwrap()
            .trim(),
        new
    );
    let refused = admin(
        &["--data-dir", data.to_str().unwrap(), "status"],
        &[("CREDPOOL_MASTER_KEY", old.trim())],
    );
    assert!(!refused.status.success());
    let again = setup.serve(&[]);
    let (_, text) = http(
        "GET",
        &format!("{}/v1/providers/openai/entries/team", again.url),
        Some(&setup.token()),
        None,
    );
    assert_eq!(json(&text)["status"], "ok", "{text}");
    let (exit, _) = again.terminate();
    assert!(exit.success());
}

/// A store of a few thousand entries, rekeyed back and forth by `credpool admin rekey`, killed
/// with SIGKILL after random delays (the chaos harness's way): after every kill the store opens
/// with exactly one of the two keys — the other is refused with an error naming the one it
/// is sealed with — and every entry is there with its secret.
#[test]
fn a_rekey_killed_at_any_moment_leaves_the_store_under_one_key_and_loses_nothing() {
    const ENTRIES: usize = 2_000;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key_files = [tmp.path().join("a.key"), tmp.path().join("b.key")];
    for file in &key_files {
        std::fs::write(file, new_key()).unwrap();
    }
    let key_arg = |i: usize| key_files[i].to_str().unwrap().to_owned();
    {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let pool = credpool::Credpool::builder()
                .data_dir(&data)
                .master_key_file(&key_files[0])
                .refreshing(false)
                .start()
                .await
                .unwrap();
            let admin = pool.admin();
            let provider = credpool::ProviderId::new("openai");
            for i in 0..ENTRIES {
                let entry = credpool::api_key_entry(
                    &format!("k{i}"),
                    credpool::Secret::new(format!("sk-rekey-chaos-{i:05}")),
                );
                admin
                    .run(&provider, credpool::admin::Add(entry))
                    .await
                    .unwrap();
            }
            pool.shutdown().await.unwrap();
        });
    }
    let status_with = |i: usize| {
        admin(
            &[
                "--data-dir",
                data.to_str().unwrap(),
                "--master-key-file",
                &key_arg(i),
                "status",
                "--json",
            ],
            &[],
        )
    };
    // How long a whole rekey takes here, to spread the kills over it.
    let started = Instant::now();
    assert_ok(&admin(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--master-key-file",
            &key_arg(0),
            "rekey",
            "--new-key-file",
            &key_arg(1),
        ],
        &[],
    ));
    let whole = started.elapsed();
    let mut current = 1;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
    let (mut old_wins, mut new_wins) = (0, 0);
    for round in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = whole.mul_f64((seed % 1000) as f64 / 1000.0 * 1.2);
        let target = 1 - current;
        let mut child = Command::new(BIN)
            .args([
                "admin",
                "--data-dir",
                data.to_str().unwrap(),
                "--master-key-file",
                &key_arg(current),
                "rekey",
                "--new-key-file",
                &key_arg(target),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let (with_old, with_new) = (status_with(current), status_with(target));
        let (opened, refused, winner) = match (with_old.status.success(), with_new.status.success())
        {
            (true, false) => (with_old, with_new, current),
            (false, true) => (with_new, with_old, target),
            (a, b) => panic!(
                "round {round}: old key opens: {a}, new key opens: {b}\n{}\n{}",
                stderr(&with_old),
                stderr(&with_new)
            ),
        };
        let sealed_with = key_id(std::fs::read_to_string(&key_files[winner]).unwrap().trim());
        assert!(
            stderr(&refused).contains(&format!("sealed with key {sealed_with}")),
            "round {round}: {}",
            stderr(&refused)
        );
        let snapshots = json(&stdout(&opened));
        let entries = snapshots[0]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), ENTRIES, "round {round}");
        assert!(
            snapshots[0]["quarantined"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "round {round}"
        );
        if winner == current {
            old_wins += 1;
        } else {
            new_wins += 1;
        }
        current = winner;
    }
    // The secrets themselves: every one opens and matches its fingerprint (decoding checks).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = credpool::Credpool::builder()
            .data_dir(&data)
            .master_key_file(&key_files[current])
            .refreshing(false)
            .start()
            .await
            .unwrap();
        let lease = pool
            .client()
            .acquire(&credpool::ProviderId::new("openai"))
            .await
            .unwrap();
        assert!(lease.secret().expose().starts_with("sk-rekey-chaos-"));
        drop(lease);
        pool.shutdown().await.unwrap();
    });
    eprintln!(
        "rekey of {ENTRIES} entries: {} ms whole; after 12 kills the old key won {old_wins}, the new {new_wins}",
        whole.as_millis()
    );
}
