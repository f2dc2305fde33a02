//! Anthropic (Claude sign-in): `https://platform.claude.com/v1/oauth/token`, then
//! `https://console.anthropic.com/v1/oauth/token`; form or JSON body as the spec says.
//!
//! **Invariant:** the second endpoint gets the refresh token only when the first provably did
//! not redeem it — connection refused, DNS failure, 404, or our own budget. A success, any
//! other 4xx, a 5xx or a timeout from the first ends the attempt: the single-use token may be
//! spent, and replaying it elsewhere would be reuse.

use credpool_core::{ProviderId, Secret, TokenEndpointSpec};

use super::{EndpointContext, RefreshError, ResolvedEndpoint, TokenResponse};

/// The provider id.
pub const PROVIDER: &str = "anthropic";

/// The Anthropic token endpoint client.
#[derive(Debug)]
pub struct AnthropicClient {
    context: EndpointContext,
    endpoints: Vec<ResolvedEndpoint>,
}

impl AnthropicClient {
    /// Builds the client from a spec (see [`super::builtin_spec`] for the default).
    pub fn new(spec: &TokenEndpointSpec, context: EndpointContext) -> Result<Self, RefreshError> {
        let endpoints = context.resolve_all(&ProviderId::new(PROVIDER), spec)?;
        Ok(AnthropicClient { context, endpoints })
    }

    /// Redeems `refresh_token`, falling through the endpoints as the module says.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, RefreshError> {
        self.context
            .refresh_in_order(&self.endpoints, refresh_token)
            .await
    }
}
