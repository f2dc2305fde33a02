//! Secret values and their fingerprints.
//!
//! **Invariant:** a [`Secret`] never prints its value: `Debug` is redacted, there is no
//! `Display` and no `Serialize`; the bytes are zeroized when the last clone drops; the value is
//! reachable only through [`Secret::expose`], which greps well in review.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A credential value: an API key, an access token or a refresh token.
///
/// Clones share one zeroizing buffer, so handing a secret to a lease costs a reference count,
/// not a copy of the key in memory.
#[derive(Clone)]
pub struct Secret(Arc<Zeroizing<String>>);

impl Secret {
    /// Wraps a value; surrounding whitespace (a trailing newline from a file) is removed.
    pub fn new(value: impl Into<String>) -> Self {
        let mut value: String = value.into();
        let trimmed = value.trim();
        if trimmed.len() != value.len() {
            let owned = Zeroizing::new(trimmed.to_owned());
            zeroize::Zeroize::zeroize(&mut value);
            return Self(Arc::new(owned));
        }
        Self(Arc::new(Zeroizing::new(value)))
    }

    /// Returns the value. Call it only where the value leaves for its provider or the store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the fingerprint used to display and match this secret.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.expose())
    }

    /// Tells whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares two secrets without revealing where they differ.
    pub fn same_value(&self, other: &Secret) -> bool {
        let (a, b) = (self.expose().as_bytes(), other.expose().as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.fingerprint())
    }
}

/// `sha256:` followed by the first 16 hex digits of the SHA-256 of a secret.
///
/// Safe to log, display and store; enough to tell two keys apart and to match siblings.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Computes the fingerprint of a value.
    pub fn of(value: &str) -> Self {
        let digest = Sha256::digest(value.as_bytes());
        Fingerprint(format!("sha256:{}", hex::encode(&digest[..8])))
    }

    /// Returns the text form, `sha256:` and 16 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts a stored text form if it has the expected shape.
    pub fn parse(text: &str) -> Option<Self> {
        let hex_part = text.strip_prefix("sha256:")?;
        (hex_part.len() == 16 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Fingerprint(text.to_ascii_lowercase()))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "sk-canary-7d1f0c93a2b64e58";

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new(CANARY);
        let shown = format!("{secret:?} {:#?}", secret);
        assert!(!shown.contains(CANARY), "{shown}");
        assert!(shown.contains("sha256:"));
    }

    #[test]
    fn fingerprint_has_the_documented_shape() {
        let fp = Fingerprint::of("abc");
        assert_eq!(fp.as_str(), "sha256:ba7816bf8f01cfea");
        assert_eq!(Fingerprint::parse(fp.as_str()), Some(fp));
        assert_eq!(Fingerprint::parse("md5:00"), None);
    }

    #[test]
    fn values_are_trimmed_and_compared() {
        let a = Secret::new(" key\n");
        assert_eq!(a.expose(), "key");
        assert!(a.same_value(&Secret::new("key")));
        assert!(!a.same_value(&Secret::new("kez")));
        assert!(!a.same_value(&Secret::new("keys")));
    }
}
