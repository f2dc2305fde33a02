//! Data-driven tests of the pure parts: answer classification, success parsing, error codes,
//! the URL policy and the per-host limiter.

use std::sync::Arc;
use std::time::Duration;

use credpool_core::{ManualClock, Timestamp};

use super::error::{ConfigReason, ProtocolReason, RefreshError, TransientReason};
use super::grant::{classify_failure, oauth_error_code, parse_success};
use super::http::check_endpoint_url;
use super::limiter::{HostRateLimit, HostRateLimiter};

fn terminal(code: &str, status: u16) -> RefreshError {
    RefreshError::Terminal {
        code: code.to_owned(),
        status,
    }
}

fn denied(code: &str, status: u16) -> RefreshError {
    RefreshError::Denied {
        code: code.to_owned(),
        status,
    }
}

fn transient(reason: TransientReason, retry_after: Option<u64>) -> RefreshError {
    RefreshError::Transient {
        reason,
        retry_after: retry_after.map(Duration::from_secs),
    }
}

#[test]
fn failures_classify_by_code_then_status() {
    fn check(status: u16, retry_after: Option<u64>, body: &str, expected: RefreshError) {
        let got = classify_failure(
            status,
            retry_after.map(Duration::from_secs),
            body.as_bytes(),
        );
        assert_eq!(got, expected, "{status} {body}");
    }
    use TransientReason::*;
    check(
        400,
        None,
        r#"{"error":"invalid_grant","error_description":"reuse"}"#,
        terminal("invalid_grant", 400),
    );
    check(
        400,
        None,
        r#"{"error":{"code":"refresh_token_reused","type":"invalid_request_error"}}"#,
        terminal("refresh_token_reused", 400),
    );
    check(
        401,
        None,
        r#"{"error":"invalid_client"}"#,
        terminal("invalid_client", 401),
    );
    check(
        400,
        None,
        r#"{"error":"unauthorized_client"}"#,
        terminal("unauthorized_client", 400),
    );
    check(
        401,
        None,
        r#"{"error":"token_revoked"}"#,
        terminal("token_revoked", 401),
    );
    check(
        400,
        None,
        r#"{"error":"invalid_token"}"#,
        terminal("invalid_token", 400),
    );
    check(
        400,
        None,
        r#"{"error":"Invalid_Grant"}"#,
        terminal("invalid_grant", 400),
    );
    check(
        400,
        None,
        r#"{"error":"some_new_code"}"#,
        terminal("unknown_error", 400),
    );
    check(
        403,
        None,
        r#"{"error":"xai_oauth_tier_denied"}"#,
        denied("xai_oauth_tier_denied", 403),
    );
    check(
        403,
        None,
        r#"{"error":"forbidden"}"#,
        denied("forbidden", 403),
    );
    check(
        403,
        None,
        r#"{"error":"invalid_grant"}"#,
        terminal("invalid_grant", 403),
    );
    check(
        400,
        None,
        r#"{"error":"temporarily_unavailable"}"#,
        transient(Busy { status: 400 }, None),
    );
    check(
        429,
        Some(7),
        r#"{"error":"rate_limited"}"#,
        transient(RateLimited { status: 429 }, Some(7)),
    );
    check(
        429,
        Some(30),
        "<html>429</html>",
        transient(RateLimited { status: 429 }, Some(30)),
    );
    check(
        429,
        None,
        r#"{"error":"invalid_grant"}"#,
        transient(RateLimited { status: 429 }, None),
    );
    check(
        500,
        None,
        r#"{"error":"server_error"}"#,
        transient(ServerError { status: 500 }, None),
    );
    check(
        503,
        Some(5),
        "",
        transient(ServerError { status: 503 }, Some(5)),
    );
    check(
        502,
        None,
        "<!DOCTYPE html><title>502 Bad Gateway</title>",
        transient(ServerError { status: 502 }, None),
    );
    check(
        500,
        None,
        r#"{"error":"invalid_grant"}"#,
        transient(ServerError { status: 500 }, None),
    );
    check(408, None, "", transient(ServerError { status: 408 }, None));
    check(
        400,
        None,
        "<html>bad request</html>",
        transient(Unreadable { status: 400 }, None),
    );
    check(
        401,
        None,
        r#"{"message":"no code here"}"#,
        transient(Unreadable { status: 401 }, None),
    );
    check(
        409,
        None,
        r#"{"error":"conflict"}"#,
        transient(Unreadable { status: 409 }, None),
    );
    check(
        302,
        None,
        "",
        RefreshError::config(ConfigReason::Redirect { status: 302 }),
    );
    check(
        307,
        None,
        "",
        RefreshError::config(ConfigReason::Redirect { status: 307 }),
    );
    check(
        404,
        None,
        "not found",
        RefreshError::config(ConfigReason::NotFound),
    );
}

