//! The token endpoint clients against the fake provider on loopback: success and rotation per
//! provider, every fault's error, the body cap, redirects, the per-host budget, discovery's
//! domain check, Anthropic's fall-through rule, and no token in any log line.

// Test helpers outside `#[test]` functions unwrap too: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use credpool_core::{ManualClock, ProviderId, Secret, Timestamp, TokenEndpointSpec};
use credpool_refresher::endpoint::{
    ConfigReason, EndpointContext, HostRateLimit, HostRateLimiter, ProtocolReason, ProviderClient,
    RefreshError, TransientReason, build_http_client, builtin_spec, xai::XaiClient,
};
use credpool_test_support::{
    FakeProvider, FakeProviderConfig, TokenFault, capture_tracing, captured_text,
};

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_secs(1_800_000_000))
}

fn context(clock: &ManualClock) -> EndpointContext {
    let http = build_http_client(Duration::from_secs(1)).unwrap();
    EndpointContext::new(http, Arc::new(clock.clone())).with_insecure_loopback(true)
}

fn spec(urls: &[String], json_body: bool) -> TokenEndpointSpec {
    TokenEndpointSpec {
        urls: urls.to_vec(),
        discovery_url: None,
        required_domain: None,
        client_id: Some("client-under-test".to_owned()),
        json_body,
    }
}

/// The spec each provider gets when pointed at `fake`.
fn spec_for(provider: &str, fake: &FakeProvider) -> TokenEndpointSpec {
    match provider {
        "xai-oauth" => TokenEndpointSpec {
            discovery_url: Some(fake.discovery_url()),
            required_domain: Some("x.ai".to_owned()),
            ..spec(&[], false)
        },
        "anthropic" => spec(&[fake.token_url()], true),
        _ => spec(&[fake.token_url()], false),
    }
}

fn client_for(provider: &str, fake: &FakeProvider, context: EndpointContext) -> ProviderClient {
    ProviderClient::new(
        &ProviderId::new(provider),
        &spec_for(provider, fake),
        context,
    )
    .unwrap()
}

const PROVIDERS: [&str; 5] = [
    "xai-oauth",
    "openai-codex",
    "anthropic",
    "nous",
    "custom:acme",
];

#[tokio::test]
async fn every_provider_refreshes_and_rotates() {
    for provider in PROVIDERS {
        let fake = FakeProvider::start(FakeProviderConfig {
            expected_client_id: Some("client-under-test".to_owned()),
            ..FakeProviderConfig::default()
        })
        .await;
        let client = client_for(provider, &fake, context(&clock()));
        let (_, r0) = fake.grant(provider);
        let first = client.refresh(&r0).await.unwrap();
        assert!(fake.is_access_valid(first.access.expose()), "{provider}");
        assert_eq!(first.expires_in, Some(Duration::from_secs(3600)));
        assert_eq!(first.token_type.as_deref(), Some("Bearer"));
        let r1 = first.refresh.clone().unwrap();
        assert!(!r1.same_value(&r0), "{provider}");
        let second = client.refresh(&r1).await.unwrap();
        assert!(fake.is_access_valid(second.access.expose()), "{provider}");
        assert_eq!((fake.refreshes(), fake.reuse_detections()), (2, 0));

        let request = fake.last_token_request().unwrap();
        assert_eq!(request.grant_type.as_deref(), Some("refresh_token"));
        assert_eq!(request.client_id.as_deref(), Some("client-under-test"));
        assert_eq!(request.accept.as_deref(), Some("application/json"));
        assert!(request.user_agent.unwrap().starts_with("credpool/"));
        assert_eq!(request.json_body, provider == "anthropic", "{provider}");
        // Replaying the spent token is reuse: terminal, family revoked.
        let replay = client.refresh(&r0).await.unwrap_err();
        assert_eq!(
            replay,
            RefreshError::Terminal {
                code: "invalid_grant".to_owned(),
                status: 400
            }
        );
        assert!(fake.is_revoked(provider));
    }
}

#[tokio::test]
async fn a_provider_that_does_not_rotate_returns_no_refresh_token() {
    let fake = FakeProvider::start(FakeProviderConfig {
        rotate_refresh_tokens: false,
        ..FakeProviderConfig::default()
    })
    .await;
    let client = client_for("nous", &fake, context(&clock()));
    let (_, r0) = fake.grant("nous");
    assert!(client.refresh(&r0).await.unwrap().refresh.is_none());
    assert!(client.refresh(&r0).await.is_ok());
}

fn transient(reason: TransientReason, retry_after: Option<u64>) -> RefreshError {
    RefreshError::Transient {
        reason,
        retry_after: retry_after.map(Duration::from_secs),
    }
}

