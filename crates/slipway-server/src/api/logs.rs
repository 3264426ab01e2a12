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
        times,
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
    let times: Vec<Option<String>> = times.into_iter().map(|t| t.map(line_time)).collect();
    Ok(Json(json!({
        "job": job.name, "state": job.state, "first_line": first_line, "next_line": next_line,
        "lines": lines, "times": times,
    })))
}

/// A log line's time as people and tools read it: RFC 3339 in UTC with
/// milliseconds (what `docker logs -t` and `kubectl logs --timestamps` show).
pub(crate) fn line_time(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

#[derive(Debug, Deserialize)]
pub struct FollowQuery {
    job: Option<String>,
}

/// `GET /projects/{p}/runs/{n}/log?job=NAME`: every line of the run's jobs (or
/// one job) as it is stored, as SSE `line` events `{job, line, at}` (`at`
/// is the line's time, RFC 3339, or null for lines stored without one); an `end` event
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
    /// Next line to read, per job id, and each followed job's name.
    next: HashMap<i64, i64>,
    names: HashMap<i64, String>,
    /// Jobs that were final when last looked at and whose log is read out.
    drained: std::collections::HashSet<i64>,
    changes: tokio::sync::broadcast::Receiver<i64>,
    /// A followed job whose log just grew: read it alone, not every job.
    changed: Option<i64>,
    /// Whether the next look covers every job.
    rescan: bool,
    pending: std::collections::VecDeque<Event>,
    done: bool,
    /// For the web UI: `html` events with the line as HTML instead of `line` events.
    html: bool,
}

/// A run's lines for the web UI, as HTML (`html` events `{job, html, at}`).
pub(crate) fn follow_lines(
    state: AppState,
    run: RunId,
) -> impl Stream<Item = Result<Event, Infallible>> {
    following(state, run, None, true)
}

fn follow(
    state: AppState,
    run: RunId,
    only: Option<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    following(state, run, only, false)
}

fn following(
    state: AppState,
    run: RunId,
    only: Option<String>,
    html: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let changes = state.engine.logs.subscribe();
    let follower = Follower {
        state,
        run,
        only,
        next: HashMap::new(),
        names: HashMap::new(),
        drained: Default::default(),
        changes,
        changed: None,
        rescan: true,
        pending: Default::default(),
        done: false,
        html,
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
    /// Reads what is new: the one job whose log grew, or else every job that
    /// is not read out (which also notices jobs ending). When nothing is new,
    /// waits for a change to a followed job, or a second (which also covers
    /// logs written by another server on the same database).
    async fn poll(&mut self) {
        if let Some(job) = self.changed.take() {
            // An end line, or a change without lines (the job's or run's state
            // moved), means it is time to look at every job.
            let ended = self.read(job).await;
            self.rescan |= ended || self.pending.is_empty();
            if !self.pending.is_empty() {
                return;
            }
        }
        if self.rescan {
            let all_read_out = self.scan().await;
            // Lines found now are sent first; the next look decides the end.
            self.rescan = !self.pending.is_empty();
            if self.rescan {
                return;
            }
            if all_read_out || self.state.shutdown.is_cancelled() {
                self.pending
                    .push_back(Event::default().event("end").data("{}"));
                self.done = true;
                return;
            }
        }
        self.rescan = !self.wait().await;
    }

    /// Looks at every followed job; `true` when all are final and read out,
    /// and the run itself has ended (its jobs' ends are recorded a moment
    /// before the run's, and a follower ends only after both).
    async fn scan(&mut self) -> bool {
        let store = &self.state.engine.store;
        let (Ok(run), Ok(jobs)) = (store.run(self.run).await, store.jobs_of(self.run).await) else {
            self.done = true;
            return true;
        };
        let run_ended = run.state.is_final();
        let mut all = true;
        let only = self.only.clone();
        for job in jobs
            .iter()
            .filter(|j| only.as_ref().is_none_or(|o| o == &j.name))
        {
            self.names.insert(job.id.0, job.name.clone());
            if self.drained.contains(&job.id.0) {
                continue;
            }
            // The state is read before the log, so lines stored just before the end are not missed.
            let was_final = job.state.is_final();
            self.read(job.id.0).await;
            if was_final && self.pending.is_empty() {
                self.drained.insert(job.id.0);
            }
            all &= was_final;
        }
        all && (run_ended || self.only.is_some())
    }

    /// Queues a job's new lines; `true` when they include its end line.
    async fn read(&mut self, job: i64) -> bool {
        let from = *self.next.get(&job).unwrap_or(&0);
        let Ok(page) = self
            .state
            .engine
            .store
            .read_log(JobId(job), from, 1000)
            .await
        else {
            return false;
        };
        self.next.insert(job, page.next_line);
        let name = self.names.get(&job).cloned().unwrap_or_default();
        let mut ended = false;
        for (line, at) in page.lines.into_iter().zip(page.times) {
            ended |= line.starts_with("▸ job ");
            let at = at.map(line_time);
            let event = if self.html {
                let html = crate::ui::ansi::to_html(&line);
                Event::default()
                    .event("html")
                    .data(json!({ "job": name, "html": html, "at": at }).to_string())
            } else {
                Event::default()
                    .event("line")
                    .data(json!({ "job": name, "line": line, "at": at }).to_string())
            };
            self.pending.push_back(event);
        }
        ended
    }

    /// Waits up to a second for a log change of a job this follower follows;
    /// `false` when none came (time for a full look).
    async fn wait(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(change) = tokio::time::timeout_at(deadline, self.changes.recv()).await {
            match change {
                Ok(job) if self.names.contains_key(&job) => {
                    self.changed = Some(job);
                    return true;
                }
                Ok(_) => {}
                // Fell behind a burst: look at everything.
                Err(_) => return false,
            }
        }
        false
    }
}
