//! What can go wrong encoding or decoding a record; never holds a secret value.

/// Why a record could not be encoded or decoded. Never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The record is empty: not even a version byte.
    #[error("record is empty")]
    Empty,
    /// The version byte names a format this build does not know.
    #[error("unknown record format version {0}")]
    UnknownVersion(u8),
    /// The payload is malformed, truncated, oversize or has trailing bytes.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The payload decoded but a field is invalid (a fingerprint, a secret that does not match
    /// its fingerprint).
    #[error("invalid record: {0}")]
    Invalid(String),
    /// The stored record is larger than [`RECORD_LIMIT`].
    #[error("record of {0} bytes exceeds the size limit")]
    TooLarge(usize),
    /// The record is larger than [`RECORD_LIMIT`] or cannot be serialized.
    #[error("record cannot be encoded: {0}")]
    Encode(String),
    /// A sealed value does not open: damaged, tampered with, copied from another entry, or
    /// sealed under another key. Shown as the quarantine reason `seal_open_failed`.
    #[error("seal_open_failed: {0}")]
    SealOpenFailed(String),
    /// A record in clear (format 1) where records are sealed.
    #[error("a record in clear (format 1) in a sealed store")]
    Clear,
    /// A provider name contains a NUL byte, which the key layout reserves.
    #[error("provider name contains a nul byte")]
    ProviderName,
}
