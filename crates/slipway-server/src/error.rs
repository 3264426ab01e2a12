//! Error policy at the HTTP edge: every failure is JSON `{"error": {"code",
//! "message"}}` with a stable code a client can match on and a message a person
//! can act on. Internal details are logged, not sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use slipway_engine::EngineError;
use slipway_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 507: a write failed for want of space. Says what is full and what to do;
    /// nothing is left half-written, so the same request works once space is back.
    pub fn storage_full(what: &str) -> ApiError {
        tracing::error!("storage full: {what}");
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage_full",
            storage_full_message(what),
        )
    }

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {message}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

/// The words of every 507, for the JSON API and the registry alike.
pub fn storage_full_message(what: &str) -> String {
    format!(
        "the server's storage is full ({what}); nothing was kept from this request: \
         free space in the server's data directory (or its database) and send it again"
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            full if full.is_storage_full() => ApiError::storage_full(&full.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            // git says a full disk only in its words (ENOSPC's message).
            EngineError::Git(g) if g.to_string().contains("No space left on device") => {
                ApiError::storage_full(&g.to_string())
            }
            EngineError::Git(g) => ApiError::new(StatusCode::BAD_GATEWAY, "git", g.to_string()),
            other => ApiError::internal(other),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<slipway_deploy::DeployError> for ApiError {
    fn from(e: slipway_deploy::DeployError) -> ApiError {
        use slipway_deploy::DeployError;
        match e {
            DeployError::Store(s) => s.into(),
            DeployError::Engine(e) => e.into(),
            DeployError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            DeployError::Forbidden(m) => ApiError::forbidden(m),
            other => ApiError::internal(other),
        }
    }
}
