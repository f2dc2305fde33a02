//! The store's record decoder on arbitrary bytes.
//!
//! Properties: decoding never panics (every record type, raw and behind a valid version
//! byte); an entry that decodes and whose secrets are owned re-encodes to bytes that decode
//! and re-encode to the same bytes (the codec is a fixed point after one decode).

#![no_main]

use credpool_store::codec::{
    FORMAT_V1, decode_entry, decode_marker, decode_provider_state, decode_quarantined,
    encode_entry, encode_marker, encode_provider_state,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    // Most raw inputs stop at the version byte; the same bytes as a V1 payload go deeper.
    let mut record = Vec::with_capacity(data.len() + 1);
    record.push(FORMAT_V1);
    record.extend_from_slice(data);
    check(&record);
});

fn check(bytes: &[u8]) {
    if let Ok(decoded) = decode_entry(bytes)
        && decoded.entry.secrets_owned()
    {
        let encoded = encode_entry(&decoded.entry).expect("a decoded entry re-encodes");
        let again = decode_entry(&encoded).expect("a re-encoded entry decodes");
        let encoded_again = encode_entry(&again.entry).expect("re-encodes twice");
        assert_eq!(&encoded[..], &encoded_again[..], "re-encoding is stable");
    }
    if let Ok(state) = decode_provider_state(bytes) {
        let encoded = encode_provider_state(&state).expect("a decoded state re-encodes");
        assert_eq!(decode_provider_state(&encoded).ok(), Some(state));
    }
    if let Ok(marker) = decode_marker(bytes) {
        let encoded = encode_marker(&marker).expect("a decoded marker re-encodes");
        assert_eq!(decode_marker(&encoded).ok(), Some(marker));
    }
    let _ = decode_quarantined(bytes);
}
