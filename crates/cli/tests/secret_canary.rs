#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The secret canary: the demo workload runs at TRACE, and no secret it used — every API key
//! and every access and refresh token the fake provider issued, read back from the demo's
//! saved fake state — may appear in its logs or output, in offline admin output, in a
//! service's admin API answers and metrics over the same store (also at TRACE), in `Debug`
//! output, or in a panic message. The master key (given in `CREDPOOL_MASTER_KEY`) is one of
//! those secrets too, and once everything has run, no secret is in the data dir in clear,
//! base64 or hex, but in the two files of the demo's fake provider (its own state).

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credpool::admin::{Add, Snapshot};
use credpool::{
    Credpool, ProviderId, RequestFailure, Secret, Timestamp, api_key_entry, oauth_entry,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_credpool");

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every secret the demo's fake provider knows: API keys, access and refresh tokens.
fn demo_secrets(data: &Path) -> Vec<String> {
    let saved = read_json(&data.join("demo-fake-provider.json"));
    let tokens = read_json(&data.join("demo-fake-tokens.json"));
    let mut secrets: Vec<String> = saved["keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for book in ["refresh_tokens", "access_tokens"] {
        secrets.extend(tokens["ledger"][book].as_object().unwrap().keys().cloned());
    }
    secrets
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} contains a secret (…{})",
            &secret[secret.len().saturating_sub(6)..]
        );
    }
}

