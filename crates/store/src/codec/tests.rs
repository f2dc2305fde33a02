use std::sync::LazyLock;

use credpool_core::{
    CooldownCause, Entry, EntryKind, Generation, Secret, SecretSource, Status, Strategy, Timestamp,
};
use proptest::prelude::*;

use super::*;
use crate::fixtures::{self, ENV_CANARY, OWNED_CANARY, REFRESH_CANARY};
use crate::seal::MasterKey;

static KEY: LazyLock<MasterKey> = LazyLock::new(|| MasterKey::generate().0);
static OTHER_KEY: LazyLock<MasterKey> = LazyLock::new(|| MasterKey::generate().0);

fn provider() -> ProviderId {
    ProviderId::new("openai")
}

fn encode(entry: &Entry) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    encode_entry(&provider(), entry, &KEY)
}

fn decode(bytes: &[u8]) -> Result<DecodedEntry, CodecError> {
    decode_entry(&provider(), bytes, Secrets::Open(&KEY))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Encodes and decodes `entry`, asserting it comes back identical (secrets included).
fn check_round_trip(entry: &Entry) {
    let bytes = encode(entry).expect("encodes");
    assert_eq!(bytes[0], FORMAT_V2);
    let decoded = decode(&bytes).expect("decodes");
    assert_eq!(fixtures::view(&decoded.entry), fixtures::view(entry));
    assert_eq!(decoded.borrowed_fingerprint, None);
    assert_eq!(
        decoded.entry.request_secret().expose(),
        entry.request_secret().expose()
    );
    let refresh = |e: &Entry| {
        e.oauth()
            .and_then(|t| t.refresh.as_ref())
            .map(|s| s.expose().to_owned())
    };
    assert_eq!(refresh(&decoded.entry), refresh(entry));
}

#[test]
fn owned_entries_round_trip() {
    let mut cases = vec![
        fixtures::api_key(1, "sk-plain", SecretSource::Manual),
        fixtures::api_key(2, "", SecretSource::Manual),
        fixtures::busy(3),
        fixtures::dead(4),
        fixtures::oauth(5, "at-1", Some("rt-1"), SecretSource::OAuthGrant),
        fixtures::oauth(6, "at-only", None, SecretSource::OAuthGrant),
        // A borrowed grant that credpool rotated is owned: its tokens are stored.
        fixtures::oauth(7, "at-2", Some("rt-2"), fixtures::env("XAI_REFRESH")),
    ];
    for cause in [
        CooldownCause::Auth,
        CooldownCause::RateLimited,
        CooldownCause::Billing,
        CooldownCause::RefreshFailed,
        CooldownCause::Other,
    ] {
        let mut entry = fixtures::busy(10);
        entry.status = Status::CoolingDown {
            until: Timestamp(i64::MAX),
            cause,
        };
        cases.push(entry);
    }
    let mut extremes = fixtures::busy(11);
    extremes.id = EntryId(u64::MAX);
    extremes.generation = Generation(u64::MAX);
    extremes.usage.selections = u64::MAX;
    extremes.last_refresh_at = Some(Timestamp(i64::MIN));
    cases.push(extremes);
    for entry in &cases {
        check_round_trip(entry);
    }
}

#[test]
fn borrowed_entries_keep_only_their_fingerprint() {
    let key = fixtures::api_key(1, ENV_CANARY, fixtures::env("OPENAI_API_KEY"));
    let mut grant = fixtures::oauth(2, "", Some(REFRESH_CANARY), fixtures::env("XAI_REFRESH"));
    grant.generation = Generation::FIRST;
    for (entry, canary, expected) in [
        (&key, ENV_CANARY, Fingerprint::of(ENV_CANARY)),
        (&grant, REFRESH_CANARY, Fingerprint::of(REFRESH_CANARY)),
    ] {
        assert!(!entry.secrets_owned());
        let bytes = encode(entry).expect("encodes");
        assert!(!contains(&bytes, canary), "borrowed secret written");
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.borrowed_fingerprint, Some(expected));
        assert!(decoded.entry.request_secret().is_empty());
        assert_eq!(decoded.entry.source, entry.source);
        assert_eq!(decoded.entry.generation, entry.generation);
    }
    let owned = fixtures::api_key(3, OWNED_CANARY, SecretSource::Manual);
    let bytes = encode(&owned).expect("encodes");
    assert!(!contains(&bytes, OWNED_CANARY), "an owned secret is sealed");
    assert_eq!(
        decode(&bytes)
            .expect("decodes")
            .entry
            .request_secret()
            .expose(),
        OWNED_CANARY
    );
}

