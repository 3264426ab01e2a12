//! Projects: add (with a fresh webhook secret, shown once), list, show, remove.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_secrets::Role;
use slipway_store::Project;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, WEBHOOK_SECRET};

#[derive(Debug, Deserialize)]
pub struct NewProject {
    name: String,
    git: String,
    #[serde(default)]
    branches: Vec<String>,
    poll_seconds: Option<i64>,
    /// Chosen by the caller, or generated.
    webhook_secret: Option<String>,
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Project>>> {
    caller.require(Role::Viewer)?;
    Ok(Json(state.engine.store.projects().await?))
}

pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Project>> {
    caller.require(Role::Viewer)?;
    Ok(Json(project(&state, &name).await?))
}

pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewProject>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    validate(&new)?;
    let project = state
        .engine
        .store
        .add_project(&new.name, &new.git, &new.branches, new.poll_seconds)
        .await?;
    let secret = new
        .webhook_secret
        .unwrap_or_else(|| slipway_secrets::Token::generate().0);
    let sealed = state.seal(project.id, WEBHOOK_SECRET, secret.as_bytes());
    state
        .engine
        .store
        .set_secret(project.id, WEBHOOK_SECRET, &sealed)
        .await?;
    let body = json!({
        "project": project,
        "webhook_url": format!("/hooks/{}", project.name),
        "webhook_secret": secret,
    });
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    state.engine.store.remove_project(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn validate(new: &NewProject) -> ApiResult<()> {
    let ok_name = !new.name.is_empty()
        && new.name.len() <= 64
        && new
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok_name {
        return Err(ApiError::bad_request(format!(
            "project name `{}` must have 1 to 64 letters, digits, `-`, `_` or `.`",
            new.name
        )));
    }
    if new.git.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`git` must be a repository URL or path",
        ));
    }
    if new.poll_seconds.is_some_and(|s| s < 1) {
        return Err(ApiError::bad_request("`poll_seconds` must be at least 1"));
    }
    Ok(())
}

/// A project by name, or a 404 that names it.
pub async fn project(state: &AppState, name: &str) -> ApiResult<Project> {
    state
        .engine
        .store
        .project(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no project named `{name}`")))
}
