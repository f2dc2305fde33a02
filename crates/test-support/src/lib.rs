//! Test support for credpool: a strict fake provider, a poller and a log capture.
//!
//! - [`FakeProvider`]: an axum server on `127.0.0.1:0` that behaves like a strict OAuth
//!   provider (rotating single-use refresh tokens, reuse detection that revokes the whole
//!   family, an optional grace window) and an API that answers like the real ones, with
//!   switchable faults. Used by tests, benchmarks and the demo.
//! - [`eventually`]: polls a condition on tokio time, so it works under paused time.
//! - [`capture_tracing`]: records every event at TRACE level into a buffer, so tests can grep
//!   for canary secrets.
//!
//! **Invariant:** everything here binds loopback only and never reaches the network.

// Test code: a broken fixture should fail loudly, so `unwrap`/`expect` are allowed here (the
// library parts still prefer poison-tolerant locking and typed results where that is cheap).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod eventually;
pub mod fake_provider;
pub mod tracing_capture;

pub use eventually::{eventually, eventually_async};
pub use fake_provider::{
    ApiKeyMode, FakeProvider, FakeProviderConfig, FakeState, ReuseAnswer, TokenFault,
    TokenRequestRecord,
};
pub use tracing_capture::{capture_tracing, captured_text};