#[test]
fn owned_secrets_are_sealed_and_open_only_on_their_own_entry() {
    let grant = fixtures::oauth(
        7,
        OWNED_CANARY,
        Some(REFRESH_CANARY),
        SecretSource::OAuthGrant,
    );
    let bytes = encode(&grant).expect("encodes");
    for canary in [OWNED_CANARY, REFRESH_CANARY] {
        assert!(!contains(&bytes, canary), "{canary} in clear");
    }
    // The same record copied under another provider, or onto another entry id: nothing opens.
    let elsewhere = decode_entry(&ProviderId::new("anthropic"), &bytes, Secrets::Open(&KEY));
    assert!(
        matches!(elsewhere, Err(CodecError::SealOpenFailed(_))),
        "{elsewhere:?}"
    );
    let mut moved = grant.clone();
    moved.id = EntryId(8);
    let moved_bytes = encode(&moved).expect("encodes");
    // Splice entry 7's sealed access token into entry 8's record (same lengths).
    let at7 = bytes.len() - moved_bytes.len();
    assert_eq!(at7, 0, "same layout");
    let mut spliced = moved_bytes.to_vec();
    let sealed_at = |b: &[u8]| {
        b.windows(8)
            .position(|w| w == KEY.id().0)
            .expect("a sealed value")
    };
    let (from, to) = (sealed_at(&bytes), sealed_at(&moved_bytes));
    spliced[to..to + 8 + 24 + 16 + OWNED_CANARY.len()]
        .copy_from_slice(&bytes[from..from + 8 + 24 + 16 + OWNED_CANARY.len()]);
    let error = decode(&spliced).expect_err("a value copied from another entry opened");
    assert!(error.to_string().starts_with("seal_open_failed"), "{error}");
    // Another key: refused, naming the key it was sealed under.
    let other = decode_entry(&provider(), &bytes, Secrets::Open(&OTHER_KEY)).expect_err("opened");
    assert!(other.to_string().contains(&KEY.id().to_string()), "{other}");
    // Metadata needs no key.
    let meta = decode_entry(&provider(), &bytes, Secrets::Skip).expect("decodes");
    assert_eq!(meta.entry.generation, grant.generation);
    assert_eq!(sealed_key_id(&bytes), Some(KEY.id()));
}

#[test]
fn records_in_clear_are_read_only_to_migrate() {
    let entry = fixtures::oauth(9, "at-clear", Some("rt-clear"), SecretSource::OAuthGrant);
    let clear = encode_entry_v1(&entry).expect("encodes");
    assert_eq!(clear[0], FORMAT_V1);
    assert!(contains(&clear, "rt-clear"));
    assert_eq!(decode(&clear).expect_err("opened"), CodecError::Clear);
    let migrated = decode_entry(&provider(), &clear, Secrets::Migrate(&KEY)).expect("decodes");
    assert_eq!(fixtures::view(&migrated.entry), fixtures::view(&entry));
    let skipped = decode_entry(&provider(), &clear, Secrets::Skip).expect("decodes");
    assert!(skipped.entry.request_secret().is_empty());
}

#[test]
fn other_records_round_trip() {
    for strategy in Strategy::ALL {
        for cursor in [0, 1, 300, usize::MAX] {
            let state = ProviderState {
                strategy,
                round_robin_cursor: cursor,
            };
            let bytes = encode_provider_state(&state).expect("encodes");
            assert_eq!(decode_provider_state(&bytes), Ok(state));
        }
    }

    let marker = RefreshMarker {
        provider: ProviderId::new("xai-oauth"),
        entry: EntryId(0xabc),
        generation: Generation(3),
        refresh_fingerprint: Fingerprint::of(REFRESH_CANARY),
        started_at: Timestamp(1_700_000_000_000),
    };
    let bytes = encode_marker(&marker).expect("encodes");
    assert!(!contains(&bytes, REFRESH_CANARY));
    assert_eq!(decode_marker(&bytes), Ok(marker));

    let record = QuarantinedRecord {
        provider: Some(ProviderId::new("openai")),
        key: "entries/openai/000000000001".to_owned(),
        error: "malformed record: io error".to_owned(),
        quarantined_at: Timestamp(5),
    };
    let qkey = b"openai\0entries\0key";
    let bytes = encode_quarantined(&record, b"\x01garbage", qkey, &KEY).expect("encodes");
    assert!(!contains(&bytes, "garbage"), "raw bytes are sealed");
    let (decoded, _) = decode_quarantined(&bytes).expect("decodes");
    assert_eq!(decoded, record);
    let raw = open_quarantined_raw(&bytes, qkey, &KEY).expect("opens");
    assert_eq!(raw.as_slice(), b"\x01garbage");
    assert!(open_quarantined_raw(&bytes, b"elsewhere", &KEY).is_err());
}

