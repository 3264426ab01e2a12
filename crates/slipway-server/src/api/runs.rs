//! Runs: trigger, list, show (with jobs and transitions), cancel.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_engine::Target;
use slipway_store::Run;

use super::projects::project;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AsDeveloper, AsViewer, Authorized, Json, Path, Query};

#[derive(Debug, Deserialize)]
pub struct TriggerRequest {
    branch: Option<String>,
    commit: Option<String>,
}

pub async fn trigger(
    State(state): State<AppState>,
    Authorized(caller): AsDeveloper,
    Path(name): Path<String>,
    Json(req): Json<TriggerRequest>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let project = project(&state, &name).await?;
    let target = match (req.branch, req.commit) {
        (branch, Some(commit)) => Target::Commit {
            branch: branch.unwrap_or_else(|| "main".into()),
            commit,
        },
        (Some(branch), None) => Target::Branch(branch),
        (None, None) => Target::Branch("main".into()),
    };
    let run = state
        .engine
        .trigger_by(&project, target, "manual", caused_by(&caller))
        .await?;
    Ok((StatusCode::CREATED, Json(run)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    _: AsViewer,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Run>>> {
    let project = project(&state, &name).await?;
    Ok(Json(
        state
            .engine
            .store
            .runs(project.id, q.limit.unwrap_or(50).clamp(1, 1000))
            .await?,
    ))
}

pub async fn show(
    State(state): State<AppState>,
    _: AsViewer,
    Path((name, number)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    let run = run(&state, &name, number).await?;
    let store = &state.engine.store;
    let jobs = store.jobs_of(run.id).await?;
    let steps = store.steps_of_run(run.id).await?;
    let jobs: Vec<Value> = jobs.iter().map(|j| job_with_steps(j, &steps)).collect();
    let transitions = store.transitions("run", run.id.0).await?;
    let images = store.run_images(run.id).await?;
    let gates = store.gates_of(run.id).await?;
    Ok(Json(json!({
        "run": run, "jobs": jobs, "transitions": transitions, "images": images, "gates": gates,
    })))
}

/// A job as `show` gives it: its record, how long it took, and its steps
/// (as last tried) with their times, so clients see where time went.
fn job_with_steps(
    job: &slipway_store::Job,
    steps: &[(slipway_store::JobId, slipway_store::StepTime)],
) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .filter(|(id, _)| *id == job.id)
        .map(|(_, s)| {
            json!({
                "index": s.index, "title": s.title, "started_at": s.started_at,
                "finished_at": s.finished_at, "duration_ms": s.duration_ms(), "exit_code": s.exit_code,
            })
        })
        .collect();
    let duration_ms = job
        .started_at
        .zip(job.finished_at)
        .map(|(start, end)| (end - start).max(0));
    let mut value = serde_json::to_value(job).unwrap_or(Value::Null);
    if let Some(fields) = value.as_object_mut() {
        fields.insert("duration_ms".into(), json!(duration_ms));
        fields.insert("steps".into(), Value::Array(steps));
    }
    value
}

#[derive(Debug, serde::Deserialize)]
pub struct QualityQuery {
    branch: Option<String>,
    limit: Option<i64>,
}

/// Gate outcomes over time (coverage, tests, issues, debt), newest first.
pub async fn quality(
    State(state): State<AppState>,
    _: AsViewer,
    Path(name): Path<String>,
    crate::extract::Query(q): crate::extract::Query<QualityQuery>,
) -> ApiResult<Json<Vec<slipway_store::GateRecord>>> {
    let store = &state.engine.store;
    let project = store
        .project(&name)
        .await?
        .ok_or_else(|| crate::error::ApiError::not_found(format!("no project named `{name}`")))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        store
            .gate_history(project.id, q.branch.as_deref(), limit)
            .await?,
    ))
}

pub async fn cancel(
    State(state): State<AppState>,
    Authorized(caller): AsDeveloper,
    Path((name, number)): Path<(String, i64)>,
) -> ApiResult<Json<Run>> {
    let run = run(&state, &name, number).await?;
    if run.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("run {number} has already {}", run.state),
        ));
    }
    let reason = format!("canceled by {}", caller.name);
    Ok(Json(state.engine.store.cancel_run(run.id, &reason).await?))
}

#[derive(Debug, Deserialize)]
pub struct RerunRequest {
    #[serde(default)]
    failed_only: bool,
}

pub async fn rerun(
    State(state): State<AppState>,
    Authorized(caller): AsDeveloper,
    Path((name, number)): Path<(String, i64)>,
    Json(req): Json<RerunRequest>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let old = run(&state, &name, number).await?;
    let new = state
        .engine
        .rerun(&old, req.failed_only, caused_by(&caller))
        .await?;
    Ok((StatusCode::CREATED, Json(new)))
}

/// The person whose token asks for a run (none for a machine's token).
fn caused_by(caller: &crate::auth::Caller) -> slipway_store::RunCause {
    slipway_store::RunCause {
        person: caller.person.clone(),
        pusher: None,
    }
}

/// A run by project name and number.
pub async fn run(state: &AppState, project_name: &str, number: i64) -> ApiResult<Run> {
    let project = project(state, project_name).await?;
    Ok(state.engine.store.run_by_number(project.id, number).await?)
}
