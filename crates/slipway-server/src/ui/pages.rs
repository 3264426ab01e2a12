//! The pages: each handler gathers what its template shows from the store
//! and the deployer, shaped as plain strings so templates stay simple.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use slipway_secrets::Role;
use slipway_store::{DeployState, JobId, RunId};

use super::session::Viewer;
use super::{Page, PageResult, ansi, chart, fail, project_of, render, svg};
use crate::AppState;

fn short(commit: &str) -> String {
    commit.chars().take(12).collect()
}

pub fn duration(from: Option<i64>, to: Option<i64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => {
            let s = (b - a) / 1000;
            if s >= 60 {
                format!("{}m {}s", s / 60, s % 60)
            } else {
                format!("{}.{}s", s, (b - a) % 1000 / 100)
            }
        }
        _ => String::new(),
    }
}

pub struct RunRow {
    pub project: String,
    pub number: i64,
    pub state: String,
    pub branch: String,
    pub commit: String,
    pub trigger: String,
    pub duration: String,
}

fn run_row(project: &str, r: &slipway_store::Run) -> RunRow {
    RunRow {
        project: project.to_string(),
        number: r.number,
        state: r.state.to_string(),
        branch: r.branch.clone(),
        commit: short(&r.commit),
        trigger: r.trigger.clone(),
        duration: duration(Some(r.created_at), r.finished_at),
    }
}

pub struct Cell {
    pub environment: String,
    pub version: String,
    pub health: String,
    pub pending: usize,
}

pub struct ProjectRow {
    pub name: String,
    pub cells: Vec<Option<Cell>>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct Dashboard {
    user: String,
    role: String,
    csrf: String,
    columns: Vec<String>,
    projects: Vec<ProjectRow>,
    runs: Vec<RunRow>,
}

/// Projects × environments, and the latest runs.
pub async fn dashboard(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let store = &state.engine.store;
    let projects = store.projects().await.map_err(fail)?;
    let mut columns: Vec<String> = Vec::new();
    let mut statuses = Vec::new();
    let mut runs = Vec::new();
    for p in &projects {
        let envs = state.deployer.status(p).await.map_err(fail)?;
        for e in &envs {
            if !columns.contains(&e.environment) {
                columns.push(e.environment.clone());
            }
        }
        statuses.push((p.name.clone(), envs));
        runs.extend(
            store
                .runs(p.id, 10)
                .await
                .map_err(fail)?
                .iter()
                .map(|r| (r.created_at, run_row(&p.name, r))),
        );
    }
    runs.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let rows = statuses
        .into_iter()
        .map(|(name, envs)| ProjectRow {
            name,
            cells: columns
                .iter()
                .map(|c| {
                    envs.iter().find(|e| &e.environment == c).map(|e| Cell {
                        environment: e.environment.clone(),
                        version: e.live.as_ref().map_or("—".into(), |l| l.release.clone()),
                        health: e.health.clone(),
                        pending: usize::from(
                            e.latest.as_ref().is_some_and(|d| d.pending.is_some()),
                        ),
                    })
                })
                .collect(),
        })
        .collect();
    let page = Page::of(&viewer);
    render(Dashboard {
        user: page.user,
        role: page.role,
        csrf: page.csrf,
        columns,
        projects: rows,
        runs: runs.into_iter().take(20).map(|(_, r)| r).collect(),
    })
}

#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    user: String,
    role: String,
    csrf: String,
    project: String,
    environments: Vec<String>,
    may_trigger: bool,
    default_branch: String,
    trend: String,
    branches: Vec<String>,
    runs: Vec<RunRow>,
}

