//! Any other OAuth provider, described entirely by configuration (a [`TokenEndpointSpec`]).
//!
//! **Invariant:** the same rules as the built-ins: URL policy on every endpoint, fall-through
//! to a later endpoint only when the earlier one provably did not redeem the token.

use credpool_core::{ProviderId, Secret, TokenEndpointSpec};

use super::{EndpointContext, RefreshError, ResolvedEndpoint, TokenResponse};

/// A token endpoint client built from configuration.
#[derive(Debug)]
pub struct GenericClient {
    context: EndpointContext,
    endpoints: Vec<ResolvedEndpoint>,
}

impl GenericClient {
    /// Builds the client for `provider` from its configured spec.
    pub fn new(
        provider: ProviderId,
        spec: &TokenEndpointSpec,
        context: EndpointContext,
    ) -> Result<Self, RefreshError> {
        let endpoints = context.resolve_all(&provider, spec)?;
        Ok(GenericClient { context, endpoints })
    }

    /// Redeems `refresh_token`.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, RefreshError> {
        self.context
            .refresh_in_order(&self.endpoints, refresh_token)
            .await
    }
}
