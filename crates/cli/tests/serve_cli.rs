//! `credpool serve` and `credpool admin` through the real binary: servers on `127.0.0.1:0`,
//! readiness by polling (bounded), children killed on drop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

mod support;

use support::*;

#[test]
fn healthz_needs_no_token_and_everything_else_does() {
    let setup = Setup::new("");
    let server = setup.serve(&[]);
    let token = setup.token();
    assert_eq!(token.len(), 64);
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(setup.token_file())
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o600);

    assert_eq!(
        http("GET", &format!("{}/healthz", server.url), None, None).0,
        200
    );
    for path in [
        "/v1/providers",
        "/v1/status",
        "/metrics",
        "/v1/providers/openai/entries",
        "/v1/nope",
    ] {
        let url = format!("{}{path}", server.url);
        let (status, body) = http("GET", &url, None, None);
        assert_eq!(status, 401, "{path} without a token: {body}");
        let (status, _) = http("GET", &url, Some("wrong-token"), None);
        assert_eq!(status, 401, "{path} with a wrong token");
        let almost = format!("{}x", &token[..63]);
        assert_eq!(http("GET", &url, Some(&almost), None).0, 401, "{path}");
    }
    let (status, body) = http(
        "GET",
        &format!("{}/v1/providers", server.url),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(json(&body).is_array());
}

