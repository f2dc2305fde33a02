//! [`AdminClient`]: a typed handle over the pools' admin messages.
//!
//! **Invariant:** admin output never holds a secret: every view it returns is the pool's
//! redacted view (fingerprints, not values).

use credpool_core::{
    ClientMetadata, EntryKind, OAuthTokens, ProviderId, Secret, SecretSource, Strategy, Timestamp,
};
use credpool_pool_actor::{
    EntryView, EventStream, NewEntry, PoolRegistry, PoolSnapshot, PoolStats, ProviderSummary,
    Target,
};

use crate::error::ClientError;
use crate::handles::HandleCache;

/// Lists, inspects and changes pools. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AdminClient {
    handles: std::sync::Arc<HandleCache>,
}

impl AdminClient {
    /// Builds an admin client over a running registry.
    pub fn new(registry: PoolRegistry) -> Self {
        AdminClient {
            handles: std::sync::Arc::new(HandleCache::new(registry)),
        }
    }

    /// Lists the running pools.
    pub async fn list_providers(&self) -> Result<Vec<ProviderSummary>, ClientError> {
        Ok(self.handles.registry().list_providers().await?)
    }

    /// Returns a redacted snapshot of a provider's pool.
    pub async fn snapshot(&self, provider: &ProviderId) -> Result<PoolSnapshot, ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| async move { pool.snapshot().await })
            .await?)
    }

    /// Adds an entry; answers once it is durable.
    pub async fn add(
        &self,
        provider: &ProviderId,
        entry: NewEntry,
    ) -> Result<EntryView, ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| {
                let entry = entry.clone();
                async move { pool.add_entry(entry).await }
            })
            .await?)
    }

    /// Removes an entry; answers once the removal is durable.
    pub async fn remove(
        &self,
        provider: &ProviderId,
        target: Target,
    ) -> Result<EntryView, ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| {
                let target = target.clone();
                async move { pool.remove_entry(target).await }
            })
            .await?)
    }

    /// Clears an entry's cooldown, model benches or death.
    pub async fn reset(
        &self,
        provider: &ProviderId,
        target: Target,
    ) -> Result<EntryView, ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| {
                let target = target.clone();
                async move { pool.reset_entry(target).await }
            })
            .await?)
    }

    /// Starts a refresh of an OAuth entry now.
    pub async fn refresh(
        &self,
        provider: &ProviderId,
        target: Target,
    ) -> Result<EntryView, ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| {
                let target = target.clone();
                async move { pool.refresh_entry(target).await }
            })
            .await?)
    }

    /// Moves an entry to a 1-based position in priority order.
    pub async fn move_entry(
        &self,
        provider: &ProviderId,
        target: Target,
        position: usize,
    ) -> Result<EntryView, ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| {
                let target = target.clone();
                async move { pool.move_entry(target, position).await }
            })
            .await?)
    }

    /// Sets a pool's selection strategy.
    pub async fn set_strategy(
        &self,
        provider: &ProviderId,
        strategy: Strategy,
    ) -> Result<(), ClientError> {
        Ok(self
            .handles
            .call(
                provider,
                |pool| async move { pool.set_strategy(strategy).await },
            )
            .await?)
    }

    /// Returns a pool's counters.
    pub async fn stats(&self, provider: &ProviderId) -> Result<PoolStats, ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| async move { pool.stats().await })
            .await?)
    }

    /// Subscribes to a pool's events with a buffer of `capacity` events.
    pub async fn subscribe(
        &self,
        provider: &ProviderId,
        capacity: usize,
    ) -> Result<EventStream, ClientError> {
        Ok(self
            .handles
            .call(
                provider,
                |pool| async move { pool.subscribe(capacity).await },
            )
            .await?)
    }

    /// Writes behind a pool's counters and flushes the store.
    pub async fn flush(&self, provider: &ProviderId) -> Result<(), ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| async move { pool.flush().await })
            .await?)
    }
}

/// Builds a [`NewEntry`] for an API key entered by hand.
pub fn api_key_entry(label: &str, key: Secret) -> NewEntry {
    NewEntry {
        label: label.to_owned(),
        kind: EntryKind::ApiKey { key },
        source: SecretSource::Manual,
        priority: None,
        base_url: None,
        weight: None,
    }
}

/// Builds a [`NewEntry`] for an OAuth grant (an access token and its refresh token).
pub fn oauth_entry(
    label: &str,
    access: Secret,
    refresh: Secret,
    expires_at: Option<Timestamp>,
) -> NewEntry {
    NewEntry {
        label: label.to_owned(),
        kind: EntryKind::OAuth(OAuthTokens {
            access,
            refresh: Some(refresh),
            expires_at,
            client: ClientMetadata::default(),
        }),
        source: SecretSource::OAuthGrant,
        priority: None,
        base_url: None,
        weight: None,
    }
}
