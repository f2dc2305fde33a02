#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `credpool demo` on the real binary: a short run succeeds with refreshes and no failed
//! worker, and a second run on the same data dir resumes from the store.

use std::process::Command;

use serde_json::Value;

fn demo(dir: &std::path::Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_credpool"))
        .args([
            "demo",
            "--duration",
            "3",
            "--json",
            "--workers",
            "2",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed: {stderr}\n{stdout}");
    let last = stdout.lines().last().expect("a last line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

#[test]
fn a_short_demo_refreshes_and_a_second_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let first = demo(&data);
    assert_eq!(first["resumed_from_store"], false, "{first}");
    assert_eq!(first["failed_workers"], 0, "{first}");
    assert!(first["refreshes"].as_u64().unwrap() >= 1, "{first}");
    assert!(first["succeeded"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["reuse_detected"], 0, "{first}");
    assert!(
        first["token_endpoint_requests"].as_u64().unwrap() >= first["refreshes"].as_u64().unwrap()
    );
    for field in ["requests", "rotations", "entries"] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    let entries: u64 = first["entries"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(entries, 6);

    let second = demo(&data);
    assert_eq!(second["resumed_from_store"], true, "{second}");
    assert_eq!(second["failed_workers"], 0, "{second}");
    assert_eq!(second["reuse_detected"], 0, "{second}");
    let entries: u64 = second["entries"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(entries, 6, "the second run added nothing: {second}");
}

#[test]
fn a_data_dir_in_use_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Command::new(env!("CARGO_BIN_EXE_credpool"))
        .args(["demo", "--duration", "5", "--json", "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the store (its lock file exists and its first line is
    // out), bounded.
    let lock = data.join("credpool.lock");
    let started = std::time::Instant::now();
    while !lock.exists() && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = Command::new(env!("CARGO_BIN_EXE_credpool"))
        .args(["demo", "--duration", "1", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("is locked: another process holds it"),
        "unexpected error: {stderr}"
    );
}
