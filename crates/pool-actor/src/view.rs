//! Redacted views of pools and entries for the admin API.
//!
//! **Invariant:** nothing here holds a secret; entries are shown by fingerprint.

use std::collections::BTreeMap;

use credpool_core::entry::LastError;
use credpool_core::{
    CredentialKind, Entry, EntryId, Fingerprint, Generation, ProviderId, Status, StatusKind,
    Strategy, Timestamp, Usage,
};

use credpool_store::QuarantinedRecord;
use serde::{Deserialize, Serialize};

/// One entry as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// 1-based position in priority order.
    pub index: usize,
    /// The id.
    pub id: EntryId,
    /// The label.
    pub label: String,
    /// API key or OAuth grant.
    pub kind: CredentialKind,
    /// Fingerprint of the secret sent with requests.
    pub fingerprint: Fingerprint,
    /// Where the secret came from (`manual`, `env:NAME`, `file:PATH`, `oauth`).
    pub source: String,
    /// Priority (lower is preferred).
    pub priority: u32,
    /// What its status amounts to now (an expired cooldown is `ok`).
    pub status: StatusKind,
    /// Seconds until a cooldown ends.
    pub cooldown_remaining_s: Option<u64>,
    /// Why it cools down.
    pub cooldown_cause: Option<String>,
    /// Why it is dead.
    pub dead_reason: Option<String>,
    /// Per-model benches still running, with their deadlines.
    pub model_cooldowns: BTreeMap<String, Timestamp>,
    /// When the access token expires (OAuth).
    pub token_expires_at: Option<Timestamp>,
    /// The token generation.
    pub generation: Generation,
    /// Counters.
    pub usage: Usage,
    /// Leases held now.
    pub leases: u32,
    /// The last failure.
    pub last_error: Option<LastError>,
    /// The endpoint the credential is bound to.
    pub base_url: Option<String>,
    /// True when the secret is borrowed (env var or file) and could not be read.
    pub missing_secret: bool,
}

impl EntryView {
    /// Whether a lease could be handed out on it now (cap aside).
    pub fn is_available(&self) -> bool {
        self.status == StatusKind::Ok && self.model_cooldowns.is_empty() && !self.missing_secret
    }

    pub(crate) fn of(entry: &Entry, index: usize, leases: u32, now: Timestamp) -> Self {
        let (cooldown_remaining_s, cooldown_cause, dead_reason) = match &entry.status {
            Status::Ok => (None, None, None),
            Status::CoolingDown { until, cause } => (
                (*until > now).then(|| until.since(now).as_secs().max(1)),
                Some(cause.as_str().to_owned()),
                None,
            ),
            Status::Dead { reason, .. } => (None, None, Some(reason.as_str().to_owned())),
        };
        EntryView {
            index: index + 1,
            id: entry.id,
            label: entry.label.clone(),
            kind: entry.credential_kind(),
            fingerprint: entry.fingerprint(),
            source: entry.source.describe(),
            priority: entry.priority,
            status: entry.status.kind_at(now),
            cooldown_remaining_s,
            cooldown_cause,
            dead_reason,
            model_cooldowns: entry
                .model_cooldowns
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(model, until)| (model.clone(), *until))
                .collect(),
            token_expires_at: entry.oauth().and_then(|t| t.expires_at),
            generation: entry.generation,
            usage: entry.usage.clone(),
            leases,
            last_error: entry.last_error.clone(),
            base_url: entry.base_url.clone(),
            missing_secret: entry.request_secret().is_empty()
                && entry
                    .oauth()
                    .is_none_or(|t| t.refresh.as_ref().is_none_or(|r| r.is_empty())),
        }
    }
}

/// A provider's pool as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    /// The provider.
    pub provider: ProviderId,
    /// The selection strategy.
    pub strategy: Strategy,
    /// Entries in priority order.
    pub entries: Vec<EntryView>,
    /// Records of this provider that could not be decoded.
    pub quarantined: Vec<QuarantinedRecord>,
}

/// Counters of a pool since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// The provider.
    pub provider: Option<ProviderId>,
    /// Leases granted.
    pub selections: u64,
    /// Selections that found nothing.
    pub exhausted: u64,
    /// Refreshes started.
    pub refreshes_started: u64,
    /// Refreshes that rotated tokens.
    pub refreshes_succeeded: u64,
    /// Refreshes that failed.
    pub refreshes_failed: u64,
    /// Auth-failure reports answered with the current token (stale generation).
    pub stale_reports: u64,
    /// Auth-failure reports that joined a refresh already in flight.
    pub joined_refreshes: u64,
    /// Rotations to another entry after a failure.
    pub rotations: u64,
    /// Cooldowns applied, by cause.
    pub cooldowns: BTreeMap<String, u64>,
    /// Entries by status.
    pub entries_by_status: BTreeMap<StatusKind, usize>,
    /// Leases held now.
    pub leases_held: u64,
    /// Writes the store refused (status and token changes, markers, write-behind).
    pub store_errors: u64,
    /// Rotated token pairs the store refused, kept unexposed while their commit is retried.
    pub unstored_rotations: u64,
}

/// One provider in the registry's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSummary {
    /// The provider.
    pub provider: ProviderId,
    /// Entries in total.
    pub entries: usize,
    /// Entries available now.
    pub available: usize,
    /// The strategy.
    pub strategy: Strategy,
}

/// Keeps the entry ids' display stable in maps.
pub(crate) type EntryIndex = std::collections::HashMap<EntryId, usize>;
