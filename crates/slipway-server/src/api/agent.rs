//! The agent protocol: remote `slipway agent` processes claim jobs (long poll),
//! heartbeat, send log chunks, fetch sources and artifacts, and report back.
//! It is the in-process workers' dispatch, spoken over HTTP.
//!
//! A claim is held by the agent token that made it: logs, artifacts, caches
//! and results are taken only for a running job that token holds, while its
//! lease lasts. So a succeeded job's artifacts never change, and one agent
//! token cannot write what another's job (or another run) produced.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
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
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AsAgent, Authorized, Json, Path};

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
    Authorized(caller): AsAgent,
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
        Some(assignment) => {
            state
                .engine
                .store
                .hold_job(JobId(assignment.job_id), &worker, &caller.token_hash)
                .await?;
            Json(assignment).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(Debug, Deserialize)]
pub struct WorkerRef {
    worker: String,
}

pub async fn heartbeat(
    State(state): State<AppState>,
    Authorized(caller): AsAgent,
    Path(job): Path<i64>,
    Json(w): Json<WorkerRef>,
) -> ApiResult<Json<Value>> {
    if held(&state, job, &caller).await.is_err() {
        return Ok(Json(json!({ "continue": false })));
    }
    let held = state
        .dispatch()
        .heartbeat(job, &format!("agent:{}", w.worker))
        .await?;
    Ok(Json(json!({ "continue": held })))
}

/// The most steps one log chunk may record: a job has a handful, and an
/// agent's upload must not grow the server's tables without bound.
const MAX_CHUNK_STEPS: usize = 1000;

pub async fn log(
    State(state): State<AppState>,
    Authorized(caller): AsAgent,
    Path(job): Path<i64>,
    Json(chunk): Json<slipway_engine::LogChunk>,
) -> ApiResult<StatusCode> {
    let row = held(&state, job, &caller).await?;
    if chunk.steps.len() > MAX_CHUNK_STEPS {
        return Err(ApiError::bad_request(format!(
            "a log chunk records at most {MAX_CHUNK_STEPS} steps (this one has {}); send them in several chunks",
            chunk.steps.len()
        )));
    }
    let max = slipway_store::StepTime::MAX_STEPS;
    if let Some(step) = chunk.steps.iter().find(|s| !(0..max).contains(&s.index)) {
        return Err(ApiError::bad_request(format!(
            "step index {} is out of range: a job's steps are numbered from 0 to {}",
            step.index,
            max - 1
        )));
    }
    state
        .dispatch()
        .append_log(job, within_job(chunk, &row))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How far ahead of the server's clock an agent's times are taken.
const CLOCK_SKEW_MS: i64 = 60_000;

/// An agent's chunk as the server keeps it: its times brought within the
/// job's (from its claim to now, with [`CLOCK_SKEW_MS`] of skew), its steps
/// those of the job's current try. An agent may send any numbers.
fn within_job(
    mut chunk: slipway_engine::LogChunk,
    job: &slipway_store::Job,
) -> slipway_engine::LogChunk {
    let until = slipway_store::now_ms().saturating_add(CLOCK_SKEW_MS);
    let since = job.started_at.unwrap_or(until).min(until);
    let clamp = |t: i64| t.clamp(since, until);
    for t in &mut chunk.times {
        *t = clamp(*t);
    }
    for step in &mut chunk.steps {
        step.attempt = job.attempt;
        step.started_at = clamp(step.started_at);
        step.finished_at = step.finished_at.map(|f| clamp(f).max(step.started_at));
    }
    chunk
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
    Authorized(caller): AsAgent,
    Path(job): Path<i64>,
    Json(f): Json<Finish>,
) -> ApiResult<StatusCode> {
    let row = held(&state, job, &caller).await?;
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
    Authorized(caller): AsAgent,
    Path(job): Path<i64>,
    Json(r): Json<Release>,
) -> ApiResult<StatusCode> {
    held(&state, job, &caller).await?;
    state
        .dispatch()
        .release(job, &format!("agent:{}", r.worker), &r.reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tree of the run's commit, as a tar archive.
pub async fn source(
    State(state): State<AppState>,
    Authorized(caller): AsAgent,
    Path(run): Path<i64>,
) -> ApiResult<Response> {
    holds_in(&state, RunId(run), &caller).await?;
    let run = state.engine.store.run(RunId(run)).await?;
    let mirror = slipway_git::Mirror::at(&state.engine.paths.mirror(run.project_id));
    let tar = mirror
        .archive(&run.commit)
        .await
        .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], tar).into_response())
}

/// What an agent's mirror of the project holds: the commits its branches,
/// tags and last run name.
#[derive(Debug, Deserialize)]
pub struct Haves {
    #[serde(default)]
    have: Vec<String>,
}

