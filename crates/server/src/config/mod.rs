//! The `credpool serve` configuration file (TOML; every key in `docs/CONFIG.md`).
//!
//! Parsing is two steps: serde reads the file into raw structs (`deny_unknown_fields`
//! everywhere, spans kept where a later check needs a line), then [`ServeConfig::parse`]
//! validates and resolves it (relative paths against the file's directory, provider specs,
//! pool and refresher settings, the entries to seed).
//!
//! **Invariants:**
//! - Every error names the offending key and its line (`line 12: key `strategy`: …`), and
//!   never quotes the file: a line may hold a secret, so no source snippet is printed and
//!   string values in type errors are elided.
//! - Secrets are never inline unless `allow_inline_secrets = true`: an entry names an
//!   environment variable or a file, read when the entry is seeded (and, for borrowed
//!   sources, again by the pool at every start).
//! - A refresh token is only sent to an `https` token endpoint (on the provider's required
//!   domain, xAI: `x.ai`), or to a loopback one when `allow_insecure_loopback = true`: the
//!   refresher's own [`check_endpoint_url`], so the file accepts no URL the refresher refuses.
//! - Environment variable names are checked (`^[A-Za-z_][A-Za-z0-9_]*$`) and a bad one is
//!   never echoed: it is likely a secret typed where its variable's name belongs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use credpool::{PoolConfig, ProviderId, ProviderRegistry, RefresherConfig};

mod checks;
mod data;
mod raw;
mod seeds;
mod source;

pub use self::checks::{NOT_AN_ENV_VAR_NAME, is_env_var_name};
use self::checks::{provider_spec, refresher_config, resolve};
pub use self::data::{DEFAULT_LEASE_TOKEN_FILE, DEFAULT_SOCKET, DataConfig};
use self::raw::RawConfig;
use self::seeds::seed_of;
pub use self::seeds::{SecretFrom, Seed, SeedCredential};
use self::source::Source;
pub use self::source::{ConfigError, elide_strings};

/// The admin listener's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// The admin token file's default name, inside the data directory.
pub const DEFAULT_TOKEN_FILE: &str = "admin.token";

/// A validated configuration.
#[derive(Debug)]
pub struct ServeConfig {
    /// The sled store's directory.
    pub data_dir: PathBuf,
    /// The master key's file (`CREDPOOL_MASTER_KEY` wins over it; without either the key is
    /// `<data_dir>/master.key`, generated for a new store).
    pub master_key_file: Option<PathBuf>,
    /// Where the admin API listens.
    pub listen: SocketAddr,
    /// The data plane (lease API): its socket, optional TCP address, token and lease TTL.
    pub data: DataConfig,
    /// The admin token's file (created on first start when absent).
    pub token_file: PathBuf,
    /// Admin connections open at once (lowered to fit the descriptor limit).
    pub max_connections: usize,
    /// How long a request's head may take, and a keep-alive connection may idle.
    pub header_read_timeout: std::time::Duration,
    /// Allows `http://` token endpoints on loopback (tests, the chaos harness).
    pub allow_insecure_loopback: bool,
    /// Built-in providers with the file's overrides, plus custom ones.
    pub providers: ProviderRegistry,
    /// One pool per configured provider, started with the service.
    pub pools: Vec<(ProviderId, PoolConfig)>,
    /// The refresher's settings (its provider registry is replaced at start).
    pub refresher: RefresherConfig,
    /// Entries to add when the store holds none with their label.
    pub seeds: Vec<Seed>,
}

