//! Entry records.
//!
//! Format 2, the one written: the layout of format 1 with every secret value sealed
//! ([`crate::seal`]) and bound to the record's format, the provider, the entry id and which
//! secret it is. Format 1 holds secrets in clear; it is read only to migrate a store written
//! before sealing (and to survey metadata), never in a sealed store's ordinary load.

use credpool_core::{
    ClientMetadata, CooldownCause, DeadReason, Entry, EntryId, EntryKind, Fingerprint, Generation,
    LastError, OAuthTokens, ProviderId, Secret, SecretSource, Status, Timestamp, Usage,
};
use zeroize::Zeroizing;

use super::records::*;
use super::{
    CodecError, FORMAT_V1, FORMAT_V2, decode_payload, encode_record, parse_fingerprint,
    split_version,
};
use crate::seal::{Binding, Field, MasterKey};

/// How [`decode_entry`] treats secrets.
#[derive(Clone, Copy)]
pub enum Secrets<'a> {
    /// Open sealed secrets with this key; a record in clear (format 1) is refused.
    Open(&'a MasterKey),
    /// Read format 1 (secrets in clear) too: migrating a store written before sealing.
    Migrate(&'a MasterKey),
    /// Metadata only: secrets are not opened and come back empty, whatever the format.
    Skip,
}

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

/// A secret's stored field: its fingerprint and, when owned, its value sealed where it belongs.
struct Sealer<'a> {
    key: &'a MasterKey,
    provider: &'a ProviderId,
    entry: EntryId,
    owned: bool,
}

impl Sealer<'_> {
    fn field(&self, secret: &Secret, field: Field) -> Result<SecretFieldV1<Sealed>, CodecError> {
        if secret.is_empty() {
            return Ok(SecretFieldV1 {
                fingerprint: None,
                value: None,
            });
        }
        let value = if self.owned {
            let binding = Binding::secret(FORMAT_V2, self.provider, self.entry, field);
            let sealed = self
                .key
                .seal(&binding, secret.expose().as_bytes())
                .map_err(|error| CodecError::Encode(error.to_string()))?;
            Some(Sealed(sealed))
        } else {
            None
        };
        Ok(SecretFieldV1 {
            fingerprint: Some(secret.fingerprint().as_str().to_owned()),
            value,
        })
    }
}

/// Encodes an entry of `provider` (format 2). Its secrets are included only when
/// [`Entry::secrets_owned`], sealed under `key`.
pub fn encode_entry(
    provider: &ProviderId,
    entry: &Entry,
    key: &MasterKey,
) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    let sealer = Sealer {
        key,
        provider,
        entry: entry.id,
        owned: entry.secrets_owned(),
    };
    let record = entry_record(entry, |secret, field| sealer.field(secret, field))?;
    encode_record(FORMAT_V2, &record)
}

/// Encodes an entry as a store written before sealing did (format 1, secrets in clear): for
/// tests of migration only.
#[cfg(test)]
pub(crate) fn encode_entry_v1(entry: &Entry) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    let owned = entry.secrets_owned();
    let record = entry_record(entry, |secret, _| {
        Ok(SecretFieldV1 {
            fingerprint: (!secret.is_empty()).then(|| secret.fingerprint().as_str().to_owned()),
            value: (owned && !secret.is_empty()).then(|| secret.expose()),
        })
    })?;
    encode_record(FORMAT_V1, &record)
}

