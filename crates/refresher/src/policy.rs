//! Where a refresh token may be sent: the refresher's rule for a provider's token URL,
//! exported so that configuration, the admin API and the builder accept exactly the URLs the
//! refresher will use (and say why not, without quoting the URL).
//!
//! The rule: `https` without user info, on the provider's required domain (or a subdomain)
//! when its spec names one — xAI: `x.ai`, in core's built-in spec; `http` or `https` on
//! loopback, whatever the domain, only with `allow_insecure_loopback`.

use credpool_core::ProviderSpec;

use crate::endpoint::http::check_endpoint_url;
use crate::endpoint::{ConfigReason, RefreshError};

/// The domain a provider's token endpoints must be on, if any.
pub fn required_domain(spec: &ProviderSpec) -> Option<&str> {
    spec.token_endpoint.as_ref()?.required_domain.as_deref()
}

/// Why a refresh token of a grant of `spec` (`None`: a provider without a required domain)
/// may not be sent to `url`, or `None` when it may. The answer never quotes the URL.
pub fn token_url_problem(
    url: &str,
    spec: Option<&ProviderSpec>,
    allow_insecure_loopback: bool,
) -> Option<String> {
    let domain = spec.and_then(required_domain);
    let reason = match check_endpoint_url(url, domain, allow_insecure_loopback) {
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

#[cfg(test)]
mod tests {
    use credpool_core::ProviderRegistry;

    use super::token_url_problem;

    /// (url, provider, loopback) → accepted, or the words of the problem.
    fn check(url: &str, provider: &str, loopback: bool, expected: Result<(), &str>) {
        let registry = ProviderRegistry::builtin();
        let spec = registry.by_name(provider);
        match (token_url_problem(url, spec.as_ref(), loopback), expected) {
            (None, Ok(())) => {}
            (Some(problem), Err(words)) => {
                assert!(problem.contains(words), "{url}: {problem}");
                assert!(!problem.contains(url), "the url is never quoted");
            }
            (got, expected) => panic!("{url} for {provider}: {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn the_providers_domain_and_the_loopback_switch_decide() {
        check("https://auth.x.ai/oauth2/token", "xai-oauth", false, Ok(()));
        check("https://a.b.x.ai/t", "xai-oauth", false, Ok(()));
        check("https://evilx.ai/t", "xai-oauth", false, Err("`x.ai`"));
        check(
            "https://auth.example.com/t",
            "xai-oauth",
            false,
            Err("`x.ai`"),
        );
        check("https://auth.example.com/t", "openai-codex", false, Ok(()));
        check(
            "http://auth.example.com/t",
            "openai-codex",
            true,
            Err("https"),
        );
        check("http://127.0.0.1:9/t", "xai-oauth", true, Ok(()));
        check(
            "http://127.0.0.1:9/t",
            "xai-oauth",
            false,
            Err("allow_insecure_loopback"),
        );
        check(
            "https://user:pw@auth.x.ai/t",
            "xai-oauth",
            false,
            Err("user:password"),
        );
        check("not a url", "nonesuch", false, Err("not a URL"));
    }
}