pub async fn project(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> PageResult {
    let p = project_of(&state, &name).await?;
    let store = &state.engine.store;
    let runs = store.runs(p.id, 50).await.map_err(fail)?;
    let mut branches: Vec<String> = runs.iter().map(|r| r.branch.clone()).collect();
    branches.sort();
    branches.dedup();
    let mut coverage: Vec<f64> = store
        .gate_history(p.id, None, 50)
        .await
        .map_err(fail)?
        .iter()
        .filter_map(|g| g.report["measures"]["new_coverage"].as_f64())
        .collect();
    coverage.reverse();
    let environments = store
        .environments(p.id)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let page = Page::of(&viewer);
    render(ProjectPage {
        user: page.user,
        role: page.role,
        csrf: page.csrf,
        project: p.name.clone(),
        environments,
        may_trigger: viewer.may(Role::Developer),
        default_branch: runs.first().map_or("main".into(), |r| r.branch.clone()),
        trend: chart::line(
            &coverage,
            &chart::Axes {
                x: "gated run, oldest first",
                y: "new-code coverage, %",
                unit: "%",
                whole: false,
            },
            Some(100.0),
        ),
        branches,
        runs: runs.iter().map(|r| run_row(&p.name, r)).collect(),
    })
}

pub struct JobView {
    pub id: i64,
    pub name: String,
    /// `test [PYTHON=3.11, DB=sqlite]` for a combination of a matrix, else the name.
    pub title: String,
    /// Above the first combination of a matrix: the group's line.
    pub group: Option<super::matrix::GroupHead>,
    pub state: String,
    pub duration: String,
    /// Each line as HTML, with its time for the hover (empty when unknown).
    pub lines: Vec<(String, String)>,
    /// Where the job's time went, step by step (SVG; empty before its first step).
    pub steps: String,
    pub earlier: bool,
    /// Lines the log had when the page was made: the live stream skips them.
    pub total: i64,
}

pub struct GateView {
    pub job: String,
    pub status: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "run.html")]
pub struct RunPage {
    user: String,
    role: String,
    csrf: String,
    project: String,
    number: i64,
    run_id: i64,
    state: String,
    branch: String,
    commit: String,
    reason: Option<String>,
    graph: String,
    gates: Vec<GateView>,
    images: Vec<String>,
    artifacts: Vec<String>,
    jobs: Vec<JobView>,
    live: bool,
}

/// Lines of a job shown on the run page: the last ones (the whole log is paged).
const TAIL_LINES: i64 = 1000;

pub async fn run(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, number)): Path<(String, i64)>,
) -> PageResult {
    let p = project_of(&state, &name).await?;
    let store = &state.engine.store;
    let run = store.run_by_number(p.id, number).await.map_err(fail)?;
    let jobs = store.jobs_of(run.id).await.map_err(fail)?;
    let steps = store.steps_of_run(run.id).await.map_err(fail)?;
    let mut views = Vec::new();
    let mut heads = super::matrix::heads(&jobs).into_iter();
    for j in &jobs {
        let total = store.log_length(j.id).await.map_err(fail)?;
        let from = (total - TAIL_LINES).max(0);
        let page = store.read_log(j.id, from, TAIL_LINES).await.map_err(fail)?;
        views.push(JobView {
            id: j.id.0,
            name: j.name.clone(),
            title: super::matrix::title(j),
            group: heads.next().flatten(),
            state: j.state.to_string(),
            duration: duration(j.started_at, j.finished_at),
            lines: timed_lines(&page),
            steps: step_timeline(j.id, &steps),
            earlier: from > 0,
            total,
        });
    }
    let nodes: Vec<svg::Node> = jobs
        .iter()
        .map(|j| svg::Node {
            name: j.name.clone(),
            state: j.state.to_string(),
            needs: j.needs.clone(),
            duration: duration(j.started_at, j.finished_at),
        })
        .collect();
    let gates = store
        .gates_of(run.id)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|g| GateView {
            job: g.job,
            status: g.status,
            summary: gate_summary(&g.report),
        })
        .collect();
    let images = store
        .run_images(run.id)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|i| format!("{}@{}", i.reference, i.digest))
        .collect();
    let page = Page::of(&viewer);
    render(RunPage {
        user: page.user,
        role: page.role,
        csrf: page.csrf,
        project: p.name,
        number,
        run_id: run.id.0,
        state: run.state.to_string(),
        branch: run.branch.clone(),
        commit: run.commit.clone(),
        reason: run.reason.clone(),
        graph: svg::job_graph(&super::matrix::group_nodes(nodes, &jobs)),
        gates,
        images,
        artifacts: artifacts(&state.engine.paths.artifacts(run.id)),
        jobs: views,
        live: !run.state.is_final(),
    })
}

