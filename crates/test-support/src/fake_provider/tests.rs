//! Unit tests of the fake provider's ledger: rotation, reuse, grace, expiry.

use std::sync::Arc;
use std::time::Duration;

use credpool_core::{ManualClock, Timestamp};

use super::ledger::{AccessState, Ledger, RefreshVerdict};

fn ledger(grace: Duration, rotate: bool) -> (Ledger, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_secs(1_700_000_000));
    let ledger = Ledger::new(
        Arc::new(clock.clone()),
        Duration::from_secs(60),
        grace,
        rotate,
    );
    (ledger, clock)
}

fn issued(verdict: RefreshVerdict) -> (String, Option<String>) {
    match verdict {
        RefreshVerdict::Issued(pair) => (pair.access, pair.refresh),
        other => panic!("expected a new pair, got {other:?}"),
    }
}

#[test]
fn rotation_spends_each_refresh_token_once() {
    let (mut ledger, _) = ledger(Duration::ZERO, true);
    let (first_access, r0) = ledger.grant("a");
    let (access, r1) = issued(ledger.refresh(&r0));
    let r1 = r1.expect("rotation issues a refresh token");
    assert_ne!(r1, r0);
    assert_eq!(ledger.access_state(&access), AccessState::Valid);
    assert_eq!(ledger.access_state(&first_access), AccessState::Valid);
    let (_, r2) = issued(ledger.refresh(&r1));
    assert!(r2.is_some());
    assert_eq!(ledger.refresh("never-issued"), RefreshVerdict::Unknown);
}

#[test]
fn reuse_revokes_the_family_and_its_access_tokens() {
    let (mut ledger, _) = ledger(Duration::ZERO, true);
    let (_, r0) = ledger.grant("a");
    let (_, other_r0) = ledger.grant("b");
    let (access, r1) = issued(ledger.refresh(&r0));
    assert_eq!(ledger.refresh(&r0), RefreshVerdict::Reused);
    assert!(ledger.is_revoked("a"));
    assert_eq!(ledger.access_state(&access), AccessState::Revoked);
    assert_eq!(
        ledger.refresh(&r1.expect("rotated")),
        RefreshVerdict::Revoked
    );
    // Another family is untouched.
    assert!(!ledger.is_revoked("b"));
    issued(ledger.refresh(&other_r0));
}

#[test]
fn grace_returns_the_same_pair_once_per_generation() {
    let (mut ledger, clock) = ledger(Duration::from_secs(10), true);
    let (_, r0) = ledger.grant("a");
    let first = ledger.refresh(&r0);
    let RefreshVerdict::Issued(pair) = first else {
        panic!("expected issue");
    };
    clock.advance(Duration::from_secs(5));
    assert_eq!(ledger.refresh(&r0), RefreshVerdict::Replayed(pair.clone()));
    // Once the successor is spent, the predecessor is two generations back: reuse.
    let r1 = pair.refresh.clone().expect("rotated");
    issued(ledger.refresh(&r1));
    assert_eq!(ledger.refresh(&r0), RefreshVerdict::Reused);
}

#[test]
fn grace_ends_after_its_window() {
    let (mut ledger, clock) = ledger(Duration::from_secs(10), true);
    let (_, r0) = ledger.grant("a");
    issued(ledger.refresh(&r0));
    clock.advance(Duration::from_secs(11));
    assert_eq!(ledger.refresh(&r0), RefreshVerdict::Reused);
}

#[test]
fn access_tokens_expire_by_clock_and_by_force() {
    let (mut ledger, clock) = ledger(Duration::ZERO, true);
    let (access, r0) = ledger.grant("a");
    clock.advance(Duration::from_secs(59));
    assert_eq!(ledger.access_state(&access), AccessState::Valid);
    clock.advance(Duration::from_secs(1));
    assert_eq!(ledger.access_state(&access), AccessState::Expired);
    let (fresh, _) = issued(ledger.refresh(&r0));
    assert_eq!(ledger.access_state(&fresh), AccessState::Valid);
    ledger.expire_access_tokens();
    assert_eq!(ledger.access_state(&fresh), AccessState::Expired);
    assert_eq!(ledger.access_state("nope"), AccessState::Unknown);
}

#[test]
fn without_rotation_the_refresh_token_stays_valid() {
    let (mut ledger, _) = ledger(Duration::ZERO, false);
    let (_, r0) = ledger.grant("a");
    let (_, none) = issued(ledger.refresh(&r0));
    assert!(none.is_none());
    issued(ledger.refresh(&r0));
}
