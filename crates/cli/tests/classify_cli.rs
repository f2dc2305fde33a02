//! `credpool classify` through the real binary: single mode, JSON mode, batch mode, replay
//! (`--at`, `received_at`), `--explain` and `--score`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// 2026-08-29T10:40:00Z.
const NOW: &str = "1788000000";

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_credpool"))
        .arg("classify")
        .args(["--at", NOW])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn credpool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait for credpool")
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[test]
fn single_json_mode() {
    let output = run(
        &[
            "--status",
            "403",
            "--provider",
            "xai-oauth",
            "--body",
            r#"{"code":"unauthenticated:bad-credentials","error":"expired"}"#,
            "--json",
        ],
        b"",
    );
    assert!(output.status.success());
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["class"], "auth_expired");
    assert_eq!(lines[0]["kind"], "auth_expired");
    assert_eq!(lines[0]["terminal"], false);
    assert_eq!(lines[0]["reason"], "unauthenticated:bad-credentials");
    assert_eq!(lines[0]["cooldown_s"], 300);
}

#[test]
fn single_mode_reads_the_body_from_stdin_and_headers_from_flags() {
    let output = run(
        &["--status", "429", "--header", "retry-after: 30", "--json"],
        br#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#,
    );
    let lines = json_lines(&output);
    assert_eq!(lines[0]["class"], "rate_limited");
    assert_eq!(lines[0]["reset_at"], "2026-08-29T10:40:30Z");
    assert_eq!(lines[0]["cooldown_s"], 30);
}

#[test]
fn single_text_mode_prints_a_block() {
    let output = run(
        &[
            "--status",
            "401",
            "--entry-kind",
            "api-key",
            "--body",
            "Unauthorized",
        ],
        b"",
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(text.contains("class        auth_invalid"), "{text}");
    assert!(text.contains("cooldown     300 s"), "{text}");
}

#[test]
fn bad_header_flag_fails() {
    let output = run(
        &["--status", "429", "--header", "no-colon", "--body", ""],
        b"",
    );
    assert!(!output.status.success());
}

#[test]
fn batch_answers_every_line_in_order() {
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"provider\":\"openai\",\"status\":429,\"headers\":{\"retry-after\":\"5\"},\"body\":\"{\\\"error\\\":{\\\"code\\\":\\\"insufficient_quota\\\"}}\"}\n");
    input.extend_from_slice(b"not json\n");
    input.extend_from_slice(b"{\"status\":null,\"body\":\"\"}\n");
    input.extend_from_slice(b"{\"status\":401}\n");
    input.extend_from_slice(b"{\"status\":401,\"body\":\"\\xff\xff\"}\n");
    input.extend_from_slice(b"\n");
    input.extend_from_slice(b"{\"status\":400,\"body\":\"{\\\"error\\\":\\\"invalid_grant\\\"}\",\"entry_kind\":\"oauth\"}\r\n");
    input.extend_from_slice(
        b"{\"status\":401,\"body\":\"\",\"provider\":\"xai-oauth\",\"entry_kind\":\"api-key\"}",
    );
    let output = run(&["--batch"], &input);
    assert!(output.status.success());
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0]["kind"], "billing_verified");
    assert_eq!(lines[0]["reason"], "insufficient_quota");
    assert_eq!(lines[0]["cooldown_s"], 3600);
    assert!(lines[1]["error"].is_string());
    assert_eq!(lines[2]["kind"], "transient_network");
    assert_eq!(lines[2]["cooldown_s"], serde_json::Value::Null);
    assert!(
        lines[3]["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing body"))
    );
    assert!(lines[4]["error"].is_string());
    assert!(lines[5]["error"].is_string());
    assert_eq!(lines[6]["kind"], "auth_invalid_terminal");
    assert_eq!(lines[6]["terminal"], true);
    assert_eq!(lines[7]["kind"], "auth_invalid");
}

