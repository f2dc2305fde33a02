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
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use credpool::{
    CooldownConfig, PoolConfig, ProviderId, ProviderRegistry, ProviderSpec, RefresherConfig,
    Secret, Strategy, TokenEndpointSpec,
};
use credpool_core::registry::{AuthHeader, RefreshSkew};
use credpool_refresher::endpoint::http::check_endpoint_url;
use credpool_refresher::endpoint::{ConfigReason, HostRateLimit, RefreshError, xai};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The admin listener's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// The admin token file's default name, inside the data directory.
pub const DEFAULT_TOKEN_FILE: &str = "admin.token";

/// A validated configuration.
#[derive(Debug)]
pub struct ServeConfig {
    /// The sled store's directory.
    pub data_dir: PathBuf,
    /// Where the admin API listens.
    pub listen: SocketAddr,
    /// The admin token's file (created on first start when absent).
    pub token_file: PathBuf,
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

/// An entry from the file, added at start unless the store already has its label.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The provider.
    pub provider: ProviderId,
    /// The label (unique per provider, case-insensitive).
    pub label: String,
    /// What the secret is and where it comes from.
    pub credential: SeedCredential,
    /// Priority (lower is preferred); `None` puts it last.
    pub priority: Option<u32>,
    /// Weight for `weighted_random`.
    pub weight: Option<u32>,
    /// The endpoint the credential is bound to; `None` takes the provider's.
    pub base_url: Option<String>,
    /// A token endpoint for this grant only.
    pub token_url: Option<String>,
    /// An OAuth client id for this grant only.
    pub client_id: Option<String>,
}

/// The credential of a seeded entry.
#[derive(Debug, Clone)]
pub enum SeedCredential {
    /// A static API key.
    ApiKey(SecretFrom),
    /// An OAuth grant known by its refresh token (the first access token comes from a
    /// refresh).
    RefreshToken(SecretFrom),
}

/// Where a seeded secret is read from.
#[derive(Clone)]
pub enum SecretFrom {
    /// An environment variable of the service (borrowed: never written to the store).
    Env(String),
    /// A file (borrowed: never written to the store), path resolved against the config file.
    File(PathBuf),
    /// Inline in the config file (owned: written to the store); needs
    /// `allow_inline_secrets = true`.
    Inline(Secret),
}

impl fmt::Debug for SecretFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretFrom::Env(name) => write!(f, "env:{name}"),
            SecretFrom::File(path) => write!(f, "file:{}", path.display()),
            SecretFrom::Inline(_) => f.write_str("inline"),
        }
    }
}

/// A configuration error: the file, the line, the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given.
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key at fault, when known.
    pub key: Option<String>,
    /// What is wrong (never a value from the file beyond names and enum words).
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

// ---- raw file shape ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Spanned<PathBuf>,
    #[serde(default)]
    allow_insecure_loopback: bool,
    #[serde(default)]
    allow_inline_secrets: bool,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    refresher: RawRefresher,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<SocketAddr>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRefresher {
    http_timeout_s: Option<Spanned<u64>>,
    backoff_initial_s: Option<Spanned<u64>>,
    backoff_max_s: Option<Spanned<u64>>,
    host_limit_requests: Option<u32>,
    host_limit_window_s: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: Spanned<String>,
    strategy: Option<Strategy>,
    max_leases_per_entry: Option<Spanned<u32>>,
    cooldown: Option<CooldownConfig>,
    refresh_skew_s: Option<Spanned<u64>>,
    token_url: Option<Spanned<String>>,
    client_id: Option<String>,
    base_url: Option<Spanned<String>>,
    hosts: Option<Vec<String>>,
    auth_header: Option<AuthHeader>,
    #[serde(default)]
    entries: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    label: Spanned<String>,
    api_key_env: Option<Spanned<String>>,
    api_key_file: Option<PathBuf>,
    api_key: Option<Spanned<InlineSecret>>,
    refresh_token_env: Option<Spanned<String>>,
    refresh_token_file: Option<PathBuf>,
    refresh_token: Option<Spanned<InlineSecret>>,
    token_url: Option<Spanned<String>>,
    client_id: Option<String>,
    priority: Option<u32>,
    weight: Option<Spanned<u32>>,
    base_url: Option<Spanned<String>>,
}

/// An inline secret, wrapped at once so no `Debug` of the raw config can show it.
struct InlineSecret(Secret);

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

// ---- validation ----

