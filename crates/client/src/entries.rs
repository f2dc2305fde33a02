//! Building the entries an embedder adds: an API key typed in or read from an environment
//! variable, an OAuth grant (optionally with its own token endpoint).
//!
//! **Invariant:** no constructor logs, prints or returns a secret in an error; an unreadable
//! variable is named, never its value.

use credpool_core::{ClientMetadata, EntryKind, OAuthTokens, Secret, SecretSource, Timestamp};
use credpool_pool_actor::NewEntry;

use crate::error::ClientError;

/// Builds a [`NewEntry`] for an API key entered by hand (credpool owns and stores it).
pub fn api_key_entry(label: &str, key: Secret) -> NewEntry {
    NewEntry {
        label: label.to_owned(),
        kind: EntryKind::ApiKey { key },
        source: SecretSource::Manual,
        priority: None,
        base_url: None,
        weight: None,
    }
}

/// Builds a [`NewEntry`] for an API key read now from the environment variable `variable`.
/// The key is borrowed: the store keeps its fingerprint, never its value, and reads the
/// variable again at every start (a changed value is adopted then).
///
/// ```
/// # use credpool_client::env_api_key_entry;
/// // SAFETY of the example: nothing else runs while it sets the variable.
/// unsafe { std::env::set_var("EXAMPLE_OPENAI_KEY", "sk-example") };
/// let entry = env_api_key_entry("team", "EXAMPLE_OPENAI_KEY")?;
/// assert_eq!(entry.label, "team");
/// assert!(env_api_key_entry("team", "EXAMPLE_UNSET_VARIABLE").is_err());
/// # Ok::<(), credpool_client::ClientError>(())
/// ```
pub fn env_api_key_entry(label: &str, variable: &str) -> Result<NewEntry, ClientError> {
    let value = std::env::var(variable).unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        return Err(ClientError::MissingSecret {
            place: format!("environment variable {variable}"),
        });
    }
    Ok(NewEntry {
        source: SecretSource::EnvVar {
            name: variable.to_owned(),
        },
        ..api_key_entry(label, Secret::new(value))
    })
}

/// Builds a [`NewEntry`] for an OAuth grant (an access token and its refresh token); the
/// provider's token endpoint refreshes it unless [`with_token_url`] names another.
pub fn oauth_entry(
    label: &str,
    access: Secret,
    refresh: Secret,
    expires_at: Option<Timestamp>,
) -> NewEntry {
    NewEntry {
        label: label.to_owned(),
        kind: EntryKind::OAuth(OAuthTokens {
            access,
            refresh: Some(refresh),
            expires_at,
            client: ClientMetadata::default(),
        }),
        source: SecretSource::OAuthGrant,
        priority: None,
        base_url: None,
        weight: None,
    }
}

/// Sets the token endpoint (and OAuth client id, when given) that refreshes this grant,
/// instead of the provider's. The URL must be `https` (the refresher refuses anything else,
/// loopback aside when the builder allows it).
///
/// ```
/// # use credpool_client::{oauth_entry, with_token_url};
/// # use credpool_core::Secret;
/// let grant = with_token_url(
///     oauth_entry("corp", Secret::new("at"), Secret::new("rt"), None),
///     "https://login.example.com/oauth/token",
///     Some("my-client"),
/// );
/// assert_eq!(grant.label, "corp");
/// ```
pub fn with_token_url(mut entry: NewEntry, token_url: &str, client_id: Option<&str>) -> NewEntry {
    if let EntryKind::OAuth(tokens) = &mut entry.kind {
        tokens.client.token_endpoint = Some(token_url.to_owned());
        if let Some(client_id) = client_id {
            tokens.client.client_id = Some(client_id.to_owned());
        }
    }
    entry
}
