//! The provider registry: which providers exist, which hosts they serve, how long before expiry
//! their tokens are refreshed, and where their token endpoints are.
//!
//! **Invariant:** host → provider resolution is exact host equality or a subdomain match on a
//! dot boundary (`evilx.ai` never matches `x.ai`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::entry::CredentialKind;
use crate::ids::ProviderId;

/// How a credential travels in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthHeader {
    /// `Authorization: Bearer <secret>`.
    #[default]
    Bearer,
    /// `x-api-key: <secret>` (Anthropic API keys).
    XApiKey,
    /// `x-goog-api-key: <secret>` (Gemini API keys).
    XGoogApiKey,
}

impl AuthHeader {
    /// Returns the header name.
    pub fn header_name(self) -> &'static str {
        match self {
            AuthHeader::Bearer => "authorization",
            AuthHeader::XApiKey => "x-api-key",
            AuthHeader::XGoogApiKey => "x-goog-api-key",
        }
    }
}

/// How the token endpoint of an OAuth provider is found and called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEndpointSpec {
    /// Token endpoints tried in order (Anthropic has two).
    pub urls: Vec<String>,
    /// OpenID discovery document whose `token_endpoint` is used when present.
    pub discovery_url: Option<String>,
    /// The domain a discovered endpoint must be served from over https (itself or a
    /// subdomain).
    pub required_domain: Option<String>,
    /// The OAuth client id sent with `grant_type=refresh_token`.
    pub client_id: Option<String>,
    /// Send the grant as JSON rather than a form.
    pub json_body: bool,
}

/// When an OAuth provider's tokens are refreshed ahead of expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSkew {
    /// Refresh this long before expiry.
    pub skew: Duration,
    /// A shorter skew for short-lived tokens: `(lifetime at most, skew)`.
    pub short_lived: Option<(Duration, Duration)>,
}

impl RefreshSkew {
    /// A fixed skew.
    pub const fn fixed(skew: Duration) -> Self {
        RefreshSkew {
            skew,
            short_lived: None,
        }
    }

    /// Returns the skew for a token that lives `lifetime` in all.
    pub fn for_lifetime(&self, lifetime: Option<Duration>) -> Duration {
        match (self.short_lived, lifetime) {
            (Some((max_lifetime, short_skew)), Some(lifetime)) if lifetime <= max_lifetime => {
                short_skew
            }
            _ => self.skew,
        }
    }
}

/// Everything credpool knows about one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSpec {
    /// The provider's id.
    pub id: ProviderId,
    /// The kind of credential the provider issues; decides how a plain 401 is read.
    pub credential_kind: CredentialKind,
    /// Hosts served by this provider (a subdomain of one matches too).
    pub hosts: Vec<String>,
    /// The default base URL for requests.
    pub base_url: Option<String>,
    /// How a credential travels.
    pub auth_header: AuthHeader,
    /// When tokens are refreshed ahead of expiry (OAuth providers).
    pub refresh_skew: RefreshSkew,
    /// The token endpoint (OAuth providers).
    pub token_endpoint: Option<TokenEndpointSpec>,
}

/// The default skew for OAuth providers without their own rule.
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(120);

impl ProviderSpec {
    /// A provider with API keys, bearer auth and no hosts.
    pub fn api_key(id: &str) -> Self {
        ProviderSpec {
            id: ProviderId::new(id),
            credential_kind: CredentialKind::ApiKey,
            hosts: Vec::new(),
            base_url: None,
            auth_header: AuthHeader::Bearer,
            refresh_skew: RefreshSkew::fixed(DEFAULT_REFRESH_SKEW),
            token_endpoint: None,
        }
    }

    /// A provider with OAuth grants.
    pub fn oauth(id: &str, token_endpoint: TokenEndpointSpec) -> Self {
        ProviderSpec {
            credential_kind: CredentialKind::OAuth,
            token_endpoint: Some(token_endpoint),
            ..ProviderSpec::api_key(id)
        }
    }

    fn with_hosts(mut self, hosts: &[&str]) -> Self {
        self.hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        self
    }

    fn with_base_url(mut self, url: &str) -> Self {
        self.base_url = Some(url.to_owned());
        self
    }

