//! Credential entries, their statuses and where their secrets come from.
//!
//! **Invariant:** an [`Entry`] is plain data. Only its provider's pool actor changes it; every
//! token change goes through [`Entry::replace_tokens`], which bumps the [`Generation`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{EntryId, Generation};
use crate::secret::{Fingerprint, Secret};

/// Whether a credential is a static key or an OAuth grant; decides how a 401 is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A static API key.
    ApiKey,
    /// An OAuth grant with an expiring access token.
    #[serde(rename = "oauth")]
    OAuth,
}

/// Facts about the OAuth client a grant belongs to; none of them secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// The OAuth client id the grant was issued to.
    pub client_id: Option<String>,
    /// A token endpoint overriding the provider's default.
    pub token_endpoint: Option<String>,
    /// The granted scope.
    pub scope: Option<String>,
    /// When the current access token was obtained.
    pub obtained_at: Option<Timestamp>,
}

/// An OAuth grant's tokens.
#[derive(Debug, Clone)]
pub struct OAuthTokens {
    /// The bearer token sent with requests.
    pub access: Secret,
    /// The refresh token; single-use at most providers.
    pub refresh: Option<Secret>,
    /// When the access token expires, if known.
    pub expires_at: Option<Timestamp>,
    /// Client facts needed to refresh.
    pub client: ClientMetadata,
}

/// The credential an entry holds.
#[derive(Debug, Clone)]
pub enum EntryKind {
    /// A static key. Empty when a borrowed key could not be read at load.
    ApiKey {
        /// The key.
        key: Secret,
    },
    /// An OAuth grant.
    OAuth(OAuthTokens),
}

impl EntryKind {
    /// Returns the secret sent with requests.
    pub fn request_secret(&self) -> &Secret {
        match self {
            EntryKind::ApiKey { key } => key,
            EntryKind::OAuth(tokens) => &tokens.access,
        }
    }

    /// Returns which kind of credential this is.
    pub fn credential_kind(&self) -> CredentialKind {
        match self {
            EntryKind::ApiKey { .. } => CredentialKind::ApiKey,
            EntryKind::OAuth(_) => CredentialKind::OAuth,
        }
    }
}

/// Where an entry's secret came from; decides whether the store may hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum SecretSource {
    /// Entered through the admin API; credpool owns it.
    Manual,
    /// Read from an environment variable at start; borrowed.
    EnvVar {
        /// The variable's name.
        name: String,
    },
    /// Read from a file at start; borrowed.
    File {
        /// The file's path.
        path: String,
    },
    /// An OAuth grant obtained through credpool; owned.
    OAuthGrant,
}

impl SecretSource {
    /// Tells whether the secret lives outside credpool (and so is never written to the store).
    pub fn is_borrowed(&self) -> bool {
        matches!(
            self,
            SecretSource::EnvVar { .. } | SecretSource::File { .. }
        )
    }

    /// Returns a short text form (`manual`, `env:NAME`, `file:PATH`, `oauth`).
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Manual => "manual".to_owned(),
            SecretSource::EnvVar { name } => format!("env:{name}"),
            SecretSource::File { path } => format!("file:{path}"),
            SecretSource::OAuthGrant => "oauth".to_owned(),
        }
    }
}

/// Why an entry cools down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CooldownCause {
    /// An auth failure that a refresh did not (or could not) fix.
    Auth,
    /// A rate limit.
    RateLimited,
    /// Billing or quota.
    Billing,
    /// The token endpoint failed transiently and the access token has expired.
    RefreshFailed,
    /// Any other failure reported against the credential.
    Other,
}

impl CooldownCause {
    /// Returns the snake_case name used in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CooldownCause::Auth => "auth",
            CooldownCause::RateLimited => "rate_limited",
            CooldownCause::Billing => "billing",
            CooldownCause::RefreshFailed => "refresh_failed",
            CooldownCause::Other => "other",
        }
    }
}