/// The run's commit, the project's branches and tags, as a `git bundle`
/// without what the agent says it has: a project's later jobs on an agent
/// bring only new commits. Only for a token holding a job of this run, so
/// only this run's project's objects. When the agent has every object, the
/// answer is the branches and tags instead (`text/plain`, `ID REFNAME`
/// lines); either way [`REFS_DIGEST`] tells the digest of those.
///
/// The bundle is streamed as git writes it, one at a time per project
/// (others wait [`BUNDLE_QUEUE`], then get 503), for at most [`BUNDLE_TIME`].
pub async fn bundle(
    State(state): State<AppState>,
    Authorized(caller): AsAgent,
    Path(run): Path<i64>,
    Json(haves): Json<Haves>,
) -> ApiResult<Response> {
    holds_in(&state, RunId(run), &caller).await?;
    check_haves(&haves.have)?;
    let run = state.engine.store.run(RunId(run)).await?;
    let path = state.engine.paths.mirror(run.project_id);
    let Some(permit) = one_bundle_at_a_time(&path).await else {
        return Ok(busy());
    };
    let mirror = slipway_git::Mirror::at(&path);
    let refs = slipway_git::heads_and_tags(&path)
        .await
        .map_err(ApiError::internal)?;
    let digest = slipway_git::refs_digest(&refs);
    // Until its pack begins, too, git runs at most BUNDLE_TIME (dropped: killed).
    let started = slipway_git::bundle_since(&mirror, &run.commit, &haves.have);
    let Some(out) = tokio::time::timeout(BUNDLE_TIME, started)
        .await
        .map_err(|_| {
            ApiError::internal("a bundle for an agent took too long to begin: git killed")
        })?
        .map_err(ApiError::internal)?
    else {
        let headers = [
            (header::CONTENT_TYPE, "text/plain"),
            (REFS_DIGEST, digest.as_str()),
        ];
        return Ok((headers, refs).into_response());
    };
    let body = Body::from_stream(bundle_stream(out, permit, run.id));
    let headers = [
        (header::CONTENT_TYPE, "application/x-git-bundle"),
        (REFS_DIGEST, digest.as_str()),
    ];
    Ok((headers, body).into_response())
}

/// The header of the bundle answer that holds the digest of the server's
/// branches and tags (see `slipway_git::refs_digest`).
pub const REFS_DIGEST: header::HeaderName = header::HeaderName::from_static("slipway-refs-digest");

/// How long a bundle request waits for the one before it of the project.
const BUNDLE_QUEUE: Duration = Duration::from_secs(10);

/// The longest a bundle may take to make and send: git is then killed.
const BUNDLE_TIME: Duration = Duration::from_secs(600);

fn check_haves(have: &[String]) -> ApiResult<()> {
    if have.len() > slipway_git::MAX_HAVES {
        return Err(ApiError::bad_request(format!(
            "`have` lists {} commits; at most {} are taken",
            have.len(),
            slipway_git::MAX_HAVES
        )));
    }
    if let Some(bad) = have.iter().find(|h| !slipway_git::is_commit_id(h)) {
        return Err(ApiError::bad_request(format!(
            "`have` must list full commit ids (hex); `{}` is not one",
            bad.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// The right to make the one bundle of the project's mirror at `mirror`
/// (a whole repository's worth of git work); `None` when another one has
/// not ended within [`BUNDLE_QUEUE`].
async fn one_bundle_at_a_time(
    mirror: &std::path::Path,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    static BUSY: std::sync::LazyLock<
        std::sync::Mutex<
            std::collections::HashMap<std::path::PathBuf, Arc<tokio::sync::Semaphore>>,
        >,
    > = std::sync::LazyLock::new(Default::default);
    let one = {
        let mut busy = BUSY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        busy.entry(mirror.to_path_buf())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1)))
            .clone()
    };
    tokio::time::timeout(BUNDLE_QUEUE, one.acquire_owned())
        .await
        .ok()?
        .ok()
}

/// 503 with `Retry-After`: the project's one bundle is being made.
fn busy() -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        format!(
            "another agent is being sent this project's commits (one bundle at a time per project; \
             waited {}s): ask again after the Retry-After seconds",
            BUNDLE_QUEUE.as_secs()
        ),
    )
    .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(BUNDLE_QUEUE.as_secs()),
    );
    response
}

/// The bundle as it comes from git, holding `permit` until it ends; git is
/// killed past [`BUNDLE_TIME`] or when the agent goes (the stream dropped).
fn bundle_stream(
    out: slipway_git::BundleOutput,
    permit: tokio::sync::OwnedSemaphorePermit,
    run: RunId,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    let deadline = tokio::time::Instant::now() + BUNDLE_TIME;
    futures_util::stream::unfold(Some((out, permit)), move |state| async move {
        let (mut out, permit) = state?;
        let chunk = match tokio::time::timeout_at(deadline, out.next_chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => {
                tracing::warn!(run = run.0, "a bundle for an agent failed: {e}");
                return Some((Err(std::io::Error::other(e.to_string())), None));
            }
            Err(_) => {
                tracing::warn!(
                    run = run.0,
                    "a bundle for an agent took over {}s: git killed",
                    BUNDLE_TIME.as_secs()
                );
                return Some((Err(std::io::Error::other("bundle timed out")), None));
            }
        };
        Some((Ok(bytes::Bytes::from(chunk)), Some((out, permit))))
    })
}