/// Builds errors pointing into one file.
struct Source<'a> {
    path: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes().get(..offset).map_or(1, |before| {
            before.iter().filter(|b| **b == b'\n').count() + 1
        })
    }

    fn error(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            line: span.map(|span| self.line_of(span.start)),
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// The key written on the line holding `offset` (`name = …`), or the table header.
    fn key_at(&self, offset: usize) -> Option<String> {
        let line = self
            .text
            .lines()
            .nth(self.line_of(offset).checked_sub(1)?)?;
        let line = line.trim();
        if line.starts_with('[') {
            return Some(
                line.trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .to_owned(),
            );
        }
        let (key, _) = line.split_once('=')?;
        let key = key.trim().trim_matches('"');
        (!key.is_empty()).then(|| key.to_owned())
    }

    /// Turns a serde/toml error into one naming the key and the line, without quoting the file.
    fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
        let message = elide_strings(error.message());
        let key =
            quoted_field(&message).or_else(|| error.span().and_then(|s| self.key_at(s.start)));
        ConfigError {
            path: self.path.to_owned(),
            line: error.span().map(|span| self.line_of(span.start)),
            key,
            message,
        }
    }
}

/// The field a serde message names (``unknown field `x` ``, ``missing field `x` ``).
fn quoted_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

/// Removes string values from serde messages (`invalid type: string "…", expected u32`,
/// ``unknown variant `…`, expected one of `a`, `b` ``): the value might be a secret typed
/// into the wrong key. What was expected (the type, the list of variants) stays.
pub fn elide_strings(message: &str) -> String {
    for prefix in ["invalid type: string \"", "invalid value: string \""] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(at) = rest.rfind("\", expected")
        {
            let kind = prefix.trim_end_matches(" \"");
            return format!("{kind}{}", rest.get(at + 1..).unwrap_or(""));
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        // serde writes ``unknown variant `VALUE`, expected …`` (or ``there are no variants``);
        // the value may itself hold a backtick, so cut at the last `` `, `` before the tail.
        let tail = ["`, expected ", "`, there are no variants"]
            .into_iter()
            .filter_map(|marker| rest.rfind(marker).map(|at| (at, marker.len())))
            .max_by_key(|(at, _)| *at);
        return match tail {
            Some((at, _)) => format!("unknown variant{}", rest.get(at + 1..).unwrap_or("")),
            None => "unknown variant".to_owned(),
        };
    }
    message.to_owned()
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn secs(value: u64) -> Duration {
    Duration::from_secs(value)
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
            listen,
            token_file,
            allow_insecure_loopback: loopback,
            providers,
            pools,
            refresher,
            seeds,
        })
    }
}

fn positive(
    source: &Source<'_>,
    value: &Option<Spanned<u64>>,
    key: &str,
) -> Result<Option<u64>, ConfigError> {
    match value {
        Some(value) if *value.get_ref() == 0 => {
            Err(source.error(Some(value.span()), key, "must be at least 1"))
        }
        Some(value) => Ok(Some(*value.get_ref())),
        None => Ok(None),
    }
}

fn refresher_config(
    source: &Source<'_>,
    raw: &RawRefresher,
) -> Result<RefresherConfig, ConfigError> {
    let mut config = RefresherConfig::default();
    if let Some(timeout) = positive(source, &raw.http_timeout_s, "refresher.http_timeout_s")? {
        config.http_timeout = secs(timeout);
    }
    if let Some(initial) = positive(
        source,
        &raw.backoff_initial_s,
        "refresher.backoff_initial_s",
    )? {
        config.backoff_initial = secs(initial);
    }
    if let Some(max) = positive(source, &raw.backoff_max_s, "refresher.backoff_max_s")? {
        config.backoff_max = secs(max);
    }
    if config.backoff_max < config.backoff_initial {
        let span = raw.backoff_max_s.as_ref().map(Spanned::span);
        return Err(source.error(
            span,
            "refresher.backoff_max_s",
            "must not be shorter than backoff_initial_s",
        ));
    }
    if let Some(requests) = raw.host_limit_requests {
        config.host_limit.max_requests = requests;
    }
    if let Some(window) = positive(
        source,
        &raw.host_limit_window_s,
        "refresher.host_limit_window_s",
    )? {
        config.host_limit = HostRateLimit {
            window: secs(window),
            ..config.host_limit
        };
    }
    Ok(config)
}

/// The domain a provider's token endpoints must be on, if any: the spec's `required_domain`
/// (xAI: `x.ai`, also when its spec names none, as the refresher's xAI client does).
pub fn required_domain(spec: &ProviderSpec) -> Option<String> {
    let endpoint = spec.token_endpoint.as_ref()?;
    if spec.id.as_str() == xai::PROVIDER {
        return Some(xai::required_domain(endpoint).to_owned());
    }
    endpoint.required_domain.clone()
}