/// Why an entry is dead: the provider's terminal code or one of credpool's own reasons.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeadReason(pub String);

impl DeadReason {
    /// The rotated tokens could not be stored, so they were never handed out.
    pub const CREDENTIAL_PERSIST_FAILED: &'static str = "credential_persist_failed";
    /// A refresh was interrupted by a crash and the provider rejected the retry.
    pub const REFRESH_INTERRUPTED: &'static str = "refresh_interrupted";
    /// The store came back with an older generation of this grant than it had committed
    /// (damage accepted by an operator): its stored refresh token may be spent.
    pub const STORE_ROLLED_BACK: &'static str = "store_rolled_back";

    /// Builds a reason from its code.
    pub fn new(code: impl Into<String>) -> Self {
        DeadReason(code.into())
    }

    /// Returns the code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The health of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// Usable.
    #[default]
    Ok,
    /// Benched until a deadline.
    CoolingDown {
        /// When it becomes usable again.
        until: Timestamp,
        /// Why it was benched.
        cause: CooldownCause,
    },
    /// Terminal until someone signs in again or an admin resets it.
    Dead {
        /// Why.
        reason: DeadReason,
        /// Since when.
        since: Timestamp,
    },
}

/// What an entry's status amounts to at one moment, without its details: the form shown in
/// views, metrics and tables. An expired cooldown is [`StatusKind::Ok`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    /// Usable.
    Ok,
    /// Benched until a deadline still ahead.
    CoolingDown,
    /// Terminal until re-authorised or reset.
    Dead,
}

impl StatusKind {
    /// Returns the snake_case name (`ok`, `cooling_down`, `dead`).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Ok => "ok",
            StatusKind::CoolingDown => "cooling_down",
            StatusKind::Dead => "dead",
        }
    }
}

impl std::fmt::Display for StatusKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// Returns the snake_case name of the stored status (`ok`, `cooling_down`, `dead`), an
    /// expired cooldown included; [`Status::kind_at`] is what it amounts to.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::CoolingDown { .. } => "cooling_down",
            Status::Dead { .. } => "dead",
        }
    }

    /// What the status amounts to at `now`: an expired cooldown is [`StatusKind::Ok`].
    pub fn kind_at(&self, now: Timestamp) -> StatusKind {
        match self {
            Status::Ok => StatusKind::Ok,
            Status::CoolingDown { until, .. } if *until <= now => StatusKind::Ok,
            Status::CoolingDown { .. } => StatusKind::CoolingDown,
            Status::Dead { .. } => StatusKind::Dead,
        }
    }

    /// Tells whether the entry can be selected at `now`.
    pub fn is_available_at(&self, now: Timestamp) -> bool {
        match self {
            Status::Ok => true,
            Status::CoolingDown { until, .. } => *until <= now,
            Status::Dead { .. } => false,
        }
    }

    /// Tells whether the entry is dead.
    pub fn is_dead(&self) -> bool {
        matches!(self, Status::Dead { .. })
    }
}

/// Usage counters; written behind in batches, so a crash may lose the last few.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Times the entry was selected.
    pub selections: u64,
    /// Successful requests reported.
    pub successes: u64,
    /// Failed requests reported.
    pub failures: u64,
    /// Refreshes that produced a new token.
    pub refreshes: u64,
    /// Last time the entry was selected.
    pub last_used_at: Option<Timestamp>,
}

/// The last failure recorded against an entry, for admin display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// The fine kind's name.
    pub kind: String,
    /// The HTTP status.
    pub status: Option<u16>,
    /// The provider's code.
    pub reason: Option<String>,
    /// The provider's (masked) message.
    pub message: Option<String>,
    /// When it happened.
    pub at: Timestamp,
}

