//! Identifiers: providers, entries and token generations.
//!
//! **Invariant:** a [`Generation`] only moves forward; every change of an entry's tokens bumps
//! it, so a lease names exactly the token it carried.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Names a provider pool (`xai-oauth`, `openai`, `custom:together`).
///
/// Cheap to clone: the name is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderId(Arc<str>);

impl ProviderId {
    /// Creates a provider id from its name; names are trimmed and lower-cased.
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name.trim().to_ascii_lowercase()))
    }

    /// Returns the provider's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the name after `custom:` when this is a custom provider.
    pub fn custom_name(&self) -> Option<&str> {
        self.0.strip_prefix("custom:")
    }
}

impl fmt::Debug for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ProviderId {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

/// Identifies one entry inside its provider.
///
/// It has one textual form everywhere — JSON answers, events, routes, tables and command-line
/// arguments: 12 lowercase hex digits (`Display`, `FromStr` and serde all use it; JSON also
/// accepts the bare number on input, for answers written by older builds).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub u64);

impl Serialize for EntryId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntryId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Number(u64),
        }
        match Form::deserialize(deserializer)? {
            Form::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Form::Number(number) => Ok(EntryId(number)),
        }
    }
}

impl EntryId {
    /// Entry ids shown to users are 48 bits; the rest stays zero so the text form round-trips.
    pub const MASK: u64 = (1 << 48) - 1;

    /// Builds an id from random bits (the caller supplies them: core holds no RNG).
    pub fn from_random(bits: u64) -> Self {
        Self(bits & Self::MASK)
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}", self.0)
    }
}

/// Error for text that is not an entry id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEntryIdError;

impl fmt::Display for ParseEntryIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("entry id must be 12 hex digits")
    }
}

impl std::error::Error for ParseEntryIdError {}

impl FromStr for EntryId {
    type Err = ParseEntryIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 12 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseEntryIdError);
        }
        u64::from_str_radix(text, 16)
            .map(EntryId)
            .map_err(|_| ParseEntryIdError)
    }
}

/// Counts token changes of one entry. Starts at 1 and moves on every token change.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Generation(pub u64);

impl Generation {
    /// The generation of a freshly added entry.
    pub const FIRST: Generation = Generation(1);

    /// Returns the generation that follows this one.
    #[must_use]
    pub fn next(self) -> Self {
        Generation(self.0.saturating_add(1))
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_id_round_trips_through_text() {
        let id = EntryId::from_random(0xdead_beef_1234_5678);
        let text = id.to_string();
        assert_eq!(text.len(), 12);
        assert_eq!(text.parse::<EntryId>(), Ok(id));
        assert_eq!("xyz".parse::<EntryId>(), Err(ParseEntryIdError));
        assert_eq!(
            serde_json::to_string(&id).unwrap_or_default(),
            format!("\"{text}\"")
        );
        let parsed: Result<EntryId, _> = serde_json::from_str(&format!("\"{text}\""));
        assert_eq!(parsed.ok(), Some(id));
        let legacy: Result<EntryId, _> = serde_json::from_str(&id.0.to_string());
        assert_eq!(legacy.ok(), Some(id), "the bare number of older answers");
        let bad: Result<EntryId, _> = serde_json::from_str("\"nothex\"");
        assert!(bad.is_err());
    }

    #[test]
    fn provider_ids_are_normalised() {
        assert_eq!(ProviderId::new(" XAI-OAuth "), ProviderId::new("xai-oauth"));
        assert_eq!(
            ProviderId::new("custom:Together").custom_name(),
            Some("together")
        );
    }
}
