//! The offline side of `credpool admin`: start the facade on a stopped service's store, run
//! one command, shut down (flushed).
//!
//! **Invariants:** a store held by another process is reported as locked with a pointer to
//! `--url`, never waited on or opened read-only behind the service's back; except for
//! `refresh`, the refresher has a zero token-endpoint budget, so nothing is sent to a
//! provider; the facade is always shut down (flushed), also when the command fails.

use std::time::Duration;

use anyhow::{Context, bail};
use credpool::{Credpool, CredpoolError, PoolEvent, ProviderId, StoreError, Strategy, Target};
use serde_json::Value;

use super::{AdminArgs, AdminCommand};
use crate::serve::config::ServeConfig;

/// How long an offline `refresh` waits for its exchange.
const REFRESH_WAIT: Duration = Duration::from_secs(60);

fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<Value> {
    serde_json::to_value(value).context("cannot encode the answer")
}

/// Runs the command on the store.
///
/// # Errors
/// The store is locked or unreadable, or the command fails.
pub async fn run(args: &AdminArgs) -> anyhow::Result<Value> {
    if matches!(args.command, AdminCommand::Events { .. }) {
        bail!("events need a running service: use --url and --token-file");
    }
    let config = args.config.as_deref().map(ServeConfig::load).transpose()?;
    let data_dir = match (&args.data_dir, &config) {
        (Some(dir), _) => dir.clone(),
        (None, Some(config)) => config.data_dir.clone(),
        (None, None) => bail!("give --data-dir or --config"),
    };
    let mut builder = Credpool::builder().data_dir(&data_dir);
    let mut allow_loopback = args.allow_insecure_loopback;
    let mut refresher = credpool::RefresherConfig::default();
    if let Some(config) = &config {
        builder = builder.providers(config.providers.clone());
        refresher = config.refresher.clone();
        allow_loopback |= config.allow_insecure_loopback;
    }
    // Only `refresh` may reach a token endpoint; every other command runs without a
    // refresher, so a due or empty token is neither refreshed nor benched.
    let refreshing = matches!(args.command, AdminCommand::Refresh { .. });
    let pool = builder
        .refresher(refresher)
        .refreshing(refreshing)
        .allow_insecure_loopback(allow_loopback)
        .start()
        .await
        .map_err(|error| match error {
            CredpoolError::Store(StoreError::Locked { path }) => anyhow::anyhow!(
                "store at {path} is locked: another process holds it (a running `credpool serve`?); use `credpool admin --url http://127.0.0.1:7878 --token-file PATH` instead"
            ),
            other => anyhow::Error::new(other).context(format!("cannot open the store at {}", data_dir.display())),
        })?;
    let result = command(&pool, &args.command, allow_loopback).await;
    let stopped = pool
        .shutdown()
        .await
        .context("the store did not flush cleanly");
    let value = result?;
    stopped?;
    Ok(value)
}

async fn command(
    pool: &Credpool,
    command: &AdminCommand,
    allow_loopback: bool,
) -> anyhow::Result<Value> {
    let admin = pool.admin();
    let id = |name: &str| ProviderId::new(name);
    Ok(match command {
        AdminCommand::Status { provider } => {
            let providers = match provider {
                Some(provider) => vec![id(provider)],
                None => admin
                    .list_providers()
                    .await?
                    .into_iter()
                    .map(|summary| summary.provider)
                    .collect(),
            };
            let mut snapshots = Vec::new();
            for provider in &providers {
                snapshots.push(json(&admin.snapshot(provider).await?)?);
            }
            Value::Array(snapshots)
        }
        AdminCommand::Providers => json(&admin.list_providers().await?)?,
        AdminCommand::Add(add) => {
            let entry = add
                .request()?
                .into_entry(pool.clock().as_ref(), allow_loopback)
                .map_err(anyhow::Error::msg)?;
            json(&admin.add(&id(&add.provider), entry).await?)?
        }
        AdminCommand::Remove { provider, target } => {
            json(&admin.remove(&id(provider), Target(target.clone())).await?)?
        }
        AdminCommand::Reset { provider, target } => {
            json(&admin.reset(&id(provider), Target(target.clone())).await?)?
        }
        AdminCommand::Refresh { provider, target } => refresh(pool, &id(provider), target).await?,
        AdminCommand::Move {
            provider,
            target,
            position,
        } => json(
            &admin
                .move_entry(&id(provider), Target(target.clone()), *position)
                .await?,
        )?,
        AdminCommand::Strategy { provider, strategy } => {
            let strategy: Strategy = strategy.parse().map_err(anyhow::Error::msg)?;
            admin.set_strategy(&id(provider), strategy).await?;
            serde_json::json!({ "provider": provider, "strategy": strategy })
        }
        AdminCommand::Stats { provider } => {
            let providers = match provider {
                Some(provider) => vec![id(provider)],
                None => admin
                    .list_providers()
                    .await?
                    .into_iter()
                    .map(|summary| summary.provider)
                    .collect(),
            };
            let mut pools = Vec::new();
            for provider in &providers {
                pools.push(json(&admin.stats(provider).await?)?);
            }
            let refresher = match pool.refresher() {
                Some(refresher) => json(&refresher.stats().await?)?,
                None => Value::Null,
            };
            serde_json::json!({ "pools": pools, "refresher": refresher })
        }
        AdminCommand::Events { .. } => bail!("events need a running service"),
    })
}

/// Starts a refresh and waits for its result, so the command does not end (and stop the
/// refresher) while the refresh token is out.
///
/// The pool may already be refreshing the entry when it starts (a grant without an access
/// token is refreshed at once). Events published before the pool handled this request are
/// in the subscription before the reply, so they are drained first; then the command waits
/// for the entry's next result and for the refresher to have nothing in flight.
async fn refresh(pool: &Credpool, provider: &ProviderId, target: &str) -> anyhow::Result<Value> {
    let admin = pool.admin();
    let mut events = admin.subscribe(provider, 256).await?;
    let view = admin.refresh(provider, Target(target.to_owned())).await?;
    let (entry, generation) = (view.id, view.generation);
    while events.try_recv().is_some() {}
    let waited = tokio::time::timeout(REFRESH_WAIT, async {
        while let Some(event) = events.recv().await {
            match event {
                PoolEvent::Refreshed {
                    entry: refreshed,
                    generation: new,
                    ..
                } if refreshed == entry && new > generation => return,
                PoolEvent::RefreshFailed { entry: failed, .. }
                | PoolEvent::Dead { entry: failed, .. }
                    if failed == entry =>
                {
                    return;
                }
                _ => {}
            }
        }
    })
    .await;
    if waited.is_err() {
        bail!(
            "the refresh did not finish within {} s",
            REFRESH_WAIT.as_secs()
        );
    }
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    while let Some(refresher) = pool.refresher()
        && refresher.stats().await?.in_flight > 0
    {
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "a token exchange is still in flight after {} s",
                REFRESH_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snapshot = admin.snapshot(provider).await?;
    let view = snapshot
        .entries
        .iter()
        .find(|candidate| candidate.id == entry)
        .context("the entry disappeared during the refresh")?;
    json(view)
}
