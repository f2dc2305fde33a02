#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Secrets never reach a log line or an error. Alone in its binary: the tracing capture is
//! thread-local, and other tests on other threads would disable callsites it needs.

mod support;

use credpool_test_support::ApiKeyMode;
use support::*;

#[tokio::test]
async fn no_secret_reaches_logs_or_errors() {
    let (_guard, logs) = credpool_test_support::capture_tracing();
    let world = World::start(StoreKind::Memory, quick()).await;
    let provider = openai();
    let canary_a = "sk-canary-aaaaaaaaaaaaaaaa";
    let canary_b = "sk-canary-bbbbbbbbbbbbbbbb";
    world
        .add_labelled_key(&provider, "a", canary_a, throttled())
        .await;
    world
        .add_labelled_key(&provider, "b", canary_b, ApiKeyMode::Invalid)
        .await;
    let http = world.http.clone();
    let error = world
        .client
        .with_recovery(&provider, |credential| chat(&http, credential))
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?}");
    let text = credpool_test_support::captured_text(&logs);
    assert!(text.contains("request failed"), "the capture works: {text}");
    for canary in [canary_a, canary_b] {
        assert!(!shown.contains(canary), "error shows a secret: {shown}");
        assert!(!text.contains(canary), "a log line shows a secret");
    }
}
