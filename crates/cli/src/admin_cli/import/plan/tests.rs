#![allow(clippy::unwrap_used, clippy::expect_used)]

use credpool_core::{
    ClientMetadata, EntryKind, OAuthTokens, ProviderRegistry, Secret, SecretSource, Timestamp,
};
use serde_json::{Value, json};

use super::*;
use crate::admin_cli::import::hermes::read_provider;

const NOW: Timestamp = Timestamp(1_767_225_600_000);

fn api_key_row(label: &str, key: &str, priority: i64) -> Value {
    json!({"label": label, "auth_type": "api_key", "source": "manual", "access_token": key,
           "priority": priority})
}

fn grant_row(label: &str, access: &str, refresh: &str) -> Value {
    json!({"label": label, "auth_type": "oauth", "source": "device_code",
           "access_token": access, "refresh_token": refresh})
}

fn held_key(id: u64, label: &str, key: &str, priority: u32) -> Held {
    let mut entry = Entry::new(
        EntryId(id),
        label,
        EntryKind::ApiKey {
            key: Secret::new(key),
        },
        SecretSource::Manual,
    );
    entry.priority = priority;
    Held::of(&entry, None)
}

fn held_grant(id: u64, label: &str, access: &str, refresh: &str) -> Held {
    let entry = Entry::new(
        EntryId(id),
        label,
        EntryKind::OAuth(OAuthTokens {
            access: Secret::new(access),
            refresh: Some(Secret::new(refresh)),
            expires_at: None,
            client: ClientMetadata::default(),
        }),
        SecretSource::OAuthGrant,
    );
    Held::of(&entry, None)
}

/// Plans `rows` of `provider` against `held`, with `spent` refresh tokens (by value) and
/// ids counting up from 0x100.
fn plan(
    provider: &str,
    rows: &[Value],
    held: &[Held],
    spent: &[&str],
    dry_run: bool,
) -> ProviderPlan {
    let read = read_provider(provider, rows, &ProviderRegistry::builtin(), NOW);
    let spent: Vec<Fingerprint> = spent.iter().map(|s| Fingerprint::of(s)).collect();
    let is_spent = |fingerprint: &Fingerprint| spent.contains(fingerprint);
    let store = Store {
        held,
        spent: &is_spent,
        lost: false,
    };
    let mut next = 0x100_u64;
    plan_provider(read, &store, dry_run, &mut || {
        next += 1;
        next
    })
}

/// Each row as `action` or `action:reason`, in file order.
fn actions(plan: &ProviderPlan) -> Vec<String> {
    plan.report
        .rows
        .iter()
        .map(|row| {
            let action = serde_json::to_value(row.action).unwrap();
            let action = action.as_str().unwrap();
            match (&row.action, &row.reason) {
                (Action::Refused, Some(reason)) => format!("{action}:{reason}"),
                _ => action.to_owned(),
            }
        })
        .collect()
}

fn check(plan: &ProviderPlan, expected: &[&str], writes: usize) {
    assert_eq!(actions(plan), expected);
    assert_eq!(plan.writes.len(), writes, "{:?}", actions(plan));
}

#[test]
fn new_rows_are_written_in_hermes_order_after_the_pool_entries() {
    let rows = [
        api_key_row("b", "k-b", 5),
        api_key_row("a", "k-a", -2),
        api_key_row("c", "k-c", 5),
    ];
    let empty = plan("openrouter", &rows, &[], &[], false);
    check(&empty, &["imported", "imported", "imported"], 3);
    let priority = |plan: &ProviderPlan, label: &str| {
        plan.writes
            .iter()
            .find(|entry| entry.label == label)
            .map(|entry| entry.priority)
    };
    assert_eq!(priority(&empty, "a"), Some(0));
    assert_eq!(priority(&empty, "b"), Some(1));
    assert_eq!(priority(&empty, "c"), Some(2), "ties keep file order");
    let ids: HashSet<EntryId> = empty.writes.iter().map(|entry| entry.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&EntryId(0)));

    let held = [held_key(7, "mine", "k-mine", 4)];
    let after = plan("openrouter", &rows, &held, &[], false);
    assert_eq!(priority(&after, "a"), Some(5));
    assert_eq!(priority(&after, "c"), Some(7));
}

/// Provider, rows, spent refresh tokens, the actions expected, the entries written.
type Case = (
    &'static str,
    Vec<Value>,
    Vec<&'static str>,
    Vec<&'static str>,
    usize,
);

