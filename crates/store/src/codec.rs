//! The one place where records are encoded and decoded, and where keys are laid out.
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
//! - A secret value is written only when [`Entry::secrets_owned`] says so; a borrowed entry
//!   keeps the fingerprint of its secret and decodes with an empty [`Secret`].
//! - A stored secret must match its stored fingerprint, or the record does not decode (a flipped
//!   bit in a token is corruption, not a new token).
//! - Decoding arbitrary bytes returns an error, never panics and never allocates past the limit.
//! - Transient copies of secret values made here are zeroized when dropped.

use bincode::Options;
use credpool_core::{
    ClientMetadata, CooldownCause, DeadReason, Entry, EntryId, EntryKind, Fingerprint, Generation,
    LastError, OAuthTokens, ProviderId, Secret, SecretSource, Status, Strategy, Timestamp, Usage,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{ProviderState, QuarantinedRecord, RefreshMarker};

/// The largest record, in bytes, that is encoded or decoded (version byte excluded).
///
/// Generous for an entry (a JWT access token is a few KiB) and small enough that a corrupt
/// length prefix cannot make the decoder allocate much.
pub const RECORD_LIMIT: u64 = 1 << 20;

/// The format version written by this build, for every record type.
pub const FORMAT_V1: u8 = 1;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(RECORD_LIMIT)
        .with_little_endian()
        .with_varint_encoding()
        .reject_trailing_bytes()
}

/// Encodes `record` after the version byte, into a buffer sized once (so no partial copy of a
/// secret is left behind by a reallocation).
fn encode_record<T: Serialize>(record: &T) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    let size = options()
        .serialized_size(record)
        .map_err(|error| CodecError::Encode(error.to_string()))?;
    let size = usize::try_from(size).map_err(|error| CodecError::Encode(error.to_string()))?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(size + 1));
    bytes.push(FORMAT_V1);
    options()
        .serialize_into(&mut *bytes, record)
        .map_err(|error| CodecError::Encode(error.to_string()))?;
    Ok(bytes)
}

/// Splits the version byte off and decodes a V1 payload.
fn decode_record<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let (&version, payload) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_V1 {
        return Err(CodecError::UnknownVersion(version));
    }
    if u64::try_from(payload.len()).map_or(true, |len| len > RECORD_LIMIT) {
        return Err(CodecError::TooLarge(payload.len()));
    }
    options()
        .deserialize(payload)
        .map_err(|error| CodecError::Malformed(describe(&error)))
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

mod error;
mod keys;
mod records;

pub use self::error::CodecError;
pub use self::keys::*;
use self::records::*;

// ---------------------------------------------------------------------------------------------
// Entries

/// An entry as decoded from the store.
#[derive(Debug, Clone)]
pub struct DecodedEntry {
    /// The entry; borrowed secrets are empty until hydrated.
    pub entry: Entry,
    /// For an entry whose secret was not stored: the fingerprint of the borrowed value when
    /// it was last written (the API key, or an OAuth grant's refresh token). `None` when the
    /// secret was stored, or was empty when written.
    pub borrowed_fingerprint: Option<Fingerprint>,
}

fn secret_field(secret: &Secret, owned: bool) -> SecretFieldV1<&str> {
    if secret.is_empty() {
        return SecretFieldV1 {
            fingerprint: None,
            value: None,
        };
    }
    SecretFieldV1 {
        fingerprint: Some(secret.fingerprint().as_str().to_owned()),
        value: owned.then(|| secret.expose()),
    }
}

