//! The workers (title, compression, vision) and the fault schedule.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use credpool::{ClientError, Clock, PoolClient, ProviderId, RequestFailure, SystemClock};
use credpool_test_support::{ApiKeyMode, FakeProvider, TokenFault};
use rand::Rng;

use super::shared::*;

/// One worker: a request every 150–400 ms until the deadline. Returns whether its last
/// request succeeded (a worker that ends on an unrecovered error is a failed worker).
pub(super) async fn worker(
    name: String,
    provider: ProviderId,
    client: PoolClient,
    http: reqwest::Client,
    tally: Arc<Tally>,
    deadline: tokio::time::Instant,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut last_ok = true;
    let running = || tokio::time::Instant::now() < deadline && !*stopping.borrow();
    while running() {
        tally.requests.fetch_add(1, Ordering::Relaxed);
        last_ok = loop {
            let result = client
                .with_recovery(&provider, |credential| {
                    let http = http.clone();
                    let name = name.clone();
                    async move { chat(&http, &name, credential).await }
                })
                .await;
            match result {
                Ok(()) => {
                    tally.succeeded.fetch_add(1, Ordering::Relaxed);
                    break true;
                }
                // Nothing usable now: wait for the earliest entry, as a runtime would.
                Err(ClientError::Exhausted {
                    next_available_at, ..
                }) => {
                    tally.exhausted_waits.fetch_add(1, Ordering::Relaxed);
                    let wait = next_available_at
                        .map(|at| at.since(SystemClock.now()))
                        .unwrap_or(Duration::from_secs(1))
                        .clamp(Duration::from_millis(100), Duration::from_secs(5));
                    if tokio::time::Instant::now() + wait >= deadline || !running() {
                        tally.unrecovered.fetch_add(1, Ordering::Relaxed);
                        break false;
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    tracing::warn!(worker = %name, %error, "request failed");
                    tally.unrecovered.fetch_add(1, Ordering::Relaxed);
                    break false;
                }
            }
        };
        let pause = rand::rng().random_range(150..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    last_ok
}

/// One chat request with `credential` to its endpoint.
pub(super) async fn chat(
    http: &reqwest::Client,
    worker: &str,
    credential: credpool::Credential,
) -> Result<(), RequestFailure> {
    let base = credential.base_url().unwrap_or_default().to_owned();
    let (name, value) = credential
        .header()
        .map_err(|error| RequestFailure::transport(error.to_string()))?;
    let response = http
        .post(format!("{base}/chat/completions"))
        .header(name, value)
        .json(&serde_json::json!({
            "model": "demo-model",
            "messages": [{"role": "user", "content": format!("{worker} task")}],
        }))
        .send()
        .await
        .map_err(|error| RequestFailure::from_reqwest_error(&error))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(RequestFailure::from_response(response).await)
    }
}

/// The fault schedule, scaled to the run: early expiries from 1.6 s on and then every 4 s,
/// a key throttled for 1 s every 5 s, a billing 402 at 40 %, a token-endpoint 503 at 30 %,
/// a revoked grant at 60 %.
pub(super) async fn inject_faults(
    fake: Arc<FakeProvider>,
    keys: BTreeMap<String, String>,
    tally: Arc<Tally>,
    duration: Duration,
) {
    let throttled = keys.get(OPENAI_KEYS[1]).cloned().unwrap_or_default();
    let billed = keys.get(OPENAI_KEYS[2]).cloned().unwrap_or_default();
    let started = tokio::time::Instant::now();
    let at = |fraction: f64| started + duration.mul_f64(fraction);
    let mut next_expiry = started + Duration::from_millis(1600);
    let mut next_throttle = started + Duration::from_secs(2);
    let mut plan = vec![
        (at(0.3), Fault::TokenEndpoint503),
        (at(0.4), Fault::Billing),
        (at(0.6), Fault::Revoke),
    ];
    loop {
        let now = tokio::time::Instant::now();
        if now >= next_expiry {
            // Tokens younger than the loop guard are spared: a token rejected right after its
            // refresh is what the guard benches (a refresh loop), not an expiry.
            fake.expire_access_tokens_older_than(REFRESH_LOOP_GUARD + Duration::from_millis(500));
            tally.faults.fetch_add(1, Ordering::Relaxed);
            next_expiry += Duration::from_secs(4);
        }
        if now >= next_throttle {
            fake.set_api_key_mode(
                &throttled,
                ApiKeyMode::RateLimited {
                    retry_after_secs: 2,
                },
            );
            tally.faults.fetch_add(1, Ordering::Relaxed);
            let (fake, throttled) = (Arc::clone(&fake), throttled.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                fake.set_api_key_mode(&throttled, ApiKeyMode::Ok);
            });
            next_throttle += Duration::from_secs(5);
        }
        plan.retain(|(when, fault)| {
            if now < *when {
                return true;
            }
            match fault {
                Fault::TokenEndpoint503 => fake.push_fault(TokenFault::Status503),
                Fault::Billing => {
                    fake.set_api_key_mode(&billed, ApiKeyMode::Billing402);
                }
                Fault::Revoke => fake.revoke(XAI_GRANTS[2]),
            }
            tally.faults.fetch_add(1, Ordering::Relaxed);
            false
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) enum Fault {
    TokenEndpoint503,
    Billing,
    Revoke,
}
