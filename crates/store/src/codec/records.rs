//! The on-disk records of format version 1: private mirrors of the core types, field by
//! field, so that core's serde attributes (made for JSON) can never change the disk format.
//! Enums are append-only.

use std::collections::BTreeMap;

use credpool_core::Secret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

// ---------------------------------------------------------------------------------------------
// Secret text

/// A secret value inside a decoded record; zeroized when dropped unless moved into a
/// [`Secret`] (which zeroizes it itself).
#[derive(Deserialize)]
#[serde(transparent)]
pub(super) struct SecretText(pub(super) String);

impl SecretText {
    pub(super) fn into_secret(mut self) -> Secret {
        Secret::new(std::mem::take(&mut self.0))
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A sealed secret value (format 2): its bytes as [`crate::seal`] wrote them, serialized as
/// bincode bytes (a length, then the bytes) exactly where format 1 has the text.
pub(super) struct Sealed(pub(super) Vec<u8>);

impl Serialize for Sealed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = Sealed;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("sealed bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Sealed, E> {
                Ok(Sealed(bytes.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Sealed, E> {
                Ok(Sealed(bytes))
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// Record types, version 1 (format 2 is the same layout with `S = Sealed`). `S` is `&str` when encoding (borrowing the live secret, no copy)
// and `SecretText` when decoding, so both directions share one layout.

#[derive(Serialize, Deserialize)]
pub(super) struct EntryRecordV1<S> {
    pub(super) id: u64,
    pub(super) label: String,
    pub(super) source: SourceRecordV1,
    pub(super) priority: u32,
    pub(super) weight: u32,
    pub(super) base_url: Option<String>,
    pub(super) generation: u64,
    pub(super) usage: UsageRecordV1,
    pub(super) status: StatusRecordV1,
    pub(super) model_cooldowns: BTreeMap<String, i64>,
    pub(super) last_error: Option<LastErrorRecordV1>,
    pub(super) last_refresh_at: Option<i64>,
    pub(super) credential: CredentialRecordV1<S>,
}

impl<S> EntryRecordV1<S> {
    /// The same record with its credential replaced by `map`'s.
    pub(super) fn try_map_credential<T, E>(
        self,
        map: impl FnOnce(CredentialRecordV1<S>) -> Result<CredentialRecordV1<T>, E>,
    ) -> Result<EntryRecordV1<T>, E> {
        Ok(EntryRecordV1 {
            id: self.id,
            label: self.label,
            source: self.source,
            priority: self.priority,
            weight: self.weight,
            base_url: self.base_url,
            generation: self.generation,
            usage: self.usage,
            status: self.status,
            model_cooldowns: self.model_cooldowns,
            last_error: self.last_error,
            last_refresh_at: self.last_refresh_at,
            credential: map(self.credential)?,
        })
    }
}

/// A secret's fingerprint (absent when the secret was empty) and, when owned, its value.
#[derive(Serialize, Deserialize)]
pub(super) struct SecretFieldV1<S> {
    pub(super) fingerprint: Option<String>,
    pub(super) value: Option<S>,
}

#[derive(Serialize, Deserialize)]
pub(super) enum CredentialRecordV1<S> {
    ApiKey {
        key: SecretFieldV1<S>,
    },
    OAuth {
        access: SecretFieldV1<S>,
        refresh: Option<SecretFieldV1<S>>,
        expires_at: Option<i64>,
        client: ClientRecordV1,
    },
}

#[derive(Serialize, Deserialize)]
pub(super) enum SourceRecordV1 {
    Manual,
    EnvVar { name: String },
    File { path: String },
    OAuthGrant,
}

#[derive(Serialize, Deserialize)]
pub(super) struct UsageRecordV1 {
    pub(super) selections: u64,
    pub(super) successes: u64,
    pub(super) failures: u64,
    pub(super) refreshes: u64,
    pub(super) last_used_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
pub(super) enum StatusRecordV1 {
    Ok,
    CoolingDown { until: i64, cause: CauseRecordV1 },
    Dead { reason: String, since: i64 },
}

#[derive(Serialize, Deserialize)]
pub(super) enum CauseRecordV1 {
    Auth,
    RateLimited,
    Billing,
    RefreshFailed,
    Other,
}

#[derive(Serialize, Deserialize)]
pub(super) struct LastErrorRecordV1 {
    pub(super) kind: String,
    pub(super) status: Option<u16>,
    pub(super) reason: Option<String>,
    pub(super) message: Option<String>,
    pub(super) at: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ClientRecordV1 {
    pub(super) client_id: Option<String>,
    pub(super) token_endpoint: Option<String>,
    pub(super) scope: Option<String>,
    pub(super) obtained_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ProviderStateRecordV1 {
    pub(super) strategy: StrategyRecordV1,
    pub(super) round_robin_cursor: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) enum StrategyRecordV1 {
    FillFirst,
    RoundRobin,
    Random,
    LeastUsed,
    WeightedRandom,
}

#[derive(Serialize, Deserialize)]
pub(super) struct MarkerRecordV1 {
    pub(super) provider: String,
    pub(super) entry: u64,
    pub(super) generation: u64,
    pub(super) refresh_fingerprint: String,
    pub(super) started_at: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct QuarantineRecordV1 {
    pub(super) provider: Option<String>,
    pub(super) key: String,
    pub(super) error: String,
    pub(super) quarantined_at: i64,
    pub(super) raw: Vec<u8>,
}