/// Encodes an entry. Its secrets are included only when [`Entry::secrets_owned`]; the bytes are
/// zeroized when dropped because they may hold them.
pub fn encode_entry(entry: &Entry) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    let owned = entry.secrets_owned();
    let credential = match &entry.kind {
        EntryKind::ApiKey { key } => CredentialRecordV1::ApiKey {
            key: secret_field(key, owned),
        },
        EntryKind::OAuth(tokens) => CredentialRecordV1::OAuth {
            access: secret_field(&tokens.access, owned),
            refresh: tokens.refresh.as_ref().map(|r| secret_field(r, owned)),
            expires_at: tokens.expires_at.map(Timestamp::millis),
            client: ClientRecordV1 {
                client_id: tokens.client.client_id.clone(),
                token_endpoint: tokens.client.token_endpoint.clone(),
                scope: tokens.client.scope.clone(),
                obtained_at: tokens.client.obtained_at.map(Timestamp::millis),
            },
        },
    };
    let record = EntryRecordV1 {
        id: entry.id.0,
        label: entry.label.clone(),
        source: match &entry.source {
            SecretSource::Manual => SourceRecordV1::Manual,
            SecretSource::EnvVar { name } => SourceRecordV1::EnvVar { name: name.clone() },
            SecretSource::File { path } => SourceRecordV1::File { path: path.clone() },
            SecretSource::OAuthGrant => SourceRecordV1::OAuthGrant,
        },
        priority: entry.priority,
        weight: entry.weight,
        base_url: entry.base_url.clone(),
        generation: entry.generation.0,
        usage: UsageRecordV1 {
            selections: entry.usage.selections,
            successes: entry.usage.successes,
            failures: entry.usage.failures,
            refreshes: entry.usage.refreshes,
            last_used_at: entry.usage.last_used_at.map(Timestamp::millis),
        },
        status: match &entry.status {
            Status::Ok => StatusRecordV1::Ok,
            Status::CoolingDown { until, cause } => StatusRecordV1::CoolingDown {
                until: until.millis(),
                cause: match cause {
                    CooldownCause::Auth => CauseRecordV1::Auth,
                    CooldownCause::RateLimited => CauseRecordV1::RateLimited,
                    CooldownCause::Billing => CauseRecordV1::Billing,
                    CooldownCause::RefreshFailed => CauseRecordV1::RefreshFailed,
                    CooldownCause::Other => CauseRecordV1::Other,
                },
            },
            Status::Dead { reason, since } => StatusRecordV1::Dead {
                reason: reason.as_str().to_owned(),
                since: since.millis(),
            },
        },
        model_cooldowns: entry
            .model_cooldowns
            .iter()
            .map(|(model, until)| (model.clone(), until.millis()))
            .collect(),
        last_error: entry.last_error.as_ref().map(|error| LastErrorRecordV1 {
            kind: error.kind.clone(),
            status: error.status,
            reason: error.reason.clone(),
            message: error.message.clone(),
            at: error.at.millis(),
        }),
        last_refresh_at: entry.last_refresh_at.map(Timestamp::millis),
        credential,
    };
    encode_record(&record)
}

fn parse_fingerprint(text: Option<String>, what: &str) -> Result<Option<Fingerprint>, CodecError> {
    text.map(|text| {
        Fingerprint::parse(&text)
            .ok_or_else(|| CodecError::Invalid(format!("{what} fingerprint is malformed")))
    })
    .transpose()
}

/// Turns a stored secret field into a secret, checking the value against its fingerprint.
/// Returns the secret (empty when not stored) and the fingerprint when the value was absent.
fn decode_secret_field(
    field: SecretFieldV1<SecretText>,
    what: &str,
) -> Result<(Secret, Option<Fingerprint>), CodecError> {
    let fingerprint = parse_fingerprint(field.fingerprint, what)?;
    match field.value {
        Some(value) => {
            let secret = value.into_secret();
            if fingerprint.as_ref() != Some(&secret.fingerprint()) {
                return Err(CodecError::Invalid(format!(
                    "{what} does not match its fingerprint"
                )));
            }
            Ok((secret, None))
        }
        None => Ok((Secret::new(String::new()), fingerprint)),
    }
}

