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

use credpool::admin::Ensure;
use credpool::{AdminClient, NewEntry, Secret};
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
pub async fn seed(admin: &AdminClient, seeds: &[Seed]) -> anyhow::Result<SeedReport> {
    let mut report = SeedReport::default();
    for seed in seeds {
        let provider = &seed.provider;
        let (entry, missing) = new_entry(seed);
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

fn entry_source(seed: &Seed) -> &SecretFrom {
    match &seed.credential {
        SeedCredential::ApiKey(from) | SeedCredential::RefreshToken(from) => from,
    }
}