/// The gate as text: its conditions, the test results, failed tests and the
/// new lines left uncovered.
fn gate_summary(report: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in report["conditions"].as_array().into_iter().flatten() {
        let value = c["value"].as_f64().map_or_else(
            || c["note"].as_str().unwrap_or("no value").to_string(),
            |v| format!("{v:.1}"),
        );
        out.push_str(&format!(
            "{} {} (is {value})\n",
            if c["passed"].as_bool() == Some(true) {
                "✔"
            } else {
                "✘"
            },
            c["condition"].as_str().unwrap_or_default(),
        ));
    }
    let m = &report["measures"];
    // "run" as the `tests_run` measure counts it: skipped tests did not run.
    if m["tests_run"].is_number() {
        out.push_str(&format!(
            "tests: {} run, {} passed, {} failed, {} errored; {} skipped\n",
            m["tests_run"],
            m["tests_passed"],
            m["tests_failed"],
            m["tests_errored"],
            m["tests_skipped"],
        ));
    }
    if let Some(new_code) = report["new_code"]["summary"].as_str() {
        out.push_str(&format!("new code: {new_code}\n"));
    }
    for t in report["failed_tests"]
        .as_array()
        .into_iter()
        .flatten()
        .take(20)
    {
        out.push_str(&format!(
            "failed: {}\n",
            t["name"].as_str().unwrap_or(&t.to_string())
        ));
    }
    for (file, ranges) in report["uncovered_new_lines"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let ranges: Vec<String> = ranges
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        out.push_str(&format!(
            "uncovered new lines in {file}: {}\n",
            ranges.join(", ")
        ));
    }
    out.push_str(&partly_covered(report));
    out
}

/// New lines that ran without taking every branch: `8 (1/2 branches)`.
fn partly_covered(report: &serde_json::Value) -> String {
    let mut out = String::new();
    let files = report["uncovered_new_lines_detail"].as_object();
    for (file, lines) in files.into_iter().flatten() {
        let partly: Vec<String> = lines
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["partly"].as_bool() == Some(true))
            .map(|l| match l["branches"].as_str() {
                Some(b) => format!("{} ({b} branches)", l["line"]),
                None => l["line"].to_string(),
            })
            .collect();
        if !partly.is_empty() {
            out.push_str(&format!(
                "partly covered new lines in {file}: {}\n",
                partly.join(", ")
            ));
        }
    }
    out
}

fn artifacts(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
            if out.len() >= 200 {
                return out;
            }
        }
    }
    out.sort();
    out
}

