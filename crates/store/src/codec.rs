//! The one place where records are encoded and decoded, and where keys are laid out.
//!
//! Format versions: entry and quarantine records are written in format 2 — format 1's layout
//! with every secret value (and a quarantined record's raw bytes) sealed by [`crate::seal`];
//! format 1 (secrets in clear) is read to migrate stores written before sealing. Provider
//! states and markers hold no secret and stay format 1.
//!
//! A record is one format-version byte followed by a bincode 1.3.3 payload written with
//! [`bincode::DefaultOptions`]: little endian, **varint** integers (records are mostly small
//! numbers; every record of every version uses varint), trailing bytes rejected, and a size
//! limit of [`RECORD_LIMIT`] bytes. Decoding reads only from slices: bincode then bounds every
//! length prefix by the bytes actually present (it replaces the configured limit with the
//! slice's end, so a corrupt length fails as an unexpected end of file without allocating), and
//! a slice longer than the limit is refused before decoding.
//!
//! The payload is a private record type (`EntryRecordV1`, ...) that mirrors the core types
//! field by field instead of serializing them directly: core's serde derives exist for JSON
//! (internally tagged enums, renames) and may change for that reason; the on-disk format must
//! not. Enums in records are append-only: a new variant goes at the end, a changed shape gets
//! a new format version.
//!
//! Key layout (one sled tree each):
//! - `entries`: `provider ++ 0x00 ++ entry-id (u64 big endian)`; a provider is a key prefix.
//! - `markers`: the same key as the entry the marker belongs to.
//! - `providers`: `provider`.
//! - `quarantine`: `provider ++ 0x00 ++ tree-name ++ 0x00 ++ original key`.
//!
//! **Invariants:**
//! - A secret value is written only when [`Entry::secrets_owned`](credpool_core::Entry::secrets_owned) says so, and only sealed; a
//!   borrowed entry keeps the fingerprint of its secret and decodes with an empty secret.
//! - A stored secret must match its stored fingerprint, or the record does not decode (a flipped
//!   bit in a token is corruption, not a new token).
//! - Decoding arbitrary bytes returns an error, never panics and never allocates past the limit.
//! - Transient copies of secret values made here are zeroized when dropped.

use bincode::Options;
use credpool_core::{EntryId, Fingerprint, Generation, ProviderId, Strategy, Timestamp};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::seal::{Binding, MasterKey};
use crate::{ProviderState, QuarantinedRecord, RefreshMarker};

/// The largest record, in bytes, that is encoded or decoded (version byte excluded).
///
/// Generous for an entry (a JWT access token is a few KiB) and small enough that a corrupt
/// length prefix cannot make the decoder allocate much.
pub const RECORD_LIMIT: u64 = 1 << 20;

/// Format 1: provider states and markers (no secrets); entries and quarantine records in clear
/// (read only, to migrate).
pub const FORMAT_V1: u8 = 1;

/// Format 2: entries and quarantine records with their secrets sealed.
pub const FORMAT_V2: u8 = 2;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(RECORD_LIMIT)
        .with_little_endian()
        .with_varint_encoding()
        .reject_trailing_bytes()
}

/// Encodes `record` after the version byte, into a buffer sized once (so no partial copy of a
/// secret is left behind by a reallocation).
fn encode_record<T: Serialize>(version: u8, record: &T) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    let size = options()
        .serialized_size(record)
        .map_err(|error| CodecError::Encode(error.to_string()))?;
    let size = usize::try_from(size).map_err(|error| CodecError::Encode(error.to_string()))?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(size + 1));
    bytes.push(version);
    options()
        .serialize_into(&mut *bytes, record)
        .map_err(|error| CodecError::Encode(error.to_string()))?;
    Ok(bytes)
}

/// Splits the version byte off a record, refusing a payload over the limit.
fn split_version(bytes: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    let (&version, payload) = bytes.split_first().ok_or(CodecError::Empty)?;
    if u64::try_from(payload.len()).map_or(true, |len| len > RECORD_LIMIT) {
        return Err(CodecError::TooLarge(payload.len()));
    }
    Ok((version, payload))
}

/// Decodes a payload (its version byte already split off).
fn decode_payload<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, CodecError> {
    options()
        .deserialize(payload)
        .map_err(|error| CodecError::Malformed(describe(&error)))
}

/// Splits the version byte off and decodes a format-1 payload (records without secrets).
fn decode_record<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let (version, payload) = split_version(bytes)?;
    if version != FORMAT_V1 {
        return Err(CodecError::UnknownVersion(version));
    }
    decode_payload(payload)
}

/// Describes a bincode error; bincode's end-of-input error has an empty message.
fn describe(error: &bincode::Error) -> String {
    match &**error {
        bincode::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "truncated: a field runs past the end of the record".to_owned()
        }
        other => other.to_string(),
    }
}

pub(super) fn parse_fingerprint(
    text: Option<String>,
    what: &str,
) -> Result<Option<Fingerprint>, CodecError> {
    text.map(|text| {
        Fingerprint::parse(&text)
            .ok_or_else(|| CodecError::Invalid(format!("{what} fingerprint is malformed")))
    })
    .transpose()
}

mod entry;
mod error;
mod keys;
mod records;

#[cfg(test)]
pub(crate) use self::entry::encode_entry_v1;
pub use self::entry::{DecodedEntry, Secrets, decode_entry, encode_entry, sealed_key_id};
pub use self::error::CodecError;
pub use self::keys::*;
use self::records::*;

