//! Acquire + release through the real actor path, the floors it is compared with, and how its
//! cost scales with the number of entries.
//!
//! Every variant runs the same driver ([`measure`]): `tasks` tokio tasks, each timing its own
//! operations with [`Instant`], started together behind a barrier after an untimed warm-up.
//! The floors run in the same process right before the pool so that ratios hold on a busy
//! machine.
//!
//! **Invariant:** one operation is timed end to end as a caller sees it: for the pool, from
//! sending `Select` until the lease is granted and dropped (dropping sends `Release`).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use credpool_core::Strategy;
use credpool_core::{Entry, EntryId, EntryKind, ProviderId, Secret, SecretSource};
use credpool_pool_actor::{NoRefresher, PoolConfig, PoolHandle, PoolRegistry, RegistryConfig};
use credpool_store::{Change, MemoryStore, Store};
use tokio::sync::{Barrier, mpsc, oneshot};

use super::stats::{Samples, nanos};

/// The provider the acquire benches lease from (a built-in API-key provider).
pub(crate) fn bench_provider() -> ProviderId {
    ProviderId::new("openai")
}

/// One timed operation of a bench task.
pub(crate) trait Op: Send + 'static {
    /// Runs the operation once.
    fn run(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send + '_;
}

/// Runs `tasks` tasks of `ops_per_task` timed operations each (after `warmup` untimed ones)
/// and returns every latency.
pub(crate) async fn measure<O: Op>(
    tasks: usize,
    ops_per_task: usize,
    warmup: usize,
    make: impl Fn() -> O,
) -> anyhow::Result<Samples> {
    let barrier = Arc::new(Barrier::new(tasks));
    let mut workers = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let mut op = make();
        let barrier = Arc::clone(&barrier);
        workers.push(tokio::spawn(async move {
            for _ in 0..warmup {
                op.run().await?;
            }
            let mut latencies = Vec::with_capacity(ops_per_task);
            barrier.wait().await;
            let first = Instant::now();
            for _ in 0..ops_per_task {
                let started = Instant::now();
                op.run().await?;
                latencies.push(nanos(started.elapsed()));
            }
            anyhow::Ok((first, Instant::now(), latencies))
        }));
    }
    // The run's wall time: from the first task's start to the last task's end.
    let mut all = Vec::with_capacity(tasks * ops_per_task);
    let mut span: Option<(Instant, Instant)> = None;
    for worker in workers {
        let (first, last, latencies) = worker.await.context("bench task panicked")??;
        all.extend(latencies);
        span = Some(span.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
    }
    let wall = span.map_or(Duration::ZERO, |(first, last)| last - first);
    Ok(Samples::new(all, wall))
}

/// Acquire + release through a [`PoolHandle`]: `select`, then drop the lease.
pub(crate) struct PoolOp {
    pool: PoolHandle,
}

impl PoolOp {
    /// Leases from `pool`.
    pub(crate) fn new(pool: PoolHandle) -> Self {
        PoolOp { pool }
    }
}

impl Op for PoolOp {
    async fn run(&mut self) -> anyhow::Result<()> {
        let lease = self.pool.select(None).await?;
        std::hint::black_box(lease.secret());
        drop(lease);
        Ok(())
    }
}

/// A raw tokio round trip: an unbounded mpsc send to a task that answers on a oneshot.
pub(crate) struct MpscFloorOp {
    server: mpsc::UnboundedSender<oneshot::Sender<u64>>,
}

impl Op for MpscFloorOp {
    async fn run(&mut self) -> anyhow::Result<()> {
        let (reply, answer) = oneshot::channel();
        self.server
            .send(reply)
            .map_err(|_| anyhow::anyhow!("floor server stopped"))?;
        std::hint::black_box(answer.await?);
        Ok(())
    }
}

/// Starts the mpsc floor's server task and returns a way to make its clients.
pub(crate) fn mpsc_floor() -> mpsc::UnboundedSender<oneshot::Sender<u64>> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<oneshot::Sender<u64>>();
    tokio::spawn(async move {
        let mut served = 0_u64;
        while let Some(reply) = receiver.recv().await {
            served += 1;
            let _ = reply.send(served);
        }
    });
    sender
}

impl MpscFloorOp {
    /// A client of the floor server behind `server`.
    pub(crate) fn new(server: mpsc::UnboundedSender<oneshot::Sender<u64>>) -> Self {
        MpscFloorOp { server }
    }
}

/// What the mutex floor keeps per entry.
struct MiniSlot {
    leases: u32,
    secret: Arc<str>,
}

/// An in-process pick under a `Mutex<Vec>`: the first entry under its cap (else the
/// least-leased), lease count up, secret cloned; then the release takes the lock again.
pub(crate) struct MutexFloorOp {
    slots: Arc<Mutex<Vec<MiniSlot>>>,
}

impl MutexFloorOp {
    /// A floor with `entries` entries.
    pub(crate) fn new(entries: usize) -> Self {
        let slots = (0..entries)
            .map(|i| MiniSlot {
                leases: 0,
                secret: Arc::from(format!("sk-bench-{i:048}")),
            })
            .collect();
        MutexFloorOp {
            slots: Arc::new(Mutex::new(slots)),
        }
    }
}

