use std::env::VarError;
use std::fs;

use credpool_core::{CooldownCause, DeadReason, Entry, Generation, Status, Timestamp};
use tempfile::TempDir;

use super::*;
use crate::fixtures::{self, ENV_CANARY, FILE_CANARY, REFRESH_CANARY};

fn env(name: &str) -> Result<String, VarError> {
    match name {
        "KEY" => Ok(format!("  {ENV_CANARY}\n")),
        "REFRESH" => Ok(REFRESH_CANARY.to_owned()),
        "BLANK" => Ok(" \n".to_owned()),
        _ => Err(VarError::NotPresent),
    }
}

fn dead_key(source: SecretSource) -> Entry {
    let mut entry = fixtures::api_key(1, "", source);
    entry.status = Status::Dead {
        reason: DeadReason::new("invalid_api_key"),
        since: Timestamp(1),
    };
    entry
        .model_cooldowns
        .insert("gpt-5".to_owned(), Timestamp(10));
    entry
}

/// Hydrates `entry` with `stored` and checks the outcome, the generation after, and whether
/// the entry was revived.
fn check(
    mut entry: Entry,
    stored: Option<&str>,
    expected: Result<&str, &str>,
    generation: u64,
    revived: bool,
) {
    let stored = stored.map(Fingerprint::of);
    let outcome = hydrate_borrowed_with(&mut entry, stored.as_ref(), &env);
    match (&outcome, expected) {
        (Ok(Hydrated::Owned), Ok("owned"))
        | (Ok(Hydrated::Loaded), Ok("loaded"))
        | (Ok(Hydrated::Rotated { .. }), Ok("rotated")) => {}
        (Err(error), Err(text)) => {
            let message = error.to_string();
            assert!(message.contains(text), "{message}");
            for canary in [ENV_CANARY, FILE_CANARY, REFRESH_CANARY] {
                assert!(!message.contains(canary), "{message}");
            }
        }
        (outcome, expected) => panic!("{outcome:?}, expected {expected:?}"),
    }
    assert_eq!(entry.generation, Generation(generation), "{outcome:?}");
    assert_eq!(entry.status == Status::Ok, revived, "{outcome:?}");
}

#[test]
fn borrowed_secrets_are_read_compared_and_adopted() {
    let key = || dead_key(fixtures::env("KEY"));
    check(key(), Some(ENV_CANARY), Ok("loaded"), 1, false);
    check(key(), None, Ok("loaded"), 1, false);
    check(key(), Some("an older key"), Ok("rotated"), 2, true);
    check(
        dead_key(fixtures::env("UNSET")),
        None,
        Err("environment variable UNSET is not set"),
        1,
        false,
    );
    check(
        dead_key(fixtures::env("BLANK")),
        None,
        Err("secret source env:BLANK is empty"),
        1,
        false,
    );
    check(
        dead_key(SecretSource::Manual),
        Some("x"),
        Ok("owned"),
        1,
        false,
    );
    check(
        dead_key(SecretSource::OAuthGrant),
        Some("x"),
        Ok("owned"),
        1,
        false,
    );

    let mut held = fixtures::api_key(1, "the old key", fixtures::env("KEY"));
    held.status = Status::CoolingDown {
        until: Timestamp(5),
        cause: CooldownCause::Auth,
    };
    check(held.clone(), None, Ok("rotated"), 2, true);
    check(held, Some(ENV_CANARY), Ok("loaded"), 1, false);

    // A borrowed grant carries its refresh token and stays at the first generation.
    let mut grant = fixtures::oauth(2, "", None, fixtures::env("REFRESH"));
    grant.generation = Generation::FIRST;
    check(grant.clone(), Some(REFRESH_CANARY), Ok("loaded"), 1, true);
    check(grant.clone(), Some("spent"), Ok("rotated"), 1, true);
    // Once credpool rotated it, the store holds the live pair and the source is not read.
    grant.generation = Generation(2);
    check(grant, Some("anything"), Ok("owned"), 2, true);
}

#[test]
fn files_are_read_trimmed_and_their_errors_name_the_path() {
    let tmp = TempDir::new().expect("tempdir");
    let path = tmp.path().join("key");
    fs::write(&path, format!("{FILE_CANARY}\n")).expect("writes");
    let mut entry = dead_key(fixtures::file(&path));
    let outcome = hydrate_borrowed_with(&mut entry, Some(&Fingerprint::of(FILE_CANARY)), &env);
    assert_eq!(outcome, Ok(Hydrated::Loaded));
    assert_eq!(entry.request_secret().expose(), FILE_CANARY);

    let missing = tmp.path().join("missing");
    check(
        dead_key(fixtures::file(&missing)),
        None,
        Err("cannot read secret file"),
        1,
        false,
    );
    let error = hydrate_borrowed_with(&mut dead_key(fixtures::file(&missing)), None, &env)
        .expect_err("missing file read");
    assert!(error.to_string().contains(&missing.display().to_string()));

    let binary = tmp.path().join("binary");
    fs::write(&binary, b"\xff\xfe").expect("writes");
    check(
        dead_key(fixtures::file(&binary)),
        None,
        Err("not valid utf-8"),
        1,
        false,
    );
}

#[test]
fn the_real_environment_is_read() {
    // Cargo sets this for every test process; setting a variable here would need `unsafe`.
    let mut entry = fixtures::api_key(1, "", fixtures::env("CARGO_PKG_NAME"));
    assert_eq!(hydrate_borrowed(&mut entry, None), Ok(Hydrated::Loaded));
    assert_eq!(entry.request_secret().expose(), "credpool-store");
}

#[test]
fn a_snapshot_hydrates_every_borrowed_entry() {
    let mut snapshot = ProviderSnapshot {
        entries: vec![
            fixtures::api_key(1, "", fixtures::env("KEY")),
            fixtures::api_key(2, "", fixtures::env("UNSET")),
            fixtures::api_key(3, "sk-owned", SecretSource::Manual),
        ],
        ..ProviderSnapshot::default()
    };
    snapshot
        .borrowed_fingerprints
        .insert(credpool_core::EntryId(1), Fingerprint::of("rotated away"));
    let report = snapshot.hydrate_with(&env);
    assert_eq!(report.rotated, vec![credpool_core::EntryId(1)]);
    assert_eq!(
        report.errors,
        vec![HydrateError::MissingEnvVar {
            entry: credpool_core::EntryId(2),
            name: "UNSET".to_owned(),
        }]
    );
    assert_eq!(snapshot.entries[0].request_secret().expose(), ENV_CANARY);
    assert!(snapshot.entries[1].request_secret().is_empty());
    assert_eq!(snapshot.entries[2].request_secret().expose(), "sk-owned");
}