/// Asserts every decoder rejects `bytes` with an error whose text contains `expected`.
fn check_rejected(bytes: &[u8], expected: &str) {
    let errors = [
        decode_entry(&provider(), bytes, Secrets::Migrate(&KEY))
            .err()
            .map(|e| e.to_string()),
        decode_provider_state(bytes).err().map(|e| e.to_string()),
        decode_marker(bytes).err().map(|e| e.to_string()),
        decode_quarantined(bytes).err().map(|e| e.to_string()),
    ];
    for error in errors {
        let error = error.unwrap_or_else(|| panic!("{bytes:?} decoded"));
        assert!(error.contains(expected), "{bytes:?}: {error}");
    }
}

#[test]
fn malformed_records_are_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty"),
        (&[0], "unknown record format version 0"),
        (&[3, 0, 0], "unknown record format version 3"),
        (&[255], "unknown record format version 255"),
        (&[1], "truncated"),
        (&[1, 0], "truncated"),
        (&[1, 0xff, 0xff, 0xff, 0xff], "malformed"),
        (b"\x01{\"json\": true}", "malformed"),
    ];
    for (bytes, expected) in cases {
        check_rejected(bytes, expected);
    }
}

#[test]
fn length_prefixes_past_the_input_are_errors_without_allocating() {
    // A varint 253 announces a u64; here a string length near 2^63.
    const HUGE: [u8; 9] = [253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    let with = |prefix: &[u8]| [&[FORMAT_V1], prefix, &HUGE].concat();
    let check = |result: Result<(), CodecError>| {
        let error = result.expect_err("decoded").to_string();
        assert!(error.contains("truncated"), "{error}");
    };
    // Entry: id 0, then the label's length.
    check(decode_entry(&provider(), &with(&[0]), Secrets::Migrate(&KEY)).map(drop));
    check(
        decode_entry(
            &provider(),
            &[&[FORMAT_V2], &[0u8][..], &HUGE].concat(),
            Secrets::Open(&KEY),
        )
        .map(drop),
    );
    // Marker: the provider's length.
    check(decode_marker(&with(&[])).map(drop));
    // Quarantine: `Some` provider, then its length.
    check(decode_quarantined(&with(&[1])).map(drop));
}

#[test]
fn truncated_and_extended_records_are_errors() {
    let encoded: Vec<Zeroizing<Vec<u8>>> = vec![
        encode(&fixtures::busy(1)).expect("encodes"),
        encode(&fixtures::oauth(
            2,
            "at",
            Some("rt"),
            SecretSource::OAuthGrant,
        ))
        .expect("encodes"),
        encode_marker(&RefreshMarker {
            provider: ProviderId::new("xai"),
            entry: EntryId(1),
            generation: Generation(1),
            refresh_fingerprint: Fingerprint::of("r"),
            started_at: Timestamp(1),
        })
        .expect("encodes"),
    ];
    for bytes in &encoded {
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "prefix {len} decoded");
            assert!(
                decode_marker(&bytes[..len]).is_err(),
                "prefix {len} decoded"
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(decode_marker(&longer).is_err());
    }
}

#[test]
fn a_secret_that_does_not_match_its_fingerprint_is_invalid() {
    // In a record in clear (format 1, read to migrate); a sealed value is checked by its tag
    // first, and its fingerprint after.
    let bytes =
        encode_entry_v1(&fixtures::api_key(1, "sk-aaaa", SecretSource::Manual)).expect("encodes");
    let at = bytes
        .windows(7)
        .position(|w| w == b"sk-aaaa")
        .expect("the owned key is stored");
    let mut tampered = bytes.to_vec();
    tampered[at + 3] = b'b';
    let error = decode_entry(&provider(), &tampered, Secrets::Migrate(&KEY))
        .expect_err("tampered key decoded");
    assert_eq!(
        error,
        CodecError::Invalid("api key does not match its fingerprint".to_owned())
    );
    assert!(!error.to_string().contains("sk-"));
}

#[test]
fn records_past_the_limit_are_not_decoded() {
    let limit = usize::try_from(RECORD_LIMIT).expect("fits");
    let mut entry = fixtures::api_key(1, "k", SecretSource::Manual);
    entry.label = "x".repeat(limit - 100);
    let fits = encode(&entry).expect("encodes");
    assert!(decode(&fits).is_ok());
    let mut oversize = vec![FORMAT_V1];
    oversize.resize(limit + 2, 0);
    check_rejected(&oversize, "exceeds the size limit");
}

#[test]
fn oversize_records_are_not_encoded() {
    let mut entry = fixtures::api_key(1, "k", SecretSource::Manual);
    entry.label = "x".repeat(usize::try_from(RECORD_LIMIT).expect("fits") + 1);
    assert!(matches!(encode(&entry), Err(CodecError::Encode(_))));
}

#[test]
fn keys_follow_the_documented_layout() {
    let provider = ProviderId::new("openai");
    let key = entry_key(&provider, EntryId(0x0102)).expect("key");
    assert_eq!(key, b"openai\0\0\0\0\0\0\0\x01\x02");
    assert!(key.starts_with(&provider_prefix(&provider).expect("prefix")));
    assert_eq!(provider_key(&provider).expect("key"), b"openai");
    assert_eq!(provider_of_key(&key), Some(provider.clone()));
    assert_eq!(provider_of_key(b"openai"), Some(provider.clone()));
    assert_eq!(provider_of_key(b"\0x"), None);
    assert_eq!(entry_id_of_key(&key), Some(EntryId(0x0102)));
    assert_eq!(entry_id_of_key(b"short"), None);
    assert_eq!(
        quarantine_key(&provider, ENTRIES_TREE, &key).expect("key"),
        [b"openai\0entries\0".as_slice(), &key].concat()
    );
    // "openai" must not be a prefix scan hit for "openai-codex".
    let sibling = entry_key(&ProviderId::new("openai-codex"), EntryId(1)).expect("key");
    assert!(!sibling.starts_with(&provider_prefix(&provider).expect("prefix")));

    let nul = ProviderId::new("bad\0name");
    assert_eq!(entry_key(&nul, EntryId(1)), Err(CodecError::ProviderName));
}

#[test]
fn printable_keys() {
    let check = |tree: &str, key: &[u8], expected: &str| {
        assert_eq!(printable_key(tree, key), expected, "{key:?}");
    };
    check(
        "entries",
        &entry_key(&ProviderId::new("xai"), EntryId(0xbeef)).expect("key"),
        "entries/xai/00000000beef",
    );
    check("providers", b"openai", "providers/openai");
    check("entries", b"x\0\x01", "entries/x\\x00\\x01");
    check("entries", b"a b", "entries/a b");
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode_provider_state(&bytes);
        let _ = decode_marker(&bytes);
        let _ = decode_quarantined(&bytes);
    }

    #[test]
    fn decoding_arbitrary_v1_payloads_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut record = vec![FORMAT_V1];
        record.extend_from_slice(&bytes);
        let _ = decode_entry(&provider(), &record, Secrets::Migrate(&KEY));
        let _ = decode_provider_state(&record);
        let _ = decode_marker(&record);
        let _ = decode_quarantined(&record);
    }

    #[test]
    fn mutated_entries_never_panic(index in 0usize..400, byte in any::<u8>()) {
        let mut bytes = encode(&fixtures::busy(1)).expect("encodes").to_vec();
        let at = index % bytes.len();
        bytes[at] = byte;
        let _ = decode(&bytes);
    }

    #[test]
    fn entries_with_arbitrary_numbers_round_trip(
        id in any::<u64>(),
        generation in any::<u64>(),
        counters in any::<(u64, u64, u64, u64)>(),
        until in any::<i64>(),
        priority in any::<u32>(),
        label in "\\PC{0,40}",
        key in "[!-~]{0,64}",
    ) {
        let mut entry = fixtures::busy(id);
        entry.generation = Generation(generation);
        entry.usage.selections = counters.0;
        entry.usage.successes = counters.1;
        entry.usage.failures = counters.2;
        entry.usage.refreshes = counters.3;
        entry.status = Status::CoolingDown { until: Timestamp(until), cause: CooldownCause::Billing };
        entry.priority = priority;
        entry.label = label;
        entry.kind = EntryKind::ApiKey { key: Secret::new(key) };
        check_round_trip(&entry);
    }
}
