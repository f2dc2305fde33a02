//! Where the master key comes from, in order: the `CREDPOOL_MASTER_KEY` environment variable
//! (base64 of 32 bytes); a key file (`master_key_file` in the config,
//! `Builder::master_key_file`); otherwise `<data dir>/master.key`, generated on a new store's
//! first open with one WARN line saying that the key sits beside the data.
//!
//! **Invariants:** errors name the source (the variable or the file), never the value; a key
//! is generated only for a store that holds no sealed record yet (a sealed store whose key is
//! missing is an error, never a new key).

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::MasterKey;
use crate::hydrate::read_secret_file;

/// The environment variable that holds the master key, in base64.
pub const ENV_VAR: &str = "CREDPOOL_MASTER_KEY";

/// The file a key is generated into, in the data directory.
pub const KEY_FILE: &str = "master.key";

/// Where to look for the master key.
#[derive(Debug, Clone, Default)]
pub enum KeySource {
    /// [`ENV_VAR`], else `<data dir>/master.key` (generated for a new store).
    #[default]
    Standard,
    /// [`ENV_VAR`], else this file (which must exist).
    File(PathBuf),
    /// This key and nothing else (an embedding program that keeps its own).
    Key(Arc<MasterKey>),
}

/// Where a key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The environment variable.
    Env,
    /// A key file.
    File(PathBuf),
    /// `<data dir>/master.key`, generated at this open.
    Generated(PathBuf),
    /// Given by the embedding program.
    Given,
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::Env => write!(f, "environment variable {ENV_VAR}"),
            KeyOrigin::File(path) => write!(f, "file {}", path.display()),
            KeyOrigin::Generated(path) => write!(f, "file {} (generated now)", path.display()),
            KeyOrigin::Given => f.write_str("the embedding program"),
        }
    }
}

/// A key and where it came from.
#[derive(Debug, Clone)]
pub struct ResolvedKey {
    /// The key.
    pub key: Arc<MasterKey>,
    /// Where it came from.
    pub origin: KeyOrigin,
}

/// Why no usable key could be read. Names the source, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("master key from {origin}: {problem}")]
pub struct KeyError {
    /// The variable or file.
    pub origin: String,
    /// What is wrong with it.
    pub problem: String,
}

fn key_error(origin: impl fmt::Display, problem: impl fmt::Display) -> KeyError {
    KeyError {
        origin: origin.to_string(),
        problem: problem.to_string(),
    }
}

/// Reads a key file: a regular file holding the key in base64.
///
/// # Errors
/// The file is unreadable or does not hold a key.
pub fn read_key_file(path: &Path) -> Result<MasterKey, KeyError> {
    let origin = KeyOrigin::File(path.to_path_buf());
    let text = read_secret_file(path).map_err(|problem| key_error(&origin, problem))?;
    MasterKey::from_base64(text.expose()).map_err(|problem| key_error(&origin, problem))
}

fn from_env() -> Result<Option<ResolvedKey>, KeyError> {
    let Some(value) = std::env::var_os(ENV_VAR) else {
        return Ok(None);
    };
    let value = zeroize::Zeroizing::new(
        value
            .into_string()
            .map_err(|_| key_error(KeyOrigin::Env, "not valid unicode"))?,
    );
    let key =
        MasterKey::from_base64(&value).map_err(|problem| key_error(KeyOrigin::Env, problem))?;
    Ok(Some(ResolvedKey {
        key: Arc::new(key),
        origin: KeyOrigin::Env,
    }))
}

/// Finds the key `source` names for the store in `dir`, without generating one: `None` when
/// the source is [`KeySource::Standard`] and neither the variable nor `<dir>/master.key`
/// exists.
///
/// # Errors
/// A source that exists but does not hold a key (or a named key file that is missing).
pub fn find(source: &KeySource, dir: &Path) -> Result<Option<ResolvedKey>, KeyError> {
    if let KeySource::Key(key) = source {
        return Ok(Some(ResolvedKey {
            key: Arc::clone(key),
            origin: KeyOrigin::Given,
        }));
    }
    if let Some(found) = from_env()? {
        return Ok(Some(found));
    }
    let path = match source {
        KeySource::File(path) => path.clone(),
        _ => {
            let path = dir.join(KEY_FILE);
            if !path.exists() {
                return Ok(None);
            }
            path
        }
    };
    let key = read_key_file(&path)?;
    Ok(Some(ResolvedKey {
        key: Arc::new(key),
        origin: KeyOrigin::File(path),
    }))
}

/// Generates a key into `<dir>/master.key` (mode 0600, never over an existing file, synced)
/// and says so in one WARN line.
///
/// # Errors
/// The file exists already or cannot be written.
pub fn generate_in(dir: &Path) -> Result<ResolvedKey, KeyError> {
    let path = dir.join(KEY_FILE);
    let origin = KeyOrigin::Generated(path.clone());
    let (key, text) = MasterKey::generate();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|error| key_error(&origin, error))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|error| key_error(&origin, error))?;
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| key_error(&origin, error))?;
    tracing::warn!(
        path = %path.display(),
        key_id = %key.id(),
        "generated the master key that seals stored secrets; it sits beside the data it protects: move it off this disk (set {ENV_VAR} or master_key_file) and keep a copy, since a lost key means every stored secret must be added again"
    );
    Ok(ResolvedKey {
        key: Arc::new(key),
        origin,
    })
}
