//! Nous Portal: `POST https://portal.nousresearch.com/api/oauth/token` with a form.
//!
//! The Portal detects reuse (`invalid_grant: Refresh token reuse detected`) and revokes the
//! whole session chain, and its WAF answers an HTML 429 beyond about 25 POSTs per IP per 60 s;
//! the per-host budget keeps under it and the HTML 429 is transient, never terminal.
//!
//! **Invariant:** the token goes only to the configured endpoint (several are tried in order
//! only under the fall-through rule of [`super::EndpointContext::refresh_in_order`]).

use credpool_core::{ProviderId, Secret, TokenEndpointSpec};

use super::{EndpointContext, RefreshError, ResolvedEndpoint, TokenResponse};

/// The provider id.
pub const PROVIDER: &str = "nous";

/// The Nous Portal token endpoint client.
#[derive(Debug)]
pub struct NousClient {
    context: EndpointContext,
    endpoints: Vec<ResolvedEndpoint>,
}

impl NousClient {
    /// Builds the client from a spec (see [`super::builtin_spec`] for the default).
    pub fn new(spec: &TokenEndpointSpec, context: EndpointContext) -> Result<Self, RefreshError> {
        let endpoints = context.resolve_all(&ProviderId::new(PROVIDER), spec)?;
        Ok(NousClient { context, endpoints })
    }

    /// Redeems `refresh_token`.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, RefreshError> {
        self.context
            .refresh_in_order(&self.endpoints, refresh_token)
            .await
    }
}
