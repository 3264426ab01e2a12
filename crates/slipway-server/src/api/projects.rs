//! Projects: add (with a fresh webhook secret, shown once), list, show, remove.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_store::Project;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AsAdmin, AsViewer, Json, Path};
use crate::{AppState, WEBHOOK_SECRET};

#[derive(Debug, Deserialize)]
pub struct NewProject {
    name: String,
    git: String,
    #[serde(default)]
    branches: Vec<String>,
    poll_seconds: Option<i64>,
    /// At most this many of the project's jobs run at once.
    max_running: Option<i64>,
    /// Chosen by the caller, or generated.
    webhook_secret: Option<String>,
}

pub async fn list(State(state): State<AppState>, _: AsViewer) -> ApiResult<Json<Vec<Project>>> {
    Ok(Json(state.engine.store.projects().await?))
}

pub async fn show(
    State(state): State<AppState>,
    _: AsViewer,
    Path(name): Path<String>,
) -> ApiResult<Json<Project>> {
    Ok(Json(project(&state, &name).await?))
}

pub async fn add(
    State(state): State<AppState>,
    _: AsAdmin,
    Json(new): Json<NewProject>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    validate(&new)?;
    let project = state
        .engine
        .store
        .add_project(&new.name, &new.git, &new.branches, new.poll_seconds)
        .await?;
    let store = &state.engine.store;
    store.set_max_running(project.id, new.max_running).await?;
    let project = store.project_by_id(project.id).await?;
    let secret = new
        .webhook_secret
        .unwrap_or_else(|| slipway_secrets::Token::generate().0);
    let sealed = state.seal(project.id, WEBHOOK_SECRET, secret.as_bytes());
    state
        .engine
        .store
        .set_secret(
            project.id,
            WEBHOOK_SECRET,
            &sealed,
            &slipway_store::SecretScope::server_only(),
        )
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
    _: AsAdmin,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    // What its environments run goes first: nothing would find it afterwards.
    if let Some(found) = state.engine.store.project(&name).await? {
        state.deployer.forget_project(&found).await;
    }
    state.engine.store.remove_project(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn validate(new: &NewProject) -> ApiResult<()> {
    slipway_spec::names::check_project_name(&new.name).map_err(ApiError::bad_request)?;
    for branch in &new.branches {
        slipway_spec::names::check_branch_pattern(branch).map_err(ApiError::bad_request)?;
    }
    if new.git.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`git` must be a repository URL or path",
        ));
    }
    if new.max_running.is_some_and(|m| m < 1) {
        return Err(ApiError::bad_request("`max_running` must be at least 1"));
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
