//! Fills borrowed secrets (environment variables, files) back into entries loaded from the
//! store, which holds only their fingerprints.
//!
//! What a borrowed source holds:
//! - an API key entry: the key;
//! - an OAuth entry still at [`Generation::FIRST`](credpool_core::Generation::FIRST): the **refresh token** (the access token
//!   is obtained by refreshing; a borrowed grant comes back from the store with an empty access
//!   token and is unavailable until then). Once credpool has rotated the grant, the store holds
//!   the live pair ([`Entry::secrets_owned`]) and the source is no longer read: the borrowed
//!   refresh token is spent.
//!
//! When the value read differs from the fingerprint stored at the last write, the user rotated
//! it: the new value is adopted and the entry revived. An API key's generation moves on. A
//! borrowed OAuth grant stays at [`Generation::FIRST`](credpool_core::Generation::FIRST), because core reads a borrowed grant past
//! the first generation as "credpool rotated it, the store holds the live token", which would
//! make the next write persist the user's borrowed token; hydration runs at load, before any
//! lease of this process exists, so no lease can name the replaced token.
//!
//! **Invariants:**
//! - Entries whose secrets are owned are never touched.
//! - Errors name the variable or file and the entry, never a value; a missing value leaves the
//!   secret empty (the entry is then unavailable), it is never guessed.

use std::env::VarError;
use std::fs;

use credpool_core::{Entry, EntryId, EntryKind, Fingerprint, Secret, SecretSource};
use zeroize::Zeroizing;

use crate::ProviderSnapshot;

/// What [`hydrate_borrowed`] did to an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hydrated {
    /// The entry's secrets are owned (stored); nothing was read.
    Owned,
    /// The value was read and matches the stored fingerprint (or there was none to compare).
    Loaded,
    /// The value differs from the stored fingerprint: it was adopted and the entry revived.
    /// The caller persists the entry.
    Rotated {
        /// The fingerprint stored before.
        previous: Fingerprint,
        /// The fingerprint of the value adopted.
        current: Fingerprint,
    },
}

/// The largest secret file read, in bytes.
pub const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a secret from a file (trimmed): the one way credpool reads a key or token file.
///
/// Only a regular file is read — a FIFO, a device or a directory is refused at once rather
/// than blocking the start on it — and at most [`MAX_SECRET_FILE_BYTES`]. A file that other
/// users can read (mode `& 0o077`) is read with a WARN naming the path and the mode. The
/// error says what is wrong, never what the file holds.
///
/// # Errors
/// The file is missing, not a regular file, too large, not UTF-8, or unreadable.
pub fn read_secret_file(path: &std::path::Path) -> Result<Secret, String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let metadata = fs::metadata(path).map_err(|error| error.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".to_owned());
    }
    if metadata.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!("larger than {MAX_SECRET_FILE_BYTES} bytes"));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "secret file is readable by other users; chmod 600 it"
        );
    }
    let mut bytes = Zeroizing::new(Vec::new());
    fs::File::open(path)
        .and_then(|file| file.take(MAX_SECRET_FILE_BYTES).read_to_end(&mut bytes))
        .map_err(|error| error.to_string())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "not valid utf-8".to_owned())?;
    Ok(Secret::new(text.trim()))
}

/// Why a borrowed secret could not be read. Names the source, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HydrateError {
    /// The environment variable is not set.
    #[error("entry {entry}: environment variable {name} is not set")]
    MissingEnvVar {
        /// The entry.
        entry: EntryId,
        /// The variable.
        name: String,
    },
    /// The environment variable is not valid unicode.
    #[error("entry {entry}: environment variable {name} is not valid unicode")]
    InvalidEnvVar {
        /// The entry.
        entry: EntryId,
        /// The variable.
        name: String,
    },
    /// The file could not be read.
    #[error("entry {entry}: cannot read secret file {path}: {reason}")]
    UnreadableFile {
        /// The entry.
        entry: EntryId,
        /// The file.
        path: String,
        /// The i/o error (it never quotes the file's content).
        reason: String,
    },
    /// The source exists but holds only whitespace.
    #[error("entry {entry}: secret source {origin} is empty")]
    Empty {
        /// The entry.
        entry: EntryId,
        /// The source, as [`SecretSource::describe`] writes it.
        origin: String,
    },
}