impl ServeConfig {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// The file cannot be read, or a key is unknown or has a bad value.
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            path: path.display().to_string(),
            line: None,
            key: None,
            message: format!("cannot read the file: {error}"),
        })?;
        let base = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        ServeConfig::parse(&path.display().to_string(), &text, &base)
    }

    /// Validates configuration text; relative paths resolve against `base`.
    ///
    /// # Errors
    /// A key is unknown or has a bad value; the error names the key and its line.
    pub fn parse(path: &str, text: &str, base: &Path) -> Result<ServeConfig, ConfigError> {
        let source = Source { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|error| source.toml_error(&error))?;
        let data_dir = resolve(base, raw.data_dir.get_ref());
        if raw.data_dir.get_ref().as_os_str().is_empty() {
            return Err(source.error(Some(raw.data_dir.span()), "data_dir", "must not be empty"));
        }
        let master_key_file = match &raw.master_key_file {
            Some(file) if file.get_ref().as_os_str().is_empty() => {
                return Err(source.error(
                    Some(file.span()),
                    "master_key_file",
                    "must not be empty",
                ));
            }
            Some(file) => Some(resolve(base, file.get_ref())),
            None => None,
        };
        let listen = match raw.admin.listen {
            Some(listen) => listen,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| source.error(None, "admin.listen", "bad built-in default"))?,
        };
        let token_file = raw.admin.token_file.as_deref().map_or_else(
            || data_dir.join(DEFAULT_TOKEN_FILE),
            |file| resolve(base, file),
        );
        let refresher = refresher_config(&source, &raw.refresher)?;
        let data = data::data_config(&source, &raw.data, base, &data_dir)?;
        if data.listen.is_some() && data.token_file == token_file {
            return Err(source.error(
                None,
                "data.token_file",
                "the lease token must not be the admin token: give the data plane its own token_file",
            ));
        }
        let max_connections = match &raw.admin.max_connections {
            Some(max) if *max.get_ref() == 0 => {
                return Err(source.error(
                    Some(max.span()),
                    "admin.max_connections",
                    "must be at least 1",
                ));
            }
            Some(max) => *max.get_ref(),
            None => crate::listener::DEFAULT_MAX_CONNECTIONS,
        };
        let header_read_timeout = checks::positive(
            &source,
            &raw.admin.header_read_timeout_s,
            "admin.header_read_timeout_s",
        )?
        .map_or(
            crate::listener::ListenerLimits::default().header_read_timeout,
            checks::secs,
        );
        let loopback = raw.allow_insecure_loopback;
        let mut providers = ProviderRegistry::builtin();
        let mut pools = Vec::new();
        let mut seeds = Vec::new();
        let mut seen = HashSet::new();
        for provider in &raw.providers {
            let spec = provider_spec(&source, provider, &providers, loopback)?;
            let id = spec.id.clone();
            if !seen.insert(id.clone()) {
                return Err(source.error(
                    Some(provider.id.span()),
                    "providers.id",
                    format!("provider `{id}` is configured twice"),
                ));
            }
            let mut pool = PoolConfig::default();
            if let Some(strategy) = provider.strategy {
                pool.strategy = strategy;
            }
            if let Some(cooldown) = provider.cooldown {
                pool.cooldown = cooldown;
            }
            if let Some(guard) = checks::positive(
                &source,
                &provider.refresh_loop_guard_s,
                "refresh_loop_guard_s",
            )? {
                pool.refresh_loop_guard = checks::secs(guard);
            }
            if let Some(max) = &provider.max_leases_per_entry {
                if *max.get_ref() == 0 {
                    return Err(source.error(
                        Some(max.span()),
                        "max_leases_per_entry",
                        "must be at least 1",
                    ));
                }
                pool.max_leases_per_entry = *max.get_ref();
            }
            let mut labels = HashSet::new();
            for entry in &provider.entries {
                let seed = seed_of(
                    &source,
                    base,
                    &spec,
                    entry,
                    raw.allow_inline_secrets,
                    loopback,
                )?;
                if !labels.insert(seed.label.to_lowercase()) {
                    return Err(source.error(
                        Some(entry.label.span()),
                        "label",
                        format!("label {:?} is used twice for provider `{id}`", seed.label),
                    ));
                }
                seeds.push(seed);
            }
            providers.insert(spec);
            pools.push((id, pool));
        }
        Ok(ServeConfig {
            data_dir,
            master_key_file,
            listen,
            data,
            token_file,
            max_connections,
            header_read_timeout,
            allow_insecure_loopback: loopback,
            providers,
            pools,
            refresher,
            seeds,
        })
    }
}

#[cfg(test)]
mod tests;