#[derive(Template)]
#[template(path = "log.html")]
pub struct LogPageView {
    user: String,
    role: String,
    csrf: String,
    project: String,
    number: i64,
    job: String,
    job_id: i64,
    first: i64,
    last: i64,
    previous: Option<i64>,
    next: Option<i64>,
    lines: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
pub struct From {
    from: Option<i64>,
}

/// A job's whole log, 1000 lines a page.
pub async fn log(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(job): Path<i64>,
    Query(q): Query<From>,
) -> PageResult {
    let store = &state.engine.store;
    let job = store.job(JobId(job)).await.map_err(fail)?;
    let run = store.run(job.run_id).await.map_err(fail)?;
    let project = store.project_by_id(run.project_id).await.map_err(fail)?;
    let from = q.from.unwrap_or(0).max(0);
    let page = store
        .read_log(job.id, from, TAIL_LINES)
        .await
        .map_err(fail)?;
    let count = i64::try_from(page.lines.len()).unwrap_or_default();
    let v = Page::of(&viewer);
    render(LogPageView {
        user: v.user,
        role: v.role,
        csrf: v.csrf,
        project: project.name,
        number: run.number,
        job: job.name,
        job_id: job.id.0,
        first: page.first_line + 1,
        last: page.first_line + count,
        previous: (from > 0).then(|| (from - TAIL_LINES).max(0)),
        next: (count == TAIL_LINES).then_some(page.next_line),
        lines: timed_lines(&page),
    })
}

/// A page of log lines as HTML, each with its time (RFC 3339) for the hover.
fn timed_lines(page: &slipway_store::LogPage) -> Vec<(String, String)> {
    page.lines
        .iter()
        .zip(&page.times)
        .map(|(line, at)| {
            let at = at.map(crate::api::logs::line_time).unwrap_or_default();
            (ansi::to_html(line), at)
        })
        .collect()
}

/// A job's steps (as last tried) on a timeline from its first step's start.
fn step_timeline(job: JobId, steps: &[(JobId, slipway_store::StepTime)]) -> String {
    let mine: Vec<&slipway_store::StepTime> = steps
        .iter()
        .filter(|(id, _)| *id == job)
        .map(|(_, s)| s)
        .collect();
    let Some(start) = mine.iter().map(|s| s.started_at).min() else {
        return String::new();
    };
    let bars: Vec<svg::StepBar> = mine
        .iter()
        .map(|s| svg::StepBar {
            title: format!("{}. {}", s.index + 1, s.title),
            offset_ms: s.started_at - start,
            duration_ms: s.duration_ms(),
            failed: s.exit_code.is_some_and(|c| c != 0),
        })
        .collect();
    svg::step_timeline(&bars, slipway_store::now_ms() - start)
}

/// Live lines of a run's jobs as SSE `html` events `{job, html}`.
pub async fn stream(State(state): State<AppState>, _: Viewer, Path(run): Path<i64>) -> Response {
    use axum::response::sse::{KeepAlive, Sse};
    if let Err(e) = state.engine.store.run(RunId(run)).await {
        return fail(e);
    }
    let lines = crate::api::logs::follow_lines(state, RunId(run));
    Sse::new(lines)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The project, if it has this environment (names come from the URL).
async fn environment_of(
    state: &AppState,
    name: &str,
    env: &str,
) -> Result<slipway_store::Project, Response> {
    let p = project_of(state, name).await?;
    match state.engine.store.environment(p.id, env).await {
        Ok(_) => Ok(p),
        Err(e) => Err((axum::http::StatusCode::NOT_FOUND, e.to_string()).into_response()),
    }
}

pub struct PendingView {
    pub id: i64,
    pub release: String,
    pub action: String,
    pub requested_by: String,
    pub rule: String,
    pub refusal: Option<String>,
}

pub struct DeploymentRow {
    pub id: i64,
    pub release: String,
    pub action: String,
    pub state: String,
    pub by: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "environment.html")]
pub struct EnvironmentPage {
    user: String,
    role: String,
    csrf: String,
    project: String,
    environment: String,
    live: String,
    may_deploy: bool,
    releases: Vec<String>,
    pending: Vec<PendingView>,
    history: Vec<DeploymentRow>,
}

pub async fn environment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, env)): Path<(String, String)>,
) -> PageResult {
    let p = environment_of(&state, &name, &env).await?;
    let store = &state.engine.store;
    let mut pending = Vec::new();
    let mut history = Vec::new();
    for d in store.deployments(p.id, &env, 50).await.map_err(fail)? {
        let view = state.deployer.view(d.clone()).await.map_err(fail)?;
        if let Some(rule) = &view.pending {
            let refusal = state
                .deployer
                .may_decide(&d, &viewer.approver())
                .await
                .err()
                .map(|e| e.to_string());
            pending.push(PendingView {
                id: d.id,
                release: view.release.clone(),
                action: d.action.clone(),
                requested_by: d.requested_by.clone(),
                rule: format!(
                    "{} of {} approvals from {}",
                    rule.approvals, rule.required, rule.who
                ),
                refusal,
            });
        }
        history.push(DeploymentRow {
            id: d.id,
            release: view.release,
            action: d.action,
            state: d.state.to_string(),
            by: d.requested_by,
            reason: d.reason.unwrap_or_default(),
        });
    }
    let releases = store
        .releases(p.id, 50)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|r| r.version)
        .collect();
    let page = Page::of(&viewer);
    render(EnvironmentPage {
        user: page.user,
        role: page.role,
        csrf: page.csrf,
        live: live_fragment(&state, &p, &env).await?,
        project: p.name,
        environment: env,
        may_deploy: viewer.may(Role::Developer),
        releases,
        pending,
        history,
    })
}