    /// Tells whether the provider issues OAuth grants.
    pub fn is_oauth(&self) -> bool {
        self.credential_kind == CredentialKind::OAuth
    }
}

fn endpoint(urls: &[&str], client_id: Option<&str>) -> TokenEndpointSpec {
    TokenEndpointSpec {
        urls: urls.iter().map(|u| (*u).to_owned()).collect(),
        discovery_url: None,
        required_domain: None,
        client_id: client_id.map(str::to_owned),
        json_body: false,
    }
}

/// Why a change of the provider registry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No provider has that id.
    #[error("unknown provider {0}")]
    UnknownProvider(ProviderId),
    /// The provider issues API keys: it has no token endpoint.
    #[error("provider {0} has no token endpoint (it issues API keys)")]
    NotOAuth(ProviderId),
    /// The text is not a host or URL.
    #[error("{0:?} is not a host name or URL")]
    BadHost(String),
}

/// The set of known providers; built-ins plus what configuration adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRegistry {
    providers: BTreeMap<ProviderId, ProviderSpec>,
}

impl Default for ProviderRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl ProviderRegistry {
    /// The built-in providers with their documented defaults.
    pub fn builtin() -> Self {
        let xai = ProviderSpec {
            refresh_skew: RefreshSkew {
                skew: Duration::from_secs(3600),
                short_lived: Some((Duration::from_secs(45 * 60), Duration::from_secs(120))),
            },
            ..ProviderSpec::oauth(
                "xai-oauth",
                TokenEndpointSpec {
                    discovery_url: Some(
                        "https://auth.x.ai/.well-known/openid-configuration".to_owned(),
                    ),
                    required_domain: Some("x.ai".to_owned()),
                    ..endpoint(&[], Some("b1a00492-073a-47ea-816f-4c329264a828"))
                },
            )
        }
        .with_hosts(&["api.x.ai"])
        .with_base_url("https://api.x.ai/v1");
        let codex = ProviderSpec::oauth(
            "openai-codex",
            endpoint(
                &["https://auth.openai.com/oauth/token"],
                Some("app_EMoamEEZ73f0CkXaXp7hrann"),
            ),
        )
        .with_hosts(&["chatgpt.com"])
        .with_base_url("https://chatgpt.com/backend-api/codex");
        let anthropic = ProviderSpec {
            auth_header: AuthHeader::XApiKey,
            ..ProviderSpec::oauth(
                "anthropic",
                endpoint(
                    &[
                        "https://platform.claude.com/v1/oauth/token",
                        "https://console.anthropic.com/v1/oauth/token",
                    ],
                    Some("9d1c250a-e61b-44d9-88ed-5944d1962f5e"),
                ),
            )
        }
        .with_hosts(&["api.anthropic.com"])
        .with_base_url("https://api.anthropic.com");
        let nous = ProviderSpec::oauth(
            "nous",
            endpoint(
                &["https://portal.nousresearch.com/api/oauth/token"],
                Some("hermes-cli"),
            ),
        )
        .with_hosts(&["inference-api.nousresearch.com"])
        .with_base_url("https://inference-api.nousresearch.com/v1");
        let specs = [
            xai,
            codex,
            anthropic,
            nous,
            ProviderSpec::api_key("openrouter")
                .with_hosts(&["openrouter.ai"])
                .with_base_url("https://openrouter.ai/api/v1"),
            ProviderSpec::api_key("copilot")
                .with_hosts(&["githubcopilot.com"])
                .with_base_url("https://api.githubcopilot.com"),
            ProviderSpec::api_key("kimi-coding")
                .with_hosts(&["api.kimi.com"])
                .with_base_url("https://api.kimi.com/coding/v1"),
            ProviderSpec::api_key("openai")
                .with_hosts(&["api.openai.com"])
                .with_base_url("https://api.openai.com/v1"),
            ProviderSpec {
                auth_header: AuthHeader::XGoogApiKey,
                ..ProviderSpec::api_key("gemini")
            }
            .with_hosts(&["generativelanguage.googleapis.com"])
            .with_base_url("https://generativelanguage.googleapis.com/v1beta"),
        ];
        ProviderRegistry {
            providers: specs.into_iter().map(|s| (s.id.clone(), s)).collect(),
        }
    }

