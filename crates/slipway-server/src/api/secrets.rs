//! Project secrets: set (value in the body), list (names only), remove.

use axum::extract::State;
use axum::http::StatusCode;

use super::projects::project;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AsAdmin, AsDeveloper, Json, Path};

pub async fn list(
    State(state): State<AppState>,
    _: AsDeveloper,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    let project = project(&state, &name).await?;
    let names = state.engine.store.secret_names(project.id).await?;
    Ok(Json(
        names.into_iter().filter(|n| !n.starts_with('.')).collect(),
    ))
}

pub async fn set(
    State(state): State<AppState>,
    _: AsAdmin,
    Path((name, secret)): Path<(String, String)>,
    value: String,
) -> ApiResult<StatusCode> {
    if !is_variable_name(&secret) {
        return Err(ApiError::bad_request(format!(
            "secret name `{secret}` must be a variable name: letters, digits and `_`, not starting with a digit"
        )));
    }
    let value = value.strip_suffix('\n').unwrap_or(&value);
    if value.is_empty() {
        return Err(ApiError::bad_request(
            "the secret's value is empty; send it as the request body",
        ));
    }
    let project = project(&state, &name).await?;
    let sealed = state.seal(project.id, &secret, value.as_bytes());
    state
        .engine
        .store
        .set_secret(project.id, &secret, &sealed)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(
    State(state): State<AppState>,
    _: AsAdmin,
    Path((name, secret)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = project(&state, &name).await?;
    state
        .engine
        .store
        .remove_secret(project.id, &secret)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
