//! The entries of the file: one secret source each (an environment variable, a file, or
//! inline when allowed), and grant-only keys on grants only.

use std::fmt;
use std::path::{Path, PathBuf};

use credpool::{ProviderId, ProviderSpec, Secret};
use toml::Spanned;

use super::checks::{check_base_url, check_token_url, env_var_name, resolve};
use super::raw::RawEntry;
use super::source::ConfigError;
use super::source::Source;

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

pub(super) fn seed_of(
    source: &Source<'_>,
    base: &Path,
    spec: &ProviderSpec,
    raw: &RawEntry,
    allow_inline: bool,
    loopback: bool,
) -> Result<Seed, ConfigError> {
    let label_span = Some(raw.label.span());
    let label = match credpool::admin::check_label(raw.label.get_ref()) {
        Ok(label) => label.to_owned(),
        Err(credpool::PoolError::Invalid(problem)) => {
            return Err(source.error(label_span, "label", problem));
        }
        Err(other) => return Err(source.error(label_span, "label", other.to_string())),
    };
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
    let token_url = raw
        .token_url
        .as_ref()
        .map(|url| check_token_url(source, url, "token_url", spec, loopback))
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