/// A request that failed with `failure` (kept out of line, as a real call would be).
fn failed_request(failure: RequestFailure) -> Result<(), RequestFailure> {
    Err(failure)
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_the_demo_workload_leaks_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let master = credpool_store::seal::MasterKey::generate().1.to_string();
    let master_forms = {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&master)
            .unwrap();
        vec![master.clone(), hex::encode(&bytes)]
    };

    // 1. The demo at TRACE.
    let demo = Command::new(BIN)
        .env("CREDPOOL_MASTER_KEY", &master)
        .args([
            "demo",
            "--duration",
            "4",
            "--workers",
            "2",
            "--json",
            "--data-dir",
        ])
        .arg(&data)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let demo_out = String::from_utf8_lossy(&demo.stdout).into_owned();
    let demo_log = String::from_utf8_lossy(&demo.stderr).into_owned();
    assert!(demo.status.success(), "{demo_log}");
    assert!(
        demo_log.contains("TRACE") || demo_log.contains("DEBUG"),
        "the demo logged at trace"
    );
    let summary: Value = serde_json::from_str(demo_out.lines().last().unwrap()).unwrap();
    assert!(summary["refreshes"].as_u64().unwrap() >= 1, "{summary}");
    let mut secrets = demo_secrets(&data);
    assert!(secrets.len() >= 3 + 3 * 2, "the fake issued tokens");
    secrets.extend(master_forms);
    assert_clean("the demo's stdout", &demo_out, &secrets);
    assert_clean("the demo's log", &demo_log, &secrets);

    // 2. Offline admin on the demo's store.
    for args in [&["status", "--json"][..], &["status"][..]] {
        let output = Command::new(BIN)
            .env("CREDPOOL_MASTER_KEY", &master)
            .arg("admin")
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_clean(
            "offline admin output",
            &String::from_utf8_lossy(&output.stdout),
            &secrets,
        );
        assert_clean(
            "offline admin log",
            &String::from_utf8_lossy(&output.stderr),
            &secrets,
        );
    }

    // 3. A service at TRACE over the same store: its admin API and metrics. Its xAI token
    // endpoint is a closed loopback port, so nothing leaves the machine.
    let config = dir.path().join("credpool.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nallow_insecure_loopback = true\n\n[admin]\nlisten = \
             \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n\n[[providers]]\nid = \
             \"xai-oauth\"\ntoken_url = \"http://127.0.0.1:9/token\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let mut child = Command::new(BIN)
        .env("CREDPOOL_MASTER_KEY", &master)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let service = Service(child);
    let log_reader = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("listening on ").nth(1) {
                let _ = sender.send(url.trim().to_owned());
            }
        }
    });
    let base = receiver
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("serve did not start: {}", log.lock().unwrap()));
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let http = reqwest::Client::new();
    let mut answers = String::new();
    for path in [
        "/v1/providers",
        "/v1/status",
        "/v1/stats",
        "/v1/providers/xai-oauth/entries",
        "/v1/providers/openai/entries",
        "/v1/providers/openai/entries/openai-key-1",
        "/v1/providers/xai-oauth/stats",
        "/metrics",
    ] {
        let response = http
            .get(format!("{base}{path}"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        answers.push_str(&response.text().await.unwrap());
    }
    // Make the service work: a refresh now (it fails at the closed port) and a reset.
    for path in [
        "/v1/providers/xai-oauth/entries/xai-main/refresh",
        "/v1/providers/openai/entries/openai-key-3/reset",
    ] {
        let response = http
            .post(format!("{base}{path}"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        answers.push_str(&response.text().await.unwrap());
    }
    assert!(answers.contains("credpool_"), "metrics were read");
    assert!(answers.contains("openai-key-1"), "entries were read");
    assert_clean("admin API answers and metrics", &answers, &secrets);

    // The data plane: a lease answer carries its secret in `header.value` and nowhere else;
    // reports (one whose provider body echoes the key), errors and the log carry none.
    let socket = data.join("credpool.sock");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "no data-plane socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut data_answers = String::new();
    let strip = |mut value: Value| {
        if let Some(lease) = value.get_mut("lease").filter(|lease| lease.is_object()) {
            assert!(lease["header"]["value"].is_string(), "{lease}");
            lease["header"]["value"] = Value::Null;
        }
        value.to_string()
    };
    let (status, held) = support::uds_call(
        &socket,
        "POST",
        "/v1/lease",
        Some(&serde_json::json!({ "provider": "openai" })),
    );
    assert_eq!(status, 200, "{held}");
    let leased = held["lease"]["header"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        secrets
            .iter()
            .any(|secret| leased.ends_with(secret.as_str()))
    );
    let id = held["lease"]["id"].as_str().unwrap().to_owned();
    data_answers.push_str(&strip(held));
    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#,
        leased.trim_start_matches("Bearer ")
    );
    let (status, answer) = support::uds_call(
        &socket,
        "POST",
        &format!("/v1/leases/{id}/report"),
        Some(&serde_json::json!({ "status": 401, "headers": [], "body": echo })),
    );
    assert_eq!(status, 200, "{answer}");
    data_answers.push_str(&strip(answer));
    for (path, body) in [
        ("/v1/lease", serde_json::json!({ "provider": "nonesuch" })),
        (
            "/v1/lease",
            serde_json::json!({ "url": "https://api.openai.com/v1", "extra": 1 }),
        ),
        (
            "/v1/leases/0000/report",
            serde_json::json!({ "outcome": "success" }),
        ),
    ] {
        let (_, answer) = support::uds_call(&socket, "POST", path, Some(&body));
        data_answers.push_str(&answer.to_string());
    }
    assert_clean(
        "data-plane answers (lease values aside)",
        &data_answers,
        &secrets,
    );
    drop(service);
    // The reader ends when the killed service's stderr closes: the log is complete.
    log_reader.join().unwrap();
    assert_clean("the service's log", &log.lock().unwrap(), &secrets);
    // Nothing on disk: the store holds every secret sealed, and the key is not written.
    assert!(!data.join("master.key").exists());
    support::assert_nothing_in_clear(
        &data,
        &secrets,
        &["demo-fake-provider.json", "demo-fake-tokens.json"],
    );

    // 4. Debug output and a forced panic, in process.
    let canary = secrets[0].clone();
    let pool = Credpool::builder().in_memory().start().await.unwrap();
    let openai = ProviderId::new("openai");
    pool.admin()
        .run(
            &openai,
            Add(api_key_entry("canary", Secret::new(canary.clone()))),
        )
        .await
        .unwrap();
    let lease = pool.client().acquire(&openai).await.unwrap();
    let credential = pool.client().credential(&lease).unwrap();
    let failure = RequestFailure::http(
        401,
        Vec::new(),
        format!(r#"{{"error":{{"message":"Incorrect API key provided: {canary}"}}}}"#),
        "https://api.openai.com/v1",
    );
    let debug = format!(
        "{:?} {:?} {:?} {:?} {:?} {failure} {:?} {:?}",
        Secret::new(canary.clone()),
        api_key_entry("k", Secret::new(canary.clone())),
        oauth_entry(
            "g",
            Secret::new(canary.clone()),
            Secret::new(canary.clone()),
            Some(Timestamp(0))
        ),
        lease,
        credential,
        failure,
        pool.admin().run(&openai, Snapshot).await.unwrap(),
    );
    assert!(debug.contains("canary"), "the label is shown: {debug}");
    assert_clean("Debug output", &debug, std::slice::from_ref(&canary));

    let panicked = Arc::new(Mutex::new(String::new()));
    let previous = std::panic::take_hook();
    {
        let panicked = Arc::clone(&panicked);
        std::panic::set_hook(Box::new(move |info| {
            panicked.lock().unwrap().push_str(&info.to_string());
        }));
    }
    let worker = std::thread::spawn(move || {
        // A worker dying while holding its credential.
        let _held = (lease, credential);
        failed_request(failure).expect("the request failed");
    });
    assert!(worker.join().is_err(), "the worker panicked");
    std::panic::set_hook(previous);
    let message = panicked.lock().unwrap().clone();
    assert!(message.contains("the request failed"), "{message}");
    assert_clean("a panic message", &message, std::slice::from_ref(&canary));
    pool.shutdown().await.unwrap();
}
