//! The agent protocol: remote `slipway agent` processes claim jobs (long poll),
//! heartbeat, send log chunks, fetch sources and artifacts, and report back.
//! It is the in-process workers' dispatch, spoken over HTTP.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_engine::Dispatch;
use slipway_runner::JobStatus;
use slipway_runner::archive::Links;
use slipway_store::{JobId, RunId};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AsAgent, Json, Path};

/// The longest an agent's claim waits for work before it asks again.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
pub struct ClaimRequest {
    worker: String,
    #[serde(default)]
    labels: Vec<String>,
    wait_ms: Option<u64>,
}

pub async fn claim(
    State(state): State<AppState>,
    _: AsAgent,
    Json(req): Json<ClaimRequest>,
) -> ApiResult<Response> {
    if req.worker.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`worker` must name the agent (unique per agent)",
        ));
    }
    let wait = Duration::from_millis(req.wait_ms.unwrap_or(20_000)).min(MAX_WAIT);
    let dispatch = state.dispatch();
    let worker = format!("agent:{}", req.worker);
    let claimed = tokio::select! {
        c = dispatch.claim(&worker, &req.labels, wait) => c?,
        () = state.shutdown.cancelled() => None,
    };
    Ok(match claimed {
        Some(assignment) => Json(assignment).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(Debug, Deserialize)]
pub struct WorkerRef {
    worker: String,
}

pub async fn heartbeat(
    State(state): State<AppState>,
    _: AsAgent,
    Path(job): Path<i64>,
    Json(w): Json<WorkerRef>,
) -> ApiResult<Json<Value>> {
    let held = state
        .dispatch()
        .heartbeat(job, &format!("agent:{}", w.worker))
        .await?;
    Ok(Json(json!({ "continue": held })))
}

#[derive(Debug, Deserialize)]
pub struct LogChunk {
    seq: i64,
    lines: Vec<String>,
}

pub async fn log(
    State(state): State<AppState>,
    _: AsAgent,
    Path(job): Path<i64>,
    Json(chunk): Json<LogChunk>,
) -> ApiResult<StatusCode> {
    state
        .dispatch()
        .append_log(job, chunk.seq, chunk.lines)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct Finish {
    worker: String,
    status: JobStatus,
    exit_code: Option<i32>,
    reason: Option<String>,
    /// Images the job pushed to the registry.
    #[serde(default)]
    pushed: Vec<slipway_runner::PushedImage>,
    /// The quality gate's outcome.
    #[serde(default)]
    gate: Option<serde_json::Value>,
}

pub async fn finish(
    State(state): State<AppState>,
    _: AsAgent,
    Path(job): Path<i64>,
    Json(f): Json<Finish>,
) -> ApiResult<StatusCode> {
    let row = state.engine.store.job(JobId(job)).await?;
    let worker = format!("agent:{}", f.worker);
    state
        .engine
        .finish_job(
            job,
            row.run_id.0,
            &worker,
            slipway_engine::JobEnd {
                status: f.status,
                exit_code: f.exit_code,
                reason: f.reason.as_deref(),
                pushed: &f.pushed,
                gate: f.gate.as_ref(),
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct Release {
    worker: String,
    reason: String,
}

pub async fn release(
    State(state): State<AppState>,
    _: AsAgent,
    Path(job): Path<i64>,
    Json(r): Json<Release>,
) -> ApiResult<StatusCode> {
    state
        .dispatch()
        .release(job, &format!("agent:{}", r.worker), &r.reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tree of the run's commit, as a tar archive.
pub async fn source(
    State(state): State<AppState>,
    _: AsAgent,
    Path(run): Path<i64>,
) -> ApiResult<Response> {
    let run = state.engine.store.run(RunId(run)).await?;
    let mirror = slipway_git::Mirror::at(&state.engine.paths.mirror(run.project_id));
    let tar = mirror
        .archive(&run.commit)
        .await
        .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], tar).into_response())
}

/// A finished job's artifacts, as a tar archive (empty when it kept none).
pub async fn download_artifacts(
    State(state): State<AppState>,
    _: AsAgent,
    Path((run, name)): Path<(i64, String)>,
) -> ApiResult<Response> {
    check_job_name(&name)?;
    let dir = state.engine.paths.artifacts(RunId(run)).join(&name);
    tar_of(dir).await
}

/// Stores a job's artifacts sent by the agent that ran it (replacing any earlier upload).
pub async fn upload_artifacts(
    State(state): State<AppState>,
    _: AsAgent,
    Path((run, name)): Path<(i64, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    check_job_name(&name)?;
    let root = state.engine.paths.artifacts(RunId(run));
    receive_tar(body, root.join(&name), "artifacts").await
}

fn check_job_name(name: &str) -> ApiResult<()> {
    slipway_spec::JobName::parse(name)
        .map(drop)
        .map_err(ApiError::bad_request)
}

/// A project's shared cache entry, as a tar archive; 404 when there is none.
pub async fn download_cache(
    State(state): State<AppState>,
    _: AsAgent,
    Path((project, key)): Path<(i64, String)>,
) -> ApiResult<Response> {
    check_cache_key(&key)?;
    let dir = state
        .engine
        .paths
        .cache(slipway_store::ProjectId(project))
        .join(&key);
    if !dir.is_dir() {
        return Err(ApiError::not_found(format!("no cache entry `{key}`")));
    }
    tar_of(dir).await
}

/// Stores a cache entry an agent saved. Entries are immutable: the first one
/// stored under a key stays.
pub async fn upload_cache(
    State(state): State<AppState>,
    _: AsAgent,
    Path((project, key)): Path<(i64, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    check_cache_key(&key)?;
    let root = state.engine.paths.cache(slipway_store::ProjectId(project));
    if root.join(&key).is_dir() {
        return Ok(StatusCode::NO_CONTENT);
    }
    receive_tar(body, root.join(&key), "cache").await
}

/// Keys are what the runner makes of them (see `CacheStore::sanitize`).
fn check_cache_key(key: &str) -> ApiResult<()> {
    if !key.is_empty() && slipway_runner::CacheStore::sanitize(key) == key {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("`{key}` is not a cache key")))
    }
}

/// A directory as a tar archive response.
async fn tar_of(dir: std::path::PathBuf) -> ApiResult<Response> {
    let tar = tokio::task::spawn_blocking(move || slipway_runner::archive::pack(&dir))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], tar).into_response())
}

/// Unpacks an uploaded archive (links refused) as the new contents of `dest`.
async fn receive_tar(body: Bytes, dest: std::path::PathBuf, what: &str) -> ApiResult<StatusCode> {
    tokio::task::spawn_blocking(move || {
        slipway_runner::archive::unpack(&body, &dest, Links::Refuse)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| {
        // A full disk is the server's fault (507); the staging directory is already gone.
        if slipway_store::io_is_storage_full(&e) {
            ApiError::storage_full(&format!("unpacking the {what} archive: {e}"))
        } else {
            ApiError::bad_request(format!("the {what} archive cannot be unpacked: {e}"))
        }
    })?;
    Ok(StatusCode::NO_CONTENT)
}
