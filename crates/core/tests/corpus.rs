//! The classifier against the public corpus of real provider answers
//! (`tests/corpus/*.jsonl`, one recorded answer per line with its expected class and reset).
//!
//! The same numbers are printed by `credpool classify --score crates/core/tests/corpus/*.jsonl`.
//! Targets: at least 95 % of classes and 90 % of resets right; every miss is listed by line.

use std::path::PathBuf;
use std::time::Duration;

use credpool_core::classify::score::{Case, Report, run_case};

const CEILING: Duration = Duration::from_secs(7 * 24 * 3600);

fn corpus() -> Vec<(String, Case)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let label = format!("{name}:{}", index + 1);
            let case = Case::parse(line).unwrap_or_else(|e| panic!("{label}: {e}"));
            cases.push((label, case));
        }
    }
    cases
}

#[test]
fn the_corpus_meets_the_targets() {
    let cases = corpus();
    let report = Report {
        results: cases
            .iter()
            .map(|(label, case)| run_case(label.clone(), case, CEILING))
            .collect(),
    };
    println!("{}", report.table());
    let mismatches = report.mismatches();
    for line in &mismatches {
        println!("{line}");
    }
    let class = report.class_accuracy();
    let reset = report.reset_accuracy();
    assert!(
        class >= 0.95 && reset >= 0.90,
        "class {:.1} % (target 95 %), reset {:.1} % (target 90 %); {} misses:\n{}",
        100.0 * class,
        100.0 * reset,
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn the_corpus_is_broad() {
    let cases = corpus();
    assert!(
        cases.len() >= 200,
        "{} lines, want at least 200",
        cases.len()
    );
    let mut providers: Vec<&str> = cases
        .iter()
        .filter_map(|(_, c)| c.provider.as_deref())
        .collect();
    providers.sort_unstable();
    providers.dedup();
    assert!(
        providers.len() >= 15,
        "{} providers: {providers:?}",
        providers.len()
    );
    for class in [
        "auth_expired",
        "auth_invalid",
        "rate_limited",
        "billing",
        "transient",
        "other",
    ] {
        assert!(
            cases
                .iter()
                .any(|(_, c)| c.expected_class.as_str() == class),
            "no line expects {class}"
        );
    }
}
