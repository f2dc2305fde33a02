//! The offline side of `credpool admin`: start the facade on a stopped service's store, run
//! one command, shut down (flushed).
//!
//! **Invariants:** a store held by another process is reported as locked with a pointer to
//! `--url`, never waited on or opened read-only behind the service's back; except for
//! `refresh`, the facade runs without a refresher (`refreshing(false)`), so nothing is sent
//! to a provider and no entry is benched for a refresh that was never tried; the facade is
//! always shut down (flushed), also when the command fails.

use std::time::Duration;

use anyhow::{Context, bail};
use credpool::admin::{Add, Move, Refresh, Remove, Reset, SetStrategy, Snapshot, Stats};
use credpool::{
    Credpool, CredpoolError, EntryView, KeySource, PoolEvent, ProviderId, StoreError, Target,
};
use credpool_core::{EntryId, Generation};
use serde_json::Value;

use super::{AdminArgs, AdminCommand};
use credpool_server::api::parse_strategy;
use credpool_server::config::ServeConfig;

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
    let key = match (&args.master_key_file, &config) {
        (Some(file), _) => KeySource::File(file.clone()),
        (
            None,
            Some(ServeConfig {
                master_key_file: Some(file),
                ..
            }),
        ) => KeySource::File(file.clone()),
        _ => KeySource::Standard,
    };
    if let AdminCommand::Import(import) = &args.command {
        let registry = config
            .as_ref()
            .map_or_else(credpool::ProviderRegistry::builtin, |config| {
                config.providers.clone()
            });
        return super::import::run(import, &data_dir, &key, registry).await;
    }
    if let Some(value) = super::store_ops::run(&args.command, &data_dir, &key).await? {
        return Ok(value);
    }
    let mut builder = Credpool::builder().data_dir(&data_dir);
    if let KeySource::File(file) = &key {
        builder = builder.master_key_file(file);
    }
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
    // Where the service holding the store would listen, for the hint below.
    let (listen, token_file) = match &config {
        Some(config) => (config.listen.to_string(), config.token_file.clone()),
        None => (
            credpool_server::config::DEFAULT_LISTEN.to_owned(),
            data_dir.join(credpool_server::config::DEFAULT_TOKEN_FILE),
        ),
    };
    let pool = builder
        .refresher(refresher)
        .refreshing(refreshing)
        .allow_insecure_loopback(allow_loopback)
        .start()
        .await
        .map_err(|error| match error {
            CredpoolError::Store(StoreError::Locked { path }) => anyhow::anyhow!(
                "store at {path} is locked: another process holds it (a running `credpool serve`?); use `credpool admin --url http://{listen} --token-file {}` instead",
                token_file.display()
            ),
            // These name the store's path themselves.
            CredpoolError::Store(error @ (StoreError::Damaged { .. } | StoreError::Unreadable { .. })) => {
                anyhow::Error::new(error)
            }
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

/// The provider named on the command line, or every running pool.
async fn named_or_running(
    admin: &credpool::AdminClient,
    provider: Option<&str>,
) -> anyhow::Result<Vec<ProviderId>> {
    Ok(match provider {
        Some(provider) => vec![ProviderId::new(provider)],
        None => admin
            .list_providers()
            .await?
            .into_iter()
            .map(|summary| summary.provider)
            .collect(),
    })
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
            let providers = named_or_running(&admin, provider.as_deref()).await?;
            let mut snapshots = Vec::new();
            for provider in &providers {
                snapshots.push(json(&admin.run(provider, Snapshot).await?)?);
            }
            Value::Array(snapshots)
        }
        AdminCommand::Providers => json(&admin.list_providers().await?)?,
        AdminCommand::Add(add) => {
            let provider = id(&add.provider);
            let spec = pool.providers().get(&provider);
            let entry = add
                .request()?
                .into_entry(pool.clock().as_ref(), spec.as_ref(), allow_loopback)
                .map_err(anyhow::Error::msg)?;
            json(&admin.run(&provider, Add(entry)).await?)?
        }
        AdminCommand::Remove { provider, target } => json(
            &admin
                .run(&id(provider), Remove(Target(target.clone())))
                .await?,
        )?,
        AdminCommand::Reset { provider, target } => json(
            &admin
                .run(&id(provider), Reset(Target(target.clone())))
                .await?,
        )?,
        AdminCommand::Refresh { provider, target } => refresh(pool, &id(provider), target).await?,
        AdminCommand::Move {
            provider,
            target,
            position,
        } => json(
            &admin
                .run(
                    &id(provider),
                    Move {
                        target: Target(target.clone()),
                        position: *position,
                    },
                )
                .await?,
        )?,
        AdminCommand::Strategy { provider, strategy } => {
            let strategy = parse_strategy(strategy).map_err(anyhow::Error::msg)?;
            admin.run(&id(provider), SetStrategy(strategy)).await?;
            serde_json::json!({ "provider": provider, "strategy": strategy })
        }
        AdminCommand::Stats { provider } => {
            let providers = named_or_running(&admin, provider.as_deref()).await?;
            let mut pools = Vec::new();
            for provider in &providers {
                pools.push(json(&admin.run(provider, Stats).await?)?);
            }
            let refresher = match pool.refresher() {
                Some(refresher) => json(&refresher.stats().await?)?,
                None => Value::Null,
            };
            serde_json::json!({ "pools": pools, "refresher": refresher })
        }
        AdminCommand::Events { .. } => bail!("events need a running service"),
        AdminCommand::Backup { .. }
        | AdminCommand::Restore { .. }
        | AdminCommand::Recover { .. }
        | AdminCommand::Rekey { .. }
        | AdminCommand::Import(_) => {
            bail!("handled on the store itself")
        }
    })
}

