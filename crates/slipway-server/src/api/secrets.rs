//! Project secrets: set (value in the body, scope in the query), list (names
//! and scopes, never values), remove. A new secret reaches only jobs on
//! protected branches unless the admin says otherwise.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use slipway_spec::names::{is_environment_name, is_variable_name};
use slipway_store::{JobScope, SecretEntry, SecretScope};

use super::projects::project;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AsAdmin, AsDeveloper, Json, Path};

/// Names starting with `.` are the server's own (the webhook secret).
fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

pub async fn list(
    State(state): State<AppState>,
    _: AsDeveloper,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<SecretEntry>>> {
    let project = project(&state, &name).await?;
    let all = state.engine.store.secrets(project.id).await?;
    Ok(Json(
        all.into_iter().filter(|s| !is_hidden(&s.name)).collect(),
    ))
}

/// `?jobs=protected|any|none&environments=a,b`; without them, the safe default.
#[derive(Debug, Default, Deserialize)]
pub struct ScopeQuery {
    jobs: Option<String>,
    /// Comma-separated environment names; absent: every environment.
    environments: Option<String>,
}

impl ScopeQuery {
    fn scope(&self) -> ApiResult<SecretScope> {
        let jobs = match self.jobs.as_deref() {
            None | Some("protected") => JobScope::Protected,
            Some("any") => JobScope::Any,
            Some("none") => JobScope::None,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "`jobs={}` is not a job scope: use `protected` (the default), `any` or `none`",
                    other.escape_debug()
                )));
            }
        };
        let environments = match self.environments.as_deref() {
            None => None,
            Some(list) => {
                let names: Vec<String> = list
                    .split(',')
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = names.iter().find(|e| !is_environment_name(e)) {
                    return Err(ApiError::bad_request(format!(
                        "`{}` is not an environment name: lowercase letters, digits and `-`, starting with a letter",
                        bad.escape_debug()
                    )));
                }
                Some(names)
            }
        };
        Ok(SecretScope { jobs, environments })
    }
}

pub async fn set(
    State(state): State<AppState>,
    _: AsAdmin,
    Path((name, secret)): Path<(String, String)>,
    Query(query): Query<ScopeQuery>,
    value: String,
) -> ApiResult<StatusCode> {
    if !is_variable_name(&secret) {
        return Err(ApiError::bad_request(format!(
            "secret name `{}` must be a variable name: letters, digits and `_`, not starting with a digit",
            secret.escape_debug()
        )));
    }
    let scope = query.scope()?;
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
        .set_secret(project.id, &secret, &sealed, &scope)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(
    State(state): State<AppState>,
    _: AsAdmin,
    Path((name, secret)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if is_hidden(&secret) {
        return Err(ApiError::not_found(format!(
            "no secret named `{}`",
            secret.escape_debug()
        )));
    }
    let project = project(&state, &name).await?;
    state
        .engine
        .store
        .remove_secret(project.id, &secret)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