#[tokio::test]
async fn each_fault_maps_to_its_error() {
    use TransientReason::*;
    let protocol = |reason| RefreshError::Protocol { reason };
    let cases = [
        (
            TokenFault::Status500,
            transient(ServerError { status: 500 }, None),
        ),
        (
            TokenFault::Status503,
            transient(ServerError { status: 503 }, None),
        ),
        (TokenFault::Timeout, transient(Timeout, None)),
        (TokenFault::ConnectionReset, transient(Interrupted, None)),
        (
            TokenFault::HtmlPage,
            transient(ServerError { status: 502 }, None),
        ),
        (
            TokenFault::MalformedJson,
            protocol(ProtocolReason::MalformedJson),
        ),
        (TokenFault::Empty200, protocol(ProtocolReason::EmptyBody)),
        (
            TokenFault::MissingAccessToken,
            protocol(ProtocolReason::MissingAccessToken),
        ),
        (
            TokenFault::InvalidGrant,
            RefreshError::Terminal {
                code: "invalid_grant".to_owned(),
                status: 400,
            },
        ),
        (
            TokenFault::RefreshTokenReused,
            RefreshError::Terminal {
                code: "refresh_token_reused".to_owned(),
                status: 400,
            },
        ),
        (
            TokenFault::RateLimited {
                retry_after_secs: 9,
            },
            transient(RateLimited { status: 429 }, Some(9)),
        ),
        (
            TokenFault::RateLimitedHtml {
                retry_after_secs: 60,
            },
            transient(RateLimited { status: 429 }, Some(60)),
        ),
        (
            TokenFault::TierDenied,
            RefreshError::Denied {
                code: "xai_oauth_tier_denied".to_owned(),
                status: 403,
            },
        ),
        (
            TokenFault::NotFound,
            RefreshError::Misconfigured {
                reason: ConfigReason::NotFound,
            },
        ),
        (TokenFault::LostResponse, transient(Interrupted, None)),
    ];
    let fake = FakeProvider::start(FakeProviderConfig {
        timeout_hold: Duration::from_secs(30),
        ..FakeProviderConfig::default()
    })
    .await;
    let client = client_for("openai-codex", &fake, context(&clock()));
    for (fault, expected) in cases {
        let (_, token) = fake.grant("faults");
        fake.push_fault(fault.clone());
        let got = client.refresh(&token).await.unwrap_err();
        assert_eq!(got, expected, "{fault:?}");
    }
}

