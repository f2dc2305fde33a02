//! Events through the HTTP API: every admin change is an event with an id and a time, a
//! subscriber to every pool also sees pools started after it subscribed, and a client that
//! reconnects with `Last-Event-ID` gets what it missed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

mod support;

use support::*;

/// An SSE stream read line by line from a raw connection.
struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    fn open(server: &Server, token: &str, last_event_id: Option<u64>) -> Events {
        let mut stream = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        let request = format!(
            "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{resume}\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut events = Events {
            reader: BufReader::new(stream),
        };
        let (_, name, _) = events.next();
        assert_eq!(name, "subscribed");
        events
    }

    /// The next event: (id, name, data).
    fn next(&mut self) -> (Option<u64>, String, Value) {
        let (mut id, mut name, mut data) = (None, String::new(), Value::Null);
        loop {
            let mut line = String::new();
            let read = self
                .reader
                .read_line(&mut line)
                .expect("an event within 10 s");
            assert!(read > 0, "the stream ended");
            let line = line.trim_end();
            if let Some(value) = line.strip_prefix("id:") {
                id = value.trim().parse().ok();
            } else if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data = serde_json::from_str(value.trim()).unwrap_or(Value::Null);
            } else if line.is_empty() && !name.is_empty() {
                return (id, name, data);
            }
        }
    }

    /// Skips events until one named `wanted`.
    fn until(&mut self, wanted: &str) -> (u64, Value) {
        loop {
            let (id, name, data) = self.next();
            if name == wanted {
                return (id.expect("every pool event has an id"), data);
            }
        }
    }
}

#[test]
fn every_admin_change_is_an_event_and_a_reconnect_resumes() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let token = setup.token();
    let mut events = Events::open(&server, &token, None);
    let base = format!("{}/v1/providers/openai", server.url);
    let post = |path: &str, body: &str| {
        let (status, text) = http("POST", &format!("{base}{path}"), Some(&token), Some(body));
        assert!(status < 300, "{path}: {text}");
        json(&text)
    };
    let first = post("/entries", r#"{"label":"one","api_key":"sk-one"}"#);
    post("/entries", r#"{"label":"two","api_key":"sk-two"}"#);
    let (added_id, added) = events.until("added");
    assert_eq!(
        added["entry"], first["id"],
        "the id in events is the id in answers"
    );
    assert!(added["at"].as_i64().is_some(), "{added}");
    post("/entries/two/move", r#"{"position":1}"#);
    let (_, moved) = events.until("moved");
    assert_eq!(moved["position"], 1);
    let (status, _) = http(
        "PUT",
        &format!("{base}/strategy"),
        Some(&token),
        Some(r#"{"strategy":"round_robin"}"#),
    );
    assert_eq!(status, 200);
    let (_, strategy) = events.until("strategy_set");
    assert_eq!(strategy["strategy"], "round_robin");
    post("/entries/one/reset", "");
    let (reset_id, _) = events.until("reset");
    // A usable entry's reset is `reset` only, no `revived`.
    // A pool started after the subscription is followed too.
    let (status, text) = http(
        "POST",
        &format!("{}/v1/providers/custom:late/entries", server.url),
        Some(&token),
        Some(r#"{"label":"late","api_key":"sk-late"}"#),
    );
    assert_eq!(status, 201, "{text}");
    let (late_id, late) = events.until("added");
    assert_eq!(late["provider"], "custom:late");
    assert!(late_id > reset_id && reset_id > added_id, "ids increase");
    drop(events);

    // Reconnecting after the first `added`: the rest comes again (each pool's in order).
    let mut resumed = Events::open(&server, &token, Some(added_id));
    let mut names = Vec::new();
    let mut ids = Vec::new();
    while names.len() < 5 {
        let (id, name, data) = resumed.next();
        if data["provider"] == "openai" {
            ids.push(id.unwrap_or_default());
        }
        names.push(name);
    }
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "a pool's events in order: {ids:?}"
    );
    assert!(
        ids.iter().all(|id| *id > added_id),
        "only what came after: {ids:?}"
    );
    // two's `added`, `moved`, `strategy_set`, `reset`, and the late pool's `added`
    for wanted in ["added", "moved", "strategy_set", "reset"] {
        assert!(names.contains(&wanted.to_owned()), "{names:?}");
    }
    assert!(!names.contains(&"revived".to_owned()), "{names:?}");
    assert!(late_id > added_id);
    let (exit, _) = server.terminate();
    assert!(exit.success());
}

#[test]
fn the_admin_command_prints_the_entry_id() {
    let setup = Setup::new("[[providers]]\nid = \"openai\"\n");
    let server = setup.serve(&[]);
    let added = online(
        &setup,
        &server,
        &["add", "openai", "cli-key", "--api-key-env", "CLI_KEY"],
        &[("CLI_KEY", "sk-cli-key")],
    );
    assert_ok(&added);
    let text = stdout(&added);
    let id = text
        .split("(id ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default()
        .to_owned();
    assert!(
        id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{text}"
    );
    let status = online(&setup, &server, &["status"], &[]);
    assert!(stdout(&status).contains(&id), "{}", stdout(&status));
    let removed = online(&setup, &server, &["remove", "openai", &id], &[]);
    assert_ok(&removed);
    assert!(
        stdout(&removed).contains(&format!("(id {id},")),
        "{}",
        stdout(&removed)
    );
    let (exit, _) = server.terminate();
    assert!(exit.success());
}