    /// Adds or replaces a provider (from configuration).
    pub fn insert(&mut self, spec: ProviderSpec) {
        self.providers.insert(spec.id.clone(), spec);
    }

    /// Points an OAuth provider's token endpoint at `url` alone — no discovery — keeping its
    /// client id, body format and required domain (the refresher still sends a refresh token
    /// only to a URL on that domain, or to loopback when tests allow it). An unknown or
    /// API-key provider is an error and changes nothing.
    pub fn set_token_url(&mut self, id: &ProviderId, url: &str) -> Result<(), RegistryError> {
        let spec = self
            .providers
            .get_mut(id)
            .ok_or_else(|| RegistryError::UnknownProvider(id.clone()))?;
        let endpoint = spec
            .token_endpoint
            .as_mut()
            .ok_or_else(|| RegistryError::NotOAuth(id.clone()))?;
        endpoint.urls = vec![url.to_owned()];
        endpoint.discovery_url = None;
        Ok(())
    }

    /// Makes `host` (and its subdomains) resolve to provider `id`, for
    /// [`ProviderRegistry::provider_for_url`]. A `custom:<name>` provider not known yet is
    /// added as an API-key provider; any other unknown provider is an error.
    pub fn add_host(&mut self, id: &ProviderId, host: &str) -> Result<(), RegistryError> {
        let host = host_of(host).ok_or_else(|| RegistryError::BadHost(host.to_owned()))?;
        if !self.providers.contains_key(id) {
            let spec = self
                .get(id)
                .ok_or_else(|| RegistryError::UnknownProvider(id.clone()))?;
            self.insert(spec);
        }
        if let Some(spec) = self.providers.get_mut(id)
            && !spec.hosts.contains(&host)
        {
            spec.hosts.push(host);
        }
        Ok(())
    }

    /// Returns a provider's spec. `custom:<name>` providers not configured explicitly get a
    /// generic API-key spec.
    pub fn get(&self, id: &ProviderId) -> Option<ProviderSpec> {
        if let Some(spec) = self.providers.get(id) {
            return Some(spec.clone());
        }
        id.custom_name()
            .filter(|name| !name.is_empty())
            .map(|_| ProviderSpec::api_key(id.as_str()))
    }

    /// Returns a provider's spec by name, if known.
    pub fn by_name(&self, name: &str) -> Option<ProviderSpec> {
        self.get(&ProviderId::new(name))
    }

    /// Tells whether a provider is known (built in, configured, or `custom:<name>`).
    pub fn contains(&self, id: &ProviderId) -> bool {
        self.providers.contains_key(id) || id.custom_name().is_some_and(|n| !n.is_empty())
    }

    /// Lists the known providers in id order.
    pub fn iter(&self) -> impl Iterator<Item = &ProviderSpec> {
        self.providers.values()
    }

    /// Resolves the provider serving a URL or bare host, by host equality or subdomain.
    ///
    /// The longest matching host wins, so a configured `eu.api.example.com` beats
    /// `api.example.com`.
    pub fn provider_for_url(&self, url: &str) -> Option<ProviderId> {
        let host = host_of(url)?;
        self.providers
            .values()
            .flat_map(|spec| spec.hosts.iter().map(move |h| (h, &spec.id)))
            .filter(|(pattern, _)| host_matches(&host, pattern))
            .max_by_key(|(pattern, _)| pattern.len())
            .map(|(_, id)| id.clone())
    }
}

