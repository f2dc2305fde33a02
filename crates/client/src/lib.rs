//! The handle an agent runtime's workers hold on credpool: acquire a credential, report how
//! it went, or let the client run a request with recovery; plus a `reqwest` middleware and
//! the admin client.
//!
//! - [`PoolClient`]: cheap to clone, one per runtime. [`PoolClient::acquire`] /
//!   [`PoolClient::acquire_for_url`] lease a credential; [`PoolClient::report`] and
//!   [`PoolClient::report_auth_failure`] tell the pool what happened;
//!   [`PoolClient::with_recovery`] runs a request closure and handles refresh, rotation and
//!   transient retries (see its docs for the exact rules).
//! - [`PoolMiddleware`]: the same recovery for `reqwest_middleware` clients, with the
//!   credential injected as the provider's header.
//! - [`AdminClient`]: list, inspect and change pools.
//!
//! **Invariants:**
//! - The client owns no credential state; the pool actor decides statuses, cooldowns and
//!   refreshes, and the client only tells it typed outcomes classified once by
//!   `credpool-core`.
//! - A recovery loop converges: at most N+1 credential attempts for N entries (transient
//!   same-credential retries are the caller's separate budget), and when nothing is left the
//!   error carries the last real rejection and `next_available_at`.
//! - A rejection from an origin other than the credential's endpoint never blames the
//!   credential.
//! - No secret appears in an error, a log line or a `Debug` output of this crate.
//!
//! # Embedding in a runtime
//!
//! Three workers share one pool of two API keys (no network: the "request" is a stand-in):
//!
//! ```
//! use std::sync::Arc;
//! use credpool_client::{AdminClient, PoolClient, RecoveryConfig, RequestFailure, api_key_entry};
//! use credpool_core::{ProviderId, ProviderRegistry, Secret, SystemClock};
//! use credpool_pool_actor::{NoRefresher, PoolRegistry, RegistryConfig};
//! use credpool_pool_actor::admin::Ensure;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let store = Arc::new(credpool_store::MemoryStore::new());
//!     let registry = PoolRegistry::start(RegistryConfig::default(), store, Arc::new(SystemClock), Arc::new(NoRefresher)).await?;
//!     let openai = ProviderId::new("openai");
//!     let admin = AdminClient::new(registry.clone());
//!     for key in ["key-one", "key-two"] {
//!         admin.run(&openai, Ensure(api_key_entry(key, Secret::new(key)))).await?;
//!     }
//!     let client = PoolClient::new(registry, ProviderRegistry::builtin(), RecoveryConfig::default());
//!     let workers = ["title", "compression", "vision"].map(|worker| {
//!         let (client, openai) = (client.clone(), openai.clone());
//!         tokio::spawn(async move {
//!             client.with_recovery(&openai, |credential| async move {
//!                 // A real worker sends its request with `credential.header()?` here.
//!                 Ok::<_, RequestFailure>(format!("{worker} used {}", credential.label()))
//!             }).await
//!         })
//!     });
//!     for worker in workers {
//!         println!("{}", worker.await??);
//!     }
//!     Ok(())
//! }
//! ```

mod admin_client;
mod client;
mod context;
mod credential;
mod decision;
mod entries;
mod error;
mod failure;
mod handles;
mod middleware;
mod recovery;

pub use admin_client::AdminClient;
pub use client::PoolClient;
pub use context::RecoveryConfig;
pub use credential::Credential;
pub use decision::{Decision, Verdict};
pub use entries::{api_key_entry, env_api_key_entry, oauth_entry, with_token_url};
pub use error::ClientError;
pub use failure::{FailedRequest, RequestFailure};
pub use middleware::PoolMiddleware;

pub use credpool_core::{Classification, Outcome, ProviderId, Timestamp};
pub use credpool_pool_actor::{
    AdminOp, Ensured, EntryView, EventRecord, EventStream, Lease, NewEntry, PoolEvent,
    PoolSnapshot, PoolStats, ProviderSummary, Target, admin,
};
