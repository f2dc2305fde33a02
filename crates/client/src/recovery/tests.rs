use credpool_core::{RateLimitScope, TransientCause};

use super::*;

fn check(kind: FailureKind, expected: Action) {
    assert_eq!(action_for(&kind), expected, "{kind:?}");
}

#[test]
fn failure_kinds_map_to_actions() {
    check(FailureKind::AuthExpired, Action::Refresh);
    check(FailureKind::AuthInvalid { terminal: true }, Action::Rotate);
    check(FailureKind::AuthInvalid { terminal: false }, Action::Rotate);
    check(
        FailureKind::RateLimited {
            scope: RateLimitScope::Account,
        },
        Action::Rotate,
    );
    check(
        FailureKind::RateLimited {
            scope: RateLimitScope::Model,
        },
        Action::Rotate,
    );
    check(FailureKind::Billing { verified: true }, Action::Rotate);
    check(FailureKind::Billing { verified: false }, Action::Rotate);
    check(
        FailureKind::Transient {
            cause: TransientCause::ServerError,
        },
        Action::RetrySame,
    );
    check(
        FailureKind::Transient {
            cause: TransientCause::Network,
        },
        Action::RetrySame,
    );
    check(FailureKind::ModelEntitlement, Action::GiveUp);
    check(FailureKind::Other, Action::GiveUp);
}