/// One credential in a provider's pool.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Stable identity inside the provider.
    pub id: EntryId,
    /// Human label, unique per provider by convention (targets resolve by it).
    pub label: String,
    /// The credential.
    pub kind: EntryKind,
    /// Where the secret came from.
    pub source: SecretSource,
    /// Ascending sort key: lower is preferred.
    pub priority: u32,
    /// Relative weight for `weighted_random`; at least 1.
    pub weight: u32,
    /// The endpoint this credential is bound to.
    pub base_url: Option<String>,
    /// Moves on every token change.
    pub generation: Generation,
    /// Counters.
    pub usage: Usage,
    /// Health.
    pub status: Status,
    /// Per-model benches that leave the credential usable for other models.
    pub model_cooldowns: BTreeMap<String, Timestamp>,
    /// The last failure, for display.
    pub last_error: Option<LastError>,
    /// When the tokens last changed through a refresh.
    pub last_refresh_at: Option<Timestamp>,
}

impl Entry {
    /// Creates a healthy entry at the first generation.
    pub fn new(
        id: EntryId,
        label: impl Into<String>,
        kind: EntryKind,
        source: SecretSource,
    ) -> Self {
        Entry {
            id,
            label: label.into(),
            kind,
            source,
            priority: 0,
            weight: 1,
            base_url: None,
            generation: Generation::FIRST,
            usage: Usage::default(),
            status: Status::Ok,
            model_cooldowns: BTreeMap::new(),
            last_error: None,
            last_refresh_at: None,
        }
    }

    /// Returns the secret sent with requests.
    pub fn request_secret(&self) -> &Secret {
        self.kind.request_secret()
    }

    /// Returns the fingerprint of the secret sent with requests (the refresh token's for an
    /// OAuth grant whose access token is not known yet).
    pub fn fingerprint(&self) -> Fingerprint {
        match &self.kind {
            EntryKind::OAuth(tokens) if tokens.access.is_empty() => tokens
                .refresh
                .as_ref()
                .map_or_else(|| tokens.access.fingerprint(), Secret::fingerprint),
            kind => kind.request_secret().fingerprint(),
        }
    }

    /// Returns whether this is an API key or an OAuth grant.
    pub fn credential_kind(&self) -> CredentialKind {
        self.kind.credential_kind()
    }

    /// Returns the OAuth tokens, if this is a grant.
    pub fn oauth(&self) -> Option<&OAuthTokens> {
        match &self.kind {
            EntryKind::OAuth(tokens) => Some(tokens),
            EntryKind::ApiKey { .. } => None,
        }
    }

    /// Tells whether the store may hold this entry's secrets.
    ///
    /// Owned secrets (manual, OAuth grants obtained through credpool) are written. Borrowed
    /// ones (env var, file) are not, except an OAuth grant's tokens once credpool has rotated
    /// them: the borrowed refresh token is spent, and only the store holds the live one.
    pub fn secrets_owned(&self) -> bool {
        !self.source.is_borrowed()
            || (self.credential_kind() == CredentialKind::OAuth
                && self.generation > Generation::FIRST)
    }

    /// The refresh token a refresh of this entry would spend: a live OAuth grant's non-empty
    /// refresh token; `None` for API keys, dead entries and grants without one.
    pub fn refresh_token(&self) -> Option<&Secret> {
        if self.status.is_dead() {
            return None;
        }
        self.oauth()
            .and_then(|tokens| tokens.refresh.as_ref())
            .filter(|refresh| !refresh.is_empty())
    }

    /// Tells whether this is a live grant that has a refresh token but no access token yet
    /// (seeded from a refresh token alone): it is refreshed as soon as its pool starts.
    pub fn needs_first_token(&self) -> bool {
        self.refresh_token().is_some() && self.request_secret().is_empty()
    }

    /// Tells whether the entry can be handed out at `now` (for `model`, when given).
    pub fn is_available_at(&self, now: Timestamp, model: Option<&str>) -> bool {
        if !self.status.is_available_at(now) || self.request_secret().is_empty() {
            return false;
        }
        match model {
            Some(model) => self
                .model_cooldowns
                .get(model)
                .is_none_or(|until| *until <= now),
            None => self.model_cooldowns.values().all(|until| *until <= now),
        }
    }

