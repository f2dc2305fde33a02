//! [`AdminClient`]: the admin operations of every pool, through one generic
//! [`AdminClient::run`].
//!
//! **Invariant:** admin output never holds a secret: every view it returns is the pool's
//! redacted view (fingerprints, not values).

use credpool_core::ProviderId;
use credpool_pool_actor::{AdminOp, EventStream, PoolRegistry, ProviderSummary};

use crate::error::ClientError;
use crate::handles::HandleCache;

/// Lists, inspects and changes pools. Cheap to clone.
///
/// ```
/// # use std::sync::Arc;
/// # use credpool_client::{AdminClient, api_key_entry};
/// # use credpool_core::{ProviderId, Secret, SystemClock};
/// # use credpool_pool_actor::{NoRefresher, PoolRegistry, RegistryConfig};
/// use credpool_pool_actor::admin::{Ensure, Reset, Snapshot};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let store = Arc::new(credpool_store::MemoryStore::new());
/// # let registry = PoolRegistry::start(RegistryConfig::default(), store, Arc::new(SystemClock), Arc::new(NoRefresher)).await?;
/// let admin = AdminClient::new(registry);
/// let openai = ProviderId::new("openai");
/// let ensured = admin.run(&openai, Ensure(api_key_entry("team", Secret::new("sk-1")))).await?;
/// assert!(ensured.added);
/// let again = admin.run(&openai, Ensure(api_key_entry("team", Secret::new("sk-1")))).await?;
/// assert!(!again.added, "ensure is idempotent");
/// admin.run(&openai, Reset("team".into())).await?;
/// assert_eq!(admin.run(&openai, Snapshot).await?.entries.len(), 1);
/// # Ok(()) }
/// ```
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

    /// Runs one admin operation ([`credpool_pool_actor::admin`]) on a provider's pool;
    /// changes are durable when it returns.
    pub async fn run<O: AdminOp>(
        &self,
        provider: &ProviderId,
        operation: O,
    ) -> Result<O::Reply, ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| {
                let operation = operation.clone();
                async move { pool.admin(operation).await }
            })
            .await?)
    }

    /// Subscribes to a pool's events with a buffer of `capacity` events; with `since`, what
    /// the pool's history holds after that event id comes first.
    pub async fn subscribe(
        &self,
        provider: &ProviderId,
        capacity: usize,
        since: Option<u64>,
    ) -> Result<EventStream, ClientError> {
        Ok(self
            .handles
            .call(provider, |pool| async move {
                pool.subscribe(capacity, since).await
            })
            .await?)
    }

    /// Subscribes to the events of every pool, including pools started later.
    pub async fn subscribe_all(
        &self,
        capacity: usize,
        since: Option<u64>,
    ) -> Result<EventStream, ClientError> {
        Ok(self
            .handles
            .registry()
            .subscribe_all(capacity, since)
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
