//! What a hostile local user or a careless operator does to `credpool serve`: idle and slow
//! connections, connection churn, signals at awkward moments, a key file that is a FIFO, a
//! label that would forge a log line. Real binary, real sockets on `127.0.0.1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use credpool_test_support::{FakeProvider, FakeProviderConfig, TokenFault};

mod support;

use support::*;

/// The address part of a server URL (`127.0.0.1:PORT`).
fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Opens a connection that sends nothing.
fn idle(url: &str) -> TcpStream {
    let stream = TcpStream::connect(address(url)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

#[test]
fn idle_connections_are_capped_and_closed_so_the_api_keeps_answering() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    std::fs::write(
        &setup.config,
        std::fs::read_to_string(&setup.config).unwrap().replace(
            "[admin]\n",
            "[admin]\nmax_connections = 8\nheader_read_timeout_s = 1\n",
        ),
    )
    .unwrap();
    let server = setup.serve(&[]);
    // Twice the cap of connections that never send a request.
    let mut stalled: Vec<TcpStream> = (0..16).map(|_| idle(&server.url)).collect();
    let started = Instant::now();
    let (status, body) = http("GET", &format!("{}/healthz", server.url), None, None);
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered after the stalled connections timed out"
    );
    // Every stalled connection was closed by the server (read sees the end).
    for stream in &mut stalled {
        let mut byte = [0u8; 1];
        let read = stream.read(&mut byte);
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let log = server.log_text();
    assert!(log.contains("max_connections=8"), "{log}");
}

#[test]
fn connection_churn_gives_memory_back() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    let churn = || {
        let mut streams = Vec::new();
        for _ in 0..100 {
            let mut stream = TcpStream::connect(address(&server.url)).unwrap();
            let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            streams.push(stream);
        }
        for _ in 0..50 {
            let mut stream = TcpStream::connect(address(&server.url)).unwrap();
            let request = format!(
                "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
            );
            let _ = stream.write_all(request.as_bytes());
            streams.push(stream);
        }
        // Every connection was answered before it is dropped.
        for stream in &mut streams {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut first = [0u8; 12];
            let _ = stream.read(&mut first);
        }
    };
    churn();
    let warm = server.rss_kib();
    for _ in 0..8 {
        churn();
    }
    // Connections are closed and their tasks gone: the memory of the last round is back.
    let settled = eventually(Duration::from_secs(10), || {
        server.rss_kib() <= warm + 16 * 1024
    });
    let last = server.rss_kib();
    eprintln!("rss {warm} KiB after the first 150 connections, {last} KiB after 1,350");
    assert!(
        settled,
        "rss {last} KiB after 1,350 connections, {warm} KiB after the first 150"
    );
}

#[test]
fn sighup_during_a_refresh_stops_gracefully_and_loses_no_grant() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeProvider::start(FakeProviderConfig::default()));
    let (_access, refresh) = fake.grant("grok");
    // The first token request rotates at once but answers after 1.5 s: HUP lands in between.
    fake.push_fault(TokenFault::Slow(Duration::from_millis(1500)));
    let setup = Setup::with_top_level(
        "allow_insecure_loopback = true\n",
        &format!(
            "[[providers]]\nid = \"xai-oauth\"\ntoken_url = \"{}\"\nbase_url = \"{}/v1\"\n\n[[providers.entries]]\nlabel = \"grok\"\nrefresh_token_file = \"grok.rt\"\n",
            fake.token_url(),
            fake.base_url()
        ),
    );
    let rt_file = setup.dir.path().join("grok.rt");
    std::fs::write(&rt_file, refresh.expose()).unwrap();
    let server = setup.serve(&[]);
    assert!(
        eventually(STARTUP, || fake.token_requests() == 1),
        "the refresh reached the provider"
    );
    let (exit, log) = server.stop_with("HUP");
    assert!(exit.success(), "exit {exit:?}; log:\n{log}");
    assert!(log.contains("SIGHUP"), "{log}");
    assert!(log.contains("stopped; store flushed"), "{log}");
    // The exchange in flight was waited for and committed: the next start needs no refresh.
    let again = setup.serve(&[]);
    let token = setup.token();
    let (_, text) = http(
        "GET",
        &format!("{}/v1/providers/xai-oauth/entries", again.url),
        Some(&token),
        None,
    );
    let entry = &json(&text)["entries"][0];
    assert_eq!(entry["status"], "ok", "{text}");
    assert_eq!(entry["generation"], 2, "{text}");
    assert_eq!(fake.token_requests(), 1, "no second exchange");
    assert_eq!(fake.reuse_detections(), 0);
    let (exit, log) = again.terminate();
    assert!(exit.success(), "{log}");
}

