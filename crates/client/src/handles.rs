//! A per-provider cache of [`PoolHandle`]s over a [`PoolRegistry`].
//!
//! **Invariants:**
//! - A cached handle whose actor is no longer alive is never returned: it is resolved again
//!   through the registry (the supervisor may have restarted the pool).
//! - [`HandleCache::call`] re-resolves at most once per call when the pool answers
//!   `Stopped`, so a pool that stays down yields `Stopped` instead of a spin.
//! - The lock is held only to read or insert a handle, never across an await.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{PoisonError, RwLock};

use credpool_core::ProviderId;
use credpool_pool_actor::{PoolError, PoolHandle, PoolRegistry};

/// The registry plus the handles resolved from it.
#[derive(Debug)]
pub(crate) struct HandleCache {
    registry: PoolRegistry,
    /// A std lock: reads are a hash lookup and a clone, never held across an await.
    handles: RwLock<HashMap<ProviderId, PoolHandle>>,
}

impl HandleCache {
    pub(crate) fn new(registry: PoolRegistry) -> Self {
        HandleCache {
            registry,
            handles: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn registry(&self) -> &PoolRegistry {
        &self.registry
    }

    /// Returns the provider's handle, resolving it through the registry when it is not cached
    /// or its actor has stopped.
    pub(crate) async fn handle(&self, provider: &ProviderId) -> Result<PoolHandle, PoolError> {
        let cached = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .cloned();
        if let Some(handle) = cached.filter(PoolHandle::is_alive) {
            return Ok(handle);
        }
        let handle = self.registry.pool(provider).await?;
        self.handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(provider.clone(), handle.clone());
        Ok(handle)
    }

    /// Drops a cached handle so the next call resolves the provider again.
    pub(crate) fn forget(&self, provider: &ProviderId) {
        self.handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(provider);
    }

    /// Runs `call` on the provider's handle; when the pool answers `Stopped`, resolves the
    /// provider once more and runs it again.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        provider: &ProviderId,
        call: F,
    ) -> Result<T, PoolError>
    where
        F: Fn(PoolHandle) -> Fut,
        Fut: Future<Output = Result<T, PoolError>>,
    {
        let handle = self.handle(provider).await?;
        match call(handle).await {
            Err(PoolError::Stopped) => {
                tracing::debug!(provider = %provider, "pool stopped; resolving it again");
                self.forget(provider);
                let handle = self.handle(provider).await?;
                call(handle).await
            }
            other => other,
        }
    }
}
