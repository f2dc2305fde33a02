//! `credpool demo`: the whole mission on this machine, with nothing outside it.
//!
//! credpool starts embedded on a sled store in `--data-dir`; a fake provider on loopback
//! (the test-support fake) plays xAI (OAuth grants whose access tokens live 8 s and whose
//! refresh tokens are single use) and OpenAI (API keys). Title, compression and vision
//! workers send requests through [`PoolClient::with_recovery`] while a fault task forces
//! expiries (answered by xAI's `403 unauthenticated:bad-credentials`), throttles a key with
//! `429 Retry-After`, puts a key on a billing `402`, fails the token endpoint with a `503` and
//! revokes a grant.
//!
//! **Invariants:**
//! - Nothing leaves the machine: every endpoint is `127.0.0.1`.
//! - With `--json` the last line of stdout is one JSON object; progress goes to stderr.
//! - A second run on the same data dir starts from the stored pool (grants, cooldowns,
//!   counters) and says so. The fake provider saves its token book beside the store after
//!   every redemption, before it answers (`demo-fake-tokens.json`, mode 0600; only the fake's
//!   tokens), the demo saves the fake's address and API keys (`demo-fake-provider.json`,
//!   0600), and the fake binds the same port again: the stored refresh tokens and endpoints
//!   stay valid even when a run is killed.
//! - The store is opened first, so a data dir held by another process is reported as locked.
//! - A worker is failed when its last request ended in an unrecovered error; workers are
//!   stopped by a signal and joined, so the count is exact.
//! - No secret is printed: tables show labels and fingerprints. Logs (stderr) are off unless
//!   `RUST_LOG` is set; at any level they carry no secret (`tests/secret_canary.rs` runs the
//!   demo at `trace` and looks for every token the fake issued).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use credpool::{Credpool, RecoveryConfig, RefresherConfig, SledStore, StoreError};
use credpool_test_support::{FakeProvider, FakeProviderConfig, FakeState};

mod progress;
mod report;
mod serve;
mod setup;
mod shared;
mod workers;

