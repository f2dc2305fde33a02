//! The commands that work on a stopped service's store itself, without starting any pool:
//! backup, restore, recover and rekey.
//!
//! **Invariants:** each opens the store with the key the command was given (`--master-key-file`,
//! the config's `master_key_file`, `CREDPOOL_MASTER_KEY`, or `<data_dir>/master.key`); a rekey
//! replaces `<data_dir>/master.key` only when that is where the old key came from, and only
//! after the store is committed to the new key.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use credpool::{KeySource, OpenOptions, SledStore, StoreError};
use credpool_store::seal::source::{self, KeyOrigin};
use serde_json::{Value, json};

use super::AdminCommand;

fn options(key: &KeySource) -> OpenOptions {
    OpenOptions {
        key: key.clone(),
        ..OpenOptions::default()
    }
}

/// Runs a store command; `None` for the other commands.
pub(super) async fn run(
    command: &AdminCommand,
    data_dir: &Path,
    key: &KeySource,
) -> anyhow::Result<Option<Value>> {
    let data_dir = data_dir.to_path_buf();
    let key = key.clone();
    let locked = |error: StoreError| match error {
        StoreError::Locked { path } => anyhow::anyhow!(
            "store at {path} is locked: another process holds it; back up a running service with --url"
        ),
        other => anyhow::Error::new(other),
    };
    let value = match command {
        AdminCommand::Backup { file } => {
            let file = file.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
                let (store, _) = SledStore::open_with(&data_dir, options(&key)).map_err(locked)?;
                let bytes = store.export()?;
                credpool_server::private_file::write(&file, &bytes)?;
                Ok(json!({ "file": file.display().to_string(), "bytes": bytes.len() }))
            })
            .await??
        }
        AdminCommand::Restore { file } => {
            let bytes = zeroize::Zeroizing::new(
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
            );
            tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
                let (_, backup) =
                    SledStore::restore_with(&data_dir, &bytes, options(&key)).map_err(locked)?;
                Ok(json!({ "data_dir": data_dir.display().to_string(), "records": backup.records }))
            })
            .await??
        }
        AdminCommand::Recover { accept_loss } => {
            if !accept_loss {
                bail!(
                    "recover drops what the store lost: say so with --accept-loss (or restore a backup instead)"
                );
            }
            tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
                let open = OpenOptions {
                    accept_loss: true,
                    ..options(&key)
                };
                let (_, recovered) = SledStore::open_with(&data_dir, open).map_err(locked)?;
                let damage: Vec<String> =
                    recovered.damage.iter().map(ToString::to_string).collect();
                let killed: Vec<String> = recovered
                    .killed
                    .iter()
                    .map(|(provider, entry)| format!("{provider}/{entry}"))
                    .collect();
                Ok(json!({ "accepted": damage, "killed": killed }))
            })
            .await??
        }
        AdminCommand::Rekey { new_key_file } => {
            let new_key_file = new_key_file.clone();
            tokio::task::spawn_blocking(move || {
                rekey(&data_dir, &key, &new_key_file).map_err(|error| {
                    match error.downcast::<StoreError>() {
                        Ok(error) => locked(error),
                        Err(other) => other,
                    }
                })
            })
            .await??
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// Re-seals the store under the key in `new_key_file`; then, when the old key was
/// `<data_dir>/master.key`, replaces that file with the new key (atomically).
fn rekey(data_dir: &Path, key: &KeySource, new_key_file: &Path) -> anyhow::Result<Value> {
    let new = source::read_key_file(new_key_file)?;
    let rekeyed = SledStore::rekey(data_dir, options(key), &new)?;
    let standard = data_dir.join(source::KEY_FILE);
    let replaced: Option<PathBuf> = match &rekeyed.old_origin {
        KeyOrigin::File(path) | KeyOrigin::Generated(path)
            if path == &standard && rekeyed.from != rekeyed.to =>
        {
            let text = zeroize::Zeroizing::new(
                std::fs::read(new_key_file)
                    .with_context(|| format!("cannot read {}", new_key_file.display()))?,
            );
            credpool_server::private_file::write(&standard, &text).with_context(|| {
                format!(
                    "the store is sealed with key {} now, but {} still holds the old key: copy {} over it",
                    rekeyed.to,
                    standard.display(),
                    new_key_file.display()
                )
            })?;
            Some(standard)
        }
        _ => None,
    };
    if rekeyed.from == rekeyed.to {
        bail!(
            "the store is already sealed with key {} (the key in {})",
            rekeyed.to,
            new_key_file.display()
        );
    }
    Ok(json!({
        "from": rekeyed.from.to_string(),
        "to": rekeyed.to.to_string(),
        "old_key_from": rekeyed.old_origin.to_string(),
        "entries": rekeyed.resealed.entries,
        "quarantined": rekeyed.resealed.quarantined,
        "replaced_key_file": replaced.map(|path| path.display().to_string()),
        "new_key_file": new_key_file.display().to_string(),
    }))
}
