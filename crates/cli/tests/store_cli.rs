//! The store's safety nets through the `credpool` binary: a spent seed is never seeded again,
//! a data dir that lost its store refuses borrowed grants, damage stops the start with a
//! clear error until an operator recovers, and backups round-trip from a running service.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use credpool_test_support::{FakeProvider, FakeProviderConfig};

mod support;

use support::*;

/// A service config whose one grant is seeded from a refresh-token file, against `fake`.
fn grant_setup(fake: &FakeProvider, refresh: &str) -> Setup {
    let setup = Setup::with_top_level(
        "allow_insecure_loopback = true\n",
        &format!(
            "[[providers]]\nid = \"xai-oauth\"\ntoken_url = \"{}\"\nbase_url = \"{}/v1\"\n\n[[providers.entries]]\nlabel = \"grok\"\nrefresh_token_file = \"grok.rt\"\n",
            fake.token_url(),
            fake.base_url()
        ),
    );
    std::fs::write(setup.dir.path().join("grok.rt"), refresh).unwrap();
    setup
}

fn generation(server: &Server, token: &str) -> u64 {
    let (_, text) = http(
        "GET",
        &format!("{}/v1/providers/xai-oauth/entries", server.url),
        Some(token),
        None,
    );
    json(&text)["entries"][0]["generation"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_spent_seed_is_never_seeded_again() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeProvider::start(FakeProviderConfig::default()));
    let (_, refresh) = fake.grant("grok");
    let setup = grant_setup(&fake, refresh.expose());
    let server = setup.serve(&[]);
    let token = setup.token();
    assert!(eventually(STARTUP, || generation(&server, &token) >= 2));
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    // An operator removes the grant; the config still names the spent token.
    let data_dir = setup.data_dir();
    let removed = admin(
        &[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "remove",
            "xai-oauth",
            "grok",
        ],
        &[],
    );
    assert_ok(&removed);
    let refused = serve_to_the_end(&setup.config);
    assert!(!refused.status.success());
    let text = stderr(&refused);
    assert!(text.contains("was already sent by this data dir"), "{text}");
    assert!(!text.contains(refresh.expose()), "{text}");
    assert_eq!(fake.reuse_detections(), 0, "no replay reached the provider");
    assert_eq!(fake.token_requests(), 1);
}

#[test]
fn a_data_dir_that_lost_its_store_refuses_borrowed_grants() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeProvider::start(FakeProviderConfig::default()));
    let (_, refresh) = fake.grant("grok");
    let setup = grant_setup(&fake, refresh.expose());
    let server = setup.serve(&[]);
    let token = setup.token();
    assert!(eventually(STARTUP, || generation(&server, &token) >= 2));
    let (exit, _) = server.terminate();
    assert!(exit.success());
    // Everything of the store is gone; the admin token (beside it) is left.
    std::fs::remove_dir_all(setup.data_dir()).unwrap();
    assert!(setup.token_file().exists());
    let refused = serve_to_the_end(&setup.config);
    assert!(!refused.status.success());
    let text = stderr(&refused);
    assert!(text.contains("lost its state"), "{text}");
    assert_eq!(fake.token_requests(), 1, "the spent token was never sent");
}

#[test]
fn a_damaged_store_stops_the_start_until_an_operator_recovers() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    for label in ["one", "two"] {
        let body = format!(r#"{{"label":"{label}","api_key":"sk-{label}"}}"#);
        let (status, text) = http(
            "POST",
            &format!("{}/v1/providers/openai/entries", server.url),
            Some(&token),
            Some(&body),
        );
        assert_eq!(status, 201, "{text}");
    }
    let (exit, _) = server.terminate();
    assert!(exit.success());
    // sled's files gone, the manifest left: the store would come back empty.
    let data_dir = setup.data_dir();
    for item in std::fs::read_dir(&data_dir).unwrap() {
        let path = item.unwrap().path();
        let keep = ["manifest.log", "credpool.lock"]
            .iter()
            .any(|name| path.ends_with(name));
        if !keep {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    let refused = serve_to_the_end(&setup.config);
    assert!(!refused.status.success());
    let text = stderr(&refused);
    assert!(
        text.contains("is damaged") && text.contains("openai/one"),
        "{text}"
    );
    assert!(text.contains("recover --accept-loss"), "{text}");
    let without = admin(&["--data-dir", data_dir.to_str().unwrap(), "recover"], &[]);
    assert!(
        !without.status.success(),
        "the loss must be accepted explicitly"
    );
    let recovered = admin(
        &[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "recover",
            "--accept-loss",
        ],
        &[],
    );
    assert_ok(&recovered);
    assert!(
        stdout(&recovered).contains("openai/one"),
        "{}",
        stdout(&recovered)
    );
    let server = setup.serve(&[]);
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
}

#[test]
fn a_backup_of_a_running_service_restores_into_an_empty_dir() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    let (status, text) = http(
        "POST",
        &format!("{}/v1/providers/openai/entries", server.url),
        Some(&token),
        Some(r#"{"label":"team","api_key":"sk-backed-up"}"#),
    );
    assert_eq!(status, 201, "{text}");
    let file = setup.dir.path().join("credpool.backup");
    let taken = online(&setup, &server, &["backup", file.to_str().unwrap()], &[]);
    assert_ok(&taken);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // a running service's store cannot be restored over
    let refused = admin(
        &[
            "--url",
            &server.url,
            "--token-file",
            setup.token_file().to_str().unwrap(),
            "restore",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!refused.status.success());
    let (exit, _) = server.terminate();
    assert!(exit.success());

    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("restored");
    // The backup is sealed: it restores only with the key the service used.
    let keyless = admin(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "restore",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!keyless.status.success());
    assert!(
        stderr(&keyless).contains("is sealed with key")
            && stderr(&keyless).contains("no key was given"),
        "{}",
        stderr(&keyless)
    );
    let key_file = setup.data_dir().join("master.key");
    let key_file = key_file.to_str().unwrap();
    let restored = admin(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--master-key-file",
            key_file,
            "restore",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_ok(&restored);
    let status = admin(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--master-key-file",
            key_file,
            "status",
            "--json",
        ],
        &[],
    );
    assert_ok(&status);
    let snapshots = status_json(&status);
    assert_eq!(snapshots[0]["entries"][0]["label"], "team", "{snapshots}");
    // restoring again over it is refused
    let again = admin(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--master-key-file",
            key_file,
            "restore",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("restore into an empty one"),
        "{}",
        stderr(&again)
    );
}
