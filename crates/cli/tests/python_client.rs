#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Python client's suite (`clients/python`), run by `cargo test` against this build's
//! `credpool` binary: its unit tests, and its integration tests against a real `credpool serve`
//! and the fake provider. It needs `python3` (3.9 or newer) and, the first time, PyPI to
//! fill the virtualenv in `target/python-venv`; without `python3` it fails with one line that
//! says so.

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_client_suite_passes_against_this_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let present = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        present,
        "python3 is missing: install Python 3.9 or newer (the Python client's suite runs under cargo test)"
    );
    let status = Command::new("bash")
        .arg(root.join("clients/python/run_tests.sh"))
        .env("CREDPOOL_BIN", env!("CARGO_BIN_EXE_credpool"))
        .env("CREDPOOL_VENV", root.join("target/python-venv"))
        .current_dir(&root)
        .status()
        .expect("run clients/python/run_tests.sh");
    assert!(
        status.success(),
        "the Python client's suite failed: {status}"
    );
}
