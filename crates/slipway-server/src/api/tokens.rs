//! API tokens: an admin makes them; the plain token is shown once.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_secrets::{Role, Token};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AsAdmin, Json};

#[derive(Debug, Deserialize)]
pub struct NewToken {
    name: String,
    role: String,
    /// Who the token stands for at decision points: compared with commit authors (four-eyes).
    email: Option<String>,
    /// Groups an approval rule can name.
    #[serde(default)]
    groups: Vec<String>,
}

pub async fn create(
    State(state): State<AppState>,
    _: AsAdmin,
    Json(new): Json<NewToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let role = Role::parse(&new.role).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if new.name.trim().is_empty() {
        return Err(ApiError::bad_request(
            "a token needs a `name` saying who or what uses it",
        ));
    }
    let (plain, hash) = Token::generate();
    state
        .engine
        .store
        .add_token(hash.as_str(), &new.name, role.as_str())
        .await?;
    state
        .engine
        .store
        .set_token_identity(hash.as_str(), new.email.as_deref(), &new.groups)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": new.name, "role": role.as_str(), "email": new.email,
            "groups": new.groups, "token": plain,
        })),
    ))
}

#[derive(Debug, Deserialize)]
pub struct NewUser {
    name: String,
    password: String,
    role: String,
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    /// Change an existing user (password, role, identity).
    #[serde(default)]
    replace: bool,
}

/// Adds a web UI user (argon2-hashed password).
pub async fn add_user(
    State(state): State<AppState>,
    _: AsAdmin,
    Json(new): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let role = Role::parse(&new.role).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if role == Role::Agent {
        return Err(ApiError::bad_request(
            "a person cannot have the agent role; use viewer, developer or admin",
        ));
    }
    if new.name.trim().is_empty() || new.name.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(
            "a user needs a `name` without spaces",
        ));
    }
    if new.password.chars().count() < 8 {
        return Err(ApiError::bad_request(
            "the password needs at least 8 characters",
        ));
    }
    let hash = crate::ui::session::hash_password(&new.password).map_err(ApiError::internal)?;
    let user = slipway_store::User {
        name: new.name.clone(),
        role: role.as_str().to_string(),
        email: new.email.clone(),
        groups: new.groups.clone(),
    };
    state
        .engine
        .store
        .put_user(&user, &hash, new.replace)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "name": new.name, "role": role.as_str(), "email": new.email, "groups": new.groups }),
        ),
    ))
}
