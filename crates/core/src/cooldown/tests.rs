use super::*;
use crate::outcome::TransientCause;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn failure(kind: FailureKind, reset_in_s: Option<i64>) -> Classification {
    Classification {
        reset_at: reset_in_s.map(|s| Timestamp(NOW.0 + s * 1000)),
        reason: Some("code".to_owned()),
        ..Classification::of(kind)
    }
}

/// Expected: `None` keep, `Some(Ok(secs))` cool down for secs, `Some(Err(()))` dead.
fn check(
    kind: FailureKind,
    reset_in_s: Option<i64>,
    live_entries: usize,
    existing_in_s: Option<i64>,
    expected: Option<Result<i64, ()>>,
) {
    let decision = decide_cooldown(
        &failure(kind.clone(), reset_in_s),
        PoolShape { live_entries },
        existing_in_s.map(|s| Timestamp(NOW.0 + s * 1000)),
        None,
        NOW,
        &CooldownConfig::default(),
    );
    let got = match decision {
        CooldownDecision::Keep => None,
        CooldownDecision::CoolDown { until, .. }
        | CooldownDecision::CoolDownModel { until, .. } => Some(Ok((until.0 - NOW.0) / 1000)),
        CooldownDecision::Dead { .. } => Some(Err(())),
    };
    assert_eq!(
        got, expected,
        "{kind:?} reset={reset_in_s:?} live={live_entries} existing={existing_in_s:?}"
    );
}

const ACCOUNT: FailureKind = FailureKind::RateLimited {
    scope: RateLimitScope::Account,
};

#[test]
fn cooldown_table() {
    use FailureKind::*;
    // auth: 5 minutes, sole or not
    check(AuthExpired, None, 3, None, Some(Ok(300)));
    check(
        AuthInvalid { terminal: false },
        None,
        1,
        None,
        Some(Ok(300)),
    );
    check(AuthInvalid { terminal: true }, None, 3, None, Some(Err(())));
    // rate limit: 1 h, 60 s when sole; a reset time wins
    check(ACCOUNT, None, 3, None, Some(Ok(3600)));
    check(ACCOUNT, None, 1, None, Some(Ok(60)));
    check(ACCOUNT, Some(30), 3, None, Some(Ok(30)));
    check(ACCOUNT, Some(7200), 1, None, Some(Ok(7200)));
    // a reset time is clamped to the 7-day ceiling
    check(ACCOUNT, Some(15 * 86_400), 3, None, Some(Ok(7 * 86_400)));
    // billing: full, never shortened by the sole rule; the later of table and reset
    check(Billing { verified: true }, None, 1, None, Some(Ok(3600)));
    check(Billing { verified: false }, None, 3, None, Some(Ok(3600)));
    check(
        Billing { verified: true },
        Some(60),
        3,
        None,
        Some(Ok(3600)),
    );
    check(
        Billing { verified: true },
        Some(86_400),
        3,
        None,
        Some(Ok(86_400)),
    );
    // other: 1 h, sole 60 s
    check(Other, None, 2, None, Some(Ok(3600)));
    check(Other, None, 1, None, Some(Ok(60)));
    // transient never penalises
    for cause in [
        TransientCause::Overloaded,
        TransientCause::ServerError,
        TransientCause::Proxy,
        TransientCause::EmptyResponse,
        TransientCause::Network,
    ] {
        check(Transient { cause }, Some(600), 1, None, None);
    }
    // deadlines only extend
    check(ACCOUNT, Some(30), 3, Some(900), Some(Ok(900)));
    check(ACCOUNT, None, 1, Some(3000), Some(Ok(3000)));
    check(AuthExpired, None, 3, Some(10), Some(Ok(300)));
}

#[test]
fn model_scoped_failures_bench_the_model_only() {
    let config = CooldownConfig::default();
    let model_limit = failure(
        FailureKind::RateLimited {
            scope: RateLimitScope::Model,
        },
        Some(120),
    );
    let decision = decide_cooldown(
        &model_limit,
        PoolShape { live_entries: 2 },
        None,
        Some("opus"),
        NOW,
        &config,
    );
    assert_eq!(
        decision,
        CooldownDecision::CoolDownModel {
            model: "opus".to_owned(),
            until: Timestamp(NOW.0 + 120_000)
        }
    );
    let entitlement = failure(FailureKind::ModelEntitlement, None);
    let decision = decide_cooldown(
        &entitlement,
        PoolShape { live_entries: 2 },
        None,
        Some("o3-pro"),
        NOW,
        &config,
    );
    assert_eq!(
        decision,
        CooldownDecision::CoolDownModel {
            model: "o3-pro".to_owned(),
            until: NOW.plus(config.model_entitlement)
        }
    );
}

#[test]
fn dead_reason_is_the_provider_code() {
    let mut terminal = failure(FailureKind::AuthInvalid { terminal: true }, None);
    terminal.reason = Some("invalid_grant".to_owned());
    let decision = decide_cooldown(
        &terminal,
        PoolShape { live_entries: 3 },
        None,
        None,
        NOW,
        &CooldownConfig::default(),
    );
    assert_eq!(
        decision,
        CooldownDecision::Dead {
            reason: DeadReason::new("invalid_grant")
        }
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn any_kind() -> impl Strategy<Value = FailureKind> {
        prop_oneof![
            Just(FailureKind::AuthExpired),
            any::<bool>().prop_map(|terminal| FailureKind::AuthInvalid { terminal }),
            Just(ACCOUNT),
            Just(FailureKind::RateLimited {
                scope: RateLimitScope::Model
            }),
            any::<bool>().prop_map(|verified| FailureKind::Billing { verified }),
            Just(FailureKind::ModelEntitlement),
            Just(FailureKind::Other),
        ]
    }

    proptest! {
        #[test]
        fn deadlines_only_extend(
            kind in any_kind(),
            reset in proptest::option::of(-86_400i64..40 * 86_400),
            live in 0usize..5,
            existing in proptest::option::of(-86_400i64..40 * 86_400),
            with_model in any::<bool>(),
        ) {
            let failure = failure(kind, reset);
            let existing_at = existing.map(|s| Timestamp(NOW.0 + s * 1000));
            let model = with_model.then_some("m");
            let config = CooldownConfig::default();
            let decision = decide_cooldown(&failure, PoolShape { live_entries: live }, existing_at, model, NOW, &config);
            match decision {
                CooldownDecision::CoolDown { until, .. } | CooldownDecision::CoolDownModel { until, .. } => {
                    if let Some(existing_at) = existing_at {
                        prop_assert!(until >= existing_at);
                    }
                    let longest = config.reset_ceiling.max(config.model_entitlement);
                    prop_assert!(until <= existing_at.unwrap_or(NOW).max(NOW.plus(longest)));
                }
                CooldownDecision::Dead { .. } => prop_assert!(failure.kind.is_terminal()),
                CooldownDecision::Keep => prop_assert!(false, "only transient failures keep"),
            }
        }
    }
}
