//! Files only the owner may read: written whole (a temporary file, `fsync`, then a rename),
//! mode 0600 from creation. Used for what the demo and the chaos harness keep beside a store
//! (fake keys, seeded refresh tokens, configs naming them).
//!
//! **Invariant:** a reader sees the old file or the new one, never a torn one, and the file
//! is never readable by others, not even for a moment.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to `path` atomically with mode 0600.
///
/// # Errors
/// The temporary file cannot be written or renamed over `path`.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    let tmp = std::path::PathBuf::from(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
