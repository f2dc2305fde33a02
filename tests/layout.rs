//! The house rules a reviewer would otherwise check by hand (STYLE: "Rooms"): no source file
//! under `crates/*/src` over 600 lines (test files aside), and no two source files of a crate
//! that import each other in a loop (`use crate::…`, `super::…`, `self::…` edges; comments
//! ignored; a file's own submodules count, so state types live in leaf files).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(items) = fs::read_dir(dir) else {
        return found;
    };
    for item in items {
        let path = item.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// Test files: `tests.rs` beside a module, or anything under a `tests/` directory.
fn is_test_file(relative: &str) -> bool {
    relative.ends_with("tests.rs") || relative.split('/').any(|part| part == "tests")
}

/// A file's module path inside its crate (`pool/select.rs` → `["pool", "select"]`).
fn module_path(relative: &str) -> Vec<String> {
    let without = relative.trim_end_matches(".rs");
    let without = without.strip_suffix("/mod").unwrap_or(without);
    if without == "lib" || without == "main" {
        return Vec::new();
    }
    without.split('/').map(str::to_owned).collect()
}

/// The `crate::`, `super::` and `self::` paths a file names, resolved against `here`.
fn paths_named(text: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    // Inline test modules come last and import their parent (`use super::*`): not an edge.
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("::") {
            let before = &line[..at];
            let head_start = before
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let head = &before[head_start..];
            let base: Vec<String> = match head {
                "crate" => Vec::new(),
                "super" => here[..here.len().saturating_sub(1)].to_vec(),
                "self" => here.to_vec(),
                _ => continue,
            };
            let rest = &line[at + 2..];
            let tail: Vec<String> = rest
                .split("::")
                .map(|part| {
                    part.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|part| !part.is_empty())
                .collect();
            let prefix: Vec<String> = base.into_iter().chain(tail.iter().cloned()).collect();
            // `use super::{a, b::C}` names `a` and `b`, each a path of its own.
            let consumed: usize = tail.iter().map(|part| part.len() + 2).sum();
            let after = rest.get(consumed..).unwrap_or_default();
            match after
                .strip_prefix('{')
                .and_then(|list| list.split('}').next())
            {
                Some(list) => {
                    for item in list.split(',') {
                        let first: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        let mut path = prefix.clone();
                        if !first.is_empty() && first != "self" {
                            path.push(first);
                        }
                        paths.push(path);
                    }
                }
                None => paths.push(prefix),
            }
        }
    }
    paths
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut too_long = Vec::new();
    for krate in fs::read_dir(crates_dir()).unwrap() {
        let src = krate.unwrap().path().join("src");
        for file in rust_files(&src) {
            let relative = file
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if is_test_file(&relative) {
                continue;
            }
            let lines = fs::read_to_string(&file).unwrap().lines().count();
            if lines > MAX_LINES {
                too_long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "split these along their jobs: {too_long:#?}"
    );
}

#[test]
fn no_two_source_files_import_each_other_in_a_loop() {
    let mut loops = Vec::new();
    for krate in fs::read_dir(crates_dir()).unwrap() {
        let src = krate.unwrap().path().join("src");
        let mut modules: BTreeMap<Vec<String>, String> = BTreeMap::new();
        let mut texts = BTreeMap::new();
        for file in rust_files(&src) {
            let relative = file
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if is_test_file(&relative) {
                continue;
            }
            modules.insert(module_path(&relative), relative.clone());
            texts.insert(relative, fs::read_to_string(&file).unwrap());
        }
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (relative, text) in &texts {
            let here = module_path(relative);
            for path in paths_named(text, &here) {
                let target = (0..=path.len())
                    .rev()
                    .find_map(|n| modules.get(&path[..n]))
                    .filter(|target| *target != relative);
                if let Some(target) = target {
                    edges
                        .entry(relative.clone())
                        .or_default()
                        .insert(target.clone());
                }
            }
        }
        for (from, targets) in &edges {
            for to in targets {
                if reaches(&edges, to, from, &mut BTreeSet::new()) {
                    loops.push(format!("{}: {from} -> {to} -> … -> {from}", src.display()));
                }
            }
        }
    }
    assert!(loops.is_empty(), "move the shared type down: {loops:#?}");
}

fn reaches(
    edges: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> bool {
    if from == to {
        return true;
    }
    if !seen.insert(from.to_owned()) {
        return false;
    }
    edges
        .get(from)
        .is_some_and(|next| next.iter().any(|n| reaches(edges, n, to, seen)))
}