#[test]
fn the_api_answers_400_for_bad_json_and_404_for_unknown_things() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    let entries = format!("{}/v1/providers/openai/entries", server.url);

    let (status, body) = http("POST", &entries, Some(&token), Some("{not json"));
    assert_eq!(status, 400, "{body}");
    assert!(
        json(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{body}"
    );

    let (status, body) = http(
        "POST",
        &entries,
        Some(&token),
        Some(r#"{"label":"k","api_key":"v","colour":1}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown field `colour`"), "{body}");

    let (status, body) = http(
        "POST",
        &entries,
        Some(&token),
        Some(r#"{"label":"k","priority":"sk-canary-in-json"}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains("sk-canary"), "{body}");

    let (status, body) = http("POST", &entries, Some(&token), Some(r#"{"label":"k"}"#));
    assert_eq!(status, 400, "{body}");

    let strategy = format!("{}/v1/providers/openai/strategy", server.url);
    let (status, body) = http(
        "PUT",
        &strategy,
        Some(&token),
        Some(r#"{"strategy":"fastest"}"#),
    );
    assert_eq!(status, 400, "{body}");

    for (method, path) in [
        ("POST", "/v1/providers/openai/entries/nosuch/reset"),
        ("DELETE", "/v1/providers/openai/entries/nosuch"),
        ("GET", "/v1/providers/openai/entries/nosuch"),
        ("GET", "/v1/providers/no-such-provider/entries"),
        ("GET", "/v1/no/such/route"),
    ] {
        let (status, body) = http(method, &format!("{}{path}", server.url), Some(&token), None);
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert!(json(&body)["error"]["message"].is_string(), "{body}");
        let code = json(&body)["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            ["no_such_entry", "unknown_provider", "no_such_route"].contains(&code.as_str()),
            "{method} {path}: a stable code, got {body}"
        );
    }
}

#[test]
fn the_api_adds_resets_moves_sets_the_strategy_and_removes() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    let base = format!("{}/v1/providers/openai", server.url);
    for label in ["one", "two"] {
        let body = format!(r#"{{"label":"{label}","api_key":"sk-api-{label}"}}"#);
        let (status, text) = http(
            "POST",
            &format!("{base}/entries"),
            Some(&token),
            Some(&body),
        );
        assert_eq!(status, 201, "{text}");
        assert!(!text.contains("sk-api"), "{text}");
    }
    let (status, text) = http("GET", &format!("{base}/entries"), Some(&token), None);
    assert_eq!(status, 200);
    let snapshot = json(&text);
    let labels: Vec<&str> = snapshot["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["one", "two"]);
    assert!(!text.contains("sk-api"));

    let (status, text) = http(
        "POST",
        &format!("{base}/entries/two/move"),
        Some(&token),
        Some(r#"{"position":1}"#),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["index"], 1);
    let (status, text) = http(
        "POST",
        &format!("{base}/entries/one/reset"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["status"], "ok");
    let (status, text) = http(
        "PUT",
        &format!("{base}/strategy"),
        Some(&token),
        Some(r#"{"strategy":"round_robin"}"#),
    );
    assert_eq!(status, 200, "{text}");
    let (_, text) = http("GET", &format!("{base}/entries"), Some(&token), None);
    assert_eq!(json(&text)["strategy"], "round_robin");
    let (status, text) = http("DELETE", &format!("{base}/entries/one"), Some(&token), None);
    assert_eq!(status, 200, "{text}");
    let (_, text) = http("GET", &format!("{base}/entries"), Some(&token), None);
    assert_eq!(json(&text)["entries"].as_array().unwrap().len(), 1);
    let (status, text) = http("GET", &format!("{base}/stats"), Some(&token), None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["provider"], "openai");
}

#[test]
fn sigterm_exits_zero_and_a_second_serve_on_the_same_dir_keeps_the_state() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    let base = format!("{}/v1/providers/openai", server.url);
    let (status, text) = http(
        "POST",
        &format!("{base}/entries"),
        Some(&token),
        Some(r#"{"label":"kept","api_key":"sk-kept"}"#),
    );
    assert_eq!(status, 201, "{text}");
    let (status, _) = http(
        "PUT",
        &format!("{base}/strategy"),
        Some(&token),
        Some(r#"{"strategy":"least_used"}"#),
    );
    assert_eq!(status, 200);
    let (exit, log) = server.terminate();
    assert!(exit.success(), "exit {exit:?}; log:\n{log}");
    assert!(log.contains("SIGTERM"), "{log}");

    let again = setup.serve(&[]);
    let (status, text) = http(
        "GET",
        &format!("{}/v1/providers/openai/entries", again.url),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    let snapshot = json(&text);
    assert_eq!(snapshot["entries"][0]["label"], "kept");
    assert_eq!(snapshot["strategy"], "least_used");
    let (exit, log) = again.terminate();
    assert!(exit.success(), "{log}");
}

#[test]
fn a_bad_config_line_is_reported_with_its_key_and_line() {
    // a secret pasted as the strategy: the error lists the strategies, never the value
    let setup = Setup::new("[[providers]]\nid = \"openai\"\nstrategy = \"sk-canary-strategy\"\n");
    let output = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&setup.config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = stderr(&output);
    // the base keys take 6 lines, then a blank one: `strategy` is on line 9
    assert!(text.contains("line 9"), "{text}");
    assert!(text.contains("key `strategy`"), "{text}");
    assert!(
        text.contains("unknown variant, expected one of `fill_first`"),
        "{text}"
    );
    assert!(!text.contains("sk-canary"), "{text}");

    let setup = Setup::new(
        "[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = \"k\"\napi_key = \"sk-canary-inline\"\n",
    );
    let output = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&setup.config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("line 11") && text.contains("key `api_key`"),
        "{text}"
    );
    assert!(!text.contains("sk-canary"), "{text}");
}

#[test]
fn seeded_entries_are_added_once_and_their_secrets_never_leave() {
    const CANARY: &str = "sk-canary-3f9d1c-seeded";
    let setup = Setup::new(
        "[[providers]]\nid = \"openai\"\nstrategy = \"round_robin\"\n\n[[providers.entries]]\nlabel = \"from-env\"\napi_key_env = \"SERVE_TEST_CANARY\"\n\n[[providers.entries]]\nlabel = \"from-file\"\napi_key_file = \"key.txt\"\n",
    );
    std::fs::write(setup.dir.path().join("key.txt"), "sk-canary-file-7e21\n").unwrap();
    let env = [("SERVE_TEST_CANARY", CANARY)];
    let server = setup.serve(&env);
    let token = setup.token();
    let entries = format!("{}/v1/providers/openai/entries", server.url);
    let (_, text) = http("GET", &entries, Some(&token), None);
    let snapshot = json(&text);
    assert_eq!(snapshot["entries"].as_array().unwrap().len(), 2, "{text}");
    assert_eq!(snapshot["entries"][0]["source"], "env:SERVE_TEST_CANARY");
    assert_eq!(snapshot["entries"][0]["missing_secret"], false);
    let metrics = metrics(&server.url, &token);
    assert!(
        metrics.contains("credpool_entries{provider=\"openai\",status=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("credpool_token_endpoint_latency_seconds_count"),
        "{metrics}"
    );
    let (_, all) = http(
        "GET",
        &format!("{}/v1/status", server.url),
        Some(&token),
        None,
    );
    let (_, stats) = http(
        "GET",
        &format!("{}/v1/stats", server.url),
        Some(&token),
        None,
    );
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    for text in [&text, &metrics, &all, &stats, &log] {
        assert!(
            !text.contains(CANARY) && !text.contains("sk-canary-file"),
            "{text}"
        );
    }
    // the store holds fingerprints of borrowed secrets, never the values
    for file in walk(&setup.data_dir()) {
        let bytes = std::fs::read(&file).unwrap();
        for canary in [CANARY, "sk-canary-file"] {
            assert!(
                !contains(&bytes, canary.as_bytes()),
                "{canary} in {}",
                file.display()
            );
        }
    }

    // a restart does not seed again
    let again = setup.serve(&env);
    let (_, text) = http(
        "GET",
        &entries.replace(&entries[..entries.find("/v1").unwrap()], &again.url),
        Some(&token),
        None,
    );
    assert_eq!(
        json(&text)["entries"].as_array().unwrap().len(),
        2,
        "{text}"
    );
    assert!(again.log_text().contains("kept=2"), "{}", again.log_text());
}

#[test]
fn a_second_serve_on_a_running_data_dir_says_the_store_is_locked() {
    let setup = Setup::new("");
    let _server = setup.serve(&[]);
    let output = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&setup.config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("is locked"), "{}", stderr(&output));
}

#[test]
fn a_seeded_grant_is_refreshed_at_a_loopback_token_url_and_the_rotated_pair_wins_at_restart() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(credpool_test_support::FakeProvider::start_default());
    let (_access, refresh) = fake.grant("grok");
    let setup = Setup::with_top_level(
        "allow_insecure_loopback = true\n",
        &format!(
            "[[providers]]\nid = \"xai-oauth\"\ntoken_url = \"{}\"\nbase_url = \"{}/v1\"\n\n[[providers.entries]]\nlabel = \"grok\"\nrefresh_token_file = \"grok.rt\"\n",
            fake.token_url(),
            fake.base_url()
        ),
    );
    std::fs::write(setup.dir.path().join("grok.rt"), refresh.expose()).unwrap();

    let server = setup.serve(&[]);
    let token = setup.token();
    let entries = |url: &str| format!("{url}/v1/providers/xai-oauth/entries");
    let generation = |url: &str| {
        let (_, text) = http("GET", &entries(url), Some(&token), None);
        json(&text)["entries"][0]["generation"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(
        eventually(STARTUP, || generation(&server.url) >= 2),
        "no refresh; log:\n{}",
        server.log_text()
    );
    assert_eq!(fake.refreshes(), 1);
    let metrics = metrics(&server.url, &token);
    assert!(
        metrics.contains("credpool_token_exchanges_total{result=\"success\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("credpool_token_endpoint_latency_seconds_count 1"),
        "{metrics}"
    );
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    assert!(!log.contains(refresh.expose()), "{log}");

    // the file still holds the spent token; the store's rotated pair wins
    let again = setup.serve(&[]);
    let (_, text) = http("GET", &entries(&again.url), Some(&token), None);
    let snapshot = json(&text);
    assert_eq!(snapshot["entries"].as_array().unwrap().len(), 1, "{text}");
    assert_eq!(snapshot["entries"][0]["status"], "ok", "{text}");
    assert!(snapshot["entries"][0]["generation"].as_u64().unwrap() >= 2);
    assert_eq!(fake.reuse_detections(), 0);
    assert!(!fake.is_revoked("grok"));
    let (exit, log) = again.terminate();
    assert!(exit.success(), "{log}");
}

// ---------------------------------------------------------------- admin

#[test]
fn admin_round_trip_against_a_running_service() {
    const CANARY: &str = "sk-canary-admin-51c0e2";
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let env = [
        ("ADMIN_TEST_KEY", CANARY),
        ("ADMIN_TEST_KEY_2", "sk-canary-admin-two"),
    ];

    let added = online(
        &setup,
        &server,
        &["add", "openai", "first", "--api-key-env", "ADMIN_TEST_KEY"],
        &env,
    );
    assert_ok(&added);
    assert!(
        stdout(&added).starts_with("added openai/first"),
        "{}",
        stdout(&added)
    );
    let added = online(
        &setup,
        &server,
        &[
            "add",
            "openai",
            "second",
            "--api-key-env",
            "ADMIN_TEST_KEY_2",
            "--json",
        ],
        &env,
    );
    let view = status_json(&added);
    assert_eq!(view["label"], "second");
    assert_eq!(view["index"], 2);

    let text = online(&setup, &server, &["status"], &[]);
    assert_ok(&text);
    let table = stdout(&text);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for header in [
        "PROVIDER",
        "ID",
        "LABEL",
        "FINGERPRINT",
        "STATUS",
        "COOLDOWN",
        "TOKEN EXPIRES",
        "GEN",
        "USES",
    ] {
        assert!(lines[0].contains(header), "{table}");
    }
    assert!(
        lines[1].starts_with("openai") && lines[1].contains("first") && lines[1].contains(" ok "),
        "{table}"
    );

    let snapshots = status_json(&online(
        &setup,
        &server,
        &["status", "openai", "--json"],
        &[],
    ));
    assert_eq!(snapshots[0]["entries"][0]["label"], "first");
    let fingerprint = snapshots[0]["entries"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(table.contains(&fingerprint), "{table}");

    assert_ok(&online(&setup, &server, &["reset", "openai", "first"], &[]));
    let moved = status_json(&online(
        &setup,
        &server,
        &["move", "openai", "second", "1", "--json"],
        &[],
    ));
    assert_eq!(moved["index"], 1);
    let strategy = online(&setup, &server, &["strategy", "openai", "round_robin"], &[]);
    assert_ok(&strategy);
    assert_eq!(stdout(&strategy), "openai now uses round_robin\n");
    let providers = online(&setup, &server, &["providers"], &[]);
    assert_ok(&providers);
    assert!(
        stdout(&providers).contains("round_robin"),
        "{}",
        stdout(&providers)
    );
    let stats = online(&setup, &server, &["stats"], &[]);
    assert_ok(&stats);
    assert!(stdout(&stats).contains("refresher:"), "{}", stdout(&stats));

    let removed = online(&setup, &server, &["remove", "openai", "first"], &[]);
    assert_ok(&removed);
    assert!(stdout(&removed).starts_with("removed openai/first"));
    let snapshots = status_json(&online(&setup, &server, &["status", "--json"], &[]));
    let labels: Vec<&str> = snapshots[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["second"]);

    // errors: unknown entry, wrong token, bad strategy
    let missing = online(&setup, &server, &["reset", "openai", "nosuch"], &[]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("404"), "{}", stderr(&missing));
    let wrong = setup.dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token-but-long-enough-to-be-sent").unwrap();
    let refused = admin(
        &[
            "--url",
            &server.url,
            "--token-file",
            wrong.to_str().unwrap(),
            "status",
        ],
        &[],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("401"), "{}", stderr(&refused));
    let bad = online(&setup, &server, &["strategy", "openai", "fastest"], &[]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("400"), "{}", stderr(&bad));

    // the events counted for /metrics: two added, one removed
    let metrics = || metrics(&server.url, &setup.token());
    assert!(
        eventually(STARTUP, || {
            let text = metrics();
            text.contains("credpool_events_total{provider=\"openai\",event=\"added\"} 2")
                && text.contains("credpool_events_total{provider=\"openai\",event=\"removed\"} 1")
        }),
        "{}",
        metrics()
    );
    assert!(metrics().contains("credpool_entries_missing_secret{provider=\"openai\"} 0"));

    // no secret anywhere: admin text and JSON output, metrics, the server's log
    let everything = [
        stdout(&online(&setup, &server, &["status"], &[])),
        stdout(&online(&setup, &server, &["status", "--json"], &[])),
        stdout(&online(&setup, &server, &["stats", "--json"], &[])),
        metrics(),
    ];
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    for text in everything.iter().chain([&log]) {
        assert!(!text.contains("sk-canary"), "{text}");
    }
}

#[test]
fn admin_events_follow_the_service_until_it_stops() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token_file = setup.token_file();
    let mut follower = Command::new(BIN)
        .args([
            "admin",
            "--url",
            &server.url,
            "--token-file",
            token_file.to_str().unwrap(),
            "events",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, receiver) = mpsc::channel();
    let follower_stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(follower_stdout).lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line);
        }
    });
    let first = receiver.recv_timeout(STARTUP).expect("a subscribed line");
    assert_eq!(json(&first)["event"], "subscribed", "{first}");
    let env = [("ADMIN_EVENT_KEY", "sk-canary-event")];
    assert_ok(&online(
        &setup,
        &server,
        &[
            "add",
            "openai",
            "watched",
            "--api-key-env",
            "ADMIN_EVENT_KEY",
        ],
        &env,
    ));
    let added = receiver.recv_timeout(STARTUP).expect("an added event");
    let added = json(&added);
    assert_eq!(added["event"], "added");
    assert_eq!(added["label"], "watched");
    assert_eq!(added["provider"], "openai");
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    // the stream ends with the service, and so does the follower
    assert!(
        eventually(STARTUP, || follower.try_wait().unwrap().is_some()),
        "follower still running"
    );
    let _ = follower.kill();
}

#[test]
fn offline_admin_works_on_a_stopped_service_and_refuses_a_running_one() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let data_dir = setup.data_dir();
    let data = data_dir.to_str().unwrap();
    let env = [("OFFLINE_KEY", "sk-canary-offline")];

    let added = admin(
        &[
            "--data-dir",
            data,
            "add",
            "openai",
            "offline-key",
            "--api-key-env",
            "OFFLINE_KEY",
        ],
        &env,
    );
    assert_ok(&added);
    assert!(
        stdout(&added).starts_with("added openai/offline-key"),
        "{}",
        stdout(&added)
    );
    let status = admin(&["--data-dir", data, "status"], &[]);
    assert_ok(&status);
    assert!(
        stdout(&status).contains("offline-key"),
        "{}",
        stdout(&status)
    );
    let snapshots = status_json(&admin(&["--data-dir", data, "status", "--json"], &[]));
    assert_eq!(snapshots[0]["entries"][0]["label"], "offline-key");
    assert_ok(&admin(
        &["--data-dir", data, "strategy", "openai", "random"],
        &[],
    ));
    let config = setup.config.to_str().unwrap();
    let providers = status_json(&admin(&["--config", config, "providers", "--json"], &[]));
    assert_eq!(providers[0]["strategy"], "random", "{providers}");
    for output in [&added, &status] {
        assert!(!stdout(output).contains("sk-canary") && !stderr(output).contains("sk-canary"));
    }

    // the service sees what the offline admin wrote
    let server = setup.serve(&[]);
    let (_, text) = http(
        "GET",
        &format!("{}/v1/providers/openai/entries", server.url),
        Some(&setup.token()),
        None,
    );
    assert_eq!(json(&text)["entries"][0]["label"], "offline-key", "{text}");

    // and while it runs, the offline admin says the store is locked and points at --url
    let locked = admin(&["--data-dir", data, "status"], &[]);
    assert!(!locked.status.success());
    let message = stderr(&locked);
    assert!(
        message.contains("is locked") && message.contains("--url"),
        "{message}"
    );
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");

    let events = admin(&["--data-dir", data, "events"], &[]);
    assert!(!events.status.success());
    assert!(stderr(&events).contains("--url"), "{}", stderr(&events));
}

#[test]
fn offline_admin_sends_no_refresh_token_except_for_refresh() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(credpool_test_support::FakeProvider::start_default());
    let (_access, refresh) = fake.grant("offline-grant");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let token_url = fake.token_url();
    let env = [("OFFLINE_RT", refresh.expose())];
    let common = ["--data-dir", data, "--allow-insecure-loopback"];
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = common.to_vec();
        all.extend_from_slice(args);
        admin(&all, env)
    };

    // a grant without an access token would be refreshed at once; offline it is not
    let added = run(
        &[
            "add",
            "xai-oauth",
            "g",
            "--refresh-token-env",
            "OFFLINE_RT",
            "--token-url",
            &token_url,
        ],
        &env,
    );
    assert_ok(&added);
    let after_add = status_json(&run(&["status", "--json"], &[]));
    assert_ok(&run(&["status"], &[]));
    let after_status = status_json(&run(&["status", "--json"], &[]));
    assert_eq!(fake.token_requests(), 0);
    // and it is not benched for a refresh that was never tried (it used to show
    // `cooling_down (refresh_failed)`)
    for snapshots in [&after_add, &after_status] {
        let entry = &snapshots[0]["entries"][0];
        assert_eq!(entry["label"], "g", "{snapshots}");
        assert_eq!(entry["status"], "ok", "{snapshots}");
        assert!(entry["cooldown_remaining_s"].is_null(), "{snapshots}");
        assert!(entry["cooldown_cause"].is_null(), "{snapshots}");
        assert!(entry["last_error"].is_null(), "{snapshots}");
    }

    // `refresh` does send it, and waits for the rotated pair to be committed. The pool may
    // also refresh the token-less grant as it starts; then the command's refresh follows
    // that one (never alongside it), so there are one or two rotations and never a reuse.
    let refreshed = status_json(&run(&["refresh", "xai-oauth", "g", "--json"], &[]));
    assert_eq!(refreshed["status"], "ok", "{refreshed}");
    let generation = refreshed["generation"].as_u64().unwrap();
    let rotations = fake.refreshes();
    assert!((1..=2).contains(&rotations), "{rotations}");
    assert_eq!(generation, 1 + rotations, "{refreshed}");
    let snapshots = status_json(&run(&["status", "--json"], &[]));
    assert_eq!(snapshots[0]["entries"][0]["generation"], generation);
    assert!(snapshots[0]["entries"][0]["token_expires_at"].is_i64());
    assert_eq!(fake.token_requests(), rotations);
    assert_eq!(fake.reuse_detections(), 0);
    assert!(!fake.is_revoked("offline-grant"));
}

#[test]
fn a_secret_typed_as_an_env_var_name_is_refused_and_never_echoed() {
    const CANARY: &str = "sk-proj-CANARY-9b1e77";
    let setup = Setup::new(&format!(
        "[[providers]]\nid = \"openai\"\n\n[[providers.entries]]\nlabel = \"pasted\"\napi_key_env = \"{CANARY}\"\n"
    ));
    let output = serve_to_the_end(&setup.config);
    assert!(!output.status.success());
    let text = format!("{}{}", stderr(&output), stdout(&output));
    // base keys 6 lines, a blank one, the provider (2), a blank one, the entry header, label
    assert!(
        text.contains("line 12") && text.contains("key `api_key_env`"),
        "{text}"
    );
    assert!(text.contains("not an environment variable name"), "{text}");
    assert!(!text.contains("CANARY"), "{text}");
    assert!(!setup.data_dir().exists(), "nothing was stored");

    // the admin CLI refuses it too, online and offline, before reading anything
    let data_dir = setup.data_dir();
    for flag in ["--api-key-env", "--refresh-token-env"] {
        let output = admin(
            &[
                "--data-dir",
                data_dir.to_str().unwrap(),
                "add",
                "openai",
                "pasted",
                flag,
                CANARY,
            ],
            &[],
        );
        assert!(!output.status.success());
        let text = format!("{}{}", stderr(&output), stdout(&output));
        assert!(text.contains("not an environment variable name"), "{text}");
        assert!(!text.contains("CANARY"), "{text}");
    }
    let output = admin(
        &[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "add",
            "xai-oauth",
            "g",
            "--refresh-token-env",
            "VALID_RT",
            "--access-token-env",
            CANARY,
        ],
        &[("VALID_RT", "rt-value")],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--access-token-env: not an environment variable name"),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("CANARY"), "{}", stderr(&output));
    // nothing was added by the refused commands
    let snapshots = status_json(&admin(
        &["--data-dir", data_dir.to_str().unwrap(), "status", "--json"],
        &[],
    ));
    let entries: usize = snapshots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["entries"].as_array().unwrap().len())
        .sum();
    assert_eq!(entries, 0, "{snapshots}");
}

#[test]
fn entries_have_one_id_form_and_labels_are_unique() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    let base = format!("{}/v1/providers/openai/entries", server.url);
    let mut ids = Vec::new();
    for label in ["a", "b", "2", "dup"] {
        let body = format!(r#"{{"label":"{label}","api_key":"sk-{label}"}}"#);
        let (status, text) = http("POST", &base, Some(&token), Some(&body));
        assert_eq!(status, 201, "{text}");
        ids.push(json(&text)["id"].as_str().unwrap().to_owned());
    }
    // The id in an answer is the id a route takes: 12 hex digits, never a number.
    for id in &ids {
        assert!(
            id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
        let (status, text) = http("GET", &format!("{base}/{id}"), Some(&token), None);
        assert_eq!(status, 200, "{text}");
        assert_eq!(json(&text)["id"].as_str(), Some(id.as_str()));
    }
    // A label already held (whatever its case) is 409 with a stable code; nothing is added.
    let (status, text) = http(
        "POST",
        &base,
        Some(&token),
        Some(r#"{"label":"DUP","api_key":"sk-other"}"#),
    );
    assert_eq!(status, 409, "{text}");
    assert_eq!(json(&text)["error"]["code"], "label_taken", "{text}");
    let (_, text) = http("GET", &base, Some(&token), None);
    assert_eq!(
        json(&text)["entries"].as_array().unwrap().len(),
        4,
        "{text}"
    );
    // a label wins over a position, as in DELETE, reset, refresh and move
    let (status, text) = http("GET", &format!("{base}/2"), Some(&token), None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["label"], "2", "{text}");
    let (status, text) = http("GET", &format!("{base}/1"), Some(&token), None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["label"], "a", "{text}");
    let (status, text) = http("GET", &format!("{base}/9"), Some(&token), None);
    assert_eq!(status, 404, "{text}");
    assert_eq!(json(&text)["error"]["code"], "no_such_entry", "{text}");
    let (_, got) = http("GET", &format!("{base}/2"), Some(&token), None);
    let (status, removed) = http("DELETE", &format!("{base}/2"), Some(&token), None);
    assert_eq!(status, 200, "{removed}");
    assert_eq!(json(&got)["id"], json(&removed)["id"], "{got} / {removed}");
}

#[test]
fn an_added_grants_token_url_must_be_on_the_providers_domain() {
    let setup = Setup::new("[[providers]]\nid = \"xai-oauth\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    let base = format!("{}/v1/providers/xai-oauth/entries", server.url);
    for url in [
        "https://evil.com/oauth2/token",
        "https://user:pw@auth.x.ai/oauth2/token",
    ] {
        let body = format!(r#"{{"label":"g","refresh_token":"sk-canary-rt","token_url":"{url}"}}"#);
        let (status, text) = http("POST", &base, Some(&token), Some(&body));
        assert_eq!(status, 400, "{url}: {text}");
        assert!(
            json(&text)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("token_url"),
            "{text}"
        );
    }
    let (_, text) = http("GET", &base, Some(&token), None);
    assert_eq!(
        json(&text)["entries"].as_array().unwrap().len(),
        0,
        "{text}"
    );
}

#[test]
fn plain_http_off_loopback_is_refused_by_admin_and_warned_about_by_serve() {
    let setup = Setup::new("");
    let token_file = setup.dir.path().join("some.token");
    std::fs::write(&token_file, "sk-canary-admin-token-long-enough-0123").unwrap();
    let token_file = token_file.to_str().unwrap();
    let refused = admin(
        &[
            "--url",
            "http://0.0.0.0:1",
            "--token-file",
            token_file,
            "status",
        ],
        &[],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--allow-insecure-http"),
        "{}",
        stderr(&refused)
    );
    // with the flag the request is made (and fails: nothing listens on port 1)
    let tried = admin(
        &[
            "--url",
            "http://0.0.0.0:1",
            "--token-file",
            token_file,
            "--allow-insecure-http",
            "status",
        ],
        &[],
    );
    assert!(!tried.status.success());
    assert!(
        stderr(&tried).contains("cannot reach"),
        "{}",
        stderr(&tried)
    );

    // serve on a loopback address says nothing; on every address it warns
    let server = setup.serve(&[]);
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    assert!(!log.contains("plain http"), "{log}");
    let open = Setup::new("");
    let text = std::fs::read_to_string(&open.config)
        .unwrap()
        .replace("127.0.0.1:0", "0.0.0.0:0");
    std::fs::write(&open.config, text).unwrap();
    let server = open.serve(&[]);
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("WARN") && log.contains("plain http on a non-loopback address"),
        "{log}"
    );
}
