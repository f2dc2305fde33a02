#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The kill -9 harness as a test: 20 SIGKILLs of a real `credpool serve` during rotations.
//! Runs when `CREDPOOL_SLOW_TESTS=1` (`.ci/run` sets it); about 15 s on a debug build.

use std::process::Command;

use serde_json::Value;

#[test]
fn twenty_kills_lose_nothing() {
    if std::env::var("CREDPOOL_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set CREDPOOL_SLOW_TESTS=1 to run the kill -9 harness");
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_credpool"))
        .args([
            "chaos",
            "--kills",
            "20",
            "--grants",
            "6",
            "--max-seconds",
            "240",
            "--json",
        ])
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}): {stdout}\n{stderr}"));
    assert!(output.status.success(), "{report}\n{stderr}");
    assert_eq!(report["kills"], 20, "{report}");
    assert_eq!(report["reuse_detected"], 0, "{report}");
    assert_eq!(report["entries_lost"], 0, "{report}");
    assert_eq!(report["quarantined"], 0, "{report}");
    assert_eq!(report["grants_dead_other"], 0, "{report}");
    assert_eq!(report["clean_exit"], true, "{report}");
    let working = report["grants_working"].as_u64().unwrap();
    let interrupted = report["grants_dead_interrupted"].as_u64().unwrap();
    assert_eq!(working + interrupted, 6, "{report}");
    assert!(report["rotations"].as_u64().unwrap() >= 6, "{report}");
}
