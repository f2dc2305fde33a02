use std::time::Duration;

use credpool_core::Timestamp;
use credpool_core::registry::RefreshSkew;

use super::{backoff_delay, refresh_due_at};

const EXPIRES: Timestamp = Timestamp(1_800_000_000_000);

fn xai() -> RefreshSkew {
    RefreshSkew {
        skew: Duration::from_secs(3600),
        short_lived: Some((Duration::from_secs(45 * 60), Duration::from_secs(120))),
    }
}

/// (lifetime in s or none, jitter unit) → seconds before expiry the refresh is due.
fn check(lifetime_s: Option<u64>, jitter_unit: f64, expected_before_expiry_s: f64) {
    let obtained = lifetime_s.map(|s| EXPIRES.minus(Duration::from_secs(s)));
    let due = refresh_due_at(EXPIRES, obtained, &xai(), 0.10, jitter_unit);
    let before = (EXPIRES.0 - due.0) as f64 / 1000.0;
    assert!(
        (before - expected_before_expiry_s).abs() < 0.002,
        "lifetime {lifetime_s:?} jitter {jitter_unit}: {before} s before expiry, expected {expected_before_expiry_s}"
    );
}

#[test]
fn proactive_refresh_is_due_at_expiry_minus_skew_minus_jitter() {
    check(Some(6 * 3600), 0.0, 3600.0);
    check(Some(6 * 3600), 1.0, 3960.0);
    check(Some(6 * 3600), 0.5, 3780.0);
    check(None, 0.0, 3600.0);
    // short-lived xAI tokens (≤ 45 min) use the 120 s skew
    check(Some(30 * 60), 0.0, 120.0);
    check(Some(30 * 60), 1.0, 132.0);
    check(Some(45 * 60), 0.25, 123.0);
    // the skew never exceeds half the lifetime: a 60-minute token is not due at issue
    check(Some(3600), 0.0, 1800.0);
    check(Some(3600), 1.0, 1980.0);
    check(Some(60), 0.0, 30.0);
    // jitter units outside [0, 1] are clamped
    check(Some(30 * 60), 7.0, 132.0);
    check(Some(30 * 60), -1.0, 120.0);
}

#[test]
fn backoff_doubles_from_ten_seconds_to_five_minutes_with_jitter() {
    let initial = Duration::from_secs(10);
    let max = Duration::from_secs(300);
    let full = |attempt| backoff_delay(attempt, initial, max, 1.0).as_secs();
    assert_eq!(
        (1..=7).map(full).collect::<Vec<_>>(),
        [10, 20, 40, 80, 160, 300, 300]
    );
    assert_eq!(backoff_delay(1, initial, max, 0.0), Duration::from_secs(5));
    assert_eq!(
        backoff_delay(100, initial, max, 0.0),
        Duration::from_secs(150)
    );
}
