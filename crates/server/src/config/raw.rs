//! The file's raw shape: what serde reads before anything is checked (`deny_unknown_fields`
//! everywhere, spans kept where a later check needs a line). Inline secrets are wrapped at
//! once, so no `Debug` of a raw config shows them.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use credpool::{CooldownConfig, Secret, Strategy};
use credpool_core::registry::AuthHeader;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) data_dir: Spanned<PathBuf>,
    #[serde(default)]
    pub(super) master_key_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub(super) allow_insecure_loopback: bool,
    #[serde(default)]
    pub(super) allow_inline_secrets: bool,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) data: RawData,
    #[serde(default)]
    pub(super) refresher: RawRefresher,
    #[serde(default)]
    pub(super) providers: Vec<RawProvider>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<SocketAddr>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) max_connections: Option<Spanned<usize>>,
    pub(super) header_read_timeout_s: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRefresher {
    pub(super) http_timeout_s: Option<Spanned<u64>>,
    pub(super) backoff_initial_s: Option<Spanned<u64>>,
    pub(super) backoff_max_s: Option<Spanned<u64>>,
    pub(super) host_limit_requests: Option<u32>,
    pub(super) host_limit_window_s: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) id: Spanned<String>,
    pub(super) strategy: Option<Strategy>,
    pub(super) max_leases_per_entry: Option<Spanned<u32>>,
    pub(super) cooldown: Option<CooldownConfig>,
    pub(super) refresh_skew_s: Option<Spanned<u64>>,
    pub(super) refresh_loop_guard_s: Option<Spanned<u64>>,
    pub(super) token_url: Option<Spanned<String>>,
    pub(super) client_id: Option<String>,
    pub(super) base_url: Option<Spanned<String>>,
    pub(super) hosts: Option<Vec<String>>,
    pub(super) auth_header: Option<AuthHeader>,
    #[serde(default)]
    pub(super) entries: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEntry {
    pub(super) label: Spanned<String>,
    pub(super) api_key_env: Option<Spanned<String>>,
    pub(super) api_key_file: Option<PathBuf>,
    pub(super) api_key: Option<Spanned<InlineSecret>>,
    pub(super) refresh_token_env: Option<Spanned<String>>,
    pub(super) refresh_token_file: Option<PathBuf>,
    pub(super) refresh_token: Option<Spanned<InlineSecret>>,
    pub(super) token_url: Option<Spanned<String>>,
    pub(super) client_id: Option<String>,
    pub(super) priority: Option<u32>,
    pub(super) weight: Option<Spanned<u32>>,
    pub(super) base_url: Option<Spanned<String>>,
}

/// An inline secret, wrapped at once so no `Debug` of the raw config can show it.
pub(super) struct InlineSecret(pub(super) Secret);

impl fmt::Debug for InlineSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for InlineSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|value| InlineSecret(Secret::new(value)))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[data]` table as written.
pub(super) struct RawData {
    pub(super) socket: Option<Spanned<PathBuf>>,
    pub(super) listen: Option<Spanned<SocketAddr>>,
    pub(super) token_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) allow_remote: bool,
    pub(super) lease_ttl_s: Option<Spanned<u64>>,
    pub(super) max_connections: Option<Spanned<usize>>,
}
