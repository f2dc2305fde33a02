//! Refreshing OAuth grants for credpool.
//!
//! Today this crate holds the token endpoint clients ([`endpoint`]): one shared OAuth 2.0
//! `refresh_token` grant, a small client per provider on top of it, and a per-host limiter for
//! token-endpoint requests. The `RefresherActor` (proactive timers, on-demand single-flight
//! refreshes, backoff) is being added on top of them.
//!
//! **Invariant:** no function here persists anything or decides a credential's status; it
//! turns one HTTP exchange into a typed [`endpoint::TokenResponse`] or
//! [`endpoint::RefreshError`], and never puts a token into an error or a log line.

pub mod endpoint;
