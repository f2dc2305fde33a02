//! What the store's integration tests share: the files of a data dir and copies of it.

#![allow(dead_code, clippy::unwrap_used)] // shared by several test files

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `dir` but the (empty) lock file, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if !path.ends_with("credpool.lock") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every file's bytes under `dir`, by path (the lock file left out).
pub fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files(dir)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let path = item.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
