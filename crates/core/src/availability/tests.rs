use std::time::Duration;

use super::Unavailable;
use crate::clock::Timestamp;
use crate::entry::{CooldownCause, DeadReason, Entry, EntryKind, SecretSource, Status};
use crate::ids::EntryId;
use crate::secret::Secret;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn key(value: &str) -> Entry {
    Entry::new(
        EntryId(1),
        "key",
        EntryKind::ApiKey {
            key: Secret::new(value),
        },
        SecretSource::Manual,
    )
}

/// (entry, model, refreshing) → the cause, or `None` when available.
fn check(entry: &Entry, model: Option<&str>, refreshing: bool, expected: Option<Unavailable>) {
    assert_eq!(
        Unavailable::of(entry, NOW, model, refreshing),
        expected,
        "{entry:?} for {model:?}"
    );
}

#[test]
fn each_entry_state_has_one_cause() {
    let ok = key("sk-1");
    check(&ok, None, false, None);
    check(&ok, Some("m"), false, None);

    let mut cooling = key("sk-1");
    cooling.status = Status::CoolingDown {
        until: NOW.plus(Duration::from_secs(1)),
        cause: CooldownCause::RateLimited,
    };
    check(
        &cooling,
        None,
        false,
        Some(Unavailable::CoolingDown(CooldownCause::RateLimited)),
    );
    cooling.status = Status::CoolingDown {
        until: NOW,
        cause: CooldownCause::RateLimited,
    };
    check(&cooling, None, false, None);

    let mut dead = key("sk-1");
    dead.status = Status::Dead {
        reason: DeadReason::new("invalid_grant"),
        since: NOW,
    };
    check(&dead, None, true, Some(Unavailable::Dead));

    let empty = key("");
    check(&empty, None, false, Some(Unavailable::MissingSecret));
    check(&empty, None, true, Some(Unavailable::Refreshing));

    let mut benched = key("sk-1");
    benched
        .model_cooldowns
        .insert("big".to_owned(), NOW.plus(Duration::from_secs(5)));
    check(
        &benched,
        Some("big"),
        false,
        Some(Unavailable::ModelCooldown),
    );
    check(&benched, Some("small"), false, None);
    check(&benched, None, false, Some(Unavailable::ModelCooldown));
}

#[test]
fn names_are_the_edge_forms() {
    assert_eq!(
        Unavailable::CoolingDown(CooldownCause::Billing).as_str(),
        "billing"
    );
    assert_eq!(Unavailable::AtLeaseCap.as_str(), "at_lease_cap");
    assert_eq!(
        serde_json::to_string(&Unavailable::Refreshing).unwrap_or_default(),
        "\"refreshing\""
    );
}
