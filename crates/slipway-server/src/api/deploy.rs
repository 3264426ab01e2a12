//! Releases, environments and deployments: status with the whole trace
//! chain, deploy / promote / rollback requests, approvals, the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_deploy::Request;
use slipway_store::Release;

use super::projects::project;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AsDeveloper, AsViewer, Json, Path, Query};

#[derive(Debug, Deserialize)]
pub struct Limit {
    limit: Option<i64>,
}

/// Every environment: what runs, from which commit, how healthy, what waits.
pub async fn status(
    State(state): State<AppState>,
    _: AsViewer,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let project = project(&state, &name).await?;
    let environments = state.deployer.status(&project).await?;
    Ok(Json(
        json!({ "project": project.name, "environments": environments }),
    ))
}

pub async fn releases(
    State(state): State<AppState>,
    _: AsViewer,
    Path(name): Path<String>,
    Query(q): Query<Limit>,
) -> ApiResult<Json<Vec<Release>>> {
    let project = project(&state, &name).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(state.engine.store.releases(project.id, limit).await?))
}

pub async fn release(
    State(state): State<AppState>,
    _: AsViewer,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Release>> {
    let project = project(&state, &name).await?;
    Ok(Json(
        state
            .engine
            .store
            .release_by_version(project.id, &version)
            .await?,
    ))
}

/// An environment's deployments, newest first, with who may approve those waiting.
pub async fn deployments(
    State(state): State<AppState>,
    _: AsViewer,
    Path((name, env)): Path<(String, String)>,
    Query(q): Query<Limit>,
) -> ApiResult<Json<Vec<Value>>> {
    let project = project(&state, &name).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let mut out = Vec::new();
    for d in state
        .engine
        .store
        .deployments(project.id, &env, limit)
        .await?
    {
        out.push(json!(state.deployer.view(d).await?));
    }
    Ok(Json(out))
}

pub async fn deployment(
    State(state): State<AppState>,
    _: AsViewer,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let d = state.engine.store.deployment(id).await?;
    let decisions = state.engine.store.decisions(id).await?;
    let transitions = state.deployer.view(d).await?;
    Ok(Json(
        json!({ "deployment": transitions, "decisions": decisions }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct DeployBody {
    version: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn ask(
    state: &AppState,
    caller: &crate::auth::Caller,
    name: &str,
    env: &str,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let project = project(state, name).await?;
    let d = state
        .deployer
        .request(&project, env, request, &caller.approver())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!(state.deployer.view(d).await?)),
    ))
}

/// Deploys a version to an environment (through its decision point, if any).
pub async fn deploy(
    State(state): State<AppState>,
    who: AsDeveloper,
    Path((name, env)): Path<(String, String)>,
    Json(body): Json<DeployBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let version = body
        .version
        .ok_or_else(|| ApiError::bad_request("say which release: {\"version\": \"1.4\"}"))?;
    ask(&state, &who.0, &name, &env, Request::Deploy { version }).await
}

/// Promotes what another environment runs (healthy) to this one: the same release, never a rebuild.
pub async fn promote(
    State(state): State<AppState>,
    who: AsDeveloper,
    Path((name, env)): Path<(String, String)>,
    Json(body): Json<DeployBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let from = body.from.ok_or_else(|| {
        ApiError::bad_request("say which environment to promote from: {\"from\": \"staging\"}")
    })?;
    ask(&state, &who.0, &name, &env, Request::Promote { from }).await
}

/// Goes back to the previous release (or `to`) through the same rollout.
pub async fn rollback(
    State(state): State<AppState>,
    who: AsDeveloper,
    Path((name, env)): Path<(String, String)>,
    Json(body): Json<DeployBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ask(
        &state,
        &who.0,
        &name,
        &env,
        Request::Rollback { to: body.to },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct DecisionBody {
    #[serde(default)]
    comment: String,
}

pub async fn approve(
    State(state): State<AppState>,
    who: AsViewer,
    Path(id): Path<i64>,
    Json(body): Json<DecisionBody>,
) -> ApiResult<Json<Value>> {
    decide(&state, &who.0, id, true, &body.comment).await
}

pub async fn reject(
    State(state): State<AppState>,
    who: AsViewer,
    Path(id): Path<i64>,
    Json(body): Json<DecisionBody>,
) -> ApiResult<Json<Value>> {
    decide(&state, &who.0, id, false, &body.comment).await
}

/// The decision point itself says who may decide (roles, groups, four-eyes).
async fn decide(
    state: &AppState,
    caller: &crate::auth::Caller,
    id: i64,
    approve: bool,
    comment: &str,
) -> ApiResult<Json<Value>> {
    let d = state
        .deployer
        .decide(id, &caller.approver(), approve, comment)
        .await?;
    Ok(Json(json!(state.deployer.view(d).await?)))
}

pub async fn audit(
    State(state): State<AppState>,
    _: AsViewer,
    Path(name): Path<String>,
    Query(q): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let project = project(&state, &name).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(json!(
        state.engine.store.audit_log(project.id, limit).await?
    )))
}

/// The trace chain from an image digest: releases, runs, commits, environments.
pub async fn trace(
    State(state): State<AppState>,
    _: AsViewer,
    Path(digest): Path<String>,
) -> ApiResult<Json<Value>> {
    if !digest.starts_with("sha256:") {
        return Err(ApiError::bad_request(format!(
            "`{digest}` is not an image digest; give it as sha256:HEX"
        )));
    }
    Ok(Json(json!(state.deployer.trace(&digest).await?)))
}

#[derive(Debug, Deserialize)]
pub struct MetricsQuery {
    environment: Option<String>,
    days: Option<u32>,
}

/// DORA figures and pipeline health of one environment over a window.
pub async fn metrics(
    State(state): State<AppState>,
    _: AsViewer,
    Path(name): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<Json<Value>> {
    let project = project(&state, &name).await?;
    let days = q.days.unwrap_or(30).clamp(1, 3650);
    let figures = state
        .deployer
        .delivery(&project, q.environment.as_deref(), days)
        .await?;
    Ok(Json(json!(figures)))
}
