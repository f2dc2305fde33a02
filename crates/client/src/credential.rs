//! [`Credential`]: what a request closure gets to authenticate one attempt.
//!
//! **Invariant:** the secret only leaves as a header value marked sensitive (so `http` and
//! `reqwest` never print it); `Debug` shows the fingerprint-redacted [`Secret`].

use std::sync::Arc;

use credpool_core::registry::AuthHeader;
use credpool_core::{CredentialKind, EntryId, Generation, ProviderId, Secret};
use credpool_pool_actor::Lease;
use http::{HeaderName, HeaderValue};
use zeroize::Zeroizing;

use crate::error::ClientError;

/// A credential for one attempt: the lease's secret and where and how it travels.
///
/// It is a copy of the lease's facts; the lease itself stays with the recovery loop, which
/// reports it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Credential {
    provider: ProviderId,
    entry: EntryId,
    generation: Generation,
    label: Arc<str>,
    secret: Secret,
    base_url: Option<Arc<str>>,
    kind: CredentialKind,
    auth_header: AuthHeader,
}

impl Credential {
    pub(crate) fn of(lease: &Lease, provider: &ProviderId, auth_header: AuthHeader) -> Self {
        Credential {
            provider: provider.clone(),
            entry: lease.entry_id(),
            generation: lease.generation(),
            label: Arc::from(lease.label()),
            secret: lease.secret().clone(),
            base_url: lease.base_url().map(Arc::from),
            kind: lease.credential_kind(),
            auth_header,
        }
    }

    /// Returns the provider.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// Returns the entry's id.
    pub fn entry_id(&self) -> EntryId {
        self.entry
    }

    /// Returns the token generation.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Returns the entry's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Returns the secret (API key or access token).
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Returns the endpoint the credential is bound to; requests should go there.
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    /// Returns whether this is an API key or an OAuth access token.
    pub fn credential_kind(&self) -> CredentialKind {
        self.kind
    }

    /// Returns the header the secret travels in: the provider's `auth_header` for API keys
    /// (`x-api-key` for Anthropic keys), always `Authorization: Bearer` for OAuth tokens.
    pub fn header(&self) -> Result<(HeaderName, HeaderValue), ClientError> {
        let style = match self.kind {
            CredentialKind::OAuth => AuthHeader::Bearer,
            CredentialKind::ApiKey => self.auth_header,
        };
        let text = Zeroizing::new(match style {
            AuthHeader::Bearer => format!("Bearer {}", self.secret.expose()),
            AuthHeader::XApiKey | AuthHeader::XGoogApiKey => self.secret.expose().to_owned(),
        });
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| ClientError::InvalidCredential { entry: self.entry })?;
        value.set_sensitive(true);
        Ok((HeaderName::from_static(style.header_name()), value))
    }
}
