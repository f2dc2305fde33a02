//! Properties of classification and reset parsing through the public API, on generated input.
//!
//! The unit tests next to the code already hold the plain "never panics on arbitrary bytes"
//! properties (`classify/tests.rs`, `reset/tests.rs`) and "cooldown deadlines only extend"
//! (`cooldown/tests.rs`); this file adds what they do not check: no bearer token survives in a
//! classification's message, reset headers with real names stay inside the ceiling, an exact
//! `Retry-After` is honoured, and sources combine by taking the latest.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use credpool_core::classify::{mask_secrets, sanitize_message};
use credpool_core::reset::{self, reset_at};
use credpool_core::{ClassifyInput, CredentialKind, Timestamp, classify};
use proptest::prelude::*;

const NOW: Timestamp = Timestamp(1_788_000_000_000);
const CEILING: Duration = Duration::from_secs(7 * 24 * 3600);

/// A bearer credential as RFC 6750 spells it (`b64token`): at least eight characters, the
/// length from which `mask_secrets` treats the word after `Bearer` as a token.
fn bearer_token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~+/-]{8,48}=*"
}

/// Text around the token: words, punctuation and spaces, never a line break.
fn filler() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.:;()-]{0,60}"
}

fn bearer_spelling() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["Bearer", "bearer", "BEARER"])
}

/// Status codes that keep the message (every failure class).
fn status() -> impl Strategy<Value = Option<u16>> {
    proptest::option::of(prop::sample::select(vec![
        200u16, 400, 401, 402, 403, 404, 429, 500, 502, 503, 529,
    ]))
}

/// Header names the reset parser reads, in mixed case.
fn reset_header_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "retry-after",
        "Retry-After",
        "retry-after-ms",
        "x-retry-after",
        "x-ratelimit-reset",
        "x-ratelimit-reset-requests",
        "X-RateLimit-Reset-Tokens",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-requests-reset",
    ])
    .prop_map(str::to_owned)
}

/// Values of every shape providers send, and some garbage.
fn reset_header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..10_000_000_000_000).prop_map(|n| n.to_string()),
        (0.0f64..1e7).prop_map(|n| format!("{n}")),
        "[0-9]{1,3}(h|m|s|ms)([0-9]{1,3}(m|s|ms))?",
        (1_700_000_000i64..1_900_000_000).prop_map(|secs| Timestamp::from_secs(secs).to_rfc3339()),
        Just("Wed, 21 Oct 2026 07:28:00 GMT".to_owned()),
        "[ -~]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Invariant 9: a `Bearer <token>` in a provider's message (plain text or a JSON
    /// envelope) never reaches the classification's message or its explanation.
    #[test]
    fn no_bearer_token_survives_classification(
        status in status(),
        before in filler(),
        after in filler(),
        bearer in bearer_spelling(),
        token in bearer_token(),
        json in any::<bool>(),
        oauth in any::<bool>(),
    ) {
        let text = format!("{before} {bearer} {token} {after}");
        let body = if json {
            serde_json::json!({"error": {"message": text, "type": "invalid_request_error"}}).to_string()
        } else {
            text.clone()
        };
        let kind = if oauth { CredentialKind::OAuth } else { CredentialKind::ApiKey };
        let input = ClassifyInput {
            provider: None,
            entry_kind: Some(kind),
            status,
            headers: &[],
            body: body.as_bytes(),
        };
        let got = classify(&input, NOW, CEILING);
        if let Some(message) = &got.message {
            prop_assert!(!message.contains(&token), "{token:?} in {message:?}");
        }
        let line = credpool_core::classify::explain(&got);
        prop_assert!(!line.contains(&token), "{token:?} in {line:?}");
        // The masking functions on their own, too.
        prop_assert!(!mask_secrets(&text).contains(&token));
        prop_assert!(!sanitize_message(&text).contains(&token));
    }

    /// Invariant 5: whatever reset headers say, a classification's reset time is strictly
    /// after `now` and never past `now + ceiling`, for any ceiling.
    #[test]
    fn reset_headers_stay_within_the_ceiling(
        headers in proptest::collection::vec((reset_header_name(), reset_header_value()), 0..4),
        ceiling_secs in 0u64..(30 * 24 * 3600),
        status in prop::sample::select(vec![402u16, 429, 500, 503, 529]),
    ) {
        let ceiling = Duration::from_secs(ceiling_secs);
        if let Some(at) = reset_at(&headers, None, None, NOW, ceiling) {
            prop_assert!(at > NOW && at <= NOW.plus(ceiling), "{headers:?} → {at:?}");
        }
        let input = ClassifyInput {
            provider: None,
            entry_kind: None,
            status: Some(status),
            headers: &headers,
            body: b"",
        };
        if let Some(at) = classify(&input, NOW, ceiling).reset_at {
            prop_assert!(at > NOW && at <= NOW.plus(ceiling), "{headers:?} → {at:?}");
        }
    }

    /// A `Retry-After` of N seconds on a 429 is a reset at exactly `now + N` (below the
    /// ceiling) and at the ceiling above it.
    #[test]
    fn retry_after_seconds_are_exact(seconds in 1u64..(30 * 24 * 3600)) {
        let headers = vec![("Retry-After".to_owned(), seconds.to_string())];
        let input = ClassifyInput {
            provider: None,
            entry_kind: None,
            status: Some(429),
            headers: &headers,
            body: b"",
        };
        let expected = NOW.plus(Duration::from_secs(seconds).min(CEILING));
        prop_assert_eq!(classify(&input, NOW, CEILING).reset_at, Some(expected));
    }

    /// Sources decide by tier: a retry header, else a body field, else the message; each
    /// alone gives its own time, clamped.
    #[test]
    fn reset_sources_decide_by_tier(
        header_secs in proptest::option::of(1u64..(10 * 24 * 3600)),
        body_secs in proptest::option::of(1u64..(10 * 24 * 3600)),
        message_secs in proptest::option::of(1u64..(10 * 24 * 3600)),
    ) {
        let headers: Vec<(String, String)> = header_secs
            .map(|s| ("retry-after".to_owned(), s.to_string()))
            .into_iter()
            .collect();
        let body = body_secs.map(|s| serde_json::json!({"error": {"retry_after": s}}));
        let message = message_secs.map(|s| format!("Rate limited. Please try again in {s}s."));
        let alone = [
            reset_at(&headers, None, None, NOW, CEILING),
            reset_at(&[], body.as_ref(), None, NOW, CEILING),
            reset_at(&[], None, message.as_deref(), NOW, CEILING),
        ];
        let together = reset_at(&headers, body.as_ref(), message.as_deref(), NOW, CEILING);
        prop_assert_eq!(together, alone.into_iter().flatten().next());
        for (secs, got) in [header_secs, body_secs, message_secs].into_iter().zip(alone) {
            prop_assert_eq!(got, secs.map(|s| NOW.plus(Duration::from_secs(s).min(CEILING))));
        }
    }

    /// A past instant or a zero delay is never a reset: callers must not hot-loop on it.
    #[test]
    fn past_resets_are_none(ago_secs in 0i64..(365 * 24 * 3600)) {
        let past = Timestamp(NOW.millis() - ago_secs * 1000);
        for value in [past.to_rfc3339(), (past.millis() / 1000).to_string(), "0".to_owned()] {
            prop_assert_eq!(reset::parse_reset_value(&value, NOW).filter(|at| *at > NOW), None);
            let headers = vec![("x-ratelimit-reset".to_owned(), value.clone())];
            prop_assert_eq!(reset_at(&headers, None, None, NOW, CEILING), None, "{}", value);
        }
    }
}
