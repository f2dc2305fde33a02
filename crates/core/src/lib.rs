//! The pure domain of credpool.
//!
//! Everything here is synchronous and free of I/O: identifiers, [`Secret`] values, credential
//! entries and their statuses, the classification of a provider's HTTP answer into a typed
//! [`Classification`], reset-time parsing, the cooldown policy, the selection strategies and the
//! provider registry. Deadlines are computed from a [`Clock`] the caller injects.
//!
//! **Invariant:** this crate performs no I/O, spawns nothing and reads no global clock except
//! through [`SystemClock`]; every other crate builds on its types.

pub mod availability;
pub mod classify;
pub mod clock;
pub mod cooldown;
pub mod entry;
pub mod ids;
pub mod outcome;
pub mod registry;
pub mod reset;
pub mod secret;
pub mod strategy;

pub use availability::Unavailable;
pub use classify::{ClassifyInput, classify};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use cooldown::{CooldownConfig, CooldownDecision, PoolShape, decide_cooldown};
pub use entry::{
    ClientMetadata, CooldownCause, CredentialKind, DeadReason, Entry, EntryKind, LastError,
    OAuthTokens, SecretSource, Status, StatusKind, Usage,
};
pub use ids::{EntryId, Generation, ProviderId};
pub use outcome::{Class, Classification, FailureKind, Outcome, RateLimitScope, TransientCause};
pub use registry::{ProviderRegistry, ProviderSpec, RegistryError, TokenEndpointSpec};
pub use secret::{Fingerprint, Secret};
pub use strategy::{Candidate, LeaseCap, Strategy, StrategyState};
