//! Resident memory per entry, measured in a fresh child process.
//!
//! The child (`credpool bench --memory-probe N`) starts a registry over a store that makes its
//! `N` entries up when the pool loads them, so the store itself holds nothing: the growth of
//! the resident set between "registry running, provider not loaded" and "provider loaded,
//! first `Select` answered" is the pool's own cost (entries, slots, index, and whatever the
//! allocator keeps from loading). A fresh process keeps the other sections' freed memory out
//! of the number.
//!
//! **Invariant:** the probe prints exactly one JSON line and nothing else on stdout.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use anyhow::Context;
use credpool_core::{Entry, Generation, ProviderId};
use credpool_pool_actor::{NoRefresher, PoolError, PoolRegistry, RegistryConfig};
use credpool_store::{
    CasOutcome, Change, ChangeHook, ProviderSnapshot, QuarantinedRecord, Store, StoreError,
};
use serde::{Deserialize, Serialize};

use super::acquire::{api_key_entry, bench_provider};
use super::stats::resident_bytes;

/// A store that generates its one provider's entries on load and forgets every write.
#[derive(Debug)]
struct GeneratingStore {
    provider: ProviderId,
    entries: usize,
}

impl Store for GeneratingStore {
    fn providers(&self) -> Result<Vec<ProviderId>, StoreError> {
        // Nothing starts with the registry: the bench loads the provider when it asks.
        Ok(Vec::new())
    }

    fn load_provider(&self, provider: &ProviderId) -> Result<ProviderSnapshot, StoreError> {
        let entries = if *provider == self.provider {
            (0..self.entries).map(api_key_entry).collect()
        } else {
            Vec::new()
        };
        Ok(ProviderSnapshot {
            entries,
            ..ProviderSnapshot::default()
        })
    }

    fn apply(&self, _changes: &[Change]) -> Result<(), StoreError> {
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn compare_and_swap(
        &self,
        _provider: &ProviderId,
        _expected: Generation,
        _entry: &Entry,
    ) -> Result<CasOutcome, StoreError> {
        Ok(CasOutcome::Swapped)
    }

    fn watch(&self, _hook: ChangeHook) {}

    fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        Ok(Vec::new())
    }

    fn path(&self) -> Option<&Path> {
        None
    }
}

/// What the probe reports.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MemoryProbe {
    /// Entries loaded.
    pub(crate) entries: usize,
    /// Resident bytes before the provider was loaded.
    pub(crate) rss_before: u64,
    /// Resident bytes after its first `Select` was answered.
    pub(crate) rss_after: u64,
    /// `(rss_after − rss_before) / entries`.
    pub(crate) bytes_per_entry: f64,
}

/// The child's side: loads `entries` entries and reports the resident growth.
pub(crate) async fn probe(entries: usize) -> anyhow::Result<MemoryProbe> {
    let provider = bench_provider();
    let store: Arc<dyn Store> = Arc::new(GeneratingStore {
        provider: provider.clone(),
        entries,
    });
    let registry = PoolRegistry::start(
        RegistryConfig::default(),
        store,
        Arc::new(credpool_core::SystemClock),
        Arc::new(NoRefresher),
    )
    .await?;
    // Warm the machinery (a pool actor, a select round trip) on another, empty provider.
    let warm = registry.pool(&ProviderId::new("openrouter")).await?;
    match warm.select(None).await {
        Err(PoolError::Exhausted { .. }) => {}
        other => anyhow::bail!("the empty warm-up pool answered {other:?}"),
    }
    let rss_before = resident_bytes()?;
    let pool = registry.pool(&provider).await?;
    let lease = pool.select(None).await?;
    let rss_after = resident_bytes()?;
    drop(lease);
    registry.shutdown().await?;
    let grown = rss_after.saturating_sub(rss_before);
    Ok(MemoryProbe {
        entries,
        rss_before,
        rss_after,
        bytes_per_entry: grown as f64 / entries.max(1) as f64,
    })
}

/// The parent's side: runs the probe in a fresh `credpool` process and reads its line.
pub(crate) fn run_probe(entries: usize) -> anyhow::Result<MemoryProbe> {
    let exe = std::env::current_exe().context("cannot find the credpool executable")?;
    let output = Command::new(exe)
        .args(["bench", "--memory-probe", &entries.to_string()])
        .output()
        .context("cannot run the memory probe")?;
    anyhow::ensure!(
        output.status.success(),
        "the memory probe failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8(output.stdout).context("the memory probe wrote non-UTF-8")?;
    let line = text
        .lines()
        .last()
        .context("the memory probe printed nothing")?;
    serde_json::from_str(line).context("the memory probe's line is not its JSON")
}