/// Why a refresh token may not be sent to `url`, or `None` when it may. The rule is the
/// refresher's own ([`check_endpoint_url`]): `https` without user info, on `required_domain`
/// (or a subdomain) when one is given; `http` or `https` on loopback, whatever the domain,
/// only when `allow_insecure_loopback` is on. The answer never quotes the URL.
pub fn token_url_problem(
    url: &str,
    required_domain: Option<&str>,
    allow_insecure_loopback: bool,
) -> Option<String> {
    let reason = match check_endpoint_url(url, required_domain, allow_insecure_loopback) {
        Ok(_) => return None,
        Err(RefreshError::Misconfigured { reason }) => reason,
        Err(_) => return Some("not an acceptable token endpoint".to_owned()),
    };
    Some(match reason {
        ConfigReason::InsecureUrl { host }
            if matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]") =>
        {
            "an http token endpoint needs allow_insecure_loopback = true".to_owned()
        }
        ConfigReason::InsecureUrl { .. } => {
            "a token endpoint must be https (or http on loopback with allow_insecure_loopback)"
                .to_owned()
        }
        ConfigReason::DomainMismatch { required, .. } => format!(
            "this provider's token endpoint must be on `{required}` or a subdomain (or on loopback with allow_insecure_loopback)"
        ),
        _ => "not a URL with a host and without user:password".to_owned(),
    })
}

fn check_token_url(
    source: &Source<'_>,
    url: &Spanned<String>,
    key: &str,
    required_domain: Option<&str>,
    allow_insecure_loopback: bool,
) -> Result<String, ConfigError> {
    match token_url_problem(url.get_ref(), required_domain, allow_insecure_loopback) {
        None => Ok(url.get_ref().clone()),
        Some(problem) => Err(source.error(Some(url.span()), key, problem)),
    }
}

