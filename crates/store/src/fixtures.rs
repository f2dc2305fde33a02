//! Entries and helpers shared by the unit tests of every module.
//!
//! **Invariant:** canary values are unique strings that appear nowhere else, so finding one in
//! a file proves that file holds that secret.

use std::collections::BTreeMap;
use std::path::Path;

use credpool_core::{
    ClientMetadata, CooldownCause, DeadReason, Entry, EntryId, EntryKind, Generation, LastError,
    OAuthTokens, ProviderId, Secret, SecretSource, Status, Timestamp, Usage,
};

/// An owned API key that must be found in the store files.
pub(crate) const OWNED_CANARY: &str = "sk-owned-canary-3b8e41f09d7c";
/// A borrowed API key (env var) that must never be found in the store files.
pub(crate) const ENV_CANARY: &str = "sk-env-canary-91c2a7f4e0b5";
/// A borrowed API key (file) that must never be found in the store files.
pub(crate) const FILE_CANARY: &str = "sk-file-canary-5f0d3e8a2c71";
/// A borrowed OAuth refresh token that must never be found in the store files.
pub(crate) const REFRESH_CANARY: &str = "rt-borrowed-canary-c4a19e7b6d02";

pub(crate) fn provider() -> ProviderId {
    ProviderId::new("openai")
}

pub(crate) fn api_key(id: u64, value: &str, source: SecretSource) -> Entry {
    Entry::new(
        EntryId(id),
        format!("key-{id}"),
        EntryKind::ApiKey {
            key: Secret::new(value),
        },
        source,
    )
}

pub(crate) fn env(name: &str) -> SecretSource {
    SecretSource::EnvVar {
        name: name.to_owned(),
    }
}

pub(crate) fn file(path: &Path) -> SecretSource {
    SecretSource::File {
        path: path.display().to_string(),
    }
}

pub(crate) fn oauth(id: u64, access: &str, refresh: Option<&str>, source: SecretSource) -> Entry {
    let mut entry = Entry::new(
        EntryId(id),
        format!("grant-{id}"),
        EntryKind::OAuth(OAuthTokens {
            access: Secret::new(access),
            refresh: refresh.map(Secret::new),
            expires_at: Some(Timestamp(1_800_000_000_000)),
            client: ClientMetadata {
                client_id: Some("app_client".to_owned()),
                token_endpoint: Some("https://auth.example.invalid/token".to_owned()),
                scope: Some("openid offline".to_owned()),
                obtained_at: Some(Timestamp(1_700_000_000_000)),
            },
        }),
        source,
    );
    entry.generation = Generation(7);
    entry
}

/// An entry with every optional field set: counters, a cooldown, model benches, an error.
pub(crate) fn busy(id: u64) -> Entry {
    let mut entry = api_key(id, OWNED_CANARY, SecretSource::Manual);
    entry.priority = 3;
    entry.weight = 9;
    entry.base_url = Some("https://api.example.invalid/v1".to_owned());
    entry.generation = Generation(42);
    entry.usage = Usage {
        selections: 1_000_000,
        successes: 999_000,
        failures: 1_000,
        refreshes: 0,
        last_used_at: Some(Timestamp(1_700_000_123_456)),
    };
    entry.status = Status::CoolingDown {
        until: Timestamp(1_700_003_600_000),
        cause: CooldownCause::RateLimited,
    };
    entry.model_cooldowns = BTreeMap::from([
        ("gpt-5".to_owned(), Timestamp(1_700_000_200_000)),
        ("o3".to_owned(), Timestamp(-5)),
    ]);
    entry.last_error = Some(LastError {
        kind: "rate_limited".to_owned(),
        status: Some(429),
        reason: Some("rate_limit_exceeded".to_owned()),
        message: Some("slow down".to_owned()),
        at: Timestamp(1_700_000_100_000),
    });
    entry.last_refresh_at = Some(Timestamp(1_699_000_000_000));
    entry
}

pub(crate) fn dead(id: u64) -> Entry {
    let mut entry = api_key(id, "sk-dead", SecretSource::Manual);
    entry.status = Status::Dead {
        reason: DeadReason::new("invalid_grant"),
        since: Timestamp(1_650_000_000_000),
    };
    entry
}

/// A comparable view of an entry: its `Debug` form shows secrets as fingerprints.
pub(crate) fn view(entry: &Entry) -> String {
    format!("{entry:?}")
}

/// Sorts entries by id and returns their views.
pub(crate) fn views(entries: &[Entry]) -> Vec<String> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.id);
    sorted.into_iter().map(view).collect()
}
