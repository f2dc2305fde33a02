//! The fake provider's token book-keeping: grant families, rotating refresh tokens, access
//! token lifetimes and reuse detection.
//!
//! **Invariants:**
//! - a refresh token is redeemed at most once; presenting it again outside the grace window
//!   revokes its whole family (RFC 9700 §4.14.2), including the family's live access tokens;
//! - the grace window covers only the immediate predecessor of the family's current refresh
//!   token (several generations back is reuse, the django-oauth-toolkit #1617 mistake avoided),
//!   and a replay within it returns the very pair issued the first time;
//! - expiry is read from the injected clock only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use credpool_core::{Clock, Timestamp};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A pair the token endpoint issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedPair {
    /// The new access token.
    pub access: String,
    /// The new refresh token; `None` when rotation is off.
    pub refresh: Option<String>,
    /// The access token's lifetime.
    pub expires_in: Duration,
}

/// What redeeming a refresh token produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// A fresh pair was issued.
    Issued(IssuedPair),
    /// The predecessor was replayed within the grace window; the same pair again.
    Replayed(IssuedPair),
    /// An already-spent token outside the grace window: the family is now revoked.
    Reused,
    /// The token belongs to a revoked family.
    Revoked,
    /// The token was never issued.
    Unknown,
}

/// The state of an access token presented to the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessState {
    /// Issued, not expired, family alive.
    Valid,
    /// Issued but past its expiry (or force-expired).
    Expired,
    /// Issued but its family was revoked.
    Revoked,
    /// Never issued.
    Unknown,
}

#[derive(Clone, Serialize, Deserialize)]
struct Family {
    label: String,
    revoked: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct RefreshRecord {
    family: usize,
    /// When it was redeemed and what it bought; `None` while it is the family's current one.
    spent: Option<(Timestamp, IssuedPair)>,
}

#[derive(Clone, Serialize, Deserialize)]
struct AccessRecord {
    family: usize,
    expires_at: Timestamp,
    force_expired: bool,
}

/// Everything a ledger knows, for saving it between runs (the demo's fake provider).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct LedgerState {
    families: Vec<Family>,
    refresh_tokens: HashMap<String, RefreshRecord>,
    access_tokens: HashMap<String, AccessRecord>,
}

impl std::fmt::Debug for LedgerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerState")
            .field("families", &self.families.len())
            .field("refresh_tokens", &self.refresh_tokens.len())
            .field("access_tokens", &self.access_tokens.len())
            .finish()
    }
}

/// The token book of one fake provider.
pub struct Ledger {
    clock: Arc<dyn Clock>,
    access_lifetime: Duration,
    reuse_grace: Duration,
    rotate: bool,
    families: Vec<Family>,
    refresh_tokens: HashMap<String, RefreshRecord>,
    access_tokens: HashMap<String, AccessRecord>,
}

impl Ledger {
    /// Creates an empty book.
    pub fn new(
        clock: Arc<dyn Clock>,
        access_lifetime: Duration,
        reuse_grace: Duration,
        rotate: bool,
    ) -> Self {
        Ledger {
            clock,
            access_lifetime,
            reuse_grace,
            rotate,
            families: Vec::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
        }
    }

    /// A copy of the book, for saving.
    pub fn export(&self) -> LedgerState {
        LedgerState {
            families: self.families.clone(),
            refresh_tokens: self.refresh_tokens.clone(),
            access_tokens: self.access_tokens.clone(),
        }
    }

    /// Replaces the book with a saved one.
    pub fn restore(&mut self, state: LedgerState) {
        self.families = state.families;
        self.refresh_tokens = state.refresh_tokens;
        self.access_tokens = state.access_tokens;
    }

    /// Starts a new grant family and returns its first `(access, refresh)` pair.
    pub fn grant(&mut self, label: &str) -> (String, String) {
        let family = self.families.len();
        self.families.push(Family {
            label: label.to_owned(),
            revoked: false,
        });
        let access = self.mint_access(family);
        let refresh = self.mint_refresh(family);
        (access, refresh)
    }

