//! OpenAI Codex (ChatGPT sign-in): `POST https://auth.openai.com/oauth/token` with a form.
//!
//! Codex answers reuse with `refresh_token_reused` in OpenAI's nested error shape and a rate
//! limit with 429; both are read by the shared grant. The refresh token rotates; when an
//! answer omits it, the old one stays current.
//!
//! **Invariant:** the token goes only to the configured endpoint (several are tried in order
//! only under the fall-through rule of [`super::EndpointContext::refresh_in_order`]).

use credpool_core::{ProviderId, Secret, TokenEndpointSpec};

use super::{EndpointContext, RefreshError, ResolvedEndpoint, TokenResponse};

/// The provider id.
pub const PROVIDER: &str = "openai-codex";

/// The Codex token endpoint client.
#[derive(Debug)]
pub struct OpenAiCodexClient {
    context: EndpointContext,
    endpoints: Vec<ResolvedEndpoint>,
}

impl OpenAiCodexClient {
    /// Builds the client from a spec (see [`super::builtin_spec`] for the default).
    pub fn new(spec: &TokenEndpointSpec, context: EndpointContext) -> Result<Self, RefreshError> {
        let endpoints = context.resolve_all(&ProviderId::new(PROVIDER), spec)?;
        Ok(OpenAiCodexClient { context, endpoints })
    }

    /// Redeems `refresh_token`.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, RefreshError> {
        self.context
            .refresh_in_order(&self.endpoints, refresh_token)
            .await
    }
}
