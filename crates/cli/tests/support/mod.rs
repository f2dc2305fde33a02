//! What the tests of the `credpool` binary share: a `credpool serve` child on
//! `127.0.0.1:0` (killed on drop), a config in a temp dir, plain HTTP calls and the admin
//! command.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several test files

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_credpool");

/// How long a server gets to start or stop.
pub const STARTUP: Duration = Duration::from_secs(30);

/// A `credpool serve` child; killed on drop.
pub struct Server {
    pub child: Option<Child>,
    pub url: String,
    pub log: PathBuf,
    /// Every line the service printed on stdout so far.
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `credpool serve --config <config>` with extra environment variables, waits for
    /// the admin API's listening line and the data plane's socket line.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Server {
        let log = config.with_extension(format!("{}.log", unique()));
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn credpool serve");
        let stdout = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (sender, receiver) = mpsc::channel();
        {
            let lines = std::sync::Arc::clone(&lines);
            std::thread::spawn(move || {
                let mut url = None;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(found) = line.strip_prefix("credpool serve: listening on ") {
                        url = Some(found.trim().to_owned());
                    }
                    let ready = line.starts_with("credpool serve: data plane on unix:");
                    lines.lock().unwrap().push(line);
                    if ready && let Some(url) = url.take() {
                        let _ = sender.send(url);
                    }
                }
            });
        }
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            log,
            stdout: lines,
        };
        match receiver.recv_timeout(STARTUP) {
            Ok(url) => server.url = url,
            Err(_) => {
                let status = server.child.as_mut().unwrap().try_wait().unwrap();
                panic!(
                    "serve did not start (status {status:?}); log:\n{}",
                    server.log_text()
                );
            }
        }
        server
    }

    /// The rest of the first stdout line that starts with `prefix`, waiting for it (bounded).
    pub fn stdout_after(&self, prefix: &str) -> String {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(rest) = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find_map(|line| line.strip_prefix(prefix))
            {
                return rest.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "no stdout line {prefix:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The resident memory of the server now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(self) -> (ExitStatus, String) {
        self.stop_with("TERM")
    }

    /// Sends `signal` (`TERM`, `HUP`, `INT`) and waits (bounded) for the exit.
    pub fn stop_with(mut self, signal: &str) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, self.log_text());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "serve did not stop after SIG{signal}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A temp dir with a config file; `extra` is appended after the base keys.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    pub fn new(extra: &str) -> Setup {
        Setup::with_top_level("", extra)
    }

    /// `top` goes first (top-level keys), then `data_dir` and `[admin]`, then `extra`.
    pub fn with_top_level(top: &str, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("credpool.toml");
        std::fs::write(
            &config,
            format!(
                "{top}data_dir = \"data\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n\n{extra}"
            ),
        )
        .unwrap();
        Setup { dir, config }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("admin.token")
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.token_file())
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn serve(&self, env: &[(&str, &str)]) -> Server {
        Server::start(&self.config, env)
    }
}

/// A blocking HTTP call through a small runtime (the tests stay synchronous).
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut request = client.request(method.parse().unwrap(), url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

/// The server's `/metrics` text.
pub fn metrics(url: &str, token: &str) -> String {
    http("GET", &format!("{url}/metrics"), Some(token), None).1
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// Runs `credpool admin` with `args`.
pub fn admin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.arg("admin").args(args).stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run credpool admin")
}

/// Runs `credpool serve` on a config expected to be refused, killing it (and failing) if it
/// is still running after [`STARTUP`] instead of hanging the test.
pub fn serve_to_the_end(config: &Path) -> Output {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + STARTUP;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "serve accepted the config and kept running; log:\n{}",
                stderr(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "admin failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

// ---------------------------------------------------------------- serve

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `credpool admin --url … --token-file …` plus `args`.
pub fn online(setup: &Setup, server: &Server, args: &[&str], env: &[(&str, &str)]) -> Output {
    let token_file = setup.token_file();
    let mut all = vec![
        "--url",
        server.url.as_str(),
        "--token-file",
        token_file.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    admin(&all, env)
}

pub fn status_json(output: &Output) -> Value {
    assert_ok(output);
    json(&stdout(output))
}

/// The ways a secret could sit in a file: as it is, in base64 (at each of the three byte
/// alignments, the part that depends on the secret alone) and in hex.
pub fn encodings(secret: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ];
    let mut out = vec![
        secret.as_bytes().to_vec(),
        hex::encode(secret).into_bytes(),
        hex::encode_upper(secret).into_bytes(),
    ];
    for engine in engines {
        for shift in 0..3 {
            let mut bytes = vec![0u8; shift];
            bytes.extend_from_slice(secret.as_bytes());
            let text = engine.encode(&bytes);
            let start = if shift == 0 { 0 } else { 4 };
            let end = text.len().saturating_sub(4);
            if end > start + 8 {
                out.push(text.as_bytes()[start..end].to_vec());
            }
        }
    }
    out
}

/// Asserts that no file under `dir` but those named in `except` holds any of `secrets` in
/// clear, base64 or hex; names the file and the secret's last characters.
pub fn assert_nothing_in_clear(dir: &Path, secrets: &[String], except: &[&str]) {
    let mut checked = 0;
    for path in walk(dir) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // A socket (the data plane's, left by a killed service) holds no bytes.
        if except.contains(&name) || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in secrets {
            for form in encodings(secret) {
                assert!(
                    !contains(&bytes, &form),
                    "{} holds a secret (…{}) in clear, base64 or hex",
                    path.display(),
                    &secret[secret.len().saturating_sub(6)..]
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} files under {}", dir.display());
}

/// Every token in a fake provider's saved state (`FakeState` as JSON, or the demo's
/// `demo-fake-tokens.json`): the refresh and access tokens it ever issued.
pub fn tokens_of_fake_state(state: &Value) -> Vec<String> {
    let mut tokens = Vec::new();
    for book in ["refresh_tokens", "access_tokens"] {
        if let Some(map) = state["ledger"][book].as_object() {
            tokens.extend(map.keys().cloned());
        }
    }
    tokens
}

/// One HTTP/1.1 call over a Unix socket (the data plane), blocking: a new connection per call
/// (`Connection: close`), the status and the JSON body (`Null` when the body is not JSON).
pub fn uds_call(socket: &Path, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|error| panic!("connect {}: {error}", socket.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: credpool\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