use self::progress::Progress;
use self::report::*;
use self::setup::*;
pub use self::shared::DemoArgs;
use self::shared::*;
use self::workers::*;

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // Quiet by default (the progress display is the output); `RUST_LOG=…` logs to stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        credpool_server::init_logging();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let progress = Progress::new(args.json);
    // The store first: a data dir another process holds is reported as locked.
    let dir = args.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || SledStore::open(&dir))
        .await
        .context("opening the store")?
        .map_err(|error| match error {
            StoreError::Locked { path } => anyhow::anyhow!(
                "store at {path} is locked: another process holds it (another demo, or a \
                 `credpool serve` on this data dir?)"
            ),
            other => anyhow::Error::new(other)
                .context(format!("opening the store in {}", args.data_dir.display())),
        })?;
    let sealed = {
        let (id, origin) = store.key_info();
        format!(
            "Stored keys and tokens are sealed with master key {id}, from {origin} (docs/SECURITY.md)."
        )
    };
    let state_path = args.data_dir.join(FAKE_STATE_FILE);
    let tokens_path = args.data_dir.join(FAKE_TOKENS_FILE);
    let saved = read_json::<SavedFake>(&state_path)?;
    let tokens = read_json::<FakeState>(&tokens_path)?;
    let fake_saved = saved.is_some() && tokens.is_some();

    // Then the fake: the stored entries point at its address.
    let fake = FakeProvider::try_start(FakeProviderConfig {
        access_token_lifetime: ACCESS_LIFETIME,
        bind: saved.as_ref().map(|s| s.addr),
        restore: tokens,
        persist: Some(tokens_path),
        ..FakeProviderConfig::default()
    })
    .await
    .with_context(|| match &saved {
        Some(saved) => format!(
            "the demo's fake provider could not bind {} again (in use?); the stored pool \
             points at it. Free the port, or run with another --data-dir",
            saved.addr
        ),
        None => "binding the demo's fake provider on 127.0.0.1".to_owned(),
    })?;

    let pool = Credpool::builder()
        .store(Arc::new(store))
        .providers(demo_providers(&fake))
        .pool(xai(), demo_pool_config())
        .pool(openai(), demo_pool_config())
        .refresher(RefresherConfig {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(5),
            http_timeout: Duration::from_secs(5),
            ..RefresherConfig::default()
        })
        .allow_insecure_loopback(true)
        .recovery(RecoveryConfig {
            transient_backoff: Duration::from_millis(100),
            ..RecoveryConfig::default()
        })
        .start()
        .await
        .with_context(|| format!("opening the pool in {}", args.data_dir.display()))?;

    let resumed = pool.resumed_from_store();
    if resumed && !fake_saved {
        let _ = pool.shutdown().await;
        bail!(
            "{} holds a credential pool without the demo's fake-provider state \
             ({FAKE_STATE_FILE}, {FAKE_TOKENS_FILE}); run the demo with another --data-dir",
            args.data_dir.display()
        );
    }
    let keys = match (&saved, resumed) {
        (Some(saved), true) => {
            let entries = entry_counts(&pool).await;
            progress.line(&format!(
                "resumed from store {}: {} (grants, cooldowns and counters as the last run left \
                 them)",
                args.data_dir.display(),
                format_counts(&entries)
            ));
            saved.keys.clone()
        }
        _ => {
            let keys = seed(&pool, &fake).await?;
            progress.line(&format!(
                "new pool in {}: {} API keys (openai), {} OAuth grants (xai-oauth)",
                args.data_dir.display(),
                OPENAI_KEYS.len(),
                XAI_GRANTS.len()
            ));
            keys
        }
    };
    // Saved now, so a run that is killed can still be resumed (the fake saves every
    // rotation itself).
    save_fake(&state_path, &fake, &keys)?;
    fake.persist_state();
    if args.serve {
        let served = serve::serve(&pool, &fake, &args.data_dir).await;
        pool.shutdown().await.context("flushing the store")?;
        save_fake(&state_path, &fake, &keys)?;
        fake.persist_state();
        served?;
        return Ok(ExitCode::SUCCESS);
    }
    progress.line(&format!(
        "fake xAI and OpenAI on http://{}; {} workers of each kind for {} s",
        fake.addr(),
        args.workers,
        args.duration
    ));
    progress.line(&format!(
        "demo timings: access tokens live {} s and older ones are expired early every 4 s; \
         refresh-loop guard {} s; refresh-failure cooldown {} s (defaults: 30 s, 60 s)",
        ACCESS_LIFETIME.as_secs(),
        REFRESH_LOOP_GUARD.as_secs(),
        REFRESH_FAILED_COOLDOWN.as_secs()
    ));

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.duration);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let tally = Arc::new(Tally::default());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let fake = Arc::new(fake);

    let watcher = spawn_event_lines(&pool, &progress).await;
    let faults = tokio::spawn(inject_faults(
        Arc::clone(&fake),
        keys.clone(),
        Arc::clone(&tally),
        Duration::from_secs(args.duration),
    ));
    let mut workers = Vec::new();
    for kind in ["title", "compression", "vision"] {
        for n in 0..args.workers {
            workers.push(tokio::spawn(worker(
                format!("{kind}-{n}"),
                if kind == "compression" {
                    openai()
                } else {
                    xai()
                },
                pool.client(),
                http.clone(),
                Arc::clone(&tally),
                deadline,
                stopping.clone(),
            )));
        }
    }

    // Progress until the deadline or Ctrl-C.
    // A live display redraws often; plain lines come every 2 s.
    let mut ticker = tokio::time::interval(if progress.bar.is_some() {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(2)
    });
    ticker.tick().await;
    // One Ctrl-C future for the whole run, so a signal during a status update is not lost.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = &mut interrupted => {
                progress.line("interrupted: stopping the workers and flushing the store");
                break;
            }
            _ = ticker.tick() => {
                progress.status(status_line(&pool, &fake, &tally, started).await);
            }
        }
    }
    faults.abort();
    let _ = stop.send(true);
    let mut failed_workers = 0u64;
    for mut handle in workers {
        match tokio::time::timeout(WORKER_STOP_TIMEOUT, &mut handle).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false) | Err(_)) => failed_workers += 1,
            Err(_) => {
                // Stuck in a request: that is a failed worker too.
                handle.abort();
                failed_workers += 1;
            }
        }
    }
    watcher.abort();
    progress.finish();

    let summary = summarize(
        &pool,
        &fake,
        &tally,
        failed_workers,
        resumed,
        &args,
        started,
    )
    .await;
    let snapshots = all_snapshots(&pool).await;
    pool.shutdown().await.context("flushing the store")?;
    save_fake(&state_path, &fake, &keys)?;
    fake.persist_state();

    if args.json {
        print_table(&mut std::io::stderr(), &summary, &snapshots);
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_table(&mut std::io::stdout(), &summary, &snapshots);
        println!("{sealed}");
        println!(
            "Run it again to resume from {}; inspect it with `credpool admin --data-dir {} status`.",
            args.data_dir.display(),
            args.data_dir.display()
        );
    }
    Ok(if failed_workers == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
