//! The service's life: start the tree, seed, serve the admin API, stop on a signal.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use credpool::Credpool;
use tokio::sync::watch;

use crate::api;
use crate::config::ServeConfig;
use crate::listener::{self, ListenerLimits};
use crate::metrics;
use crate::seed;
use crate::signals::Signals;
use crate::token;

/// How long open connections get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn serve(config: ServeConfig) -> anyhow::Result<Stop> {
    // Watched from the start, so a signal during start-up still stops cleanly.
    let mut signals = Signals::new()?;
    let mut builder = Credpool::builder()
        .data_dir(&config.data_dir)
        .providers(config.providers.clone())
        .refresher(config.refresher.clone())
        .allow_insecure_loopback(config.allow_insecure_loopback);
    for (provider, pool) in &config.pools {
        builder = builder.pool(provider.clone(), pool.clone());
    }
    if let Some(file) = &config.master_key_file {
        builder = builder.master_key_file(file);
    }
    let started = tokio::select! {
        started = builder.start() => started,
        signal = signals.wait() => {
            tracing::info!(signal, "stopped during start-up");
            return Ok(Stop::Signal(signal));
        }
    };
    let pool = match started {
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
    let stop = outcome?;
    if stop == Stop::ReopenStore {
        // The broken store could not flush; what it took before it broke is on disk.
        if let Err(error) = stopped {
            tracing::warn!(error = %format!("{error:#}"), "stopped with the store refusing writes");
        }
        tracing::info!("stopped to reopen the store");
        return Ok(stop);
    }
    stopped?;
    tracing::info!("stopped; store flushed");
    Ok(stop)
}

async fn run_service(
    pool: &Credpool,
    config: &ServeConfig,
    mut signals: Signals,
) -> anyhow::Result<Stop> {
    // Before the token file is created this start: its presence means an earlier run.
    let used_before = config.token_file.exists();
    let report = seed::seed(
        &pool.admin(),
        pool.store().as_ref(),
        used_before,
        &config.seeds,
    )
    .await?;
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
    events.follow(&pool.admin()).await?;
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
        store: Arc::clone(pool.store()),
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
    let limits = ListenerLimits {
        max_connections: listener::fit_to_descriptors(config.max_connections),
        header_read_timeout: config.header_read_timeout,
    };
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        "admin api limits"
    );
    let server = tokio::spawn(listener::serve(
        listener,
        api::router(state),
        limits,
        stop_receiver.clone(),
    ));
    let mut data_plane =
        crate::data::serve::start(pool, &config.data, limits, &stop_receiver).await?;
    let restart =
        crate::watchdog::restart_needed(Arc::clone(pool.store()), config.data_dir.clone());
    let stop = tokio::select! {
        signal = signals.wait() => Stop::Signal(signal),
        () = restart => Stop::ReopenStore,
    };
    match stop {
        Stop::Signal(signal) => tracing::info!(signal, "shutting down: no new connections"),
        Stop::ReopenStore => {
            tracing::info!("shutting down to reopen the store: no new connections")
        }
    }
    let _ = stop_sender.send(true);
    let mut servers = data_plane.take_servers();
    servers.push(server);
    let drained = futures::future::join_all(
        servers
            .into_iter()
            .map(|server| drain(server, DRAIN_TIMEOUT)),
    );
    drained.await;
    drop(data_plane);
    // `Credpool::shutdown` (the caller's next step) lets exchanges in flight finish and be
    // committed before the pools stop.
    Ok(stop)
}

/// Why the service stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A stop signal.
    Signal(&'static str),
    /// The store broke and the disk takes writes again: a restart reopens it.
    ReopenStore,
}

/// Gives the (gracefully stopping) server task `timeout` to finish its requests; past it, the
/// task is aborted and awaited, so its open connections are closed and nothing is served
/// while the pools shut down. Returns whether the server ended on its own.
async fn drain(mut server: tokio::task::JoinHandle<()>, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, &mut server).await {
        Ok(Ok(())) => true,
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
            std::future::pending::<()>().await
        });
        assert!(!drain(busy, Duration::from_millis(20)).await);
        assert_eq!(Arc::strong_count(&alive), 1, "the server task still runs");

        let done = tokio::spawn(async {});
        assert!(drain(done, Duration::from_secs(5)).await);
    }
}