/// The record of `entry`, each secret's field made by `secret`.
fn entry_record<'e, S>(
    entry: &'e Entry,
    mut secret: impl FnMut(&'e Secret, Field) -> Result<SecretFieldV1<S>, CodecError>,
) -> Result<EntryRecordV1<S>, CodecError> {
    let credential = match &entry.kind {
        EntryKind::ApiKey { key } => CredentialRecordV1::ApiKey {
            key: secret(key, Field::ApiKey)?,
        },
        EntryKind::OAuth(tokens) => CredentialRecordV1::OAuth {
            access: secret(&tokens.access, Field::Access)?,
            refresh: tokens
                .refresh
                .as_ref()
                .map(|r| secret(r, Field::Refresh))
                .transpose()?,
            expires_at: tokens.expires_at.map(Timestamp::millis),
            client: ClientRecordV1 {
                client_id: tokens.client.client_id.clone(),
                token_endpoint: tokens.client.token_endpoint.clone(),
                scope: tokens.client.scope.clone(),
                obtained_at: tokens.client.obtained_at.map(Timestamp::millis),
            },
        },
    };
    Ok(EntryRecordV1 {
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
    })
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

/// Opens the sealed values of a format-2 credential (or drops them, for metadata only).
fn open_credential(
    credential: CredentialRecordV1<Sealed>,
    provider: &ProviderId,
    entry: EntryId,
    key: Option<&MasterKey>,
) -> Result<CredentialRecordV1<SecretText>, CodecError> {
    let open = |field: SecretFieldV1<Sealed>, which: Field, what: &str| {
        let value = match (field.value, key) {
            (Some(sealed), Some(key)) => {
                let binding = Binding::secret(FORMAT_V2, provider, entry, which);
                let opened = key
                    .open(&binding, &sealed.0)
                    .map_err(|error| CodecError::SealOpenFailed(format!("{what}: {error}")))?;
                let text = String::from_utf8(opened.to_vec())
                    .map_err(|_| CodecError::Invalid(format!("{what} is not utf-8")))?;
                Some(SecretText(text))
            }
            _ => None,
        };
        Ok::<_, CodecError>(SecretFieldV1 {
            fingerprint: field.fingerprint,
            value,
        })
    };
    Ok(match credential {
        CredentialRecordV1::ApiKey { key } => CredentialRecordV1::ApiKey {
            key: open(key, Field::ApiKey, "api key")?,
        },
        CredentialRecordV1::OAuth {
            access,
            refresh,
            expires_at,
            client,
        } => CredentialRecordV1::OAuth {
            access: open(access, Field::Access, "access token")?,
            refresh: refresh
                .map(|field| open(field, Field::Refresh, "refresh token"))
                .transpose()?,
            expires_at,
            client,
        },
    })
}

/// Drops the values of a format-1 credential (metadata only).
fn forget_values(credential: CredentialRecordV1<SecretText>) -> CredentialRecordV1<SecretText> {
    let forget = |field: SecretFieldV1<SecretText>| SecretFieldV1 {
        fingerprint: field.fingerprint,
        value: None,
    };
    match credential {
        CredentialRecordV1::ApiKey { key } => CredentialRecordV1::ApiKey { key: forget(key) },
        CredentialRecordV1::OAuth {
            access,
            refresh,
            expires_at,
            client,
        } => CredentialRecordV1::OAuth {
            access: forget(access),
            refresh: refresh.map(forget),
            expires_at,
            client,
        },
    }
}

/// The id of the key a format-2 entry record's secrets are sealed under (`None`: another
/// format, no secret stored, or malformed).
pub fn sealed_key_id(bytes: &[u8]) -> Option<crate::seal::KeyId> {
    let (version, payload) = split_version(bytes).ok()?;
    if version != FORMAT_V2 {
        return None;
    }
    let record: EntryRecordV1<Sealed> = decode_payload(payload).ok()?;
    let sealed = match record.credential {
        CredentialRecordV1::ApiKey { key } => key.value,
        CredentialRecordV1::OAuth {
            access, refresh, ..
        } => access.value.or(refresh.and_then(|field| field.value)),
    }?;
    crate::seal::key_id_of(&sealed.0)
}

/// Decodes an entry record of `provider`. With [`Secrets::Skip`] the secrets come back empty
/// and `borrowed_fingerprint` means nothing: for reading metadata only.
pub fn decode_entry(
    provider: &ProviderId,
    bytes: &[u8],
    secrets: Secrets<'_>,
) -> Result<DecodedEntry, CodecError> {
    let (version, payload) = split_version(bytes)?;
    let record: EntryRecordV1<SecretText> = match (version, secrets) {
        (FORMAT_V2, _) => {
            let record: EntryRecordV1<Sealed> = decode_payload(payload)?;
            let key = match secrets {
                Secrets::Open(key) | Secrets::Migrate(key) => Some(key),
                Secrets::Skip => None,
            };
            let entry = EntryId(record.id);
            record.try_map_credential(|credential| {
                open_credential(credential, provider, entry, key)
            })?
        }
        (FORMAT_V1, Secrets::Open(_)) => return Err(CodecError::Clear),
        (FORMAT_V1, Secrets::Migrate(_)) => decode_payload(payload)?,
        (FORMAT_V1, Secrets::Skip) => {
            let record: EntryRecordV1<SecretText> = decode_payload(payload)?;
            record.try_map_credential(|credential| Ok(forget_values(credential)))?
        }
        (other, _) => return Err(CodecError::UnknownVersion(other)),
    };
    build_entry(record)
}

/// Builds the entry from a record whose secrets are open.
fn build_entry(record: EntryRecordV1<SecretText>) -> Result<DecodedEntry, CodecError> {
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
