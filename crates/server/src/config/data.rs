//! The `[data]` table: where the data-plane (lease) API listens.
//!
//! **Invariants:** the Unix socket is always served (its 0600 mode is its authentication);
//! TCP is served only when `listen` is given, with a lease token of its own, and on a
//! non-loopback address only when `allow_remote = true` says so (lease answers carry secrets).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::checks::{self, resolve};
use super::raw::RawData;
use super::source::{ConfigError, Source};

/// The data plane's socket file's default name, inside the data directory.
pub const DEFAULT_SOCKET: &str = "credpool.sock";

/// The lease token file's default name, inside the data directory (TCP only).
pub const DEFAULT_LEASE_TOKEN_FILE: &str = "lease.token";

/// How long a remote lease lives without a report, by default.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// The longest path a Unix socket can have (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The data plane's settings.
#[derive(Debug, Clone)]
pub struct DataConfig {
    /// The Unix socket (mode 0600).
    pub socket: PathBuf,
    /// The TCP address, if any.
    pub listen: Option<SocketAddr>,
    /// The lease token's file (TCP only; created on first start when absent).
    pub token_file: PathBuf,
    /// How long a remote lease lives without a report.
    pub lease_ttl: Duration,
    /// Connections open at once, per listener.
    pub max_connections: usize,
}

impl DataConfig {
    /// The defaults for a data directory.
    pub fn defaults(data_dir: &Path) -> DataConfig {
        DataConfig {
            socket: data_dir.join(DEFAULT_SOCKET),
            listen: None,
            token_file: data_dir.join(DEFAULT_LEASE_TOKEN_FILE),
            lease_ttl: DEFAULT_LEASE_TTL,
            max_connections: crate::listener::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

pub(super) fn data_config(
    source: &Source<'_>,
    raw: &RawData,
    base: &Path,
    data_dir: &Path,
) -> Result<DataConfig, ConfigError> {
    let mut config = DataConfig::defaults(data_dir);
    if let Some(socket) = &raw.socket {
        if socket.get_ref().as_os_str().is_empty() {
            return Err(source.error(Some(socket.span()), "data.socket", "must not be empty"));
        }
        config.socket = resolve(base, socket.get_ref());
    }
    let length = config.socket.as_os_str().len();
    if length > MAX_SOCKET_PATH {
        return Err(source.error(
            raw.socket.as_ref().map(Spanned::span),
            "data.socket",
            format!(
                "the socket path {} is {length} bytes, and a Unix socket's path holds at most {MAX_SOCKET_PATH}: give a shorter data.socket",
                config.socket.display()
            ),
        ));
    }
    if let Some(listen) = &raw.listen {
        let address = *listen.get_ref();
        if !address.ip().is_loopback() && !raw.allow_remote {
            return Err(source.error(
                Some(listen.span()),
                "data.listen",
                format!(
                    "{address} is not a loopback address, and lease answers carry secrets: set allow_remote = true (behind TLS) to serve it"
                ),
            ));
        }
        config.listen = Some(address);
    }
    if let Some(file) = &raw.token_file {
        config.token_file = resolve(base, file);
    }
    if let Some(ttl) = checks::positive(source, &raw.lease_ttl_s, "data.lease_ttl_s")? {
        config.lease_ttl = checks::secs(ttl);
    }
    if let Some(max) = &raw.max_connections {
        if *max.get_ref() == 0 {
            return Err(source.error(
                Some(max.span()),
                "data.max_connections",
                "must be at least 1",
            ));
        }
        config.max_connections = *max.get_ref();
    }
    Ok(config)
}
