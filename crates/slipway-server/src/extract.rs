//! Extractors that keep the error policy: a malformed body, path or query is a
//! JSON `bad_request`, and the caller's role is checked before the body is read
//! (so a too-weak token learns nothing about what the body should be).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use slipway_secrets::Role;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The caller, known to hold the role `R` names (0 viewer, 1 developer, 2 admin, 3 agent).
#[derive(Debug, Clone)]
pub struct Authorized<const R: u8>(pub Caller);

pub type AsViewer = Authorized<0>;
pub type AsDeveloper = Authorized<1>;
pub type AsAdmin = Authorized<2>;
pub type AsAgent = Authorized<3>;

impl<const R: u8> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let role = match R {
            0 => Role::Viewer,
            1 => Role::Developer,
            2 => Role::Admin,
            _ => Role::Agent,
        };
        caller.require(role)?;
        Ok(Authorized(caller))
    }
}

/// A JSON body; a malformed one is a JSON `bad_request` that says what is wrong.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| Json(v))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Path parameters; a wrong one (`/runs/abc`) is a JSON `bad_request`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Query parameters, with the same policy.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}