#[test]
fn error_codes_are_sanitised() {
    fn check(body: &str, expected: Option<&str>) {
        assert_eq!(
            oauth_error_code(body.as_bytes()).as_deref(),
            expected,
            "{body}"
        );
    }
    check(r#"{"error":"invalid_grant"}"#, Some("invalid_grant"));
    check(
        r#"{"error":{"code":"refresh_token_reused"}}"#,
        Some("refresh_token_reused"),
    );
    check(
        r#"{"error":{"type":"invalid_request_error"}}"#,
        Some("invalid_request_error"),
    );
    check(
        r#"{"code":"unauthenticated:bad-credentials","error":"Unauthenticated: bad credentials"}"#,
        Some("unauthenticated:bad-credentials"),
    );
    check(r#"{"error":"token rt-secret-value was reused"}"#, None);
    // A code-shaped value nobody listed may be an echoed token: it never travels.
    check(
        r#"{"error":"weird_rt-7f3a9c0b1d2e4f5a6b7c8d9e0f1a2b3c"}"#,
        Some("unknown_error"),
    );
    check(r#"{"error":"some_new_code"}"#, Some("unknown_error"));
    check(&format!(r#"{{"error":"{}"}}"#, "a".repeat(65)), None);
    check(r#"{"error":""}"#, None);
    check("not json", None);
    check("[]", None);
}

#[test]
fn success_bodies_parse_or_name_the_problem() {
    fn check(body: &str, expected: Result<(&str, Option<&str>, Option<u64>), ProtocolReason>) {
        let got = parse_success(body.as_bytes()).map(|r| {
            (
                r.access.expose().to_owned(),
                r.refresh.map(|s| s.expose().to_owned()),
                r.expires_in.map(|d| d.as_secs()),
            )
        });
        let expected = expected
            .map(|(a, r, e)| (a.to_owned(), r.map(str::to_owned), e))
            .map_err(|reason| RefreshError::Protocol { reason });
        assert_eq!(got, expected, "{body}");
    }
    check(
        r#"{"access_token":"at","refresh_token":"rt","expires_in":3600}"#,
        Ok(("at", Some("rt"), Some(3600))),
    );
    check(
        r#"{"access_token":"at","expires_in":"120"}"#,
        Ok(("at", None, Some(120))),
    );
    check(
        r#"{"access_token":"at","expires_in":59.9,"refresh_token":""}"#,
        Ok(("at", None, Some(59))),
    );
    check(
        r#"{"access_token":"at","expires_in":-5}"#,
        Ok(("at", None, None)),
    );
    check(
        r#"{"access_token":"at","expires_in":null}"#,
        Ok(("at", None, None)),
    );
    check("", Err(ProtocolReason::EmptyBody));
    check("  \n", Err(ProtocolReason::EmptyBody));
    check("{not json", Err(ProtocolReason::MalformedJson));
    check("<html>ok</html>", Err(ProtocolReason::MalformedJson));
    check(
        r#"{"token_type":"Bearer"}"#,
        Err(ProtocolReason::MissingAccessToken),
    );
    check(
        r#"{"access_token":""}"#,
        Err(ProtocolReason::MissingAccessToken),
    );
    check(r#"{"access_token":42}"#, Err(ProtocolReason::MalformedJson));
}

#[test]
fn success_keeps_scope_and_type_and_never_shows_tokens() {
    let response = parse_success(
        br#"{"access_token":"at-canary-1","refresh_token":"rt-canary-2","scope":"openid","token_type":"Bearer"}"#,
    )
    .map_err(|e| e.to_string());
    let response = match response {
        Ok(response) => response,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(response.scope.as_deref(), Some("openid"));
    assert_eq!(response.token_type.as_deref(), Some("Bearer"));
    let shown = format!("{response:?}");
    assert!(!shown.contains("canary"), "{shown}");
}

#[test]
fn endpoint_urls_follow_the_policy() {
    fn check(url: &str, domain: Option<&str>, loopback: bool, expected: Result<(), ConfigReason>) {
        let got = check_endpoint_url(url, domain, loopback).map(|_| ());
        let expected = expected.map_err(RefreshError::config);
        assert_eq!(got, expected, "{url} domain={domain:?} loopback={loopback}");
    }
    let mismatch = |host: &str| {
        Err(ConfigReason::DomainMismatch {
            host: host.to_owned(),
            required: "x.ai".to_owned(),
        })
    };
    let insecure = |host: &str| {
        Err(ConfigReason::InsecureUrl {
            host: host.to_owned(),
        })
    };
    let xai = Some("x.ai");
    check("https://auth.x.ai/oauth2/token", xai, false, Ok(()));
    check("https://x.ai/token", xai, false, Ok(()));
    check("https://AUTH.X.AI/token", xai, false, Ok(()));
    check("https://deep.auth.x.ai:8443/token", xai, false, Ok(()));
    check("https://evil.com/token", xai, false, mismatch("evil.com"));
    check("https://evilx.ai/token", xai, false, mismatch("evilx.ai"));
    check(
        "https://x.ai.evil.com/token",
        xai,
        false,
        mismatch("x.ai.evil.com"),
    );
    check("http://auth.x.ai/token", xai, false, insecure("auth.x.ai"));
    check("http://auth.x.ai/token", xai, true, insecure("auth.x.ai"));
    check(
        "http://127.0.0.1:8080/token",
        xai,
        false,
        insecure("127.0.0.1"),
    );
    check("http://127.0.0.1:8080/token", xai, true, Ok(()));
    check("http://localhost:8080/token", xai, true, Ok(()));
    check("http://[::1]:8080/token", None, true, Ok(()));
    check("http://10.0.0.1/token", None, true, insecure("10.0.0.1"));
    check("https://evil.com/token", xai, true, mismatch("evil.com"));
    check("ftp://127.0.0.1/token", None, true, insecure("127.0.0.1"));
    check(
        "https://user:pw@auth.x.ai/token",
        xai,
        false,
        Err(ConfigReason::InvalidUrl),
    );
    check("not a url", None, false, Err(ConfigReason::InvalidUrl));
    check("https://auth.openai.com/oauth/token", None, false, Ok(()));
    check(
        "http://auth.openai.com/oauth/token",
        None,
        false,
        insecure("auth.openai.com"),
    );
}

#[test]
fn limiter_admits_a_budget_per_host_per_window() {
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let limiter = HostRateLimiter::new(
        Arc::new(clock.clone()),
        HostRateLimit {
            max_requests: 3,
            window: Duration::from_secs(60),
        },
    )
    .with_host_limit(
        "portal.example",
        HostRateLimit {
            max_requests: 1,
            window: Duration::from_secs(10),
        },
    );
    let wait = |host: &str| {
        limiter
            .try_acquire(host)
            .err()
            .and_then(|e| e.retry_after())
    };
    // (advance by seconds, host, expected wait in seconds or admitted)
    let steps: &[(u64, &str, Option<u64>)] = &[
        (0, "a.example", None),
        (10, "a.example", None),
        (10, "A.EXAMPLE", None),
        (0, "a.example", Some(40)),
        (0, "b.example", None),
        (0, "portal.example", None),
        (5, "portal.example", Some(5)),
        (5, "portal.example", None),
        (29, "a.example", Some(1)),
        (1, "a.example", None),
        (0, "a.example", Some(10)),
    ];
    for (index, (advance, host, expected)) in steps.iter().enumerate() {
        clock.advance(Duration::from_secs(*advance));
        assert_eq!(
            wait(host),
            expected.map(Duration::from_secs),
            "step {index}: {host}"
        );
    }
}

#[test]
fn limiter_with_no_budget_always_waits() {
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let limiter = HostRateLimiter::new(
        Arc::new(clock),
        HostRateLimit {
            max_requests: 0,
            window: Duration::from_secs(60),
        },
    );
    let error = limiter.try_acquire("a.example").err();
    assert!(matches!(error, Some(RefreshError::RateLimited { .. })));
    assert!(error.is_some_and(|e| e.provably_unspent() && !e.may_have_consumed_token()));
}

#[test]
fn consumption_flags_follow_the_variant() {
    // (error, may_have_consumed_token, provably_unspent)
    let cases = [
        (transient(TransientReason::Timeout, None), true, false),
        (transient(TransientReason::Interrupted, None), true, false),
        (
            transient(TransientReason::ServerError { status: 500 }, None),
            true,
            false,
        ),
        (transient(TransientReason::Connect, None), false, true),
        (
            transient(TransientReason::RateLimited { status: 429 }, Some(1)),
            false,
            false,
        ),
        (
            RefreshError::Protocol {
                reason: ProtocolReason::EmptyBody,
            },
            true,
            false,
        ),
        (RefreshError::config(ConfigReason::NotFound), false, true),
        (
            RefreshError::config(ConfigReason::Redirect { status: 302 }),
            false,
            false,
        ),
        (terminal("invalid_grant", 400), false, false),
        (denied("xai_oauth_tier_denied", 403), false, false),
    ];
    for (error, consumed, unspent) in cases {
        assert_eq!(
            (error.may_have_consumed_token(), error.provably_unspent()),
            (consumed, unspent),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn a_zero_budget_sends_no_xai_discovery_either() {
    use credpool_core::TokenEndpointSpec;
    use credpool_test_support::FakeProvider;

    use super::xai::XaiClient;
    use super::{EndpointContext, build_http_client};

    let fake = FakeProvider::start_default().await;
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let limiter = HostRateLimiter::new(
        Arc::new(clock.clone()),
        HostRateLimit {
            max_requests: 0,
            window: Duration::from_secs(60),
        },
    );
    let context = EndpointContext::new(
        build_http_client(Duration::from_secs(1)).unwrap(),
        Arc::new(clock),
    )
    .with_insecure_loopback(true)
    .with_limiter(Arc::new(limiter));
    let spec = TokenEndpointSpec {
        urls: Vec::new(),
        discovery_url: Some(fake.discovery_url()),
        required_domain: Some("x.ai".to_owned()),
        client_id: None,
        json_body: false,
    };
    let client = XaiClient::new(&spec, context).unwrap();
    let (_, token) = fake.grant("zero-budget");
    let error = client.refresh(&token).await.unwrap_err();
    assert!(
        matches!(error, RefreshError::RateLimited { .. }),
        "{error:?}"
    );
    assert_eq!(fake.discovery_requests(), 0);
    assert_eq!(fake.token_requests(), 0);
}
