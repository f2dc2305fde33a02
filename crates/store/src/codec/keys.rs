//! The key layout: one sled tree per kind of record, a provider's records one prefix scan.

use credpool_core::{EntryId, ProviderId};

use super::error::CodecError;

/// The tree holding entries.
pub const ENTRIES_TREE: &str = "entries";
/// The tree holding provider state.
pub const PROVIDERS_TREE: &str = "providers";
/// The tree holding refresh markers.
pub const MARKERS_TREE: &str = "markers";
/// The tree holding quarantined records.
pub const QUARANTINE_TREE: &str = "quarantine";

/// Separates a provider name from the rest of a key.
pub(super) const SEPARATOR: u8 = 0;

// ---------------------------------------------------------------------------------------------
// Keys

/// Returns the key prefix shared by every record of `provider` (`provider ++ 0x00`).
pub fn provider_prefix(provider: &ProviderId) -> Result<Vec<u8>, CodecError> {
    let name = provider.as_str().as_bytes();
    if name.contains(&SEPARATOR) {
        return Err(CodecError::ProviderName);
    }
    let mut key = Vec::with_capacity(name.len() + 9);
    key.extend_from_slice(name);
    key.push(SEPARATOR);
    Ok(key)
}

/// Returns the key of an entry (and of its refresh marker).
pub fn entry_key(provider: &ProviderId, entry: EntryId) -> Result<Vec<u8>, CodecError> {
    let mut key = provider_prefix(provider)?;
    key.extend_from_slice(&entry.0.to_be_bytes());
    Ok(key)
}

/// Returns the key of a provider's state.
pub fn provider_key(provider: &ProviderId) -> Result<Vec<u8>, CodecError> {
    let mut key = provider_prefix(provider)?;
    key.pop();
    Ok(key)
}

/// Returns the quarantine key of a record found under `key` in `tree` for `provider`.
pub fn quarantine_key(
    provider: &ProviderId,
    tree: &str,
    key: &[u8],
) -> Result<Vec<u8>, CodecError> {
    let mut out = provider_prefix(provider)?;
    out.extend_from_slice(tree.as_bytes());
    out.push(SEPARATOR);
    out.extend_from_slice(key);
    Ok(out)
}

/// Returns the provider named by the first component of a key, if it is valid text.
pub fn provider_of_key(key: &[u8]) -> Option<ProviderId> {
    let end = key
        .iter()
        .position(|&b| b == SEPARATOR)
        .unwrap_or(key.len());
    let name = std::str::from_utf8(&key[..end]).ok()?;
    (!name.is_empty()).then(|| ProviderId::new(name))
}

/// Returns the entry id at the end of an entry or marker key.
pub fn entry_id_of_key(key: &[u8]) -> Option<EntryId> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(EntryId(u64::from_be_bytes(tail)))
}

/// Renders a key of `tree` for humans: `tree/provider/entry-id`, with any byte that is not
/// printable shown as `\xNN`.
pub fn printable_key(tree: &str, key: &[u8]) -> String {
    let provider_end = key.iter().position(|&b| b == SEPARATOR);
    let parsed = match provider_end {
        Some(end) if key.len() == end + 9 => std::str::from_utf8(&key[..end])
            .ok()
            .zip(entry_id_of_key(key))
            .map(|(provider, id)| format!("{tree}/{provider}/{id}")),
        None => std::str::from_utf8(key)
            .ok()
            .filter(|text| text.chars().all(|c| !c.is_control()))
            .map(|provider| format!("{tree}/{provider}")),
        Some(_) => None,
    };
    parsed.unwrap_or_else(|| {
        let mut out = format!("{tree}/");
        for &byte in key {
            if byte.is_ascii_graphic() {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        }
        out
    })
}