    /// Revokes every family with this label; returns how many were revoked.
    pub fn revoke(&mut self, label: &str) -> usize {
        let mut count = 0;
        for family in self.families.iter_mut().filter(|f| f.label == label) {
            family.revoked = true;
            count += 1;
        }
        count
    }

    /// Tells whether some family with this label is revoked.
    pub fn is_revoked(&self, label: &str) -> bool {
        self.families
            .iter()
            .any(|family| family.label == label && family.revoked)
    }

    /// Redeems a refresh token.
    pub fn refresh(&mut self, token: &str) -> RefreshVerdict {
        let now = self.clock.now();
        let Some(record) = self.refresh_tokens.get(token) else {
            return RefreshVerdict::Unknown;
        };
        let family = record.family;
        if self.families[family].revoked {
            return RefreshVerdict::Revoked;
        }
        match &record.spent {
            None => {
                let access = self.mint_access(family);
                let refresh = self.rotate.then(|| self.mint_refresh(family));
                let pair = IssuedPair {
                    access,
                    refresh,
                    expires_in: self.access_lifetime,
                };
                if self.rotate
                    && let Some(record) = self.refresh_tokens.get_mut(token)
                {
                    record.spent = Some((now, pair.clone()));
                }
                RefreshVerdict::Issued(pair)
            }
            Some((spent_at, pair)) => {
                let successor_unspent = pair
                    .refresh
                    .as_ref()
                    .and_then(|next| self.refresh_tokens.get(next))
                    .is_some_and(|next| next.spent.is_none());
                let within_grace = !self.reuse_grace.is_zero()
                    && now.since(*spent_at) <= self.reuse_grace
                    && now >= *spent_at;
                if within_grace && successor_unspent {
                    return RefreshVerdict::Replayed(pair.clone());
                }
                self.families[family].revoked = true;
                RefreshVerdict::Reused
            }
        }
    }

    /// Classifies an access token presented to the API.
    pub fn access_state(&self, token: &str) -> AccessState {
        let Some(record) = self.access_tokens.get(token) else {
            return AccessState::Unknown;
        };
        if self.families[record.family].revoked {
            AccessState::Revoked
        } else if record.force_expired || self.clock.now() >= record.expires_at {
            AccessState::Expired
        } else {
            AccessState::Valid
        }
    }

    /// Expires every access token issued so far.
    pub fn expire_access_tokens(&mut self) {
        for record in self.access_tokens.values_mut() {
            record.force_expired = true;
        }
    }

    /// Expires the access tokens issued at least `age` ago (a provider invalidating sessions
    /// early), leaving younger ones valid.
    pub fn expire_access_tokens_older_than(&mut self, age: Duration) {
        let now = self.clock.now();
        for record in self.access_tokens.values_mut() {
            let issued_at = Timestamp(
                record
                    .expires_at
                    .0
                    .saturating_sub(i64::try_from(self.access_lifetime.as_millis()).unwrap_or(0)),
            );
            if now.since(issued_at) >= age {
                record.force_expired = true;
            }
        }
    }

    fn mint_access(&mut self, family: usize) -> String {
        let token = mint("fake-at", &self.families[family].label);
        let expires_at = self.clock.now().plus(self.access_lifetime);
        self.access_tokens.insert(
            token.clone(),
            AccessRecord {
                family,
                expires_at,
                force_expired: false,
            },
        );
        token
    }

    fn mint_refresh(&mut self, family: usize) -> String {
        let token = mint("fake-rt", &self.families[family].label);
        self.refresh_tokens.insert(
            token.clone(),
            RefreshRecord {
                family,
                spent: None,
            },
        );
        token
    }
}

/// A fresh random token: `<kind>-<label>-<32 hex digits>`.
fn mint(kind: &str, label: &str) -> String {
    let value: u128 = rand::rng().random();
    format!("{kind}-{label}-{value:032x}")
}