fn check_base_url(
    source: &Source<'_>,
    url: &Spanned<String>,
    key: &str,
) -> Result<String, ConfigError> {
    let parsed = reqwest::Url::parse(url.get_ref())
        .map_err(|error| source.error(Some(url.span()), key, format!("not a URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(source.error(Some(url.span()), key, "must be an http(s) URL"));
    }
    Ok(url.get_ref().trim_end_matches('/').to_owned())
}

fn provider_spec(
    source: &Source<'_>,
    raw: &RawProvider,
    known: &ProviderRegistry,
    loopback: bool,
) -> Result<ProviderSpec, ConfigError> {
    let id = ProviderId::new(raw.id.get_ref());
    if id.as_str().is_empty() {
        return Err(source.error(Some(raw.id.span()), "providers.id", "must not be empty"));
    }
    // The token_url itself is checked once the spec (and its required domain) is known.
    let has_token_url = raw.token_url.is_some();
    let base_url = raw
        .base_url
        .as_ref()
        .map(|url| check_base_url(source, url, "base_url"))
        .transpose()?;
    let registered = known.iter().find(|spec| spec.id == id).cloned();
    let declared = base_url.is_some()
        || has_token_url
        || raw.hosts.is_some()
        || id.custom_name().is_some_and(|name| !name.is_empty());
    let mut spec = match registered {
        Some(spec) => spec,
        None if declared && has_token_url => ProviderSpec::oauth(
            id.as_str(),
            TokenEndpointSpec {
                urls: Vec::new(),
                discovery_url: None,
                required_domain: None,
                client_id: None,
                json_body: false,
            },
        ),
        None if declared => ProviderSpec::api_key(id.as_str()),
        None => {
            let builtin: Vec<String> = known.iter().map(|s| s.id.to_string()).collect();
            return Err(source.error(
                Some(raw.id.span()),
                "providers.id",
                format!(
                    "unknown provider `{id}`: built in are {}; a custom provider needs base_url, token_url or hosts (or a `custom:` prefix)",
                    builtin.join(", ")
                ),
            ));
        }
    };
    if let Some(url) = &raw.token_url {
        let domain = required_domain(&spec);
        let Some(endpoint) = spec.token_endpoint.as_mut() else {
            return Err(source.error(
                Some(url.span()),
                "token_url",
                format!("provider `{id}` takes API keys, not OAuth grants"),
            ));
        };
        endpoint.urls = vec![check_token_url(
            source,
            url,
            "token_url",
            domain.as_deref(),
            loopback,
        )?];
        endpoint.discovery_url = None;
    }
    if let Some(client_id) = &raw.client_id {
        match spec.token_endpoint.as_mut() {
            Some(endpoint) => endpoint.client_id = Some(client_id.clone()),
            None => {
                return Err(source.error(
                    raw.token_url
                        .as_ref()
                        .map(Spanned::span)
                        .or(Some(raw.id.span())),
                    "client_id",
                    format!("provider `{id}` takes API keys, not OAuth grants"),
                ));
            }
        }
    }
    if base_url.is_some() {
        spec.base_url = base_url;
    }
    if let Some(hosts) = &raw.hosts {
        spec.hosts = hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
    }
    if let Some(header) = raw.auth_header {
        spec.auth_header = header;
    }
    if let Some(skew) = positive(source, &raw.refresh_skew_s, "refresh_skew_s")? {
        spec.refresh_skew = RefreshSkew::fixed(secs(skew));
    }
    Ok(spec)
}

/// Whether `name` has the shape of an environment variable name, `^[A-Za-z_][A-Za-z0-9_]*$`.
/// Anything else (a `-`, a `.`, a space) is most likely a secret pasted where its variable's
/// name belongs, and must not be stored, logged or shown as a source name.
pub fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The error for a value that is not an environment variable name; it never shows the value.
pub const NOT_AN_ENV_VAR_NAME: &str = "not an environment variable name (letters, digits and `_`, not starting with a digit); the value is not shown, as it may be a secret typed in place of the name";

fn env_var_name(
    source: &Source<'_>,
    name: &Spanned<String>,
    key: &str,
) -> Result<String, ConfigError> {
    if is_env_var_name(name.get_ref()) {
        Ok(name.get_ref().clone())
    } else {
        Err(source.error(Some(name.span()), key, NOT_AN_ENV_VAR_NAME))
    }
}

fn seed_of(
    source: &Source<'_>,
    base: &Path,
    spec: &ProviderSpec,
    raw: &RawEntry,
    allow_inline: bool,
    loopback: bool,
) -> Result<Seed, ConfigError> {
    let label = raw.label.get_ref().trim().to_owned();
    let label_span = Some(raw.label.span());
    if label.is_empty() {
        return Err(source.error(label_span, "label", "must not be empty"));
    }
    let mut sources = Vec::new();
    if let Some(name) = &raw.api_key_env {
        let name = env_var_name(source, name, "api_key_env")?;
        sources.push(SeedCredential::ApiKey(SecretFrom::Env(name)));
    }
    if let Some(path) = &raw.api_key_file {
        sources.push(SeedCredential::ApiKey(SecretFrom::File(resolve(
            base, path,
        ))));
    }
    if let Some(name) = &raw.refresh_token_env {
        let name = env_var_name(source, name, "refresh_token_env")?;
        sources.push(SeedCredential::RefreshToken(SecretFrom::Env(name)));
    }
    if let Some(path) = &raw.refresh_token_file {
        sources.push(SeedCredential::RefreshToken(SecretFrom::File(resolve(
            base, path,
        ))));
    }
    for (inline, key, oauth) in [
        (&raw.api_key, "api_key", false),
        (&raw.refresh_token, "refresh_token", true),
    ] {
        let Some(inline) = inline else { continue };
        if !allow_inline {
            return Err(source.error(
                Some(inline.span()),
                key,
                "inline secrets are refused: use the _env or _file form, or set allow_inline_secrets = true",
            ));
        }
        let secret = SecretFrom::Inline(inline.get_ref().0.clone());
        sources.push(if oauth {
            SeedCredential::RefreshToken(secret)
        } else {
            SeedCredential::ApiKey(secret)
        });
    }
    let credential = match sources.len() {
        1 => sources.remove(0),
        0 => {
            return Err(source.error(
                label_span,
                "label",
                format!(
                    "entry {label:?} has no secret: set one of api_key_env, api_key_file, refresh_token_env, refresh_token_file"
                ),
            ));
        }
        _ => {
            return Err(source.error(
                label_span,
                "label",
                format!("entry {label:?} has more than one secret source; set exactly one"),
            ));
        }
    };
    let oauth_grant = matches!(credential, SeedCredential::RefreshToken(_));
    if oauth_grant && !spec.is_oauth() {
        return Err(source.error(
            label_span,
            "refresh_token_env",
            format!(
                "provider `{}` takes API keys; an OAuth grant needs a provider with a token endpoint",
                spec.id
            ),
        ));
    }
    let domain = required_domain(spec);
    let token_url = raw
        .token_url
        .as_ref()
        .map(|url| check_token_url(source, url, "token_url", domain.as_deref(), loopback))
        .transpose()?;
    if !oauth_grant && (token_url.is_some() || raw.client_id.is_some()) {
        let span = raw.token_url.as_ref().map(Spanned::span).or(label_span);
        return Err(source.error(
            span,
            if raw.token_url.is_some() { "token_url" } else { "client_id" },
            "token_url and client_id belong to OAuth grants (refresh_token_env or refresh_token_file)",
        ));
    }
    if let Some(weight) = &raw.weight
        && *weight.get_ref() == 0
    {
        return Err(source.error(Some(weight.span()), "weight", "must be at least 1"));
    }
    let base_url = raw
        .base_url
        .as_ref()
        .map(|url| check_base_url(source, url, "base_url"))
        .transpose()?;
    Ok(Seed {
        provider: spec.id.clone(),
        label,
        credential,
        priority: raw.priority,
        weight: raw.weight.as_ref().map(|w| *w.get_ref()),
        base_url,
        token_url,
        client_id: raw.client_id.clone(),
    })
}

#[cfg(test)]
mod tests;
