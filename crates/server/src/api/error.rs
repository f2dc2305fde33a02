//! Errors as the admin API answers them: a status and `{"error": {"code", "message"}}`, the
//! code stable and machine-readable (`label_taken`, `no_such_entry`, `store_failed`, …).
//!
//! **Invariant:** a message is the pools' own (which never carries a secret) or a fixed text;
//! nothing of a request body is echoed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use credpool::{ClientError, PoolError};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with its status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// A 503 `unavailable` (the refresher or the service is stopping).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        (self.status, Json(body)).into_response()
    }
}

/// The status of a pool's error.
fn pool_status(error: &PoolError) -> StatusCode {
    match error {
        PoolError::NoSuchEntry(_) | PoolError::UnknownProvider(_) => StatusCode::NOT_FOUND,
        PoolError::AmbiguousTarget(_) | PoolError::LabelTaken(_) => StatusCode::CONFLICT,
        PoolError::Invalid(_) => StatusCode::BAD_REQUEST,
        PoolError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        PoolError::Stopped | PoolError::Store(_) | PoolError::Exhausted { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> Self {
        ApiError::new(pool_status(&error), error.code(), error.to_string())
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Pool(pool) => pool.into(),
            ClientError::UnknownProvider(provider) => PoolError::UnknownProvider(provider).into(),
            ClientError::Stopped => PoolError::Stopped.into(),
            ClientError::Exhausted { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "exhausted",
                error.to_string(),
            ),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}
