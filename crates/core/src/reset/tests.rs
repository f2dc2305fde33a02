use proptest::prelude::*;

use super::*;

/// 2026-08-29T10:40:00Z.
const NOW: Timestamp = Timestamp(1_788_000_000_000);
const CEILING: Duration = Duration::from_secs(7 * 24 * 3600);
const DAY_MS: i64 = 24 * 3600 * 1000;

/// `expected` is the reset in milliseconds after `NOW`, or `None` for no reset.
fn check(headers: &[(&str, &str)], body: &str, message: &str, expected: Option<i64>) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let json = serde_json::from_str::<Value>(body).ok();
    let message = (!message.is_empty()).then_some(message);
    let got = reset_at(&headers, json.as_ref(), message, NOW, CEILING).map(|at| at.0 - NOW.0);
    assert_eq!(
        got, expected,
        "headers={headers:?} body={body:?} message={message:?}"
    );
}

#[test]
#[rustfmt::skip]
fn headers() {
    check(&[("Retry-After", "30")], "", "", Some(30_000));
    check(&[("retry-after", " 1.5 ")], "", "", Some(1_500));
    check(&[("retry-after", "0")], "", "", None);
    check(&[("Retry-After", "Sat, 29 Aug 2026 10:42:00 GMT")], "", "", Some(120_000));
    // A past HTTP-date means no reset, not "retry now in a loop".
    check(&[("Retry-After", "Sat, 29 Aug 2026 10:23:20 GMT")], "", "", None);
    check(&[("retry-after-ms", "1500")], "", "", Some(1_500));
    check(&[("x-ratelimit-reset-requests", "6m0s")], "", "", Some(360_000));
    check(&[("x-ratelimit-reset-tokens", "1.5s")], "", "", Some(1_500));
    check(&[("x-ratelimit-reset-tokens", "174ms")], "", "", Some(174));
    check(&[("x-ratelimit-reset-requests", "1h2m3s")], "", "", Some(3_723_000));
    // Epoch milliseconds (OpenRouter) and epoch seconds.
    check(&[("X-RateLimit-Reset", "1788000060000")], "", "", Some(60_000));
    check(&[("x-ratelimit-reset", "1788000090")], "", "", Some(90_000));
    // Small numbers are relative seconds.
    check(&[("x-ratelimit-reset", "45")], "", "", Some(45_000));
    check(&[("anthropic-ratelimit-requests-reset", "2026-08-29T10:41:00Z")], "", "", Some(60_000));
    check(&[("anthropic-ratelimit-tokens-reset", "2026-08-29T12:41:00+02:00")], "", "", Some(60_000));
    check(&[("anthropic-ratelimit-unified-reset", "1788003600")], "", "", Some(3_600_000));
    check(&[("content-type", "application/json")], "", "", None);
    check(&[("retry-after", "soon")], "", "", None);
}