#[test]
fn decisions_against_the_pool_and_the_rows_before() {
    let held = [
        held_key(1, "Team", "k-team", 0),
        held_grant(2, "grok", "at-new", "rt-new"),
    ];
    let cases: Vec<Case> = vec![
        (
            "openrouter",
            vec![api_key_row("team", "k-team", 0)],
            vec![],
            vec!["skipped"],
            0,
        ),
        (
            "openrouter",
            vec![
                api_key_row("team", "k-other", 0),
                api_key_row("new", "k-new", 1),
            ],
            vec![],
            vec!["refused:label_taken", "held_back"],
            0,
        ),
        (
            "openrouter",
            vec![api_key_row("new", "k-team", 0)],
            vec![],
            vec!["imported"],
            1,
        ),
        (
            "openrouter",
            vec![api_key_row("x", "k-1", 0), api_key_row("X", "k-2", 0)],
            vec![],
            vec!["held_back", "refused:duplicate_label"],
            0,
        ),
        (
            "xai-oauth",
            vec![grant_row("grok", "at-new", "rt-new")],
            vec![],
            vec!["skipped"],
            0,
        ),
        (
            "xai-oauth",
            vec![grant_row("grok", "at-old", "rt-old")],
            vec!["rt-old"],
            vec!["skipped"],
            0,
        ),
        (
            "xai-oauth",
            vec![grant_row("grok", "at-old", "rt-old")],
            vec![],
            vec!["refused:label_taken"],
            0,
        ),
        (
            "xai-oauth",
            vec![grant_row("again", "at-old", "rt-old")],
            vec!["rt-old"],
            vec!["refused:refresh_token_spent"],
            0,
        ),
        (
            "xai-oauth",
            vec![grant_row("copy", "at-copy", "rt-new")],
            vec![],
            vec!["refused:same_refresh_token"],
            0,
        ),
        (
            "xai-oauth",
            vec![
                grant_row("one", "at-1", "rt-twin"),
                grant_row("two", "at-2", "rt-twin"),
            ],
            vec![],
            vec!["held_back", "refused:same_refresh_token"],
            0,
        ),
        (
            "xai-oauth",
            vec![
                grant_row("one", "at-1", "rt-1"),
                json!({"source": "env:XAI"}),
            ],
            vec![],
            vec!["held_back", "refused:borrowed"],
            0,
        ),
    ];
    for (provider, rows, spent, expected, writes) in cases {
        let plan = plan(provider, &rows, &held, &spent, false);
        check(&plan, &expected, writes);
    }
}

#[test]
fn a_dry_run_reports_what_would_be_written_and_writes_nothing() {
    let rows = [api_key_row("a", "k-a", 0)];
    let dry = plan("openrouter", &rows, &[], &[], true);
    check(&dry, &["would_import"], 0);
    let row = &dry.report.rows[0];
    assert_eq!(row.priority, Some(0));
    assert_eq!(row.entry, None);
    assert_eq!(row.fingerprint, Some(Fingerprint::of("k-a")));
}

#[test]
fn a_skipped_row_names_the_entry_it_found() {
    let held = [held_key(9, "a", "k-a", 3)];
    let plan = plan(
        "openrouter",
        &[api_key_row("a", "k-a", 0)],
        &held,
        &[],
        false,
    );
    let row = &plan.report.rows[0];
    assert_eq!(row.entry, Some(EntryId(9)));
    assert_eq!(row.priority, Some(3));
    assert_eq!(row.reason.as_deref(), Some("already_imported"));
}

#[test]
fn a_borrowed_entry_is_matched_by_its_stored_fingerprint() {
    let entry = Entry::new(
        EntryId(4),
        "env-key",
        EntryKind::ApiKey {
            key: Secret::new(""),
        },
        SecretSource::EnvVar {
            name: "OPENROUTER_API_KEY".to_owned(),
        },
    );
    let stored = Fingerprint::of("k-env");
    let held = [Held::of(&entry, Some(&stored))];
    let same = plan(
        "openrouter",
        &[api_key_row("env-key", "k-env", 0)],
        &held,
        &[],
        false,
    );
    check(&same, &["skipped"], 0);
    let other = plan(
        "openrouter",
        &[api_key_row("env-key", "k-x", 0)],
        &held,
        &[],
        false,
    );
    check(&other, &["refused:label_taken"], 0);
}

#[test]
fn an_unknown_provider_refuses_every_row() {
    let rows = [api_key_row("a", "k-a", 0), api_key_row("b", "k-b", 1)];
    let plan = plan("zai", &rows, &[], &[], false);
    check(
        &plan,
        &["refused:unknown_provider", "refused:unknown_provider"],
        0,
    );
    assert_eq!(plan.provider, None);
}

#[test]
fn a_data_dir_that_lost_its_store_imports_keys_but_no_grant() {
    let read = read_provider(
        "openrouter",
        &[api_key_row("k", "k-value", 0)],
        &ProviderRegistry::builtin(),
        NOW,
    );
    let never = |_: &Fingerprint| false;
    let store = Store {
        held: &[],
        spent: &never,
        lost: true,
    };
    let keys = plan_provider(read, &store, false, &mut || 0x200);
    check(&keys, &["imported"], 1);
    let read = read_provider(
        "xai-oauth",
        &[grant_row("g", "at-g", "rt-g")],
        &ProviderRegistry::builtin(),
        NOW,
    );
    let grants = plan_provider(read, &store, false, &mut || 0x300);
    check(&grants, &["refused:store_lost"], 0);
}