// ---------------------------------------------------------------------------------------------
// Provider state, markers, quarantine

/// Encodes a provider's state.
pub fn encode_provider_state(state: &ProviderState) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    let record = ProviderStateRecordV1 {
        strategy: match state.strategy {
            Strategy::FillFirst => StrategyRecordV1::FillFirst,
            Strategy::RoundRobin => StrategyRecordV1::RoundRobin,
            Strategy::Random => StrategyRecordV1::Random,
            Strategy::LeastUsed => StrategyRecordV1::LeastUsed,
            Strategy::WeightedRandom => StrategyRecordV1::WeightedRandom,
        },
        round_robin_cursor: u64::try_from(state.round_robin_cursor).unwrap_or(u64::MAX),
    };
    encode_record(FORMAT_V1, &record)
}

/// Decodes a provider's state.
pub fn decode_provider_state(bytes: &[u8]) -> Result<ProviderState, CodecError> {
    let record: ProviderStateRecordV1 = decode_record(bytes)?;
    Ok(ProviderState {
        strategy: match record.strategy {
            StrategyRecordV1::FillFirst => Strategy::FillFirst,
            StrategyRecordV1::RoundRobin => Strategy::RoundRobin,
            StrategyRecordV1::Random => Strategy::Random,
            StrategyRecordV1::LeastUsed => Strategy::LeastUsed,
            StrategyRecordV1::WeightedRandom => Strategy::WeightedRandom,
        },
        // A cursor past usize::MAX only happens on a 32-bit reader; it wraps modulo the pool.
        round_robin_cursor: usize::try_from(record.round_robin_cursor).unwrap_or(usize::MAX),
    })
}

/// Encodes a refresh marker (it holds the refresh token's fingerprint, never the token).
pub fn encode_marker(marker: &RefreshMarker) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    encode_record(
        FORMAT_V1,
        &MarkerRecordV1 {
            provider: marker.provider.as_str().to_owned(),
            entry: marker.entry.0,
            generation: marker.generation.0,
            refresh_fingerprint: marker.refresh_fingerprint.as_str().to_owned(),
            started_at: marker.started_at.millis(),
        },
    )
}

/// Decodes a refresh marker.
pub fn decode_marker(bytes: &[u8]) -> Result<RefreshMarker, CodecError> {
    let record: MarkerRecordV1 = decode_record(bytes)?;
    Ok(RefreshMarker {
        provider: ProviderId::new(&record.provider),
        entry: EntryId(record.entry),
        generation: Generation(record.generation),
        refresh_fingerprint: parse_fingerprint(Some(record.refresh_fingerprint), "refresh")?
            .ok_or_else(|| CodecError::Invalid("refresh fingerprint is missing".to_owned()))?,
        started_at: Timestamp(record.started_at),
    })
}

/// Encodes a quarantined record stored under `quarantine_key`, with the raw bytes that failed
/// to decode sealed under `key` (they may hold secrets, in clear if the record was format 1).
///
/// The raw bytes are kept so that a later build may recover them.
pub fn encode_quarantined(
    record: &QuarantinedRecord,
    raw: &[u8],
    quarantine_key: &[u8],
    key: &MasterKey,
) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    let sealed = key
        .seal(&Binding::quarantined(FORMAT_V2, quarantine_key), raw)
        .map_err(|error| CodecError::Encode(error.to_string()))?;
    encode_record(
        FORMAT_V2,
        &QuarantineRecordV1 {
            provider: record.provider.as_ref().map(|p| p.as_str().to_owned()),
            key: record.key.clone(),
            error: record.error.clone(),
            quarantined_at: record.quarantined_at.millis(),
            raw: sealed,
        },
    )
}

/// Decodes a quarantined record (format 1 or 2), returning it and the raw bytes as stored:
/// sealed in format 2 (see [`open_quarantined_raw`]), in clear in format 1.
pub fn decode_quarantined(
    bytes: &[u8],
) -> Result<(QuarantinedRecord, Zeroizing<Vec<u8>>), CodecError> {
    let (version, payload) = split_version(bytes)?;
    if version != FORMAT_V1 && version != FORMAT_V2 {
        return Err(CodecError::UnknownVersion(version));
    }
    let record: QuarantineRecordV1 = decode_payload(payload)?;
    Ok((
        QuarantinedRecord {
            provider: record.provider.as_deref().map(ProviderId::new),
            key: record.key,
            error: record.error,
            quarantined_at: Timestamp(record.quarantined_at),
        },
        Zeroizing::new(record.raw),
    ))
}

/// Whether a quarantine record is format 1 (its raw bytes in clear): migration seals it.
pub fn quarantined_in_clear(bytes: &[u8]) -> bool {
    bytes.first() == Some(&FORMAT_V1)
}

/// The raw bytes of a format-2 quarantine record stored under `quarantine_key`, opened.
///
/// # Errors
/// Not a format-2 quarantine record, or its seal does not open with `key`.
pub fn open_quarantined_raw(
    bytes: &[u8],
    quarantine_key: &[u8],
    key: &MasterKey,
) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    let (version, _) = split_version(bytes)?;
    if version != FORMAT_V2 {
        return Err(CodecError::UnknownVersion(version));
    }
    let (_, sealed) = decode_quarantined(bytes)?;
    key.open(&Binding::quarantined(FORMAT_V2, quarantine_key), &sealed)
        .map_err(|error| CodecError::SealOpenFailed(format!("quarantined record: {error}")))
}

#[cfg(test)]
mod tests;
