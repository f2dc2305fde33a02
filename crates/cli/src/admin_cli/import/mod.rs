//! `credpool admin import --from hermes FILE [--dry-run]`: moves the credentials of another
//! runtime's pool into a stopped service's store.
//!
//! The file is read and mapped by [`hermes`] (pure), each provider is planned against what
//! the store holds by [`plan`] (pure), and here the plans are written: one store batch per
//! provider, flushed before the next. [`report`] says what happened to every row.
//!
//! **Invariants:**
//! - Offline only: the store is opened directly (its lock refuses a running service), and no
//!   pool runs, so nothing refreshes an imported grant while the command works.
//! - A provider's rows are written in one atomic batch, or not at all; a dry run writes
//!   nothing, and does not even create a store in a data dir that has none.
//! - Running the import again changes nothing: what is there is skipped.
//! - No secret is printed or logged; the parsed file's strings are zeroized once read.

pub mod hermes;
pub mod plan;
pub mod report;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use credpool::{KeySource, OpenOptions, SledStore, StoreError};
use credpool_core::{Clock, ProviderRegistry, SystemClock};
use credpool_store::{Change, Store as _};
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use self::plan::{Held, ProviderPlan};
use self::report::ImportReport;

/// The largest file read: an `auth.json` is kilobytes; anything near this is not one.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// The systems an import reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFrom {
    /// Hermes Agent's `auth.json` (its `credential_pool` section).
    Hermes,
}

/// Arguments of `credpool admin import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The system the file comes from.
    #[arg(long, value_enum)]
    pub from: ImportFrom,
    /// The file to read (Hermes: `~/.hermes/auth.json`).
    pub file: PathBuf,
    /// Print what would happen and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs the import into the store in `data_dir` and returns the report as JSON.
///
/// # Errors
/// The file cannot be read or is not an `auth.json`; the store is locked (a running
/// service), sealed with another key, damaged, or refuses a write.
pub async fn run(
    args: &ImportArgs,
    data_dir: &Path,
    key: &KeySource,
    registry: ProviderRegistry,
) -> anyhow::Result<Value> {
    let file = args.file.clone();
    let dry_run = args.dry_run;
    let data_dir = data_dir.to_path_buf();
    let key = key.clone();
    let report =
        tokio::task::spawn_blocking(move || import(&file, dry_run, &data_dir, &key, &registry))
            .await??;
    serde_json::to_value(&report).context("cannot encode the report")
}

/// Reads the file, plans every provider, and writes the plans (unless `dry_run`).
fn import(
    file: &Path,
    dry_run: bool,
    data_dir: &Path,
    key: &KeySource,
    registry: &ProviderRegistry,
) -> anyhow::Result<ImportReport> {
    let now = SystemClock.now();
    let providers = {
        let mut document = read_document(file)?;
        let providers = hermes::read_pool(&document, registry, now);
        scrub(&mut document);
        providers?
    };
    let mut store = if has_store(data_dir) {
        Some(open(data_dir, key)?)
    } else {
        None
    };
    // Used before (an admin token from an earlier run) yet no history: the store was lost,
    // and with it the record of which refresh tokens this data dir spent.
    let used_before = data_dir
        .join(credpool_server::config::DEFAULT_TOKEN_FILE)
        .exists();
    let lost = used_before && store.as_ref().is_none_or(|store| store.history_is_new());
    let mut plans = Vec::with_capacity(providers.len());
    for rows in providers {
        let held = match (&store, &rows.provider) {
            (Some(store), Some(provider)) => held(store, provider)?,
            _ => Vec::new(),
        };
        let spent = |fingerprint: &credpool_core::Fingerprint| {
            store
                .as_ref()
                .is_some_and(|store| store.refresh_token_spent(fingerprint))
        };
        let inputs = plan::Store {
            held: &held,
            spent: &spent,
            lost,
        };
        plans.push(plan::plan_provider(
            rows,
            &inputs,
            dry_run,
            &mut rand::random::<u64>,
        ));
    }
    if plans.iter().any(|plan| !plan.writes.is_empty()) {
        // A data dir without a store gets one only now that there is something to write.
        let store = match store.take() {
            Some(store) => store,
            None => open(data_dir, key)?,
        };
        write(&store, &mut plans)?;
    }
    let reports = plans.into_iter().map(|plan| plan.report).collect();
    Ok(ImportReport::new(
        "hermes",
        file.display().to_string(),
        dry_run,
        reports,
    ))
}

/// Reads and parses the file; its bytes are zeroized when dropped. A parse error names the
/// line and column only (never a quote of the file, which holds secrets).
fn read_document(file: &Path) -> anyhow::Result<Value> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        bail!(
            "{} is {size} bytes: too large for an auth.json",
            file.display()
        );
    }
    let bytes = Zeroizing::new(
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    serde_json::from_slice(&bytes).map_err(|error| {
        anyhow::anyhow!(
            "{} is not valid JSON (line {}, column {})",
            file.display(),
            error.line(),
            error.column()
        )
    })
}

/// Zeroizes every string of a parsed document (the secrets among them) before it is dropped.
fn scrub(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(members) => members.values_mut().for_each(scrub),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Whether `data_dir` holds a store (sled's database file or credpool's manifest). A dry run
/// on a data dir without one must not create it.
fn has_store(data_dir: &Path) -> bool {
    data_dir.join("db").exists()
        || data_dir
            .join(credpool_store::manifest::MANIFEST_FILE)
            .exists()
}

/// Opens the store the way the other offline store commands do.
fn open(data_dir: &Path, key: &KeySource) -> anyhow::Result<SledStore> {
    let options = OpenOptions {
        key: key.clone(),
        ..OpenOptions::default()
    };
    match SledStore::open_with(data_dir, options) {
        Ok((store, _)) => Ok(store),
        Err(StoreError::Locked { path }) => bail!(
            "store at {path} is locked: another process holds it (a running `credpool serve`?); import works on a stopped service's store only: stop the service and run the import again"
        ),
        Err(other) => Err(other.into()),
    }
}

/// The entries the store holds for `provider`.
fn held(store: &SledStore, provider: &credpool_core::ProviderId) -> anyhow::Result<Vec<Held>> {
    let snapshot = store.load_provider(provider)?;
    Ok(snapshot
        .entries
        .iter()
        .map(|entry| Held::of(entry, snapshot.borrowed_fingerprints.get(&entry.id)))
        .collect())
}

/// Writes each provider's entries in one batch and flushes it before the next provider.
fn write(store: &SledStore, plans: &mut [ProviderPlan]) -> anyhow::Result<()> {
    for plan in plans.iter_mut() {
        let Some(provider) = &plan.provider else {
            continue;
        };
        if plan.writes.is_empty() {
            continue;
        }
        let changes: Vec<Change> = std::mem::take(&mut plan.writes)
            .into_iter()
            .map(|entry| Change::PutEntry {
                provider: provider.clone(),
                entry,
            })
            .collect();
        store
            .apply(&changes)
            .and_then(|()| store.flush())
            .with_context(|| {
                format!(
                    "cannot write the entries of {provider} (providers before it in the file are imported; run the import again once the store takes writes)"
                )
            })?;
    }
    Ok(())
}