/// Extracts the lower-cased host from a URL (`https://api.x.ai/v1` → `api.x.ai`) or a bare host.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Tells whether `host` is `pattern` or a subdomain of it.
pub fn host_matches(host: &str, pattern: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    host == pattern
        || host
            .strip_suffix(pattern.as_str())
            .is_some_and(|prefix| prefix.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: Option<&str>) {
        let registry = ProviderRegistry::builtin();
        let found = registry.provider_for_url(url);
        assert_eq!(
            found.as_ref().map(ProviderId::as_str),
            expected,
            "url {url:?}"
        );
    }

    #[test]
    fn a_token_url_override_replaces_discovery_and_keeps_the_client_id_and_domain() {
        let mut registry = ProviderRegistry::builtin();
        let xai = ProviderId::new("xai-oauth");
        assert_eq!(
            registry.set_token_url(&xai, "http://127.0.0.1:9/token"),
            Ok(())
        );
        let endpoint = registry.get(&xai).unwrap().token_endpoint.unwrap();
        assert_eq!(endpoint.urls, ["http://127.0.0.1:9/token"]);
        assert_eq!(endpoint.discovery_url, None);
        assert_eq!(
            endpoint.required_domain.as_deref(),
            Some("x.ai"),
            "the domain rule stays"
        );
        assert_eq!(
            endpoint.client_id.as_deref(),
            Some("b1a00492-073a-47ea-816f-4c329264a828")
        );
        let openai = ProviderId::new("openai");
        assert_eq!(
            registry.set_token_url(&openai, "http://x/"),
            Err(RegistryError::NotOAuth(openai))
        );
        let nonesuch = ProviderId::new("nonesuch");
        assert_eq!(
            registry.set_token_url(&nonesuch, "http://x/"),
            Err(RegistryError::UnknownProvider(nonesuch))
        );
    }

    #[test]
    fn a_host_added_to_a_provider_resolves_to_it() {
        let mut registry = ProviderRegistry::builtin();
        let corp = ProviderId::new("custom:corp");
        assert_eq!(
            registry.add_host(&corp, "https://llm.corp.example/v1"),
            Ok(())
        );
        assert_eq!(
            registry.provider_for_url("https://eu.llm.corp.example/v1/chat"),
            Some(corp.clone())
        );
        let openai = ProviderId::new("openai");
        assert_eq!(registry.add_host(&openai, "gateway.example"), Ok(()));
        assert_eq!(registry.provider_for_url("gateway.example"), Some(openai));
        assert_eq!(
            registry.add_host(&ProviderId::new("nonesuch"), "x.example"),
            Err(RegistryError::UnknownProvider(ProviderId::new("nonesuch")))
        );
        assert!(matches!(
            registry.add_host(&corp, "  "),
            Err(RegistryError::BadHost(_))
        ));
    }

    #[test]
    fn hosts_resolve_to_providers() {
        check("https://api.x.ai/v1", Some("xai-oauth"));
        check("https://API.X.AI:443/v1/chat", Some("xai-oauth"));
        check(
            "https://chatgpt.com/backend-api/codex",
            Some("openai-codex"),
        );
        check("https://api.anthropic.com", Some("anthropic"));
        check("https://openrouter.ai/api/v1", Some("openrouter"));
        check("https://inference-api.nousresearch.com/v1", Some("nous"));
        check("https://api.githubcopilot.com", Some("copilot"));
        check("https://api.kimi.com/coding/v1", Some("kimi-coding"));
        check("https://eu.openrouter.ai/x", Some("openrouter"));
        check("https://evilopenrouter.ai/x", None);
        check("https://x.ai/", None);
        check("https://user@api.x.ai/v1", Some("xai-oauth"));
        check("api.x.ai", Some("xai-oauth"));
        check("", None);
        check("https://example.com", None);
    }

    #[test]
    fn xai_skew_is_short_for_short_lived_tokens() {
        let registry = ProviderRegistry::builtin();
        let xai = registry.by_name("xai-oauth").map(|s| s.refresh_skew);
        let skew = xai.map(|s| {
            (
                s.for_lifetime(Some(Duration::from_secs(30 * 60))),
                s.for_lifetime(Some(Duration::from_secs(6 * 3600))),
                s.for_lifetime(None),
            )
        });
        assert_eq!(
            skew,
            Some((
                Duration::from_secs(120),
                Duration::from_secs(3600),
                Duration::from_secs(3600)
            ))
        );
    }

    #[test]
    fn custom_providers_are_known_without_configuration() {
        let registry = ProviderRegistry::builtin();
        assert!(registry.contains(&ProviderId::new("custom:together")));
        assert!(!registry.contains(&ProviderId::new("custom:")));
        assert!(!registry.contains(&ProviderId::new("nonesuch")));
        assert!(registry.by_name("xai-oauth").is_some_and(|s| s.is_oauth()));
        assert!(registry.by_name("openai").is_some_and(|s| !s.is_oauth()));
    }
}
