//! `credpool bench` through the real binary, at tiny sizes: the JSON's shape and the classify
//! input generator. Speeds are never checked here (see docs/PERFORMANCE.md for numbers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn credpool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_credpool"))
}

#[test]
fn quick_json_has_every_field() {
    let output = credpool()
        .args(["bench", "--quick", "--json"])
        .output()
        .expect("run credpool bench");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout.lines().last().expect("a last line");
    let report: Value = serde_json::from_str(last).expect("the last line is JSON");
    for tasks in ["tasks_1", "tasks_8", "tasks_64"] {
        for field in ["p50_ns", "p99_ns", "max_ns", "ops_per_s"] {
            assert!(
                report["acquire_release"][tasks][field].is_number(),
                "acquire_release.{tasks}.{field}"
            );
            assert!(
                report["floor_mpsc_oneshot"][tasks][field].is_number(),
                "floor_mpsc_oneshot.{tasks}.{field}"
            );
        }
    }
    assert!(report["floor_mutex_pick"]["p50_ns"].is_number());
    for entries in ["entries_10", "entries_1000", "entries_10000"] {
        assert!(
            report["scaling"][entries]["p50_ns"].is_number(),
            "{entries}"
        );
    }
    for field in [
        "callers",
        "token_requests",
        "p50_ms",
        "p99_ms",
        "p99_after_first_ms",
        "p99_after_token_answer_ms",
    ] {
        assert!(report["stampede"][field].is_number(), "stampede.{field}");
    }
    // One exchange however many callers: this is behaviour, not speed.
    assert_eq!(report["stampede"]["token_requests"], 1);
    for field in ["p50_us", "p99_us"] {
        assert!(
            report["rotation_commit"][field].is_number(),
            "rotation_commit.{field}"
        );
    }
    assert!(report["write_behind_ops_per_s"].is_number());
    assert!(report["restart_10000_ms"].is_number());
    assert!(report["bytes_per_entry"].is_number());
    assert!(report["classify"]["lines_per_s"].is_number());
    assert!(report["targets"].is_object());
}

#[test]
fn only_skips_sections_as_null() {
    let output = credpool()
        .args(["bench", "--quick", "--json", "--only", "classify"])
        .output()
        .expect("run credpool bench");
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(report["acquire_release"].is_null());
    assert!(report["stampede"].is_null());
    assert!(report["classify"]["lines_per_s"].is_number());
}

#[test]
fn classify_input_feeds_classify_batch() {
    let input = credpool()
        .args(["bench", "--classify-input", "28"])
        .output()
        .expect("generate classify input");
    assert!(input.status.success());
    let lines: Vec<&[u8]> = input.stdout.split(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), 29, "28 lines and a final newline");
    let mut child = credpool()
        .args(["classify", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn credpool classify");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&input.stdout)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let verdicts: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(verdicts.len(), 28);
    assert!(
        verdicts.iter().all(|v| v.get("error").is_none()),
        "{verdicts:?}"
    );
    let classes: std::collections::BTreeSet<&str> = verdicts
        .iter()
        .filter_map(|v| v["class"].as_str())
        .collect();
    assert!(classes.len() >= 5, "{classes:?}");
}