/// Whether `event` ends the wait for a refresh of `entry` asked for when its generation was
/// `generation`: a newer generation committed, or the refresh failed, or the entry died.
fn ends_refresh(event: &PoolEvent, entry: EntryId, generation: Generation) -> bool {
    match event {
        PoolEvent::Refreshed {
            entry: refreshed,
            generation: new,
            ..
        } => *refreshed == entry && *new > generation,
        PoolEvent::RefreshFailed { entry: failed, .. } | PoolEvent::Dead { entry: failed, .. } => {
            *failed == entry
        }
        _ => false,
    }
}

/// Starts a refresh and waits for its result, so the command does not end (and stop the
/// refresher) while the refresh token is out.
///
/// The pool may already be refreshing the entry when it starts (a grant without an access
/// token is refreshed at once). The events queued when the reply arrives are drained, and
/// any of them may already be this refresh's result (a fast exchange commits before the
/// reply is read): a `Refreshed` newer than the reply's generation, or a failure of the
/// entry, ends the wait there. Otherwise the command waits for the entry's next result; if
/// none arrives in time, the snapshot's generation decides. Then it waits for the refresher to
/// have nothing in flight.
async fn refresh(pool: &Credpool, provider: &ProviderId, target: &str) -> anyhow::Result<Value> {
    let admin = pool.admin();
    let mut events = admin.subscribe(provider, 256, None).await?;
    let view = admin
        .run(provider, Refresh(Target(target.to_owned())))
        .await?;
    let (entry, generation) = (view.id, view.generation);
    let mut done = false;
    while let Some(event) = events.try_recv() {
        done |= ends_refresh(&event.event, entry, generation);
    }
    if !done {
        let waited = tokio::time::timeout(REFRESH_WAIT, async {
            while let Some(event) = events.recv().await {
                if ends_refresh(&event.event, entry, generation) {
                    return;
                }
            }
        })
        .await;
        if waited.is_err() && entry_view(pool, provider, entry).await?.generation <= generation {
            bail!(
                "the refresh did not finish within {} s",
                REFRESH_WAIT.as_secs()
            );
        }
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
    json(&entry_view(pool, provider, entry).await?)
}

/// The entry's current view.
async fn entry_view(
    pool: &Credpool,
    provider: &ProviderId,
    entry: EntryId,
) -> anyhow::Result<EntryView> {
    pool.admin()
        .run(provider, Snapshot)
        .await?
        .entries
        .into_iter()
        .find(|candidate| candidate.id == entry)
        .context("the entry disappeared during the refresh")
}

#[cfg(test)]
mod tests {
    use credpool::{PoolEvent, ProviderId};
    use credpool_core::{EntryId, Generation};

    use super::ends_refresh;

    #[test]
    fn a_newer_generation_or_a_failure_of_the_entry_ends_a_refresh() {
        let (entry, other) = (EntryId::from_random(1), EntryId::from_random(2));
        let at = Generation::FIRST;
        let refreshed = |entry, generation| PoolEvent::Refreshed {
            provider: ProviderId::new("xai-oauth"),
            entry,
            generation,
        };
        assert!(ends_refresh(&refreshed(entry, at.next()), entry, at));
        assert!(!ends_refresh(&refreshed(entry, at), entry, at));
        assert!(!ends_refresh(&refreshed(other, at.next()), entry, at));
        let failed = |entry| PoolEvent::RefreshFailed {
            provider: ProviderId::new("xai-oauth"),
            entry,
            reason: "invalid_grant".to_owned(),
        };
        assert!(ends_refresh(&failed(entry), entry, at));
        assert!(!ends_refresh(&failed(other), entry, at));
        let dead = PoolEvent::Dead {
            provider: ProviderId::new("xai-oauth"),
            entry,
            reason: "revoked".to_owned(),
        };
        assert!(ends_refresh(&dead, entry, at));
    }
}
