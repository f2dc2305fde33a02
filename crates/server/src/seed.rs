//! Seeding: the configuration's entries enter the pools once.
//!
//! **Invariants:**
//! - An entry is added only when its provider's pool holds no entry with that label
//!   (case-insensitive). A restart on the same data dir neither duplicates entries nor
//!   overwrites what the store holds: a rotated refresh token in the store wins over the
//!   file's original one, and admin changes (reset, move, strategy) stay.
//! - Borrowed secrets (env var, file) are added with their source, so the store keeps only
//!   their fingerprint and the pool re-reads them at every start.
//! - No secret value reaches a log line: a missing source is logged by name only.
//! - A borrowed OAuth grant is never seeded with a refresh token this data dir already sent,
//!   nor into a data dir that was used before and lost its store (a replay revokes the
//!   grant): the start fails and says why.

use credpool::admin::{Ensure, Snapshot};
use credpool::{AdminClient, NewEntry, Secret, Store, Target};
use credpool_core::{ClientMetadata, EntryKind, OAuthTokens, SecretSource};
use credpool_store::read_secret_file;

use super::config::{SecretFrom, Seed, SeedCredential};

/// What seeding did.
#[derive(Debug, Default)]
pub struct SeedReport {
    /// Entries added now.
    pub added: usize,
    /// Entries the store already held.
    pub kept: usize,
}

/// Reads a seeded secret; a missing or empty source gives an empty secret and a warning.
fn read_secret(from: &SecretFrom) -> (Secret, SecretSource) {
    match from {
        SecretFrom::Env(name) => {
            let value = std::env::var(name).unwrap_or_default();
            (
                Secret::new(value),
                SecretSource::EnvVar { name: name.clone() },
            )
        }
        SecretFrom::File(path) => {
            let value = read_secret_file(path).unwrap_or_else(|reason| {
                tracing::warn!(path = %path.display(), %reason, "cannot read the secret file");
                Secret::new("")
            });
            (
                value,
                SecretSource::File {
                    path: path.display().to_string(),
                },
            )
        }
        SecretFrom::Inline(secret) => (secret.clone(), SecretSource::Manual),
    }
}

/// Builds the entry a seed describes, reading its secret now.
pub fn new_entry(seed: &Seed) -> (NewEntry, bool) {
    let (kind, source, missing) = match &seed.credential {
        SeedCredential::ApiKey(from) => {
            let (key, source) = read_secret(from);
            let missing = key.is_empty();
            (EntryKind::ApiKey { key }, source, missing)
        }
        SeedCredential::RefreshToken(from) => {
            let (refresh, source) = read_secret(from);
            let source = match source {
                SecretSource::Manual => SecretSource::OAuthGrant,
                borrowed => borrowed,
            };
            let missing = refresh.is_empty();
            let tokens = OAuthTokens {
                access: Secret::new(""),
                refresh: Some(refresh),
                expires_at: None,
                client: ClientMetadata {
                    client_id: seed.client_id.clone(),
                    token_endpoint: seed.token_url.clone(),
                    scope: None,
                    obtained_at: None,
                },
            };
            (EntryKind::OAuth(tokens), source, missing)
        }
    };
    let entry = NewEntry {
        label: seed.label.clone(),
        kind,
        source,
        priority: seed.priority,
        base_url: seed.base_url.clone(),
        weight: seed.weight,
    };
    (entry, missing)
}

/// Adds every seed whose label its pool does not hold yet.
///
/// # Errors
/// A pool cannot be read or refuses an entry.
pub async fn seed(
    admin: &AdminClient,
    store: &dyn Store,
    used_before: bool,
    seeds: &[Seed],
) -> anyhow::Result<SeedReport> {
    let mut report = SeedReport::default();
    for seed in seeds {
        let provider = &seed.provider;
        let held = admin
            .run(provider, Snapshot)
            .await?
            .resolve(&Target(seed.label.clone()))
            .is_ok_and(|entry| entry.label.eq_ignore_ascii_case(&seed.label));
        if held {
            report.kept += 1;
            continue;
        }
        let (entry, missing) = new_entry(seed);
        refuse_spent_seed(seed, &entry, store, used_before)?;
        let ensured = admin.run(provider, Ensure(entry)).await.map_err(|error| {
            anyhow::anyhow!("cannot seed entry {:?} of {provider}: {error}", seed.label)
        })?;
        if !ensured.added {
            report.kept += 1;
            continue;
        }
        if missing {
            tracing::warn!(
                provider = %provider,
                label = %seed.label,
                source = ?entry_source(seed),
                "secret source missing or empty; entry added without a secret"
            );
        }
        tracing::debug!(provider = %provider, entry = %ensured.entry.id, label = %ensured.entry.label, "entry seeded from config");
        report.added += 1;
    }
    Ok(report)
}

/// Refuses to seed a borrowed OAuth grant whose refresh token this data dir already spent,
/// or any borrowed grant into a data dir that lost its store: sending a spent refresh token
/// is a replay, and the provider revokes the whole grant for it.
fn refuse_spent_seed(
    seed: &Seed,
    entry: &NewEntry,
    store: &dyn Store,
    used_before: bool,
) -> anyhow::Result<()> {
    let SeedCredential::RefreshToken(from @ (SecretFrom::Env(_) | SecretFrom::File(_))) =
        &seed.credential
    else {
        return Ok(());
    };
    let EntryKind::OAuth(tokens) = &entry.kind else {
        return Ok(());
    };
    let Some(refresh) = tokens.refresh.as_ref().filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    if store.refresh_token_spent(&refresh.fingerprint()) {
        anyhow::bail!(
            "entry {:?} of {}: the refresh token in {from:?} was already sent by this data dir (its grant was refreshed, then removed or lost); seeding it again would replay a spent token and get the grant revoked — sign in again and put the new refresh token there",
            seed.label,
            seed.provider
        );
    }
    if used_before && store.history_is_new() {
        anyhow::bail!(
            "entry {:?} of {}: this data dir was used before (it has an admin token) but its store is new — it lost its state, and the refresh token in {from:?} may be spent; restore a backup (`credpool admin restore`), or sign in again and put a new refresh token there",
            seed.label,
            seed.provider
        );
    }
    Ok(())
}

fn entry_source(seed: &Seed) -> &SecretFrom {
    match &seed.credential {
        SeedCredential::ApiKey(from) | SeedCredential::RefreshToken(from) => from,
    }
}