impl Op for MutexFloorOp {
    async fn run(&mut self) -> anyhow::Result<()> {
        let (index, secret) = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let index = slots
                .iter()
                .position(|slot| slot.leases < 1)
                .or_else(|| {
                    slots
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, slot)| slot.leases)
                        .map(|(i, _)| i)
                })
                .context("no entries")?;
            slots[index].leases += 1;
            (index, Arc::clone(&slots[index].secret))
        };
        std::hint::black_box(&secret);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots[index].leases = slots[index].leases.saturating_sub(1);
        Ok(())
    }
}

/// A stored API-key entry as `credpool admin add` would make it (label, a 56-character key,
/// the provider's base URL), with priority `i`.
pub(crate) fn api_key_entry(i: usize) -> Entry {
    let mut entry = Entry::new(
        EntryId::from_random(i as u64 + 1),
        format!("key-{i:05}"),
        EntryKind::ApiKey {
            key: Secret::new(format!("sk-bench-{i:048}")),
        },
        SecretSource::Manual,
    );
    entry.priority = u32::try_from(i).unwrap_or(u32::MAX);
    entry.base_url = Some("https://api.openai.com/v1".to_owned());
    entry
}

/// A running pool over an in-memory store holding `entries` API keys.
pub(crate) struct BenchPool {
    /// The registry (shut down by [`BenchPool::stop`]).
    pub(crate) registry: PoolRegistry,
    /// The provider's pool.
    pub(crate) pool: PoolHandle,
}

impl BenchPool {
    /// Stores `entries` keys, then starts a registry that loads them (fill-first).
    pub(crate) async fn start(entries: usize) -> anyhow::Result<BenchPool> {
        Self::start_with(entries, Strategy::FillFirst).await
    }

    /// Like [`BenchPool::start`] with another strategy.
    pub(crate) async fn start_with(
        entries: usize,
        strategy: Strategy,
    ) -> anyhow::Result<BenchPool> {
        let store = Arc::new(MemoryStore::new());
        let provider = bench_provider();
        let batch: Vec<Change> = (0..entries)
            .map(|i| Change::PutEntry {
                provider: provider.clone(),
                entry: api_key_entry(i),
            })
            .collect();
        store.apply(&batch)?;
        let store: Arc<dyn Store> = store;
        let registry = PoolRegistry::start(
            RegistryConfig {
                default_pool: PoolConfig {
                    strategy,
                    ..PoolConfig::default()
                },
                ..RegistryConfig::default()
            },
            store,
            Arc::new(credpool_core::SystemClock),
            Arc::new(NoRefresher),
        )
        .await?;
        let pool = registry.pool(&provider).await?;
        Ok(BenchPool { registry, pool })
    }

    /// Flushes and stops the registry.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.registry.shutdown().await?;
        Ok(())
    }
}

/// The sizes of one acquire run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Timed operations per concurrency level, split among its tasks.
    pub(crate) ops: usize,
    /// Entries in the acquire pool.
    pub(crate) entries: usize,
}

/// One concurrency level's results.
#[derive(Debug)]
pub(crate) struct Level {
    /// Tasks leasing at once.
    pub(crate) tasks: usize,
    /// The pool (fill-first: the published snapshot, no message).
    pub(crate) pool: Samples,
    /// The pool with round-robin: every `Select` is a message to the actor.
    pub(crate) actor: Samples,
    /// The mpsc + oneshot floor.
    pub(crate) floor: Samples,
}

/// Results of the acquire section.
#[derive(Debug)]
pub(crate) struct AcquireResults {
    /// One per concurrency level.
    pub(crate) levels: Vec<Level>,
    /// The mutex floor (one task).
    pub(crate) mutex_floor: Samples,
}

/// Measures acquire + release at 1, 8 and 64 tasks next to its floors.
pub(crate) async fn acquire_release(sizes: Sizes) -> anyhow::Result<AcquireResults> {
    let bench = BenchPool::start(sizes.entries).await?;
    let actor_bench = BenchPool::start_with(sizes.entries, Strategy::RoundRobin).await?;
    let floor_server = mpsc_floor();
    let mut levels = Vec::new();
    for tasks in [1_usize, 8, 64] {
        let per_task = (sizes.ops / tasks).max(1);
        let warmup = (per_task / 10).max(10);
        let floor = measure(tasks, per_task, warmup, || {
            MpscFloorOp::new(floor_server.clone())
        })
        .await?;
        let pool = measure(tasks, per_task, warmup, || PoolOp::new(bench.pool.clone())).await?;
        let actor = measure(tasks, per_task, warmup, || {
            PoolOp::new(actor_bench.pool.clone())
        })
        .await?;
        levels.push(Level {
            tasks,
            pool,
            actor,
            floor,
        });
    }
    let mutex_floor = measure(1, sizes.ops, sizes.ops / 10, || {
        MutexFloorOp::new(sizes.entries)
    })
    .await?;
    bench.stop().await?;
    actor_bench.stop().await?;
    Ok(AcquireResults {
        levels,
        mutex_floor,
    })
}

/// Measures one task's acquire + release with `entries` entries in the provider.
pub(crate) async fn scaling(entries: usize, ops: usize) -> anyhow::Result<Samples> {
    let bench = BenchPool::start(entries).await?;
    let samples = measure(1, ops, (ops / 10).max(10), || {
        PoolOp::new(bench.pool.clone())
    })
    .await?;
    bench.stop().await?;
    Ok(samples)
}

/// Waits a moment so that work left by a previous section (write-behind, stopped actors)
/// does not land in the next one's samples.
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}
