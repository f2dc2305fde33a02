//! `credpool serve`: the pool as a service, with an admin HTTP API.
//!
//! Start: read the config ([`config`]), start the tree on its data dir, seed the entries the
//! store does not hold ([`seed`]), load or create the admin token ([`token`]), bind the
//! listener and print `credpool serve: listening on http://ADDR` on stdout.
//!
//! Stop (SIGINT or SIGTERM): stop accepting connections and end event streams, let
//! requests in flight finish (up to 10 s; then the server task is aborted, so no request is
//! served while the pools shut down), wait (bounded by the refresher's HTTP timeout) for token
//! exchanges in flight so their results are committed, then [`credpool::Credpool::shutdown`]
//! (write-behind counters and the store flushed) and exit 0. A refresh still in flight after
//! the wait keeps its durable marker and is settled at the next start.
//!
//! The admin API is plain HTTP: on a non-loopback `listen` address the start logs a WARN
//! (put it behind TLS).
//!
//! **Invariants:** logs go to stderr through `tracing` and never carry a secret (secrets are
//! [`credpool::Secret`]s, redacted in `Debug`); the admin token is never logged.

pub mod api;
pub mod config;
pub mod metrics;
pub mod seed;
pub mod token;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use credpool::Credpool;
use tokio::sync::watch;

use self::config::ServeConfig;

/// How long open connections get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `credpool serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (TOML; see docs/CONFIG.md).
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
}

/// Installs the stderr log subscriber at INFO (`RUST_LOG` overrides it).
pub fn init_logging() {
    init_logging_at("info");
}

/// Installs the stderr log subscriber at `default_level` (`RUST_LOG` overrides it).
pub fn init_logging_at(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the subcommand.
///
/// # Errors
/// The config is invalid, the store cannot be opened (locked by another process), the
/// listener cannot bind, or the store fails to flush at shutdown.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::load(&args.config)?;
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // Watched from the start, so a signal during start-up still stops cleanly.
    let signals = Signals::new()?;
    let mut builder = Credpool::builder()
        .data_dir(&config.data_dir)
        .providers(config.providers.clone())
        .refresher(config.refresher.clone())
        .allow_insecure_loopback(config.allow_insecure_loopback);
    for (provider, pool) in &config.pools {
        builder = builder.pool(provider.clone(), pool.clone());
    }
    let pool = match builder.start().await {
        Ok(pool) => pool,
        Err(credpool::CredpoolError::Store(credpool::StoreError::Locked { .. })) => {
            anyhow::bail!(
                "store at {} is locked: another process holds it (is another `credpool serve` running on this data dir?)",
                config.data_dir.display()
            );
        }
        Err(error) => return Err(error).context("cannot start the pools"),
    };
    let outcome = run_service(&pool, &config, signals).await;
    if outcome.is_err() {
        tracing::error!("stopping after a start-up failure");
    }
    let stopped = pool
        .shutdown()
        .await
        .context("shutdown did not flush cleanly");
    outcome?;
    stopped?;
    tracing::info!("stopped; store flushed");
    Ok(())
}

async fn run_service(
    pool: &Credpool,
    config: &ServeConfig,
    mut signals: Signals,
) -> anyhow::Result<()> {
    let report = seed::seed(&pool.admin(), &config.seeds).await?;
    tracing::info!(
        added = report.added,
        kept = report.kept,
        resumed = pool.resumed_from_store(),
        "config entries seeded"
    );
    let (token, created) = token::load_or_create(&config.token_file)?;
    if created {
        tracing::info!(path = %config.token_file.display(), "admin token created");
    }
    let (stop_sender, stop_receiver) = watch::channel(false);
    let events = metrics::EventCounts::default();
    let running: Vec<_> = pool
        .admin()
        .list_providers()
        .await?
        .into_iter()
        .map(|summary| summary.provider)
        .collect();
    events.follow(&pool.admin(), &running).await;
    let state = api::ApiState {
        events,
        admin: pool.admin(),
        refresher: pool
            .refresher()
            .cloned()
            .context("the service runs with its refresher")?,
        token: Arc::new(token),
        clock: Arc::clone(pool.clock()),
        allow_insecure_loopback: config.allow_insecure_loopback,
        providers: pool.providers().clone(),
        shutdown: stop_receiver.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr().context("no local address")?;
    tracing::info!(%address, "admin api listening");
    if !address.ip().is_loopback() {
        tracing::warn!(
            %address,
            "the admin api is plain http on a non-loopback address: the bearer token and added secrets cross the network unencrypted; put it behind a TLS-terminating proxy or listen on loopback"
        );
    }
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "credpool serve: listening on http://{address}");
        let _ = stdout.flush();
    }
    let mut drained = stop_receiver.clone();
    let server = axum::serve(listener, api::router(state)).with_graceful_shutdown(async move {
        let _ = drained.wait_for(|stopping| *stopping).await;
    });
    let server = tokio::spawn(async move { server.await });
    let signal = signals.wait().await;
    tracing::info!(signal, "shutting down: no new connections");
    let _ = stop_sender.send(true);
    drain(server, DRAIN_TIMEOUT).await;
    // `Credpool::shutdown` (the caller's next step) lets exchanges in flight finish and be
    // committed before the pools stop.
    Ok(())
}

/// Gives the (gracefully stopping) server task `timeout` to finish its requests; past it, the
/// task is aborted and awaited, so its open connections are closed and nothing is served
/// while the pools shut down. Returns whether the server ended on its own.
async fn drain(
    mut server: tokio::task::JoinHandle<std::io::Result<()>>,
    timeout: Duration,
) -> bool {
    match tokio::time::timeout(timeout, &mut server).await {
        Ok(Ok(Ok(()))) => true,
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, "admin server ended with an error");
            true
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "admin server task failed");
            true
        }
        Err(_) => {
            server.abort();
            let _ = server.await;
            tracing::warn!("connections still open after the drain timeout; closed");
            false
        }
    }
}

/// SIGTERM and SIGINT, watched from the start of the process.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::drain;

    #[tokio::test]
    async fn a_server_still_busy_after_the_drain_timeout_is_stopped() {
        // The task holds a clone until it is dropped: the count says whether it still runs.
        let alive = Arc::new(());
        let held = Arc::clone(&alive);
        let busy = tokio::spawn(async move {
            let _held = held;
            std::future::pending::<std::io::Result<()>>().await
        });
        assert!(!drain(busy, Duration::from_millis(20)).await);
        assert_eq!(Arc::strong_count(&alive), 1, "the server task still runs");

        let done = tokio::spawn(async { Ok(()) });
        assert!(drain(done, Duration::from_secs(5)).await);
    }
}
