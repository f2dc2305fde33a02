//! [`PoolMiddleware`]: a `reqwest_middleware` layer that authenticates each request with a
//! pooled credential and applies the same recovery as [`crate::PoolClient::with_recovery`].
//!
//! **Invariants:**
//! - The credential header is set on every attempt and marked sensitive; a header the caller
//!   set under the same name is replaced.
//! - A request whose body cannot be cloned is sent once: its failure is still classified and
//!   reported (so the pool learns), but it is not retried.
//! - When recovery gives up after an HTTP rejection the caller gets that real response
//!   (status, headers, body), with the [`ClientError`] in its extensions; a made-up status is
//!   never returned.

use async_trait::async_trait;
use credpool_core::ProviderId;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::client::PoolClient;
use crate::error::ClientError;
use crate::failure::RequestFailure;
use crate::recovery::{Recovery, Step};

/// How the middleware picks the provider of a request.
#[derive(Debug, Clone)]
enum Route {
    /// Every request uses this provider.
    Fixed(ProviderId),
    /// The provider serving the request URL's host.
    Auto,
}

/// Injects pooled credentials into `reqwest` requests and recovers from credential failures.
#[derive(Debug, Clone)]
pub struct PoolMiddleware {
    client: PoolClient,
    route: Route,
}

impl PoolMiddleware {
    /// A middleware that takes every credential from `provider`.
    pub fn fixed(client: PoolClient, provider: ProviderId) -> Self {
        PoolMiddleware {
            client,
            route: Route::Fixed(provider),
        }
    }

    /// A middleware that picks the provider by the request URL's host (`api.x.ai` →
    /// `xai-oauth`); a host no provider serves fails with [`ClientError::NoProviderForUrl`].
    pub fn auto(client: PoolClient) -> Self {
        PoolMiddleware {
            client,
            route: Route::Auto,
        }
    }

    fn provider_for(&self, request: &Request) -> Result<ProviderId, ClientError> {
        match &self.route {
            Route::Fixed(provider) => Ok(provider.clone()),
            Route::Auto => self.client.provider_for_url(request.url().as_str()),
        }
    }
}

#[async_trait]
impl Middleware for PoolMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let provider = self
            .provider_for(&request)
            .map_err(reqwest_middleware::Error::middleware)?;
        let (mut recovery, mut lease) = Recovery::begin(self.client.context().clone(), &provider)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let mut request = request;
        loop {
            let spare = request.try_clone();
            let (name, value) = recovery
                .credential(&lease)
                .header()
                .map_err(reqwest_middleware::Error::middleware)?;
            request.headers_mut().insert(name, value);
            let (failure, transport_error) = match next.clone().run(request, extensions).await {
                Ok(response) if !is_failure(&response) => {
                    lease.succeeded();
                    return Ok(response);
                }
                Ok(response) => (RequestFailure::from_response(response).await, None),
                Err(reqwest_middleware::Error::Reqwest(error)) => (
                    RequestFailure::from_reqwest_error(&error),
                    Some(reqwest_middleware::Error::Reqwest(error)),
                ),
                // A failure of an inner middleware is not the credential's business.
                Err(other) => return Err(other),
            };
            let step = recovery.failed(lease, failure.clone()).await;
            match (step, spare) {
                (
                    Step::Retry {
                        lease: retry,
                        delay,
                    },
                    Some(spare),
                ) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    lease = retry;
                    request = spare;
                }
                // Not cloneable: the pool was told, the new lease goes back unused.
                (Step::Retry { .. }, None) => {
                    return give_back(failure, transport_error, None);
                }
                (Step::Fail(error), _) => return give_back(failure, transport_error, Some(error)),
            }
        }
    }
}

/// Tells whether a response is a failure worth classifying (a 4xx or 5xx).
fn is_failure(response: &Response) -> bool {
    response.status().is_client_error() || response.status().is_server_error()
}

/// Hands the last real answer back to the caller: the rejection rebuilt as a response, or the
/// transport error.
fn give_back(
    failure: RequestFailure,
    transport_error: Option<reqwest_middleware::Error>,
    error: Option<ClientError>,
) -> reqwest_middleware::Result<Response> {
    let Some(status) = failure.status else {
        return Err(match (transport_error, error) {
            (Some(transport), _) => transport,
            (None, Some(error)) => reqwest_middleware::Error::middleware(error),
            (None, None) => reqwest_middleware::Error::middleware(ClientError::Stopped),
        });
    };
    let mut builder = http::Response::builder().status(status);
    for (name, value) in &failure.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let mut rebuilt = builder
        .body(failure.body.clone())
        .map_err(reqwest_middleware::Error::middleware)?;
    if let Some(error) = error {
        rebuilt.extensions_mut().insert(error);
    }
    Ok(Response::from(rebuilt))
}
