//! credpool as a service (`credpool serve`): the pools of a config file, with an admin HTTP
//! API, metrics and event streams.
//!
//! Start: read the config ([`config`]), start the tree on its data dir, seed the entries the
//! store does not hold ([`seed`]), load or create the admin token ([`token`]), bind the
//! listener and print `credpool serve: listening on http://ADDR` on stdout.
//!
//! Stop (SIGINT, SIGTERM or SIGHUP): stop accepting connections and end event streams, let
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
mod data;
pub mod listener;
pub mod metrics;
pub mod private_file;
pub mod seed;
mod service;
pub mod signals;
pub mod token;
pub mod watchdog;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use self::config::ServeConfig;

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

/// Runs the service of the config file at `config` until SIGINT, SIGTERM or SIGHUP.
///
/// # Errors
/// The config is invalid, the store cannot be opened (locked by another process), the
/// listener cannot bind, or the store fails to flush at shutdown.
pub fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::load(config)?;
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(service::serve(config));
    // A blocking read still running (a stalled disk) does not hold the exit up.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome? {
        service::Stop::Signal(_) => Ok(ExitCode::SUCCESS),
        service::Stop::ReopenStore => Ok(ExitCode::from(watchdog::RESTART_EXIT_CODE)),
    }
}

/// Serves the data plane (`docs/DATA-PLANE.md`) for `pool` — its socket, and TCP when
/// `config.listen` says so — until `stop` turns `true`, then lets requests in flight finish
/// (up to 10 s) and removes the socket. For programs that run a pool of their own (the demo's
/// `--serve`); `credpool serve` starts it with the admin API.
///
/// # Errors
/// A listener cannot bind (the socket is held by a live process, the TCP port is taken).
pub async fn run_data_plane(
    pool: &credpool::Credpool,
    config: &config::DataConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut plane =
        data::serve::start(pool, config, listener::ListenerLimits::default(), &stop).await?;
    let _ = stop.wait_for(|stopping| *stopping).await;
    for server in plane.take_servers() {
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    }
    Ok(())
}