    /// Returns when the entry becomes available again if it is benched, or `None` when it is
    /// available now or dead.
    pub fn available_again_at(&self, now: Timestamp, model: Option<&str>) -> Option<Timestamp> {
        let status_until = match &self.status {
            Status::Dead { .. } => return None,
            Status::Ok => now,
            Status::CoolingDown { until, .. } => (*until).max(now),
        };
        let model_until = match model {
            Some(model) => self.model_cooldowns.get(model).copied(),
            None => self.model_cooldowns.values().max().copied(),
        };
        let until = model_until.map_or(status_until, |m| m.max(status_until));
        (until > now).then_some(until)
    }

    /// Replaces the tokens after a refresh and bumps the generation.
    ///
    /// A response without a refresh token keeps the old one.
    pub fn replace_tokens(
        &mut self,
        access: Secret,
        refresh: Option<Secret>,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) {
        if let EntryKind::OAuth(tokens) = &mut self.kind {
            tokens.access = access;
            if let Some(refresh) = refresh {
                tokens.refresh = Some(refresh);
            }
            tokens.expires_at = expires_at;
            tokens.client.obtained_at = Some(now);
        } else {
            self.kind = EntryKind::ApiKey { key: access };
        }
        self.generation = self.generation.next();
        self.last_refresh_at = Some(now);
        self.usage.refreshes += 1;
    }

    /// Clears any cooldown, death and model bench.
    pub fn revive(&mut self) {
        self.status = Status::Ok;
        self.model_cooldowns.clear();
        self.last_error = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_key(value: &str) -> Entry {
        Entry::new(
            EntryId(1),
            "one",
            EntryKind::ApiKey {
                key: Secret::new(value),
            },
            SecretSource::Manual,
        )
    }

    #[test]
    fn cooling_entries_come_back_at_their_deadline() {
        let mut entry = api_key("k");
        let now = Timestamp(1_000);
        entry.status = Status::CoolingDown {
            until: Timestamp(5_000),
            cause: CooldownCause::RateLimited,
        };
        assert!(!entry.is_available_at(now, None));
        assert_eq!(entry.available_again_at(now, None), Some(Timestamp(5_000)));
        assert!(entry.is_available_at(Timestamp(5_000), None));
    }

    #[test]
    fn model_cooldowns_bench_only_their_model_when_a_model_is_named() {
        let mut entry = api_key("k");
        entry
            .model_cooldowns
            .insert("opus".to_owned(), Timestamp(9_000));
        assert!(entry.is_available_at(Timestamp(0), Some("haiku")));
        assert!(!entry.is_available_at(Timestamp(0), Some("opus")));
        assert!(!entry.is_available_at(Timestamp(0), None));
    }

    #[test]
    fn empty_borrowed_keys_are_not_available() {
        assert!(!api_key("").is_available_at(Timestamp(0), None));
    }

    #[test]
    fn borrowed_oauth_tokens_become_owned_after_rotation() {
        let mut entry = Entry::new(
            EntryId(2),
            "grant",
            EntryKind::OAuth(OAuthTokens {
                access: Secret::new("a1"),
                refresh: Some(Secret::new("r1")),
                expires_at: None,
                client: ClientMetadata::default(),
            }),
            SecretSource::EnvVar {
                name: "XAI_REFRESH".to_owned(),
            },
        );
        assert!(!entry.secrets_owned());
        entry.replace_tokens(Secret::new("a2"), None, None, Timestamp(1));
        assert!(entry.secrets_owned());
        assert_eq!(entry.generation, Generation(2));
        let refresh = entry.oauth().and_then(|t| t.refresh.as_ref());
        assert_eq!(refresh.map(Secret::expose), Some("r1"));
    }
}
