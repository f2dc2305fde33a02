//! The checks of the file's values: durations, the refresher's settings, provider specs,
//! URLs and environment variable names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use credpool::{ProviderId, ProviderRegistry, ProviderSpec, RefresherConfig, TokenEndpointSpec};
use credpool_core::registry::RefreshSkew;
use credpool_refresher::endpoint::HostRateLimit;
use credpool_refresher::policy::token_url_problem;
use toml::Spanned;

use super::raw::{RawProvider, RawRefresher};
use super::source::ConfigError;
use super::source::Source;

pub(super) fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

pub(super) fn secs(value: u64) -> Duration {
    Duration::from_secs(value)
}

pub(super) fn positive(
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

pub(super) fn refresher_config(
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

/// Accepts a token URL the refresher would send `spec`'s refresh tokens to (its
/// [`token_url_problem`] rule).
pub(super) fn check_token_url(
    source: &Source<'_>,
    url: &Spanned<String>,
    key: &str,
    spec: &ProviderSpec,
    allow_insecure_loopback: bool,
) -> Result<String, ConfigError> {
    match token_url_problem(url.get_ref(), Some(spec), allow_insecure_loopback) {
        None => Ok(url.get_ref().clone()),
        Some(problem) => Err(source.error(Some(url.span()), key, problem)),
    }
}

pub(super) fn check_base_url(
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

pub(super) fn provider_spec(
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
        let checked = spec
            .is_oauth()
            .then(|| check_token_url(source, url, "token_url", &spec, loopback))
            .transpose()?;
        let Some(endpoint) = spec.token_endpoint.as_mut() else {
            return Err(source.error(
                Some(url.span()),
                "token_url",
                format!("provider `{id}` takes API keys, not OAuth grants"),
            ));
        };
        endpoint.urls = checked.into_iter().collect();
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
        if let Some(bad) = hosts
            .iter()
            .find(|host| host.contains(['/', ':', '@']) && !host.starts_with('['))
        {
            return Err(source.error(
                None,
                "hosts",
                format!(
                    "{bad:?} is not a host name: hosts match a URL's host alone (`api.example.com`, `127.0.0.1`), never its scheme, port or path"
                ),
            ));
        }
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

pub(super) fn env_var_name(
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
