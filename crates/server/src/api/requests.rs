//! The bodies the admin API accepts, and how each is checked.
//!
//! **Invariants:** a secret in a body is wrapped in a [`Secret`] as it is read and never
//! shown by `Debug`; a parse error names what is wrong, never a string value of the body.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use credpool::{
    ClientMetadata, Clock, EntryKind, NewEntry, OAuthTokens, ProviderSpec, Secret, SecretSource,
    Strategy,
};
use credpool_refresher::policy::token_url_problem;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::ApiError;
use crate::config::elide_strings;

/// The longest secret accepted in a body, in bytes (real keys and tokens are far shorter).
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// The largest request body read, in bytes; a longer one is 413 `body_too_large`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request body as read, or the API's error for why it could not be (over
/// [`MAX_BODY_BYTES`], or the connection failed while sending it).
pub(super) fn read_body(read: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    read.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is over {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })
}

/// A secret in a request body: wrapped at once, shown redacted, sent as its value only by
/// the admin CLI.
#[derive(Clone)]
pub struct SecretField(pub Secret);

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|value| SecretField(Secret::new(value)))
    }
}

impl Serialize for SecretField {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose())
    }
}

/// The body of `POST /v1/providers/{p}/entries`: exactly one of `api_key` and
/// `refresh_token`; the rest optional.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddEntryRequest {
    /// The label (unique per provider).
    pub label: String,
    /// A static API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretField>,
    /// An OAuth grant's refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretField>,
    /// The grant's current access token, if known (otherwise it is refreshed at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<SecretField>,
    /// Seconds until the access token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
    /// A token endpoint for this grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// An OAuth client id for this grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Priority (lower is preferred); absent puts the entry last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Weight for `weighted_random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The endpoint the credential is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

impl std::fmt::Debug for AddEntryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddEntryRequest")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl AddEntryRequest {
    /// Checks the request and builds the entry (secrets owned: they are stored). A
    /// `token_url` must pass the refresher's URL policy for the provider (`spec`: its
    /// required domain; `None` for a provider without one).
    ///
    /// # Errors
    /// Not exactly one secret, grant fields on an API key, an oversized secret, a weight of
    /// 0, or an unacceptable token URL.
    pub fn into_entry(
        self,
        clock: &dyn Clock,
        spec: Option<&ProviderSpec>,
        allow_insecure_loopback: bool,
    ) -> Result<NewEntry, String> {
        for secret in [&self.api_key, &self.refresh_token, &self.access_token]
            .into_iter()
            .flatten()
        {
            if secret.0.expose().len() > MAX_SECRET_BYTES {
                return Err(format!("a secret is longer than {MAX_SECRET_BYTES} bytes"));
            }
        }
        if self.weight == Some(0) {
            return Err("weight must be at least 1".to_owned());
        }
        let grant_fields = self.access_token.is_some()
            || self.expires_in_s.is_some()
            || self.token_url.is_some()
            || self.client_id.is_some();
        if let Some(url) = &self.token_url
            && let Some(problem) = token_url_problem(url, spec, allow_insecure_loopback)
        {
            return Err(format!("token_url: {problem}"));
        }
        let (kind, source) = match (self.api_key, self.refresh_token) {
            (Some(key), None) => {
                if grant_fields {
                    return Err("access_token, expires_in_s, token_url and client_id belong to OAuth grants (refresh_token)".to_owned());
                }
                (EntryKind::ApiKey { key: key.0 }, SecretSource::Manual)
            }
            (None, Some(refresh)) => {
                let expires_at = self
                    .expires_in_s
                    .map(|secs| clock.now().plus(Duration::from_secs(secs)));
                let tokens = OAuthTokens {
                    access: self.access_token.map_or_else(|| Secret::new(""), |a| a.0),
                    refresh: Some(refresh.0),
                    expires_at,
                    client: ClientMetadata {
                        client_id: self.client_id,
                        token_endpoint: self.token_url,
                        scope: None,
                        obtained_at: expires_at.map(|_| clock.now()),
                    },
                };
                (EntryKind::OAuth(tokens), SecretSource::OAuthGrant)
            }
            (Some(_), Some(_)) => {
                return Err("give either api_key or refresh_token, not both".to_owned());
            }
            (None, None) => return Err("give api_key or refresh_token".to_owned()),
        };
        Ok(NewEntry {
            label: self.label,
            kind,
            source,
            priority: self.priority,
            base_url: self.base_url,
            weight: self.weight,
        })
    }
}

/// The body of the move route.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The 1-based position in priority order.
    pub position: usize,
}

/// The body of the strategy route.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyRequest {
    /// The strategy's snake_case name.
    pub strategy: String,
}

/// Parses a JSON body; a failure is a 400 naming what is wrong but no string value.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!(
            "invalid JSON body: {}",
            elide_strings(&error.to_string())
        ))
    })
}

/// Parses a strategy name; the error lists the choices but does not echo the value.
///
/// # Errors
/// The name is not one of the strategies.
pub fn parse_strategy(name: &str) -> Result<Strategy, String> {
    name.parse().map_err(|_| {
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown strategy; expected one of {}", names.join(", "))
    })
}
