//! Refreshing OAuth grants for credpool.
//!
//! Two layers: the token endpoint clients ([`endpoint`]) — one shared OAuth 2.0
//! `refresh_token` grant, a small client per provider on top of it, and a per-host limiter for
//! token-endpoint requests — and the [`Refresher`] actor on top of them (proactive timers,
//! on-demand single-flight refreshes, jittered backoff), which the pool uses as its
//! refresh seam.
//!
//! **Invariant:** no function here persists anything or decides a credential's status; it
//! turns one HTTP exchange into a typed [`endpoint::TokenResponse`] or
//! [`endpoint::RefreshError`], and never puts a token into an error or a log line.

mod actor;
mod config;
pub mod endpoint;
pub mod policy;
mod schedule;
mod stats;

pub use actor::{
    Refresher, RefresherConfig, RefresherError, RefresherStats, backoff_delay, refresh_due_at,
};