/// A finished job's artifacts, as a tar archive (empty when it kept none).
pub async fn download_artifacts(
    State(state): State<AppState>,
    Authorized(caller): AsAgent,
    Path((run, name)): Path<(i64, String)>,
) -> ApiResult<Response> {
    check_job_name(&name)?;
    holds_in(&state, RunId(run), &caller).await?;
    let dir = state.engine.paths.artifacts(RunId(run)).join(&name);
    tar_of(dir).await
}

/// Stores a job's artifacts sent by the agent running it (replacing any
/// earlier upload of this attempt); refused once the job has ended. The
/// holder is checked before a byte of the body is read: any agent token
/// could otherwise make the server take in [`MAX_UPLOAD`] first.
pub async fn upload_artifacts(
    State(state): State<AppState>,
    Authorized(caller): AsAgent,
    Path((run, name)): Path<(i64, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    check_job_name(&name)?;
    let held = state
        .engine
        .store
        .held_job((RunId(run), name.as_str()), &caller.token_hash)
        .await?;
    if held.is_none() {
        return Err(not_held(&format!("job `{name}` of run id {run}"), &caller));
    }
    let root = state.engine.paths.artifacts(RunId(run));
    receive_tar(body, root.join(&name), "artifacts").await
}

/// The job, if the caller's token holds it (claimed, running, lease alive).
async fn held(state: &AppState, job: i64, caller: &Caller) -> ApiResult<slipway_store::Job> {
    state
        .engine
        .store
        .held_job(JobId(job), &caller.token_hash)
        .await?
        .ok_or_else(|| not_held(&format!("job id {job}"), caller))
}

/// Refuses unless the caller's token holds a running job of the run.
async fn holds_in(state: &AppState, run: RunId, caller: &Caller) -> ApiResult<()> {
    if state
        .engine
        .store
        .holds_job_in(Some(run), None, &caller.token_hash)
        .await?
    {
        return Ok(());
    }
    Err(not_held(&format!("a job of run id {run}"), caller))
}

fn not_held(what: &str, caller: &Caller) -> ApiError {
    ApiError::forbidden(format!(
        "agent token `{}` does not hold {what}: an agent sends logs, artifacts, caches and results only for a job \
         it claimed, while it runs and its lease lasts (the job may have ended, or been given to another agent)",
        caller.name
    ))
}

fn check_job_name(name: &str) -> ApiResult<()> {
    slipway_spec::JobName::parse(name)
        .map(drop)
        .map_err(ApiError::bad_request)
}

/// A cache entry for the job the agent holds, as a tar archive; 404 when
/// there is none.
pub async fn download_cache(
    State(state): State<AppState>,
    Authorized(caller): AsAgent,
    Path((job, key)): Path<(i64, String)>,
) -> ApiResult<Response> {
    check_cache_key(&key)?;
    let dir = cache_of(&state, job, &caller).await?.join(&key);
    if !dir.is_dir() {
        return Err(ApiError::not_found(format!("no cache entry `{key}`")));
    }
    tar_of(dir).await
}

/// Stores a cache entry an agent saved for the job it holds. Entries are
/// immutable: the first one stored under a key stays.
pub async fn upload_cache(
    State(state): State<AppState>,
    Authorized(caller): AsAgent,
    Path((job, key)): Path<(i64, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    check_cache_key(&key)?;
    let root = cache_of(&state, job, &caller).await?;
    if root.join(&key).is_dir() {
        return Ok(StatusCode::NO_CONTENT);
    }
    receive_tar(body, root.join(&key), "cache").await
}

/// The caches a held job reads and writes: its project's, of its branch's
/// protection level. The server decides the level from the job's run, never
/// from what the agent says, so a feature branch's entry never reaches `main`.
async fn cache_of(state: &AppState, job: i64, caller: &Caller) -> ApiResult<std::path::PathBuf> {
    let row = held(state, job, caller).await?;
    let run = state.engine.store.run(row.run_id).await?;
    let project = state.engine.store.project_by_id(run.project_id).await?;
    let protected = state.engine.protects_branch(&project, &run.branch).await;
    Ok(state.engine.paths.cache(project.id, protected))
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

/// The largest artifact or cache archive an agent may send.
const MAX_UPLOAD: usize = 512 * 1024 * 1024;

/// Reads an uploaded archive (at most [`MAX_UPLOAD`]) and unpacks it (links
/// refused) as the new contents of `dest`. Called only once the sender is
/// known to hold the job.
async fn receive_tar(body: Body, dest: std::path::PathBuf, what: &str) -> ApiResult<StatusCode> {
    let body = axum::body::to_bytes(body, MAX_UPLOAD).await.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the {what} archive could not be read whole (at most {} MiB): {e}",
                MAX_UPLOAD >> 20
            ),
        )
    })?;
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
