//! The admin token: created once in its file, compared in constant time.
//!
//! **Invariants:**
//! - A new token file is created exclusively with mode 0600 (never world- or group-readable,
//!   not even for an instant) and holds 32 random bytes as 64 hex digits.
//! - An existing file is read, never rewritten; an empty one is an error, not "no auth", and
//!   so is one shorter than [`MIN_TOKEN_CHARS`].
//! - The token is a [`Secret`]: redacted in `Debug`, compared without early exit.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use credpool::Secret;
use rand::RngCore;

/// The shortest admin token accepted, in characters: a guessable token protects nothing. A
/// created token has 64 hex digits.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Reads the token from `path`, creating the file with a random token when it is absent.
///
/// # Errors
/// The file cannot be created or read, or it is empty.
pub fn load_or_create(path: &Path) -> anyhow::Result<(Secret, bool)> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(token.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
            Ok((Secret::new(token), true))
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok((read(path)?, false)),
        Err(error) => Err(error)
            .with_context(|| format!("cannot create the admin token file {}", path.display())),
    }
}

/// Reads a token file (the admin CLI's side).
///
/// # Errors
/// The file cannot be read or is empty.
pub fn read(path: &Path) -> anyhow::Result<Secret> {
    let token = Secret::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the admin token file {}", path.display()))?,
    );
    if token.is_empty() {
        anyhow::bail!("the admin token file {} is empty", path.display());
    }
    let length = token.expose().trim().chars().count();
    if length < MIN_TOKEN_CHARS {
        anyhow::bail!(
            "the admin token in {} has {length} characters; at least {MIN_TOKEN_CHARS} are required (delete the file to have a random one created)",
            path.display()
        );
    }
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "admin token file is readable by other users; chmod 600 it");
    }
    Ok(token)
}

/// Checks an `Authorization` header value against the token, in constant time for a
/// given length.
pub fn authorized(header: Option<&str>, token: &Secret) -> bool {
    let Some(presented) = header.and_then(|value| value.strip_prefix("Bearer ")) else {
        return false;
    };
    let presented = presented.trim().as_bytes();
    let expected = token.expose().as_bytes();
    if presented.len() != expected.len() {
        return false;
    }
    presented
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_missing_token_file_is_created_0600_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.token");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(first.expose().len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert!(first.same_value(&second));
    }

    #[test]
    fn an_empty_or_short_token_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "\n").unwrap();
        assert!(load_or_create(&path).is_err());
        std::fs::write(&path, "x\n").unwrap();
        let error = load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("at least 32"), "{error}");
        assert!(!error.contains(" x"), "the token is never quoted: {error}");
        std::fs::write(&path, format!("{}\n", "k".repeat(MIN_TOKEN_CHARS))).unwrap();
        assert!(load_or_create(&path).is_ok());
    }

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let token = Secret::new("abc123");
        let cases = [
            (Some("Bearer abc123"), true),
            (Some("Bearer abc124"), false),
            (Some("Bearer abc12"), false),
            (Some("bearer abc123"), false),
            (Some("abc123"), false),
            (Some("Bearer "), false),
            (None, false),
        ];
        for (header, expected) in cases {
            assert_eq!(authorized(header, &token), expected, "{header:?}");
        }
    }
}