/// The first tier that gives a time decides: retry headers, body fields, bucket headers, prose.
#[test]
#[rustfmt::skip]
fn sources_decide_by_tier() {
    check(&[ ("retry-after", "20"), ("anthropic-ratelimit-requests-reset", "2026-08-29T10:40:05Z"), ("anthropic-ratelimit-tokens-reset", "2026-08-29T10:41:00Z"), ], "", "", Some(20_000));
    check(&[("retry-after", "5")], r#"{"error":{"details":[{"retryDelay":"30s"}]}}"#, "try again in 10s", Some(5_000));
    // A structured field wins over prose when they disagree.
    check(&[], r#"{"error":{"details":[{"retryDelay":"30s"}]}}"#, "try again in 10s", Some(30_000));
    check(&[("x-ratelimit-reset-requests", "6m0s")], "", "Please try again in 2s.", Some(360_000));
    // Within a tier, the earliest.
    check(&[], r#"{"a":{"retry_after":12},"b":{"resets_in_seconds":600}}"#, "", Some(12_000));
    check(&[], "", "retry after 30 seconds, or wait until 2026-08-29T11:40:00Z", Some(30_000));
}

/// Bucket headers: the latest exhausted bucket (all must refill), else the earliest bucket.
#[test]
#[rustfmt::skip]
fn bucket_headers() {
    check(&[("x-ratelimit-reset-requests", "6m0s"), ("x-ratelimit-reset-tokens", "174ms")], "", "", Some(174));
    check(&[("x-ratelimit-reset-requests", "6m0s"), ("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-tokens", "174ms"), ("x-ratelimit-remaining-tokens", "950")], "", "", Some(360_000));
    check(&[("anthropic-ratelimit-unified-reset", "1788003600"), ("anthropic-ratelimit-unified-status", "rejected"), ("anthropic-ratelimit-unified-7d-reset", "1788400000"), ("anthropic-ratelimit-unified-7d-status", "allowed")], "", "", Some(3_600_000));
    check(&[("x-codex-primary-reset-after-seconds", "7200"), ("x-codex-primary-used-percent", "100"), ("x-codex-secondary-reset-after-seconds", "600"), ("x-codex-secondary-used-percent", "40")], "", "", Some(7_200_000));
}

#[test]
#[rustfmt::skip]
fn body_fields() {
    check(&[], r#"{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}"#, "", Some(30_000));
    check(&[], r#"[{"error":{"details":[{"retryDelay":"1.5s"}]}}]"#, "", Some(1_500));
    check(&[], r#"{"error":{"details":[{"metadata":{"quotaResetDelay":"4h5m"}}]}}"#, "", Some(14_700_000));
    check(&[], r#"{"error":{"details":[{"metadata":{"quotaResetTimeStamp":"2026-09-01T00:00:00Z"}}]}}"#, "", Some(220_800_000));
    check(&[], r#"{"error":{"type":"usage_limit_reached","resets_at":1788007200}}"#, "", Some(7_200_000));
    check(&[], r#"{"error":{"resets_in_seconds":600}}"#, "", Some(600_000));
    check(&[], r#"{"reset_at":"2026-08-29T11:40:00Z"}"#, "", Some(3_600_000));
    check(&[], r#"{"error":{"retry_after":12}}"#, "", Some(12_000));
    check(&[], r#"{"retry_after_ms":250}"#, "", Some(250));
    check(&[], r#"{"reset_at":1788000000}"#, "", None);
    check(&[], r#"{"reset_at":null,"retryDelay":{}}"#, "", None);
}

#[test]
#[rustfmt::skip]
fn message_phrases() {
    check(&[], "", "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000. Please try again in 1.98s. Visit https://platform.openai.com", Some(1_980));
    check(&[], "", "Please try again in 20ms.", Some(20));
    check(&[], "", "Please try again in 6m0s.", Some(360_000));
    check(&[], "", "Please retry in 29.5s.", Some(29_500));
    check(&[], "", "retry after 30 seconds", Some(30_000));
    check(&[], "", "Retry after 30", Some(30_000));
    check(&[], "", "Usage limit hit; resets in 4hr 5min", Some(14_700_000));
    check(&[], "", "resets in 2 hours and 30 minutes", Some(9_000_000));
    check(&[], "", "quotaResetDelay: 500ms", Some(500));
    check(&[], "", "You have reached your specified API usage limits. You will regain access on 2026-09-01 at 00:00 UTC.", Some(220_800_000));
    check(&[], "", "limit resets at 2026-08-29T11:40:00Z.", Some(3_600_000));
    check(&[], "", "Used 2542, Requested 9855. Please try\nagain in 1.984999999s. Need more tokens?", Some(1_984));
    check(&[], "", "try again in a few minutes", None);
    check(&[], "", "try again later", None);
}

#[test]
#[rustfmt::skip]
fn clamped_to_the_ceiling() {
    check(&[("retry-after", "99999999")], "", "", Some(7 * DAY_MS));
    check(&[], "", "regain access on 2027-01-01 at 00:00 UTC", Some(7 * DAY_MS));
    check(&[("x-ratelimit-reset", "1e400")], "", "", None);
}

/// Found by the `reset` fuzz target: a zero ceiling capped a reset to `now` itself.
#[test]
fn a_ceiling_under_a_millisecond_keeps_no_reset() {
    let headers = vec![("retry-after".to_owned(), "30".to_owned())];
    for ceiling in [Duration::ZERO, Duration::from_micros(999)] {
        assert_eq!(
            reset_at(&headers, None, None, NOW, ceiling),
            None,
            "{ceiling:?}"
        );
        assert_eq!(clamp(NOW.plus(Duration::from_secs(30)), NOW, ceiling), None);
    }
    let one_ms = Duration::from_millis(1);
    assert_eq!(
        reset_at(&headers, None, None, NOW, one_ms),
        Some(NOW.plus(one_ms))
    );
}

#[test]
#[rustfmt::skip]
fn durations() {
    let cases: &[(&str, Option<u64>)] = &[
        ("6m0s", Some(360_000)),
        ("1.5s", Some(1_500)),
        ("174ms", Some(174)),
        ("1h2m3s", Some(3_723_000)),
        ("4hr 5min", Some(14_700_000)),
        ("2 days", Some(2 * 86_400_000)),
        ("30", None),
        ("", None),
        ("s", None),
        ("abc", None),
    ];
    for (text, expected) in cases {
        let got = parse_duration(text).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        assert_eq!(got, *expected, "{text:?}");
    }
}

proptest! {
    #[test]
    fn never_panics_and_stays_in_bounds(
        headers in proptest::collection::vec((".{0,24}", ".{0,40}"), 0..4),
        message in ".{0,200}",
        body in ".{0,200}",
    ) {
        let json = serde_json::from_str::<Value>(&body).ok();
        if let Some(at) = reset_at(&headers, json.as_ref(), Some(&message), NOW, CEILING) {
            prop_assert!(at > NOW);
            prop_assert!(at <= NOW.plus(CEILING));
        }
    }

    #[test]
    fn phrases_with_numbers_never_panic(
        anchor in prop::sample::select(vec!["try again in ", "resets in ", "retry after ", "access on ", "until ", "reset at "]),
        tail in "[0-9a-zA-Z .:,-]{0,40}",
    ) {
        let message = format!("{anchor}{tail}");
        let _ = from_message(&message, NOW);
        let _ = parse_reset_value(&tail, NOW);
        let _ = parse_duration(&tail);
    }
}
