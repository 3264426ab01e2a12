//! API tokens and roles: every route states the role it needs, and a request
//! without a token of at least that role is refused.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use slipway_secrets::{Role, TokenHash, looks_like_token};

use crate::AppState;
use crate::error::ApiError;

/// The caller, authenticated: the token's name and role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// Who the token stands for at decision points (four-eyes, groups).
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// The person (user) the token belongs to; `None` for a machine's token.
    pub person: Option<String>,
    /// The SHA-256 of the token: what an agent's claims are held under.
    pub token_hash: String,
}

impl Caller {
    /// Refuses the request unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role.allows(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; token `{}` has {}",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing `Authorization: Bearer TOKEN`; set SLIPWAY_TOKEN for the CLI",
                )
            })?;
        let token = header.strip_prefix("Bearer ").unwrap_or_default().trim();
        Caller::from_token(token, state).await
    }
}

impl Caller {
    /// The caller a plain API token (`slw_…`) stands for.
    pub async fn from_token(token: &str, state: &AppState) -> Result<Caller, ApiError> {
        if !looks_like_token(token) {
            return Err(ApiError::unauthorized(
                "the credentials do not hold a Slipway API token (slw_…); `slipway token create` makes one",
            ));
        }
        let hash = TokenHash::of(token);
        let (name, role) = state
            .engine
            .store
            .token(hash.as_str())
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
        let role = Role::parse(&role).map_err(ApiError::internal)?;
        let (email, mut groups) = state.engine.store.token_identity(hash.as_str()).await?;
        // A person's tokens stand for them: their email and groups, their name.
        let owner = state.engine.store.token_owner(hash.as_str()).await?;
        let email = owner.as_ref().map_or(email, |u| u.email.clone());
        for group in owner.iter().flat_map(|u| &u.groups) {
            if !groups.contains(group) {
                groups.push(group.clone());
            }
        }
        Ok(Caller {
            name,
            role,
            email,
            groups,
            person: owner.map(|u| u.name),
            token_hash: hash.as_str().to_string(),
        })
    }
}

impl Caller {
    /// The caller as a decision point sees them.
    pub fn approver(&self) -> slipway_deploy::Approver {
        slipway_deploy::Approver {
            name: self.person.clone().unwrap_or_else(|| self.name.clone()),
            role: self.role.as_str().to_string(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            person: self.person.is_some(),
        }
    }
}
