//! What durability costs: the store-before-use commit of a rotated token pair, write-behind
//! throughput, and a restart from a sled store with many entries.
//!
//! Each measurement takes the path the pool actor takes: a commit is one atomic batch
//! (the rotated entry and the cleared in-flight marker) applied and flushed on a blocking
//! thread; write-behind applies batches of entries with changed counters without a flush.
//!
//! **Invariant:** every store lives in its own temporary directory and is closed before the
//! directory goes away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use credpool_core::{
    ClientMetadata, Clock, Entry, EntryId, EntryKind, OAuthTokens, ProviderId, Secret,
    SecretSource, SystemClock,
};
use credpool_pool_actor::{NoRefresher, PoolRegistry, RegistryConfig};
use credpool_store::{Change, RefreshMarker, SledStore, Store, StoreError};

use super::acquire::{api_key_entry, bench_provider};
use super::stats::{Samples, nanos};

async fn blocking(
    work: impl FnOnce() -> Result<(), StoreError> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .context("store task panicked")??;
    Ok(())
}

/// Commit latencies and write-behind throughput.
#[derive(Debug)]
pub(crate) struct CommitResult {
    /// One sample per rotation commit (apply + flush).
    pub(crate) commit: Samples,
    /// Entries written behind per second.
    pub(crate) write_behind_ops_per_s: f64,
    /// The disk's floor in the same directory: a 256-byte append and `sync_data`.
    pub(crate) fsync_floor: Samples,
}

/// Appends 256 bytes to a file in `dir` and syncs it, `rounds` times, on a blocking thread.
async fn fsync_floor(dir: &std::path::Path, rounds: usize) -> anyhow::Result<Samples> {
    let path = dir.join("fsync-floor");
    tokio::task::spawn_blocking(move || -> anyhow::Result<Samples> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .context("cannot open the fsync floor file")?;
        let block = [7_u8; 256];
        let mut latencies = Vec::with_capacity(rounds);
        let started = Instant::now();
        for _ in 0..rounds {
            let timer = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            latencies.push(nanos(timer.elapsed()));
        }
        Ok(Samples::new(latencies, started.elapsed()))
    })
    .await
    .context("fsync floor task panicked")?
}

/// Commits `rotations` rotated pairs, then writes behind `batches` batches of 1,000 entries.
pub(crate) async fn rotation_commit(
    rotations: usize,
    batches: usize,
) -> anyhow::Result<CommitResult> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path())?);
    let provider = ProviderId::new("xai-oauth");
    let now = SystemClock.now();
    let mut entry = Entry::new(
        EntryId::from_random(1),
        "rotating",
        EntryKind::OAuth(OAuthTokens {
            access: Secret::new(format!("access-0-{:040}", 0)),
            refresh: Some(Secret::new(format!("refresh-0-{:040}", 0))),
            expires_at: Some(now.plus(Duration::from_secs(1800))),
            client: ClientMetadata::default(),
        }),
        SecretSource::OAuthGrant,
    );
    store.apply(&[Change::PutEntry {
        provider: provider.clone(),
        entry: entry.clone(),
    }])?;
    store.flush()?;
    let mut latencies = Vec::with_capacity(rotations);
    let started = Instant::now();
    for round in 1..=rotations {
        // The marker is written (and flushed) before the refresh token leaves; untimed.
        let refresh_fingerprint = entry
            .oauth()
            .and_then(|tokens| tokens.refresh.as_ref())
            .map(Secret::fingerprint)
            .context("the bench entry has a refresh token")?;
        let marker = Change::PutMarker(RefreshMarker {
            provider: provider.clone(),
            entry: entry.id,
            generation: entry.generation,
            refresh_fingerprint,
            started_at: SystemClock.now(),
        });
        let marker_store = Arc::clone(&store);
        blocking(move || {
            marker_store.apply(&[marker])?;
            marker_store.flush()
        })
        .await?;
        let now = SystemClock.now();
        entry.replace_tokens(
            Secret::new(format!("access-{round}-{:040}", round)),
            Some(Secret::new(format!("refresh-{round}-{:040}", round))),
            Some(now.plus(Duration::from_secs(1800))),
            now,
        );
        let batch = vec![
            Change::PutEntry {
                provider: provider.clone(),
                entry: entry.clone(),
            },
            Change::ClearMarker {
                provider: provider.clone(),
                entry: entry.id,
            },
        ];
        let commit_store = Arc::clone(&store);
        let timer = Instant::now();
        blocking(move || {
            commit_store.apply(&batch)?;
            commit_store.flush()
        })
        .await?;
        latencies.push(nanos(timer.elapsed()));
    }
    let commit = Samples::new(latencies, started.elapsed());
    let fsync_floor = fsync_floor(dir.path(), rotations).await?;

    let counters = bench_provider();
    let mut entries: Vec<Entry> = (0..1000).map(api_key_entry).collect();
    let mut written = 0_usize;
    let mut spent = Duration::ZERO;
    for _ in 0..batches {
        let batch: Vec<Change> = entries
            .iter_mut()
            .map(|entry| {
                entry.usage.selections += 1;
                entry.usage.successes += 1;
                entry.usage.last_used_at = Some(SystemClock.now());
                Change::PutEntry {
                    provider: counters.clone(),
                    entry: entry.clone(),
                }
            })
            .collect();
        written += batch.len();
        let behind_store = Arc::clone(&store);
        let timer = Instant::now();
        blocking(move || behind_store.apply(&batch)).await?;
        spent += timer.elapsed();
    }
    let write_behind_ops_per_s = if spent.is_zero() {
        0.0
    } else {
        written as f64 / spent.as_secs_f64()
    };
    drop(store);
    Ok(CommitResult {
        commit,
        write_behind_ops_per_s,
        fsync_floor,
    })
}

/// Opens a sled store, retrying while the previous holder's lock is still being released;
/// returns the store and how long the successful attempt took.
async fn open_sled(dir: &std::path::Path) -> anyhow::Result<(SledStore, Duration)> {
    let mut attempts = 0;
    loop {
        let started = Instant::now();
        match SledStore::open(dir) {
            Ok(store) => return Ok((store, started.elapsed())),
            Err(error) if attempts < 100 => {
                attempts += 1;
                tracing::debug!(%error, "store still locked; retrying");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Times `runs` restarts (open the store, start the registry, first `Select` answered) over a
/// sled store holding `entries` API keys in one provider; returns each restart's time.
pub(crate) async fn restart(entries: usize, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let provider = bench_provider();
    {
        let store = SledStore::open(dir.path())?;
        let all: Vec<Entry> = (0..entries).map(api_key_entry).collect();
        for chunk in all.chunks(1000) {
            let batch: Vec<Change> = chunk
                .iter()
                .map(|entry| Change::PutEntry {
                    provider: provider.clone(),
                    entry: entry.clone(),
                })
                .collect();
            store.apply(&batch)?;
        }
        store.flush()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        // Only the successful opening is timed, not waiting for the previous run's lock.
        let (store, opening) = open_sled(dir.path()).await?;
        let store: Arc<dyn Store> = Arc::new(store);
        let started = Instant::now();
        let registry = PoolRegistry::start(
            RegistryConfig::default(),
            store,
            Arc::new(SystemClock),
            Arc::new(NoRefresher),
        )
        .await?;
        let pool = registry.pool(&provider).await?;
        let lease = pool.select(None).await?;
        times.push(opening + started.elapsed());
        drop(lease);
        registry.shutdown().await?;
        drop(pool);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(times)
}