/// The result of hydrating every entry of a snapshot.
#[derive(Debug, Default)]
pub struct HydrateReport {
    /// Entries whose borrowed secret was rotated by the user; the caller persists them.
    pub rotated: Vec<EntryId>,
    /// Entries whose secret could not be read; they stay with an empty secret.
    pub errors: Vec<HydrateError>,
}

/// Reads the borrowed secret of `entry` from the process environment or its file.
///
/// `stored` is the fingerprint the store kept for it
/// ([`ProviderSnapshot::borrowed_fingerprints`]); without one, the fingerprint of a secret the
/// entry already holds is compared instead.
pub fn hydrate_borrowed(
    entry: &mut Entry,
    stored: Option<&Fingerprint>,
) -> Result<Hydrated, HydrateError> {
    hydrate_borrowed_with(entry, stored, &|name| std::env::var(name))
}

/// Like [`hydrate_borrowed`], reading environment variables through `env` (tests inject one:
/// setting the process environment is `unsafe` in edition 2024).
pub fn hydrate_borrowed_with(
    entry: &mut Entry,
    stored: Option<&Fingerprint>,
    env: &dyn Fn(&str) -> Result<String, VarError>,
) -> Result<Hydrated, HydrateError> {
    if entry.secrets_owned() {
        return Ok(Hydrated::Owned);
    }
    let value = match &entry.source {
        SecretSource::EnvVar { name } => match env(name) {
            Ok(value) => Secret::new(value),
            Err(VarError::NotPresent) => {
                return Err(HydrateError::MissingEnvVar {
                    entry: entry.id,
                    name: name.clone(),
                });
            }
            Err(VarError::NotUnicode(_)) => {
                return Err(HydrateError::InvalidEnvVar {
                    entry: entry.id,
                    name: name.clone(),
                });
            }
        },
        SecretSource::File { path } => match read_secret_file(std::path::Path::new(path)) {
            Ok(secret) => secret,
            Err(reason) => {
                return Err(HydrateError::UnreadableFile {
                    entry: entry.id,
                    path: path.clone(),
                    reason,
                });
            }
        },
        SecretSource::Manual | SecretSource::OAuthGrant => return Ok(Hydrated::Owned),
    };
    if value.is_empty() {
        return Err(HydrateError::Empty {
            entry: entry.id,
            origin: entry.source.describe(),
        });
    }

    let current = value.fingerprint();
    let held = match &entry.kind {
        EntryKind::ApiKey { key } => Some(key),
        EntryKind::OAuth(tokens) => tokens.refresh.as_ref(),
    };
    let previous = stored
        .cloned()
        .or_else(|| held.filter(|s| !s.is_empty()).map(Secret::fingerprint));
    let rotated = previous.as_ref().is_some_and(|p| *p != current);

    match &mut entry.kind {
        EntryKind::ApiKey { key } => *key = value,
        EntryKind::OAuth(tokens) => {
            tokens.refresh = Some(value);
            if rotated {
                // The access token belonged to the replaced grant.
                tokens.access = Secret::new(String::new());
                tokens.expires_at = None;
            }
        }
    }
    match previous {
        Some(previous) if rotated => {
            // A borrowed grant being hydrated is at the first generation (else it is owned)
            // and stays there; see the module documentation.
            if let EntryKind::ApiKey { .. } = entry.kind {
                entry.generation = entry.generation.next();
            }
            entry.revive();
            Ok(Hydrated::Rotated { previous, current })
        }
        _ => Ok(Hydrated::Loaded),
    }
}

impl ProviderSnapshot {
    /// Hydrates every borrowed entry of the snapshot from its source, comparing against the
    /// stored fingerprints.
    pub fn hydrate(&mut self) -> HydrateReport {
        self.hydrate_with(&|name| std::env::var(name))
    }

    /// Like [`ProviderSnapshot::hydrate`], reading environment variables through `env`.
    pub fn hydrate_with(
        &mut self,
        env: &dyn Fn(&str) -> Result<String, VarError>,
    ) -> HydrateReport {
        let mut report = HydrateReport::default();
        for entry in &mut self.entries {
            let stored = self.borrowed_fingerprints.get(&entry.id);
            match hydrate_borrowed_with(entry, stored, env) {
                Ok(Hydrated::Rotated { .. }) => report.rotated.push(entry.id),
                Ok(_) => {}
                Err(error) => report.errors.push(error),
            }
        }
        report
    }
}

#[cfg(test)]
mod tests;