#[tokio::test]
async fn answers_are_capped_at_one_mebibyte() {
    let fake = FakeProvider::start_default().await;
    let client = client_for("openai-codex", &fake, context(&clock()));
    let (_, token) = fake.grant("big");
    fake.push_fault(TokenFault::Oversized(512 * 1024));
    assert!(client.refresh(&token).await.is_ok());
    fake.push_fault(TokenFault::Oversized(2 * 1024 * 1024));
    assert_eq!(
        client.refresh(&token).await.unwrap_err(),
        RefreshError::Protocol {
            reason: ProtocolReason::BodyTooLarge
        }
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let fake = FakeProvider::start_default().await;
    let elsewhere = FakeProvider::start_default().await;
    let client = client_for("nous", &fake, context(&clock()));
    let (_, token) = fake.grant("redirect");
    fake.push_fault(TokenFault::Redirect(elsewhere.token_url()));
    assert_eq!(
        client.refresh(&token).await.unwrap_err(),
        RefreshError::Misconfigured {
            reason: ConfigReason::Redirect { status: 302 }
        }
    );
    assert_eq!(elsewhere.token_requests(), 0);
}

#[tokio::test]
async fn the_per_host_budget_stops_requests_without_sending() {
    let clock = clock();
    let fake = FakeProvider::start_default().await;
    let limiter = HostRateLimiter::new(
        Arc::new(clock.clone()),
        HostRateLimit {
            max_requests: 2,
            window: Duration::from_secs(60),
        },
    );
    let context = context(&clock).with_limiter(Arc::new(limiter));
    let client = client_for("nous", &fake, context);
    let (_, mut token) = fake.grant("budget");
    for _ in 0..2 {
        token = client.refresh(&token).await.unwrap().refresh.unwrap();
    }
    let limited = client.refresh(&token).await.unwrap_err();
    assert_eq!(
        limited,
        RefreshError::RateLimited {
            host: "127.0.0.1".to_owned(),
            retry_after: Duration::from_secs(60)
        }
    );
    assert_eq!(fake.token_requests(), 2);
    clock.advance(Duration::from_secs(60));
    assert!(client.refresh(&token).await.is_ok());
}

#[tokio::test]
async fn xai_discovery_is_cached_and_domain_checked() {
    let fake = FakeProvider::start_default().await;
    let spec = spec_for("xai-oauth", &fake);
    let client = XaiClient::new(&spec, context(&clock())).unwrap();
    let (_, token) = fake.grant("xai");
    let token = client.refresh(&token).await.unwrap().refresh.unwrap();
    client.refresh(&token).await.unwrap();
    assert_eq!(fake.discovery_requests(), 1);

    for (advertised, expected_host) in [
        ("https://evil.com/oauth/token", "evil.com"),
        ("https://evilx.ai/oauth/token", "evilx.ai"),
    ] {
        fake.set_discovery_token_endpoint(Some(advertised.to_owned()));
        let client = XaiClient::new(&spec, context(&clock())).unwrap();
        let (_, token) = fake.grant("xai-evil");
        assert_eq!(
            client.refresh(&token).await.unwrap_err(),
            RefreshError::Misconfigured {
                reason: ConfigReason::DomainMismatch {
                    host: expected_host.to_owned(),
                    required: "x.ai".to_owned()
                }
            }
        );
    }
    fake.set_discovery_token_endpoint(Some("http://auth.x.ai/oauth/token".to_owned()));
    let client = XaiClient::new(&spec, context(&clock())).unwrap();
    let (_, token) = fake.grant("xai-http");
    assert_eq!(
        client.refresh(&token).await.unwrap_err(),
        RefreshError::Misconfigured {
            reason: ConfigReason::InsecureUrl {
                host: "auth.x.ai".to_owned()
            }
        }
    );
    assert_eq!(fake.refreshes(), 2);
}

#[tokio::test]
async fn loopback_needs_the_test_switch() {
    let fake = FakeProvider::start_default().await;
    let strict = context(&clock()).with_insecure_loopback(false);
    for provider in PROVIDERS {
        let error = ProviderClient::new(
            &ProviderId::new(provider),
            &spec_for(provider, &fake),
            strict.clone(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            RefreshError::Misconfigured {
                reason: ConfigReason::InsecureUrl {
                    host: "127.0.0.1".to_owned()
                }
            },
            "{provider}"
        );
    }
    // The built-in specs are all https and accepted as they are.
    for provider in ["xai-oauth", "openai-codex", "anthropic", "nous"] {
        let spec = builtin_spec(provider).unwrap();
        assert!(ProviderClient::new(&ProviderId::new(provider), &spec, strict.clone()).is_ok());
    }
}

/// A loopback URL nobody listens on.
async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1/oauth/token")
}

#[tokio::test]
async fn anthropic_falls_through_only_when_the_token_is_provably_unspent() {
    // (fault at the first endpoint, or None for "connection refused"; second endpoint used?)
    let cases: [(Option<TokenFault>, bool); 6] = [
        (None, true),
        (Some(TokenFault::NotFound), true),
        (Some(TokenFault::Status500), false),
        (Some(TokenFault::InvalidGrant), false),
        (Some(TokenFault::Empty200), false),
        (Some(TokenFault::ConnectionReset), false),
    ];
    for (fault, falls_through) in cases {
        let first = FakeProvider::start_default().await;
        let second = FakeProvider::start_default().await;
        let first_url = match &fault {
            None => refused_url().await,
            Some(fault) => {
                first.push_fault(fault.clone());
                first.token_url()
            }
        };
        let spec = spec(&[first_url, second.token_url()], true);
        let client =
            ProviderClient::new(&ProviderId::new("anthropic"), &spec, context(&clock())).unwrap();
        let (_, token) = second.grant("anthropic");
        let result = client.refresh(&token).await;
        assert_eq!(result.is_ok(), falls_through, "{fault:?}: {result:?}");
        assert_eq!(
            second.token_requests(),
            u64::from(falls_through),
            "{fault:?}"
        );
    }
}

#[tokio::test]
async fn no_token_reaches_the_logs() {
    let fake = FakeProvider::start_default().await;
    let client = client_for("openai-codex", &fake, context(&clock()));
    let (guard, logs) = capture_tracing();
    let (_, r0) = fake.grant("logs");
    let response = client.refresh(&r0).await.unwrap();
    fake.push_fault(TokenFault::InvalidGrant);
    let error = client.refresh(&r0).await.unwrap_err();
    drop(guard);
    let text = captured_text(&logs);
    assert!(text.contains("token refreshed"), "{text}");
    assert!(text.contains("token refresh failed"), "{text}");
    let secrets: [&Secret; 3] = [&r0, &response.access, response.refresh.as_ref().unwrap()];
    for secret in secrets {
        assert!(!text.contains(secret.expose()), "{text}");
        assert!(!format!("{error} {error:?} {response:?}").contains(secret.expose()));
    }
}
