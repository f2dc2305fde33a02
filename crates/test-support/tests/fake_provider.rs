//! The fake provider seen from a raw reqwest client: rotation, reuse, grace, every fault, the
//! API's answers.

// Test helpers outside `#[test]` functions unwrap too: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use credpool_core::{ManualClock, Timestamp};
use credpool_test_support::{
    ApiKeyMode, FakeProvider, FakeProviderConfig, ReuseAnswer, TokenFault, capture_tracing,
    captured_text, eventually,
};
use serde_json::Value;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_refresh(fake: &FakeProvider, refresh: &str) -> (u16, String) {
    let response = client()
        .post(fake.token_url())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn field(body: &str, name: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value.get(name)?.as_str().map(str::to_owned)
}

#[tokio::test]
async fn rotation_issues_a_new_pair_and_spends_the_old_token() {
    let fake = FakeProvider::start_default().await;
    let (_, r0) = fake.grant("alice");
    let (status, body) = post_refresh(&fake, r0.expose()).await;
    assert_eq!(status, 200, "{body}");
    let access = field(&body, "access_token").unwrap();
    let r1 = field(&body, "refresh_token").unwrap();
    assert_ne!(r1, r0.expose());
    assert!(fake.is_access_valid(&access));
    let (status, _) = post_refresh(&fake, &r1).await;
    assert_eq!(status, 200);
    assert_eq!((fake.token_requests(), fake.refreshes()), (2, 2));
    assert_eq!(fake.reuse_detections(), 0);
}

#[tokio::test]
async fn replay_is_detected_and_revokes_the_family() {
    for (answer, expected) in [
        (ReuseAnswer::InvalidGrant, "refresh token reuse detected"),
        (ReuseAnswer::RefreshTokenReused, "refresh_token_reused"),
    ] {
        let fake = FakeProvider::start(FakeProviderConfig {
            reuse_answer: answer,
            ..FakeProviderConfig::default()
        })
        .await;
        let (_, r0) = fake.grant("alice");
        let (_, body) = post_refresh(&fake, r0.expose()).await;
        let access = field(&body, "access_token").unwrap();
        let r1 = field(&body, "refresh_token").unwrap();
        let (status, body) = post_refresh(&fake, r0.expose()).await;
        assert_eq!(status, 400);
        assert!(body.contains(expected), "{body}");
        assert_eq!(fake.reuse_detections(), 1);
        assert!(fake.is_revoked("alice"));
        assert!(!fake.is_access_valid(&access));
        // The legitimate holder's fresh token is dead too.
        let (status, body) = post_refresh(&fake, &r1).await;
        assert_eq!(status, 400);
        assert!(body.contains("invalid_grant"), "{body}");
    }
}

#[tokio::test]
async fn grace_window_replays_the_same_pair() {
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let fake = FakeProvider::start(FakeProviderConfig {
        reuse_grace: Duration::from_secs(30),
        clock: Arc::new(clock.clone()),
        ..FakeProviderConfig::default()
    })
    .await;
    let (_, r0) = fake.grant("alice");
    let (_, first) = post_refresh(&fake, r0.expose()).await;
    clock.advance(Duration::from_secs(10));
    let (status, again) = post_refresh(&fake, r0.expose()).await;
    assert_eq!(status, 200);
    assert_eq!(
        field(&first, "refresh_token"),
        field(&again, "refresh_token")
    );
    assert_eq!(field(&first, "access_token"), field(&again, "access_token"));
    assert_eq!((fake.refreshes(), fake.reuse_detections()), (1, 0));
    clock.advance(Duration::from_secs(30));
    let (status, _) = post_refresh(&fake, r0.expose()).await;
    assert_eq!(status, 400);
    assert_eq!(fake.reuse_detections(), 1);
}

#[tokio::test]
async fn json_bodies_and_client_ids_are_checked() {
    let fake = FakeProvider::start(FakeProviderConfig {
        expected_client_id: Some("app_1".to_owned()),
        ..FakeProviderConfig::default()
    })
    .await;
    let (_, r0) = fake.grant("alice");
    let ok = client()
        .post(fake.token_url())
        .json(&serde_json::json!({
            "grant_type": "refresh_token", "refresh_token": r0.expose(), "client_id": "app_1"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let record = fake.last_token_request().unwrap();
    assert!(record.json_body && record.had_refresh_token);
    assert_eq!(record.client_id.as_deref(), Some("app_1"));
    let (status, body) = post_refresh(&fake, "whatever").await;
    assert_eq!(status, 401);
    assert!(body.contains("invalid_client"));
}

/// What a raw client observes for one fault.
#[derive(Debug, PartialEq)]
enum Seen {
    Status(u16, &'static str),
    Timeout,
    ConnectionError,
}

async fn observe(fake: &FakeProvider, refresh: &str) -> Seen {
    let result = client()
        .post(fake.token_url())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await;
    let response = match result {
        Ok(response) => response,
        Err(error) if error.is_timeout() => return Seen::Timeout,
        Err(_) => return Seen::ConnectionError,
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let location = response.headers().get("location").is_some();
    let body = response.text().await.unwrap();
    let shape = if location {
        "location"
    } else if body.is_empty() {
        "empty"
    } else if body.starts_with("{not json") {
        "malformed"
    } else if body.contains("<html") {
        if retry_after.is_some() {
            "html+retry"
        } else {
            "html"
        }
    } else if body.contains("xai_oauth_tier_denied") {
        "tier"
    } else if body.contains("refresh_token_reused") {
        "reused"
    } else if body.contains("invalid_grant") {
        "invalid_grant"
    } else if retry_after.as_deref() == Some("7") {
        "retry-after-7"
    } else if body.len() > 10_000 {
        "oversized"
    } else if body.contains("access_token") {
        "token"
    } else if body.starts_with('{') {
        "json"
    } else {
        "text"
    };
    Seen::Status(status, shape)
}

#[tokio::test]
async fn each_fault_is_observable_and_spends_no_token() {
    let cases = [
        (TokenFault::Status500, Seen::Status(500, "json")),
        (TokenFault::Status503, Seen::Status(503, "json")),
        (TokenFault::Timeout, Seen::Timeout),
        (TokenFault::ConnectionReset, Seen::ConnectionError),
        (TokenFault::HtmlPage, Seen::Status(502, "html")),
        (TokenFault::MalformedJson, Seen::Status(200, "malformed")),
        (TokenFault::Empty200, Seen::Status(200, "empty")),
        (TokenFault::MissingAccessToken, Seen::Status(200, "json")),
        (TokenFault::InvalidGrant, Seen::Status(400, "invalid_grant")),
        (TokenFault::RefreshTokenReused, Seen::Status(400, "reused")),
        (
            TokenFault::RateLimited {
                retry_after_secs: 7,
            },
            Seen::Status(429, "retry-after-7"),
        ),
        (
            TokenFault::RateLimitedHtml {
                retry_after_secs: 7,
            },
            Seen::Status(429, "html+retry"),
        ),
        (TokenFault::TierDenied, Seen::Status(403, "tier")),
        (
            TokenFault::Redirect("http://127.0.0.1:9/elsewhere".to_owned()),
            Seen::Status(302, "location"),
        ),
        (
            TokenFault::Oversized(20_000),
            Seen::Status(200, "oversized"),
        ),
        (TokenFault::NotFound, Seen::Status(404, "text")),
    ];
    let fake = FakeProvider::start(FakeProviderConfig {
        timeout_hold: Duration::from_secs(30),
        ..FakeProviderConfig::default()
    })
    .await;
    let (_, r0) = fake.grant("alice");
    for (fault, expected) in cases {
        fake.push_fault(fault.clone());
        assert_eq!(observe(&fake, r0.expose()).await, expected, "{fault:?}");
    }
    // None of them consumed the token.
    assert_eq!(fake.refreshes(), 0);
    assert_eq!(
        observe(&fake, r0.expose()).await,
        Seen::Status(200, "token")
    );
}

#[tokio::test]
async fn slow_succeeds_and_lost_response_spends_the_token() {
    let fake = FakeProvider::start_default().await;
    let (_, r0) = fake.grant("alice");
    fake.push_fault(TokenFault::Slow(Duration::from_millis(50)));
    let (_, body) = post_refresh(&fake, r0.expose()).await;
    let r1 = field(&body, "refresh_token").unwrap();
    fake.push_fault(TokenFault::LostResponse);
    assert_eq!(observe(&fake, &r1).await, Seen::ConnectionError);
    assert_eq!(fake.refreshes(), 2);
    // The client never saw r2; retrying r1 is reuse.
    let (status, _) = post_refresh(&fake, &r1).await;
    assert_eq!(status, 400);
    assert!(fake.is_revoked("alice"));
}

#[tokio::test]
async fn queued_faults_come_before_the_sticky_one() {
    let fake = FakeProvider::start_default().await;
    let (_, r0) = fake.grant("alice");
    fake.fail_next(TokenFault::Status500, 2);
    fake.set_sticky_fault(Some(TokenFault::Status503));
    for expected in [500, 500, 503, 503] {
        let (status, _) = post_refresh(&fake, r0.expose()).await;
        assert_eq!(status, expected);
    }
    fake.clear_faults();
    assert_eq!(post_refresh(&fake, r0.expose()).await.0, 200);
    assert_eq!(fake.token_requests(), 5);
}

async fn call_api(fake: &FakeProvider, header: &str, value: &str) -> (u16, Option<String>, String) {
    let response = client()
        .post(format!("{}/chat/completions", fake.api_url()))
        .header(header, value)
        .json(&serde_json::json!({ "model": "fake-model", "messages": [] }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.text().await.unwrap())
}

#[tokio::test]
async fn expired_access_token_gets_the_xai_403_shape() {
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let fake = FakeProvider::start(FakeProviderConfig {
        access_token_lifetime: Duration::from_secs(60),
        clock: Arc::new(clock.clone()),
        ..FakeProviderConfig::default()
    })
    .await;
    let (access, _) = fake.grant("alice");
    let bearer = format!("Bearer {}", access.expose());
    assert_eq!(call_api(&fake, "authorization", &bearer).await.0, 200);
    clock.advance(Duration::from_secs(61));
    let (status, _, body) = call_api(&fake, "authorization", &bearer).await;
    assert_eq!(status, 403);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"code":"unauthenticated:bad-credentials","error":"Unauthenticated: bad credentials"})
    );
    assert_eq!(fake.api_requests_with(access.expose()), 2);
}

#[tokio::test]
async fn forced_expiry_and_unknown_tokens() {
    let fake = FakeProvider::start_default().await;
    let (access, _) = fake.grant("alice");
    let bearer = format!("Bearer {}", access.expose());
    fake.expire_access_tokens();
    assert_eq!(call_api(&fake, "authorization", &bearer).await.0, 403);
    let (status, _, body) = call_api(&fake, "authorization", "Bearer sk-unknown").await;
    assert_eq!(status, 401);
    assert!(body.contains("invalid_api_key"), "{body}");
}

#[tokio::test]
async fn api_key_modes_answer_as_configured() {
    let cases = [
        (ApiKeyMode::Ok, 200, None, "chat.completion"),
        (
            ApiKeyMode::RateLimited {
                retry_after_secs: 12,
            },
            429,
            Some("12"),
            "rate_limit_exceeded",
        ),
        (ApiKeyMode::Billing402, 402, None, "Insufficient credits"),
        (ApiKeyMode::Billing403, 403, None, "credit balance"),
        (ApiKeyMode::Invalid, 401, None, "invalid_api_key"),
    ];
    let fake = FakeProvider::start_default().await;
    for (mode, status, retry_after, needle) in cases {
        fake.set_api_key_mode("sk-test", mode);
        for header in ["x-api-key", "authorization"] {
            let value = if header == "authorization" {
                "Bearer sk-test"
            } else {
                "sk-test"
            };
            let seen = call_api(&fake, header, value).await;
            assert_eq!(
                (seen.0, seen.1.as_deref()),
                (status, retry_after),
                "{mode:?}"
            );
            assert!(seen.2.contains(needle), "{mode:?}: {}", seen.2);
        }
    }
    assert_eq!(fake.api_requests_with("sk-test"), 10);
    let models = client()
        .get(format!("{}/models", fake.api_url()))
        .header("x-api-key", "sk-other")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
    assert_eq!(fake.api_requests(), 11);
}

#[tokio::test]
async fn discovery_names_the_token_endpoint_or_the_override() {
    let fake = FakeProvider::start_default().await;
    let get = || async {
        let body = client()
            .get(fake.discovery_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        field(&body, "token_endpoint")
    };
    assert_eq!(get().await, Some(fake.token_url()));
    fake.set_discovery_token_endpoint(Some("https://evil.com/token".to_owned()));
    assert_eq!(get().await.as_deref(), Some("https://evil.com/token"));
    assert_eq!(fake.discovery_requests(), 2);
}

#[tokio::test]
async fn eventually_polls_and_capture_sees_events() {
    let fake = FakeProvider::start_default().await;
    let (_, r0) = fake.grant("alice");
    let token = r0.expose().to_owned();
    let base = fake.token_url();
    tokio::spawn(async move {
        let _ = client()
            .post(base)
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
            .send()
            .await;
    });
    assert!(eventually(|| fake.refreshes() == 1, Duration::from_secs(5)).await);
    assert!(!eventually(|| fake.refreshes() == 2, Duration::from_millis(50)).await);

    let (guard, buffer) = capture_tracing();
    tracing::info!(canary = "c4n4ry", "hello");
    drop(guard);
    tracing::info!("after the guard");
    let text = captured_text(&buffer);
    assert!(text.contains("c4n4ry") && text.contains("hello"), "{text}");
    assert!(!text.contains("after the guard"));
}

#[tokio::test(start_paused = true)]
async fn eventually_works_under_paused_time() {
    let started = tokio::time::Instant::now();
    assert!(!eventually(|| false, Duration::from_secs(3600)).await);
    assert!(started.elapsed() >= Duration::from_secs(3600));
}

#[tokio::test]
async fn a_saved_state_carries_grants_and_keys_to_the_next_fake() {
    let mut first = FakeProvider::start_default().await;
    let (_, refresh) = first.grant("carried");
    let (status, body) = post_refresh(&first, refresh.expose()).await;
    assert_eq!(status, 200, "{body}");
    let spent = refresh.expose().to_owned();
    let current = field(&body, "refresh_token").unwrap();
    first.add_api_key("sk-carried", ApiKeyMode::Billing402);
    let state = serde_json::to_string(&first.export_state()).unwrap();
    let port = first.addr().port();
    first.stop().await;

    let second = FakeProvider::try_start(FakeProviderConfig {
        restore: Some(serde_json::from_str(&state).unwrap()),
        bind: Some(([127, 0, 0, 1], port).into()),
        ..FakeProviderConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(second.addr().port(), port, "the same address again");
    let (status, body) = post_refresh(&second, &current).await;
    assert_eq!(status, 200, "the current refresh token still works: {body}");
    // The spent one is still known as spent: replaying it is reuse.
    let (status, _) = post_refresh(&second, &spent).await;
    assert_eq!(status, 400);
    assert_eq!(second.reuse_detections(), 1);
    let response = client()
        .post(format!("{}/chat/completions", second.api_url()))
        .bearer_auth("sk-carried")
        .json(&serde_json::json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 402, "the key's mode came along");
}

#[tokio::test]
async fn early_expiry_spares_young_tokens() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let fake = FakeProvider::start(FakeProviderConfig {
        clock: clock.clone(),
        ..FakeProviderConfig::default()
    })
    .await;
    let (old, _) = fake.grant("old");
    clock.advance(Duration::from_secs(10));
    let (young, _) = fake.grant("young");
    fake.expire_access_tokens_older_than(Duration::from_secs(5));
    assert!(
        !fake.is_access_valid(old.expose()),
        "issued 10 s ago: expired"
    );
    assert!(
        fake.is_access_valid(young.expose()),
        "issued just now: valid"
    );
}

#[tokio::test]
async fn a_persisting_fake_saves_every_rotation_before_answering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.json");
    let fake = FakeProvider::start(FakeProviderConfig {
        persist: Some(path.clone()),
        ..FakeProviderConfig::default()
    })
    .await;
    let (_, refresh) = fake.grant("kept");
    let (status, body) = post_refresh(&fake, refresh.expose()).await;
    assert_eq!(status, 200);
    let current = field(&body, "refresh_token").unwrap();
    // The file was written before the answer: a fake started from it honours the new
    // token at once.
    let saved = std::fs::read(&path).unwrap();
    drop(fake);
    let again = FakeProvider::start(FakeProviderConfig {
        restore: Some(serde_json::from_slice(&saved).unwrap()),
        ..FakeProviderConfig::default()
    })
    .await;
    let (status, _) = post_refresh(&again, &current).await;
    assert_eq!(status, 200);
    assert!(
        !format!("{:?}", again.export_state()).contains("fake-rt"),
        "Debug shows counts"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