#[test]
fn batch_output_has_no_secrets() {
    let input = br#"{"status":401,"body":"{\"error\":{\"message\":\"Incorrect API key provided: sk-proj-AbCdEf0123456789AbCdEf0123\",\"code\":\"invalid_api_key\"}}"}"#;
    let output = run(&["--batch"], input);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("AbCdEf0123"), "{text}");
    assert!(text.contains("auth_invalid_terminal"), "{text}");
}

/// A recorded answer is replayed as of its `received_at`: the absolute reset it carried is in
/// the future then; classified "now" (`--at`, long after) the same answer has no reset.
#[test]
fn batch_replays_each_line_at_its_received_at() {
    let body = r#"{\"error\":{\"type\":\"usage_limit_reached\",\"resets_at\":1777936568}}"#;
    let input = format!(
        "{{\"status\":429,\"body\":\"{body}\",\"received_at\":\"2026-05-04T19:24:56Z\"}}\n{{\"status\":429,\"body\":\"{body}\"}}\n{{\"status\":429,\"body\":\"\",\"received_at\":\"yesterday\"}}\n"
    );
    let output = run(&["--batch"], input.as_bytes());
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["class"], "billing");
    assert_eq!(lines[0]["reset_at"], "2026-05-04T23:16:08Z");
    assert_eq!(lines[0]["cooldown_s"], 13872);
    assert_eq!(lines[1]["reset_at"], serde_json::Value::Null);
    assert!(
        lines[2]["error"]
            .as_str()
            .is_some_and(|e| e.contains("received_at"))
    );
}

#[test]
fn explain_names_the_rule_and_its_evidence() {
    let output = run(
        &[
            "--status",
            "429",
            "--header",
            "retry-after: 30",
            "--body",
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Extra usage is required for long context requests."}}"#,
            "--explain",
            "--json",
        ],
        b"",
    );
    let lines = json_lines(&output);
    assert_eq!(lines[0]["class"], "billing");
    assert_eq!(lines[0]["rule"], "billing-words");
    let evidence = lines[0]["evidence"].as_str().unwrap_or_default();
    assert!(evidence.contains("matched \"extra usage\""), "{evidence}");
    assert!(
        evidence.contains("reset from header retry-after"),
        "{evidence}"
    );
    assert!(evidence.contains("codes rate_limit_error"), "{evidence}");
}

#[test]
fn score_prints_accuracy_per_class_and_provider() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cases.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"provider":"groq","status":413,"body":"Request too large","expected_class":"other","expected_reset_s":null}"#,
            "\n",
            r#"{"provider":"openai","status":429,"headers":{"retry-after":"30"},"body":"","expected_class":"rate_limited","expected_reset_s":30}"#,
            "\n",
            r#"{"provider":"openai","status":500,"body":"","expected_class":"billing","expected_reset_s":null}"#,
            "\n"
        ),
    )
    .expect("write cases");
    let output = run(&["--score", file.to_str().expect("utf-8 path")], b"");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("| groq | 1 | 100.0 % | 100.0 % |"), "{text}");
    assert!(text.contains("| openai | 2 | 50.0 % | 100.0 % |"), "{text}");
    assert!(
        text.contains("class accuracy 66.7 %, reset accuracy 100.0 % over 3 lines"),
        "{text}"
    );
    assert!(
        text.contains("miss  cases.jsonl:3 [openai] expected billing"),
        "{text}"
    );
}

#[test]
fn an_over_long_batch_line_is_refused_alone() {
    let good = b"{\"status\":401,\"body\":\"\",\"entry_kind\":\"api-key\"}\n";
    let mut input = Vec::new();
    input.extend_from_slice(good);
    // 17 MiB on one line (over the 16 MiB cap), then the batch goes on.
    input.extend_from_slice(b"{\"status\":401,\"body\":\"");
    input.resize(input.len() + 17 * 1024 * 1024, b'a');
    input.extend_from_slice(b"\"}\n");
    input.extend_from_slice(good);
    let output = run(&["--batch"], &input);
    assert!(output.status.success());
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["kind"], "auth_invalid");
    assert_eq!(lines[1]["error"], "line 2: too long (over 16777216 bytes)");
    assert_eq!(lines[2]["kind"], "auth_invalid");
}
