//! Job logs: read in pages (a 100 000-line log is never loaded whole) and
//! followed live over Server-Sent Events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use slipway_store::{JobId, LogPage, RunId};

use super::runs::run;
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{AsViewer, Json, Path, Query};

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    from: Option<i64>,
    limit: Option<i64>,
}

/// `GET /jobs/{job}/log?from=N&limit=M`: lines N.. of one job's log.
pub async fn page(
    State(state): State<AppState>,
    _: AsViewer,
    Path(job): Path<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let job = state.engine.store.job(JobId(job)).await?;
    let LogPage {
        first_line,
        lines,
        next_line,
    } = state
        .engine
        .store
        .read_log(
            job.id,
            q.from.unwrap_or(0).max(0),
            q.limit.unwrap_or(1000).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(
        json!({ "job": job.name, "state": job.state, "first_line": first_line, "next_line": next_line, "lines": lines }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct FollowQuery {
    job: Option<String>,
}

/// `GET /projects/{p}/runs/{n}/log?job=NAME`: every line of the run's jobs (or
/// one job) as it is stored, as SSE `line` events `{job, line}`; an `end` event
/// once every job followed has finished and its log is read out.
pub async fn run_log(
    State(state): State<AppState>,
    _: AsViewer,
    Path((project, number)): Path<(String, i64)>,
    Query(q): Query<FollowQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let run = run(&state, &project, number).await?;
    Ok(Sse::new(follow(state, run.id, q.job)).keep_alive(KeepAlive::default()))
}

/// `GET /jobs/{job}/log/stream`: one job's log, live.
pub async fn stream(
    State(state): State<AppState>,
    _: AsViewer,
    Path(job): Path<i64>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let job = state.engine.store.job(JobId(job)).await?;
    Ok(Sse::new(follow(state, job.run_id, Some(job.name))).keep_alive(KeepAlive::default()))
}

/// Where a follower is in each job's log.
struct Follower {
    state: AppState,
    run: RunId,
    only: Option<String>,
    next: HashMap<i64, i64>,
    changes: tokio::sync::broadcast::Receiver<i64>,
    pending: std::collections::VecDeque<Event>,
    done: bool,
}

fn follow(
    state: AppState,
    run: RunId,
    only: Option<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let changes = state.engine.logs.subscribe();
    let follower = Follower {
        state,
        run,
        only,
        next: HashMap::new(),
        changes,
        pending: Default::default(),
        done: false,
    };
    futures_util::stream::unfold(follower, |mut f| async move {
        loop {
            if let Some(event) = f.pending.pop_front() {
                return Some((Ok(event), f));
            }
            if f.done {
                return None;
            }
            f.poll().await;
        }
    })
}

impl Follower {
    /// Reads what is new; when nothing is, waits for a log change (or a second,
    /// which also covers logs written by another server on the same database).
    async fn poll(&mut self) {
        let store = &self.state.engine.store;
        let Ok(jobs) = store.jobs_of(self.run).await else {
            self.done = true;
            return;
        };
        let mut all_final = true;
        for job in jobs
            .iter()
            .filter(|j| self.only.as_ref().is_none_or(|o| o == &j.name))
        {
            // Look at the state before reading, so lines stored just before the end are not missed.
            all_final &= job.state.is_final();
            let from = *self.next.get(&job.id.0).unwrap_or(&0);
            let Ok(page) = store.read_log(job.id, from, 1000).await else {
                continue;
            };
            self.next.insert(job.id.0, page.next_line);
            for line in page.lines {
                let data = json!({ "job": job.name, "line": line }).to_string();
                self.pending
                    .push_back(Event::default().event("line").data(data));
            }
        }
        if !self.pending.is_empty() {
            return;
        }
        if all_final || self.state.shutdown.is_cancelled() {
            self.pending
                .push_back(Event::default().event("end").data("{}"));
            self.done = true;
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.changes.recv()).await;
    }
}