/// Decodes an entry record.
pub fn decode_entry(bytes: &[u8]) -> Result<DecodedEntry, CodecError> {
    let record: EntryRecordV1<SecretText> = decode_record(bytes)?;
    let (kind, borrowed_fingerprint) = match record.credential {
        CredentialRecordV1::ApiKey { key } => {
            let (key, fingerprint) = decode_secret_field(key, "api key")?;
            (EntryKind::ApiKey { key }, fingerprint)
        }
        CredentialRecordV1::OAuth {
            access,
            refresh,
            expires_at,
            client,
        } => {
            let (access, _) = decode_secret_field(access, "access token")?;
            let (refresh, refresh_fingerprint) = match refresh {
                Some(field) => {
                    let (secret, fingerprint) = decode_secret_field(field, "refresh token")?;
                    (Some(secret), fingerprint)
                }
                None => (None, None),
            };
            let tokens = OAuthTokens {
                access,
                refresh,
                expires_at: expires_at.map(Timestamp),
                client: ClientMetadata {
                    client_id: client.client_id,
                    token_endpoint: client.token_endpoint,
                    scope: client.scope,
                    obtained_at: client.obtained_at.map(Timestamp),
                },
            };
            (EntryKind::OAuth(tokens), refresh_fingerprint)
        }
    };
    let source = match record.source {
        SourceRecordV1::Manual => SecretSource::Manual,
        SourceRecordV1::EnvVar { name } => SecretSource::EnvVar { name },
        SourceRecordV1::File { path } => SecretSource::File { path },
        SourceRecordV1::OAuthGrant => SecretSource::OAuthGrant,
    };
    let status = match record.status {
        StatusRecordV1::Ok => Status::Ok,
        StatusRecordV1::CoolingDown { until, cause } => Status::CoolingDown {
            until: Timestamp(until),
            cause: match cause {
                CauseRecordV1::Auth => CooldownCause::Auth,
                CauseRecordV1::RateLimited => CooldownCause::RateLimited,
                CauseRecordV1::Billing => CooldownCause::Billing,
                CauseRecordV1::RefreshFailed => CooldownCause::RefreshFailed,
                CauseRecordV1::Other => CooldownCause::Other,
            },
        },
        StatusRecordV1::Dead { reason, since } => Status::Dead {
            reason: DeadReason::new(reason),
            since: Timestamp(since),
        },
    };
    let mut entry = Entry::new(EntryId(record.id), record.label, kind, source);
    entry.priority = record.priority;
    entry.weight = record.weight;
    entry.base_url = record.base_url;
    entry.generation = Generation(record.generation);
    entry.usage = Usage {
        selections: record.usage.selections,
        successes: record.usage.successes,
        failures: record.usage.failures,
        refreshes: record.usage.refreshes,
        last_used_at: record.usage.last_used_at.map(Timestamp),
    };
    entry.status = status;
    entry.model_cooldowns = record
        .model_cooldowns
        .into_iter()
        .map(|(model, until)| (model, Timestamp(until)))
        .collect();
    entry.last_error = record.last_error.map(|error| LastError {
        kind: error.kind,
        status: error.status,
        reason: error.reason,
        message: error.message,
        at: Timestamp(error.at),
    });
    entry.last_refresh_at = record.last_refresh_at.map(Timestamp);
    Ok(DecodedEntry {
        entry,
        borrowed_fingerprint,
    })
}

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
    encode_record(&record)
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
    encode_record(&MarkerRecordV1 {
        provider: marker.provider.as_str().to_owned(),
        entry: marker.entry.0,
        generation: marker.generation.0,
        refresh_fingerprint: marker.refresh_fingerprint.as_str().to_owned(),
        started_at: marker.started_at.millis(),
    })
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

/// Encodes a quarantined record together with the raw bytes that failed to decode.
///
/// The raw bytes are kept (in the same private store) so that a later build may recover them.
pub fn encode_quarantined(
    record: &QuarantinedRecord,
    raw: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    encode_record(&QuarantineRecordV1 {
        provider: record.provider.as_ref().map(|p| p.as_str().to_owned()),
        key: record.key.clone(),
        error: record.error.clone(),
        quarantined_at: record.quarantined_at.millis(),
        raw: raw.to_vec(),
    })
}

/// Decodes a quarantined record, returning it and the raw bytes that failed to decode.
pub fn decode_quarantined(
    bytes: &[u8],
) -> Result<(QuarantinedRecord, Zeroizing<Vec<u8>>), CodecError> {
    let record: QuarantineRecordV1 = decode_record(bytes)?;
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

#[cfg(test)]
mod tests;
