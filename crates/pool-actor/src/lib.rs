//! The pool actor: one owner per provider for entries, leases, cooldowns and refresh
//! coordination, plus the registry that routes to it and the admin message API.
//!
//! A [`PoolRegistry`] (a ractor supervisor) spawns one `PoolActor` per provider and restarts it
//! from the store if it fails. Callers never see an `ActorRef`: they hold a [`PoolHandle`],
//! which sends `PoolMsg`s and turns replies into typed results, and [`Lease`]s, which go back
//! to their pool when released or dropped. For the hot path the actor publishes an immutable
//! snapshot of its entries after every change and before the reply that caused it; a handle
//! leases from it without a message when it can (fill-first, soft cap) and asks the actor
//! otherwise (see `fast.rs` and `docs/PERFORMANCE.md`).
//!
//! **Invariants:**
//! - One owner: a provider's entries are changed only by its `PoolActor`, in memory and in the
//!   store.
//! - Leases carry a generation; a report against an older generation is answered with the
//!   current credential (no refresh, no cooldown).
//! - Select does no I/O. Status and token changes are written through and flushed before the
//!   reply; usage counters and the round-robin cursor are written behind in batches.
//! - Rotated tokens are committed and flushed before any lease carries them.
//! - No secret reaches a log line, an error or a `Debug` output.

pub mod admin;
mod clock;
mod error;
mod events;
mod fast;
mod handle;
mod join;
mod lease;
mod messages;
mod pool;
mod refresh;
mod registry;
mod view;

pub use admin::{AdminOp, Ensured, NewEntry, Target};
pub use clock::TokioClock;
pub use error::PoolError;
pub use events::{EVENT_HISTORY, EventRecord, EventStream, PoolEvent};
pub use handle::PoolHandle;
pub use lease::{Lease, LeaseTicket};
pub use pool::{CapMode, PoolConfig};
pub use refresh::{
    NoRefresher, RefreshCallback, RefreshFailure, RefreshRequest, RefreshResult, RefreshSeam,
    TrackUpdate,
};
pub use registry::{PoolRegistry, RegistryConfig};
pub use view::{EntryView, PoolSnapshot, PoolStats, ProviderSummary};