#[test]
fn a_fifo_key_file_does_not_hold_up_the_start_and_sigterm_stops_it() {
    let setup = Setup::new(
        "[[providers]]\nid = \"openai\"\n\n[[providers.entries]]\nlabel = \"piped\"\napi_key_file = \"key.fifo\"\n",
    );
    let fifo = setup.dir.path().join("key.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let server = setup.serve(&[]);
    let log = server.log_text();
    assert!(log.contains("not a regular file"), "{log}");
    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
}

#[test]
fn a_label_that_would_forge_a_log_line_and_an_oversized_body_are_refused() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    let entries = format!("{}/v1/providers/openai/entries", server.url);
    for label in [
        "ok\\n2026-11-30T00:00:00Z ERROR credpool: forged",
        "evil\\u001b[2J",
        &"x".repeat(129),
    ] {
        let body = format!(r#"{{"label":"{label}","api_key":"sk-label-test"}}"#);
        let (status, text) = http("POST", &entries, Some(&token), Some(&body));
        assert_eq!(status, 400, "{label}: {text}");
        assert_eq!(json(&text)["error"]["code"], "invalid_request", "{text}");
    }
    // A body over 1 MiB is not read, and the answer is the API's error, not axum's text.
    let huge = format!(r#"{{"label":"big","api_key":"{}"}}"#, "k".repeat(1 << 21));
    let (status, text) = http("POST", &entries, Some(&token), Some(&huge));
    assert_eq!(status, 413, "{text}");
    assert_eq!(json(&text)["error"]["code"], "body_too_large", "{text}");
    let (status, _) = http("GET", &entries, Some(&token), None);
    assert_eq!(status, 200, "the service still answers");
    let (exit, log) = server.terminate();
    assert!(exit.success());
    assert!(!log.contains("forged"), "{log}");
}

/// A tmpfs for a test; unmounted (lazily) on drop. `None` where mounting is not allowed.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        status.status.success().then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_is_reported_and_the_service_restarts_once_space_is_back() {
    let Some(tmpfs) = Tmpfs::mount("3m") else {
        eprintln!("skipped: cannot mount a tmpfs here (run as root to test a full disk)");
        return;
    };
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let data_dir = tmpfs.0.path().join("data");
    std::fs::write(
        &setup.config,
        std::fs::read_to_string(&setup.config).unwrap().replace(
            "data_dir = \"data\"",
            &format!("data_dir = \"{}\"", data_dir.display()),
        ),
    )
    .unwrap();
    let mut server = setup.serve(&[]);
    let token = setup.token();
    let entries = format!("{}/v1/providers/openai/entries", server.url);
    let add = |label: &str| {
        let body = format!(
            r#"{{"label":"{label}","api_key":"sk-{label}-{}"}}"#,
            "k".repeat(200)
        );
        http("POST", &entries, Some(&token), Some(&body))
    };
    assert_eq!(add("before").0, 201);

    // Fill the disk, then write until the store refuses.
    let filler = tmpfs.0.path().join("filler");
    {
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file
            .write_all(&block)
            .and_then(|()| file.sync_all())
            .is_ok()
        {}
    }
    let refused = (0..20)
        .map(|n| add(&format!("full-{n}")))
        .find(|(status, _)| *status != 201);
    let (status, text) = refused.expect("a full disk refuses a write");
    assert_eq!(status, 503, "{text}");
    assert_eq!(json(&text)["error"]["code"], "store_failed", "{text}");
    let (status, text) = http("GET", &format!("{}/healthz", server.url), None, None);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("store failing"), "{text}");
    assert!(metrics(&server.url, &token).contains("credpool_store_failing 1"));

    // Space is back: the service stops on its own to reopen its store.
    std::fs::remove_file(&filler).unwrap();
    let mut child = server.child.take().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(75), "{}", server.log_text());
    assert!(server.log_text().contains("stopping to reopen it"));

    let again = setup.serve(&[]);
    let (_, text) = http(
        "GET",
        &entries.replace(&server.url, &again.url),
        Some(&token),
        None,
    );
    let labels: Vec<String> = json(&text)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["label"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(labels.contains(&"before".to_owned()), "{labels:?}");
    let (exit, log) = again.terminate();
    assert!(exit.success(), "{log}");
}
