//! Errors as the OCI distribution spec shapes them:
//! `{"errors": [{"code", "message", "detail"}]}` with the spec's codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use slipway_registry::RegistryError;

#[derive(Debug)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For 401: the scopes to name in the challenge (space-separated).
    pub scope: Option<String>,
    /// For 401: the bearer token given lacks the scope (`error="insufficient_scope"`).
    pub insufficient_scope: bool,
    /// For 416: how many bytes the upload holds.
    pub offset: Option<u64>,
}

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> OciError {
        OciError {
            status,
            code,
            message: message.into(),
            scope: None,
            insufficient_scope: false,
            offset: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> OciError {
        OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// Credentials are needed for `action` on `name`: a 401 whose challenge
    /// names `scope`, every action the operation needs.
    pub fn challenge(name: &str, action: &str, scope: String) -> OciError {
        OciError {
            scope: Some(scope),
            ..OciError::unauthorized(format!(
                "{action} on {name} needs credentials: `docker login` with a Slipway API token as the password"
            ))
        }
    }

    /// The bearer token lacks `scope`: a 401 with `error="insufficient_scope"`,
    /// so that the client fetches a token for it (Docker token spec, as the
    /// CNCF distribution registry answers).
    pub fn insufficient_scope(name: &str, action: &str, scope: String) -> OciError {
        OciError {
            scope: Some(scope),
            insufficient_scope: true,
            ..OciError::unauthorized(format!(
                "the bearer token does not grant {action} on {name}: ask /v2/token for the scope this answer names"
            ))
        }
    }

    /// A challenge that also names `extra` (a mount's source, say).
    pub fn also_asking(mut self, extra: Option<String>) -> OciError {
        if let (Some(scope), Some(extra)) = (self.scope.as_mut(), extra) {
            scope.push(' ');
            scope.push_str(&extra);
        }
        self
    }

    /// Whether this is a challenge for credentials or a wider token (a 401 with a scope).
    pub fn is_challenge(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED && self.scope.is_some()
    }

    pub fn denied(message: impl Into<String>) -> OciError {
        OciError::new(StatusCode::FORBIDDEN, "DENIED", message)
    }

    pub fn unsupported(message: impl Into<String>) -> OciError {
        OciError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }

    pub fn name_invalid(message: impl Into<String>) -> OciError {
        OciError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", message)
    }

    pub fn internal(message: impl std::fmt::Display) -> OciError {
        tracing::error!("registry internal error: {message}");
        OciError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "internal error; see the server log",
        )
    }

    /// The response, with the challenge's realm under `base` (`http://HOST`).
    pub fn into_response_at(self, host: &str) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({
                "errors": [{ "code": self.code, "message": self.message, "detail": null }]
            })),
        )
            .into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let scope = self
                .scope
                .map(|s| format!(",scope=\"{s}\""))
                .unwrap_or_default();
            let error = if self.insufficient_scope {
                ",error=\"insufficient_scope\""
            } else {
                ""
            };
            let challenge =
                format!("Bearer realm=\"{host}/v2/token\",service=\"slipway\"{scope}{error}");
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(v) = self
            .offset
            .and_then(|o| HeaderValue::from_str(&super::range_header(o)).ok())
        {
            headers.insert(header::RANGE, v);
        }
        response
    }
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> OciError {
        use RegistryError as E;
        let (status, code) = match &e {
            E::NameUnknown(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            E::BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            E::UploadUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            E::RangeInvalid { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            E::DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            E::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            E::ManifestTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            E::ManifestBlobUnknown(_) => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            E::ManifestUnknown(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            E::TagImmutable(_) => (StatusCode::CONFLICT, "DENIED"),
            E::Unsupported(_) => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            E::Upstream(_) => (StatusCode::BAD_GATEWAY, "UNKNOWN"),
            E::Body(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            E::Blob(_) | E::Store(_) if e.is_storage_full() => {
                tracing::error!("registry storage full: {e}");
                return OciError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    // The spec has no code for it; clients show the message.
                    "UNKNOWN",
                    crate::error::storage_full_message(&e.to_string()),
                );
            }
            E::Blob(_) | E::Store(_) => return OciError::internal(e),
        };
        let offset = match &e {
            E::RangeInvalid { offset, .. } => Some(*offset),
            _ => None,
        };
        OciError {
            offset,
            ..OciError::new(status, code, e.to_string())
        }
    }
}
