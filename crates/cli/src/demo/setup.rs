//! The demo's world: the fake provider's endpoints, the pool's short timings, the seeded entries, and what is saved for the next run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use credpool::admin::Add;
use credpool::{
    Clock, CooldownConfig, Credpool, NewEntry, PoolConfig, ProviderRegistry, Secret, Strategy,
    SystemClock, api_key_entry, oauth_entry,
};
use credpool_test_support::{ApiKeyMode, FakeProvider};
use rand::Rng;

use super::shared::*;

/// The built-in providers with `xai-oauth`'s token endpoint at the fake.
pub(super) fn demo_providers(fake: &FakeProvider) -> ProviderRegistry {
    let mut providers = ProviderRegistry::builtin();
    // xai-oauth is a built-in OAuth provider: the override cannot fail.
    let _ = providers.set_token_url(&xai(), &fake.token_url());
    providers
}

/// Round robin (so every entry meets the faults) with the demo's shortened timings.
pub(super) fn demo_pool_config() -> PoolConfig {
    PoolConfig {
        strategy: Strategy::RoundRobin,
        cooldown: CooldownConfig {
            refresh_failed: REFRESH_FAILED_COOLDOWN,
            ..CooldownConfig::default()
        },
        refresh_loop_guard: REFRESH_LOOP_GUARD,
        ..PoolConfig::default()
    }
}

/// Adds the demo's keys and grants to a new pool; returns the keys by label.
pub(super) async fn seed(
    pool: &Credpool,
    fake: &FakeProvider,
) -> anyhow::Result<BTreeMap<String, String>> {
    let admin = pool.admin();
    let mut keys = BTreeMap::new();
    for label in OPENAI_KEYS {
        let secret = format!("sk-demo-{:032x}", rand::rng().random::<u128>());
        fake.add_api_key(&secret, ApiKeyMode::Ok);
        let entry = NewEntry {
            base_url: Some(fake.api_url()),
            ..api_key_entry(label, Secret::new(secret.clone()))
        };
        admin.run(&openai(), Add(entry)).await?;
        keys.insert(label.to_owned(), secret);
    }
    for label in XAI_GRANTS {
        let (access, refresh) = fake.grant(label);
        let expires_at = SystemClock.now().plus(ACCESS_LIFETIME);
        let entry = NewEntry {
            base_url: Some(fake.api_url()),
            ..oauth_entry(label, access, refresh, Some(expires_at))
        };
        admin.run(&xai(), Add(entry)).await?;
    }
    Ok(keys)
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the fake's address and keys atomically with mode 0600.
pub(super) fn save_fake(
    path: &Path,
    fake: &FakeProvider,
    keys: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let saved = SavedFake {
        addr: fake.addr(),
        keys: keys.clone(),
    };
    credpool_server::private_file::write(path, &serde_json::to_vec(&saved)?)
}
