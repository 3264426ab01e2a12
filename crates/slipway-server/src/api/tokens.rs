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
    /// The person (user) the token belongs to: approvals, four-eyes and
    /// "who asked" are theirs, whichever token they use.
    user: Option<String>,
    /// Without `user`: the person with this email, in any letter case (made
    /// when there is none): one email is one person.
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
    let owner = owner_of(&state, &new, role).await?;
    let (plain, hash) = Token::generate();
    let store = &state.engine.store;
    store
        .add_token(hash.as_str(), &new.name, role.as_str())
        .await?;
    let email = owner.as_ref().and_then(|u| u.email.clone()).or(new.email);
    store
        .set_token_identity(hash.as_str(), email.as_deref(), &new.groups)
        .await?;
    if let Some(owner) = &owner {
        store.set_token_owner(hash.as_str(), &owner.name).await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": new.name, "role": role.as_str(), "email": email,
            "user": owner.map(|u| u.name), "groups": new.groups, "token": plain,
        })),
    ))
}

/// The person a new token belongs to: the user named, or the one with the
/// email given (made, without a password, when there is none). Machines'
/// tokens (agents) and tokens with neither belong to nobody.
async fn owner_of(
    state: &AppState,
    new: &NewToken,
    role: Role,
) -> ApiResult<Option<slipway_store::User>> {
    let store = &state.engine.store;
    if role == Role::Agent {
        if new.user.is_some() {
            return Err(ApiError::bad_request(
                "an agent token is a machine's and belongs to no person; leave out `user`",
            ));
        }
        return Ok(None);
    }
    if let Some(name) = &new.user {
        let user = store.user(name).await?.ok_or_else(|| {
            ApiError::bad_request(format!(
                "there is no user `{name}`; `slipway user add {name} --role ROLE --email ADDRESS` adds them"
            ))
        })?;
        let allowed = Role::parse(&user.role).is_ok_and(|r| r.allows(role));
        if !allowed {
            return Err(ApiError::bad_request(format!(
                "user `{name}` has the {} role, so their token cannot have {}",
                user.role,
                role.as_str()
            )));
        }
        if let Some(email) = new.email.as_deref().filter(|e| !e.trim().is_empty())
            && !user
                .email
                .as_deref()
                .is_some_and(|own| own.eq_ignore_ascii_case(email.trim()))
        {
            return Err(ApiError::bad_request(format!(
                "a token stands for its person, and user `{name}` has email {}, not {email}: leave out `email`, \
                 or change theirs with `slipway user add {name} --replace --email ADDRESS`",
                user.email.as_deref().unwrap_or("(none)")
            )));
        }
        return Ok(Some(user));
    }
    let Some(email) = new.email.as_deref().filter(|e| !e.trim().is_empty()) else {
        return Ok(None);
    };
    if let Some(user) = store.user_by_email(email).await? {
        return Ok(Some(user));
    }
    // A person known only by email so far: named after the token, or the email.
    let name = if store.user(&new.name).await?.is_none() && !new.name.contains(char::is_whitespace)
    {
        new.name.clone()
    } else {
        email.to_lowercase()
    };
    let person = slipway_store::User {
        name,
        role: role.as_str().to_string(),
        email: Some(email.to_string()),
        groups: new.groups.clone(),
    };
    store
        .put_user(&person, slipway_store::NO_PASSWORD, false)
        .await?;
    Ok(Some(person))
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
