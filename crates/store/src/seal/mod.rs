//! Sealing secrets at rest: every secret value a record holds is encrypted with
//! XChaCha20-Poly1305 under the store's 256-bit master key before it is written.
//!
//! A sealed value is `key id (8 bytes) ++ nonce (24 bytes, random per write) ++ ciphertext and
//! tag`. The associated data binds where the value belongs — the record's format version, the
//! provider, the entry id and which secret of the entry it is ([`Binding`]) — so a sealed value
//! copied onto another entry, another provider or another field does not open. The key id
//! names the key a value was sealed under, so an error can say which key is needed.
//!
//! **Invariants:**
//! - The key lives only inside the cipher (zeroized on drop by the `chacha20poly1305` crate);
//!   the bytes it was read from are zeroized buffers. Neither `Debug` nor any error shows it:
//!   only its id, a hash of it.
//! - Opened values are returned in zeroizing buffers, to be moved into a `Secret`.
//! - A nonce is never reused: each seal draws 24 fresh bytes from the operating system's
//!   generator (random 192-bit nonces make a collision negligible over any store's life).

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use credpool_core::{EntryId, ProviderId};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub mod source;

/// Bytes of a master key.
pub const KEY_BYTES: usize = 32;
const ID_BYTES: usize = 8;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;

/// The id of a master key: the first 8 bytes of a SHA-256 of it, shown as 16 hex digits. It
/// identifies a key without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; ID_BYTES]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The key that seals a store's secrets.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    id: KeyId,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a key's bytes are not a key. Never holds the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// The text is not base64.
    #[error(
        "not base64 (a key is 32 random bytes in standard base64, e.g. `openssl rand -base64 32`)"
    )]
    NotBase64,
    /// The decoded key has the wrong length.
    #[error("{0} bytes where a key has 32 (e.g. `openssl rand -base64 32`)")]
    WrongLength(usize),
}

impl MasterKey {
    /// A key from its 32 bytes.
    ///
    /// # Errors
    /// Any other length.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, KeyFormatError> {
        if bytes.len() != KEY_BYTES {
            return Err(KeyFormatError::WrongLength(bytes.len()));
        }
        let mut array = Zeroizing::new([0u8; KEY_BYTES]);
        array.copy_from_slice(bytes);
        Ok(MasterKey::from_array(&array))
    }

    fn from_array(bytes: &[u8; KEY_BYTES]) -> MasterKey {
        let digest = Sha256::new()
            .chain_update(b"credpool master key id\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; ID_BYTES];
        id.copy_from_slice(&digest[..ID_BYTES]);
        MasterKey {
            cipher: XChaCha20Poly1305::new(Key::from_slice(bytes)),
            id: KeyId(id),
        }
    }

    /// A key from standard base64 (padding optional, surrounding whitespace ignored).
    ///
    /// # Errors
    /// Not base64, or not 32 bytes once decoded.
    pub fn from_base64(text: &str) -> Result<MasterKey, KeyFormatError> {
        use base64::Engine;
        let text = text.trim().trim_end_matches('=');
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(text)
                .map_err(|_| KeyFormatError::NotBase64)?,
        );
        MasterKey::from_bytes(&bytes)
    }

    /// A new random key and its base64 text (to be written where it is kept).
    pub fn generate() -> (MasterKey, Zeroizing<String>) {
        use base64::Engine;
        use chacha20poly1305::aead::rand_core::RngCore;
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        OsRng.fill_bytes(&mut *bytes);
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(*bytes));
        let key = MasterKey::from_array(&bytes);
        (key, text)
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Seals `plaintext` for `binding`.
    pub(crate) fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &binding.0,
                },
            )
            .map_err(|_| SealError::Failed)?;
        let mut out = Vec::with_capacity(ID_BYTES + NONCE_BYTES + ciphertext.len());
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a value sealed for `binding`.
    ///
    /// # Errors
    /// Sealed under another key, truncated, tampered with, or bound elsewhere.
    pub(crate) fn open(
        &self,
        binding: &Binding,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < ID_BYTES + NONCE_BYTES + TAG_BYTES {
            return Err(SealError::Truncated);
        }
        let (id, rest) = sealed.split_at(ID_BYTES);
        if id != self.id.0 {
            let mut other = [0u8; ID_BYTES];
            other.copy_from_slice(id);
            return Err(SealError::OtherKey(KeyId(other)));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &binding.0,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Failed)
    }
}

/// The id of the key a sealed value is under (`None` when too short to be one).
pub fn key_id_of(sealed: &[u8]) -> Option<KeyId> {
    let id = sealed.get(..ID_BYTES)?;
    let mut bytes = [0u8; ID_BYTES];
    bytes.copy_from_slice(id);
    Some(KeyId(bytes))
}

/// Why a value could not be sealed or opened. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Shorter than a sealed value can be.
    #[error("sealed value is truncated")]
    Truncated,
    /// Sealed under another key.
    #[error("sealed under key {0}, not this store's")]
    OtherKey(KeyId),
    /// The tag does not verify: tampered with, damaged, or bound to another place.
    #[error("sealed value does not verify (damaged, tampered with, or copied from elsewhere)")]
    Failed,
}

/// Which secret of an entry a sealed value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// An API key.
    ApiKey = 1,
    /// An OAuth access token.
    Access = 2,
    /// An OAuth refresh token.
    Refresh = 3,
    /// The raw bytes of a quarantined record.
    Quarantined = 4,
}

/// The associated data of a sealed value: where it belongs.
pub struct Binding(Vec<u8>);

impl Binding {
    /// A secret of an entry record of format `version`.
    pub fn secret(version: u8, provider: &ProviderId, entry: EntryId, field: Field) -> Binding {
        let mut ad = Vec::with_capacity(40 + provider.as_str().len());
        ad.extend_from_slice(b"credpool seal\0");
        ad.push(version);
        ad.push(field as u8);
        ad.extend_from_slice(provider.as_str().as_bytes());
        ad.push(0);
        ad.extend_from_slice(&entry.0.to_be_bytes());
        Binding(ad)
    }

    /// The raw bytes of the quarantine record stored under `quarantine_key`.
    pub fn quarantined(version: u8, quarantine_key: &[u8]) -> Binding {
        let mut ad = Vec::with_capacity(20 + quarantine_key.len());
        ad.extend_from_slice(b"credpool seal\0");
        ad.push(version);
        ad.push(Field::Quarantined as u8);
        ad.extend_from_slice(quarantine_key);
        Binding(ad)
    }
}

#[cfg(test)]
mod tests;
