//! Polling a condition until it holds, on tokio time.
//!
//! **Invariant:** waiting uses `tokio::time`, never the OS clock, so a test under
//! `start_paused = true` advances instantly instead of sleeping.

use std::future::Future;
use std::time::Duration;

/// How often a condition is re-checked.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Polls `condition` until it returns `true` or `timeout` (tokio time) has passed; returns
/// whether it held. Use as `assert!(eventually(|| ..., Duration::from_secs(5)).await)`.
pub async fn eventually<F>(mut condition: F, timeout: Duration) -> bool
where
    F: FnMut() -> bool,
{
    eventually_async(move || std::future::ready(condition()), timeout).await
}

/// Like [`eventually`], for a condition that must itself await (an actor call).
pub async fn eventually_async<F, Fut>(mut condition: F, timeout: Duration) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
