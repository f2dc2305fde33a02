#![allow(clippy::unwrap_used, clippy::expect_used)]

use credpool_core::{EntryId, ProviderId};

use super::*;

fn binding(provider: &str, entry: u64, field: Field) -> Binding {
    Binding::secret(2, &ProviderId::new(provider), EntryId(entry), field)
}

#[test]
fn a_sealed_value_opens_only_where_it_was_bound() {
    let (key, _) = MasterKey::generate();
    let here = binding("openai", 1, Field::ApiKey);
    let sealed = key.seal(&here, b"sk-live-value").unwrap();
    assert_eq!(&**key.open(&here, &sealed).unwrap(), b"sk-live-value");
    for elsewhere in [
        binding("openai", 2, Field::ApiKey),
        binding("anthropic", 1, Field::ApiKey),
        binding("openai", 1, Field::Refresh),
        Binding::secret(3, &ProviderId::new("openai"), EntryId(1), Field::ApiKey),
    ] {
        assert_eq!(key.open(&elsewhere, &sealed), Err(SealError::Failed));
    }
}

#[test]
fn every_seal_draws_a_fresh_nonce() {
    let (key, _) = MasterKey::generate();
    let here = binding("openai", 1, Field::ApiKey);
    let a = key.seal(&here, b"same").unwrap();
    let b = key.seal(&here, b"same").unwrap();
    assert_ne!(a, b);
    assert_ne!(a[8..32], b[8..32], "nonces differ");
}

#[test]
fn tampering_truncation_and_another_key_are_refused() {
    let (key, _) = MasterKey::generate();
    let (other, _) = MasterKey::generate();
    let here = binding("openai", 1, Field::Access);
    let sealed = key.seal(&here, b"token").unwrap();
    for i in 0..sealed.len() {
        let mut flipped = sealed.clone();
        flipped[i] ^= 0x01;
        assert!(key.open(&here, &flipped).is_err(), "flip at {i}");
    }
    assert_eq!(key.open(&here, &sealed[..40]), Err(SealError::Truncated));
    assert_eq!(
        other.open(&here, &sealed),
        Err(SealError::OtherKey(key.id()))
    );
}

#[test]
fn keys_read_from_base64_name_the_problem_never_the_value() {
    let (key, text) = MasterKey::generate();
    let again = MasterKey::from_base64(&format!("  {}\n", text.as_str())).unwrap();
    assert_eq!(again.id(), key.id());
    let unpadded = MasterKey::from_base64(text.trim_end_matches('=')).unwrap();
    assert_eq!(unpadded.id(), key.id());
    assert_eq!(
        MasterKey::from_base64("not base64 at all!").unwrap_err(),
        KeyFormatError::NotBase64
    );
    assert_eq!(
        MasterKey::from_base64("c2hvcnQ=").unwrap_err(),
        KeyFormatError::WrongLength(5)
    );
    let shown = format!("{key:?} {}", key.id());
    assert!(!shown.contains(text.trim_end_matches('=')), "{shown}");
    assert_eq!(key.id().to_string().len(), 16);
}