/// The environment's live state (polled by the page every second).
pub async fn live(
    State(state): State<AppState>,
    _: Viewer,
    Path((name, env)): Path<(String, String)>,
) -> PageResult {
    let p = environment_of(&state, &name, &env).await?;
    Ok(Html(live_fragment(&state, &p, &env).await?).into_response())
}

async fn live_fragment(
    state: &AppState,
    p: &slipway_store::Project,
    env: &str,
) -> Result<String, Response> {
    let status = state.deployer.status(p).await.map_err(fail)?;
    let Some(e) = status.iter().find(|e| e.environment == env) else {
        return Ok("<p class=\"muted\">This environment has no release yet.</p>".into());
    };
    let esc = ansi::escape;
    let mut html = format!(
        "<p><span class=\"badge {h}\" id=\"health\">{h}</span> {note} <a href=\"{url}\">{url}</a></p>",
        h = esc(&e.health),
        note = esc(e.health_note.as_deref().unwrap_or("")),
        url = esc(e.url.as_deref().unwrap_or("")),
    );
    match &e.live {
        Some(l) => html.push_str(&format!(
            "<p>Live: release <b id=\"live-release\"><a href=\"/ui/projects/{p}/releases/{v}\">{v}</a></b> from run <a href=\"/ui/projects/{p}/runs/{n}\">#{n}</a>, commit <code>{c}</code> by {a}: {m}; deployed by {by}</p>",
            p = esc(&p.name),
            v = esc(&l.release),
            n = l.run,
            c = esc(&short(&l.commit)),
            a = esc(&l.author),
            m = esc(&l.message),
            by = esc(&l.deployed_by),
        )),
        None => html.push_str("<p id=\"live-release\">Nothing deployed yet.</p>"),
    }
    if let Some(d) = &e.latest
        && !matches!(d.deployment.state, DeployState::Succeeded)
    {
        html.push_str(&format!(
            "<p>Latest: deployment {} of {} is <span class=\"badge {s}\">{s}</span> {}</p>",
            d.deployment.id,
            esc(&d.release),
            esc(d.deployment.reason.as_deref().unwrap_or("")),
            s = d.deployment.state,
        ));
    }
    Ok(html)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gate_reads_as_conditions_tests_and_uncovered_lines() {
        let report = serde_json::json!({
            "status": "failed",
            "conditions": [
                {"condition": "tests_failed == 0", "metric": "tests_failed", "op": "==", "threshold": 0.0, "value": 1.0, "passed": false},
                {"condition": "new_coverage >= 80", "metric": "new_coverage", "op": ">=", "threshold": 80.0, "value": null, "passed": true, "note": "no new lines"}
            ],
            "measures": {"tests_total": 4, "tests_run": 3, "tests_passed": 2, "tests_failed": 1, "tests_errored": 0, "tests_skipped": 1},
            "new_code": {"commit": "abc1234def", "why": "first parent, no green run before", "lines": 12,
                         "summary": "12 lines since abc1234 (first parent, no green run before)"},
            "failed_tests": [{"name": "test_total"}],
            "uncovered_new_lines": {"src/app.py": ["4-6", "9"]},
            "uncovered_new_lines_detail": {"src/app.py": [{"line": 4, "partly": true, "branches": "1/2"},
                {"line": 5, "partly": false}, {"line": 6, "partly": false}, {"line": 9, "partly": false}]}
        });
        assert_eq!(
            super::gate_summary(&report),
            "✘ tests_failed == 0 (is 1.0)\n✔ new_coverage >= 80 (is no new lines)\n\
             tests: 3 run, 2 passed, 1 failed, 0 errored; 1 skipped\n\
             new code: 12 lines since abc1234 (first parent, no green run before)\n\
             failed: test_total\n\
             uncovered new lines in src/app.py: 4-6, 9\n\
             partly covered new lines in src/app.py: 4 (1/2 branches)\n"
        );
    }
}
