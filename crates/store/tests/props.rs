//! Properties of the record codec through the public API, on generated entries.
//!
//! The unit tests in `codec/tests.rs` already decode arbitrary bytes (raw and behind a V1
//! version byte) and round-trip one fixture with arbitrary numbers; this file generates
//! whole entries — both credential kinds, every source and status, optional fields — and
//! checks the round trip, the borrowed-secret rule and corruption of real encodings.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;

use credpool_core::{
    ClientMetadata, CooldownCause, DeadReason, Entry, EntryId, EntryKind, Generation, LastError,
    OAuthTokens, Secret, SecretSource, Status, Timestamp, Usage,
};
use std::sync::LazyLock;

use credpool_core::ProviderId;
use credpool_store::codec::{self, CodecError, DecodedEntry, Secrets};
use credpool_store::seal::MasterKey;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

static KEY: LazyLock<MasterKey> = LazyLock::new(|| MasterKey::generate().0);

fn encode_entry(entry: &Entry) -> Result<zeroize::Zeroizing<Vec<u8>>, CodecError> {
    codec::encode_entry(&ProviderId::new("xai-oauth"), entry, &KEY)
}

fn decode_entry(bytes: &[u8]) -> Result<DecodedEntry, CodecError> {
    codec::decode_entry(&ProviderId::new("xai-oauth"), bytes, Secrets::Open(&KEY))
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    any::<i64>().prop_map(Timestamp)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

/// Secret values: printable ASCII (keys and tokens) or any non-control text.
fn secret() -> impl Strategy<Value = Secret> {
    prop_oneof!["[!-~]{0,64}", "\\PC{0,16}"].prop_map(Secret::new)
}

fn source() -> impl Strategy<Value = SecretSource> {
    prop_oneof![
        Just(SecretSource::Manual),
        text().prop_map(|name| SecretSource::EnvVar { name }),
        text().prop_map(|path| SecretSource::File { path }),
        Just(SecretSource::OAuthGrant),
    ]
}

fn kind() -> impl Strategy<Value = EntryKind> {
    let client = (
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(timestamp()),
    )
        .prop_map(
            |(client_id, token_endpoint, scope, obtained_at)| ClientMetadata {
                client_id,
                token_endpoint,
                scope,
                obtained_at,
            },
        );
    prop_oneof![
        secret().prop_map(|key| EntryKind::ApiKey { key }),
        (
            secret(),
            proptest::option::of(secret()),
            proptest::option::of(timestamp()),
            client
        )
            .prop_map(|(access, refresh, expires_at, client)| {
                EntryKind::OAuth(OAuthTokens {
                    access,
                    refresh,
                    expires_at,
                    client,
                })
            }),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    let cause = prop::sample::select(vec![
        CooldownCause::Auth,
        CooldownCause::RateLimited,
        CooldownCause::Billing,
        CooldownCause::RefreshFailed,
        CooldownCause::Other,
    ]);
    prop_oneof![
        Just(Status::Ok),
        (timestamp(), cause).prop_map(|(until, cause)| Status::CoolingDown { until, cause }),
        (text(), timestamp()).prop_map(|(reason, since)| Status::Dead {
            reason: DeadReason::new(reason),
            since
        }),
    ]
}

fn last_error() -> impl Strategy<Value = LastError> {
    (
        text(),
        proptest::option::of(any::<u16>()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        timestamp(),
    )
        .prop_map(|(kind, status, reason, message, at)| LastError {
            kind,
            status,
            reason,
            message,
            at,
        })
}

fn entry() -> impl Strategy<Value = Entry> {
    let head = (
        any::<u64>(),
        text(),
        kind(),
        source(),
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(text()),
        any::<u64>(),
    );
    let tail = (
        any::<(u64, u64, u64, u64)>(),
        proptest::option::of(timestamp()),
        status(),
        proptest::collection::btree_map(text(), timestamp(), 0..3),
        proptest::option::of(last_error()),
        proptest::option::of(timestamp()),
    );
    (head, tail).prop_map(
        |(
            (id, label, kind, source, priority, weight, base_url, generation),
            (counters, last_used_at, status, model_cooldowns, last_error, last_refresh_at),
        )| {
            let mut entry = Entry::new(EntryId(id), label, kind, source);
            entry.priority = priority;
            entry.weight = weight;
            entry.base_url = base_url;
            entry.generation = Generation(generation);
            entry.usage = Usage {
                selections: counters.0,
                successes: counters.1,
                failures: counters.2,
                refreshes: counters.3,
                last_used_at,
            };
            entry.status = status;
            entry.model_cooldowns = model_cooldowns;
            entry.last_error = last_error;
            entry.last_refresh_at = last_refresh_at;
            entry
        },
    )
}

/// Every field but the secret values (`Secret`'s `Debug` shows only a fingerprint).
fn view(entry: &Entry) -> String {
    format!("{entry:?}")
}

/// The secret values themselves.
fn secrets(entry: &Entry) -> (String, Option<String>) {
    let refresh = entry
        .oauth()
        .and_then(|tokens| tokens.refresh.as_ref())
        .map(|secret| secret.expose().to_owned());
    (entry.request_secret().expose().to_owned(), refresh)
}

/// The secret whose fingerprint a borrowed entry keeps: the key, or the refresh token.
fn borrowed_secret(entry: &Entry) -> Option<&Secret> {
    match &entry.kind {
        EntryKind::ApiKey { key } => Some(key),
        EntryKind::OAuth(tokens) => tokens.refresh.as_ref(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// An entry whose secrets are owned decodes to exactly what was encoded.
    #[test]
    fn owned_entries_round_trip(entry in entry()) {
        prop_assume!(entry.secrets_owned());
        let bytes = encode_entry(&entry).unwrap();
        let decoded = decode_entry(&bytes).unwrap();
        prop_assert_eq!(view(&decoded.entry), view(&entry));
        prop_assert_eq!(secrets(&decoded.entry), secrets(&entry));
        prop_assert_eq!(decoded.borrowed_fingerprint, None);
    }

    /// A borrowed secret (env var, file) is never written: the record holds its fingerprint,
    /// and the entry decodes with empty secrets and every other field intact.
    #[test]
    fn borrowed_secrets_are_not_stored(entry in entry(), canary in "[a-z0-9]{24}") {
        let mut entry = entry;
        entry.source = SecretSource::EnvVar { name: "KEY".to_owned() };
        entry.generation = Generation::FIRST;
        match &mut entry.kind {
            EntryKind::ApiKey { key } => *key = Secret::new(format!("sk-{canary}")),
            EntryKind::OAuth(tokens) => {
                tokens.access = Secret::new(format!("at-{canary}"));
                tokens.refresh = Some(Secret::new(format!("rt-{canary}")));
            }
        }
        prop_assert!(!entry.secrets_owned());
        let bytes = encode_entry(&entry).unwrap();
        prop_assert!(!contains(&bytes, canary.as_bytes()), "a borrowed secret was written");
        let decoded = decode_entry(&bytes).unwrap();
        prop_assert!(decoded.entry.request_secret().is_empty());
        prop_assert_eq!(
            decoded.borrowed_fingerprint,
            borrowed_secret(&entry).map(Secret::fingerprint)
        );
        let mut expected = entry.clone();
        match &mut expected.kind {
            EntryKind::ApiKey { key } => *key = Secret::new(String::new()),
            EntryKind::OAuth(tokens) => {
                tokens.access = Secret::new(String::new());
                tokens.refresh = Some(Secret::new(String::new()));
            }
        }
        prop_assert_eq!(view(&decoded.entry), view(&expected));
    }

    /// A strict prefix or an extension of a real record never decodes; a changed byte decodes
    /// or fails, and never panics.
    #[test]
    fn corrupted_records_fail_cleanly(
        entry in entry(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let bytes = encode_entry(&entry).unwrap().to_vec();
        let prefix = &bytes[..cut.index(bytes.len())];
        prop_assert!(decode_entry(prefix).is_err());
        let mut longer = bytes.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(decode_entry(&longer).is_err());
        let mut changed = bytes.clone();
        changed[flip.index(bytes.len())] = byte;
        let _ = decode_entry(&changed);
    }
}

#[test]
fn generated_entries_cover_both_kinds_and_every_source() {
    // A guard against a strategy that silently stopped producing some shapes.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = BTreeMap::new();
    for _ in 0..200 {
        let entry = entry().new_tree(&mut runner).unwrap().current();
        let key = (
            matches!(entry.kind, EntryKind::OAuth(_)),
            entry.source.is_borrowed(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}
