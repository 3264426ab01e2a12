//! Runs: one pipeline execution for one exact commit, and its jobs.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::jobs::{JOB_COLUMNS, job};
use crate::{
    Job, ProjectId, Result, Run, RunId, State, Store, StoreError, json_of, now_ms,
    record_transition, sql, state_of,
};

const COLUMNS: &str = "id, project_id, number, commit_sha, branch, state, reason, trigger, started_by, pushed_by, created_at, finished_at";

/// A run to create: the commit, and the jobs its pipeline file defines.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub commit: String,
    pub branch: String,
    /// `webhook`, `poll` or `manual`.
    pub trigger: String,
    /// The pipeline file's text at that commit (workers parse it again).
    pub pipeline: String,
    pub jobs: Vec<NewJob>,
    /// Who caused it.
    pub cause: RunCause,
    /// The commit the branch pointed at before the push that made this run,
    /// when a push said (its `before`): what a first run measures from.
    pub push_before: Option<String>,
}

/// Who caused a run. Four-eyes keeps them from approving the deployments
/// of the release it makes: otherwise whoever triggers or pushes could
/// approve their own automatic deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunCause {
    /// The person (a user's name): whose token or session triggered or
    /// re-ran it, or whose email the push webhook reported.
    pub person: Option<String>,
    /// The pusher as the forge's (signed) webhook reported them.
    pub pusher: Option<Pusher>,
}

/// A pusher in the forge's words: best effort, only as true as the forge's
/// account data, and matched with people by email or name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pusher {
    /// The forge that reported them, e.g. `GitHub`.
    pub forge: String,
    pub login: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl RunCause {
    /// Who caused it, for people to read; `None` for runs no one is known
    /// to have caused (polls, promotions, runs from before causes were kept).
    pub fn describe(&self) -> Option<String> {
        if let Some(person) = &self.person {
            return Some(person.clone());
        }
        self.pusher
            .as_ref()
            .map(|p| format!("{} (the pusher, as {} reports)", p.describe(), p.forge))
    }
}

impl Pusher {
    /// `login (Name <email>)`, with what the forge gave.
    pub fn describe(&self) -> String {
        let who = self
            .login
            .clone()
            .or_else(|| self.name.clone())
            .unwrap_or_else(|| "someone".into());
        let detail = match (&self.name, &self.email) {
            (Some(name), Some(email)) if Some(name) != self.login.as_ref() => {
                format!(" ({name} <{email}>)")
            }
            (_, Some(email)) => format!(" <{email}>"),
            _ => String::new(),
        };
        format!("{who}{detail}")
    }
}

/// A job to queue with a new run.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    pub name: String,
    pub labels: Vec<String>,
    pub needs: Vec<String>,
    pub allow_failure: bool,
    /// Carried over as succeeded from an earlier run (a rerun of failed jobs only).
    pub kept_from: Option<i64>,
    pub matrix: Option<crate::JobMatrix>,
}

fn run(row: &AnyRow) -> Result<Run> {
    Ok(Run {
        id: RunId(row.try_get("id")?),
        project_id: ProjectId(row.try_get("project_id")?),
        number: row.try_get("number")?,
        commit: row.try_get("commit_sha")?,
        branch: row.try_get("branch")?,
        state: state_of(&row.try_get::<String, _>("state")?)?,
        reason: row.try_get("reason")?,
        trigger: row.try_get("trigger")?,
        cause: RunCause {
            person: row.try_get("started_by")?,
            pusher: row
                .try_get::<Option<String>, _>("pushed_by")?
                .and_then(|json| serde_json::from_str(&json).ok()),
        },
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

impl Store {
    /// Creates a run with the next number of its project and its jobs (queued,
    /// or waiting for their `needs`), all in one transaction.
    pub async fn create_run(&self, project: ProjectId, new: &NewRun) -> Result<Run> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let number: i64 = sqlx::query(
            "UPDATE projects SET next_run = next_run + 1 WHERE id = $1 RETURNING next_run - 1 AS number",
        )
        .bind(project.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no project with id {project}")))?
        .try_get("number")?;
        let row = sqlx::query(sql(format!(
            "INSERT INTO runs (project_id, number, commit_sha, branch, state, trigger, pipeline, created_at, started_by, pushed_by, push_before) \
             VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
        )))
        .bind(project.0)
        .bind(number)
        .bind(&new.commit)
        .bind(&new.branch)
        .bind(&new.trigger)
        .bind(&new.pipeline)
        .bind(now)
        .bind(&new.cause.person)
        .bind(
            new.cause
                .pusher
                .as_ref()
                .and_then(|p| serde_json::to_string(p).ok()),
        )
        .bind(&new.push_before)
        .fetch_one(&mut *tx)
        .await?;
        let created = run(&row)?;
        record_transition(
            &mut tx,
            "run",
            created.id.0,
            None,
            State::Queued,
            Some(&new.trigger),
            now,
        )
        .await?;
        for job in &new.jobs {
            let (state, reason) = match job.kept_from {
                Some(run) => (State::Succeeded, Some(format!("kept from run {run}"))),
                None if job.needs.is_empty() => (State::Queued, None),
                None => (State::Waiting, None),
            };
            let id: i64 = sqlx::query(
                "INSERT INTO jobs (run_id, name, state, labels, needs, allow_failure, queued_at, reason, finished_at, matrix) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(created.id.0)
            .bind(&job.name)
            .bind(state.as_str())
            .bind(json_of(&job.labels))
            .bind(json_of(&job.needs))
            .bind(i64::from(job.allow_failure))
            .bind(now)
            .bind(reason.as_deref())
            .bind(state.is_final().then_some(now))
            .bind(
                job.matrix
                    .as_ref()
                    .and_then(|m| serde_json::to_string(m).ok()),
            )
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            record_transition(&mut tx, "job", id, None, state, reason.as_deref(), now).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    /// Records a run that failed before any job could exist (e.g. an invalid pipeline file).
    pub async fn create_failed_run(
        &self,
        project: ProjectId,
        new: &NewRun,
        reason: &str,
    ) -> Result<Run> {
        let created = self
            .create_run(
                project,
                &NewRun {
                    jobs: Vec::new(),
                    ..new.clone()
                },
            )
            .await?;
        self.set_run_state(created.id, State::Queued, State::Failed, Some(reason))
            .await?;
        self.run(created.id).await
    }

    pub async fn run(&self, id: RunId) -> Result<Run> {
        let row = sqlx::query(sql(format!("SELECT {COLUMNS} FROM runs WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no run with id {id}")))?;
        run(&row)
    }

    /// A run by its project and number, as people name runs.
    pub async fn run_by_number(&self, project: ProjectId, number: i64) -> Result<Run> {
        let row = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM runs WHERE project_id = $1 AND number = $2"
        )))
        .bind(project.0)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no run number {number} in this project")))?;
        run(&row)
    }

    /// The commit of the last run on `branch` before run `number` that
    /// succeeded: new code is what changed since.
    pub async fn last_successful_commit(
        &self,
        project: ProjectId,
        branch: &str,
        number: i64,
    ) -> Result<Option<String>> {
        let row = sqlx::query("SELECT commit_sha FROM runs WHERE project_id = $1 AND branch = $2 AND number < $3 AND state = 'succeeded' ORDER BY number DESC LIMIT 1")
            .bind(project.0)
            .bind(branch)
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("commit_sha")?),
            None => None,
        })
    }

    /// Green runs of the whole project (any branch) before run `number`,
    /// newest first, at most `limit`: where a run with no green run on its
    /// own branch looks for a green ancestor.
    pub async fn green_runs_before(
        &self,
        project: ProjectId,
        number: i64,
        limit: i64,
    ) -> Result<Vec<Run>> {
        let rows = sqlx::query(sql(format!("SELECT {COLUMNS} FROM runs WHERE project_id = $1 AND number < $2 AND state = 'succeeded' ORDER BY number DESC LIMIT $3")))
            .bind(project.0)
            .bind(number)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run).collect()
    }

    /// The earliest run on `branch` before run `number`, if any: a branch's
    /// runs with none green are all measured from where its first one was.
    pub async fn first_run_of_branch(
        &self,
        project: ProjectId,
        branch: &str,
        number: i64,
    ) -> Result<Option<Run>> {
        let row = sqlx::query(sql(format!("SELECT {COLUMNS} FROM runs WHERE project_id = $1 AND branch = $2 AND number < $3 ORDER BY number ASC LIMIT 1")))
            .bind(project.0)
            .bind(branch)
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run).transpose()
    }

    /// The commit the branch pointed at before the push that made run `run`,
    /// if a push made it and said.
    pub async fn push_before(&self, run: RunId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT push_before FROM runs WHERE id = $1")
            .bind(run.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no run with id {run}")))?;
        Ok(row.try_get("push_before")?)
    }

    /// The commits of the newest `limit` runs on `branch`, newest first: what
    /// a push webhook is compared with, so a replayed delivery builds nothing.
    pub async fn recent_commits(
        &self,
        project: ProjectId,
        branch: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT commit_sha FROM runs WHERE project_id = $1 AND branch = $2 ORDER BY number DESC LIMIT $3")
            .bind(project.0)
            .bind(branch)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("commit_sha")?)).collect()
    }

    /// The pipeline file a run was created from.
    pub async fn pipeline_of(&self, id: RunId) -> Result<String> {
        let row = sqlx::query("SELECT pipeline FROM runs WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no run with id {id}")))?;
        Ok(row.try_get("pipeline")?)
    }

    /// A project's runs, newest first.
    pub async fn runs(&self, project: ProjectId, limit: i64) -> Result<Vec<Run>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM runs WHERE project_id = $1 ORDER BY number DESC LIMIT $2"
        )))
        .bind(project.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run).collect()
    }

    /// Runs not yet finished, of every project (for the server's view of work in flight).
    pub async fn unfinished_runs(&self) -> Result<Vec<Run>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM runs WHERE state IN ('queued', 'running') ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run).collect()
    }

    pub async fn jobs_of(&self, run: RunId) -> Result<Vec<Job>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE run_id = $1 ORDER BY id"
        )))
        .bind(run.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job).collect()
    }

    /// Moves a run to `to` if it is in `from` (compare-and-set); `false` when it was not.
    pub async fn set_run_state(
        &self,
        id: RunId,
        from: State,
        to: State,
        reason: Option<&str>,
    ) -> Result<bool> {
        if !from.can_become(to) {
            return Err(StoreError::Conflict(format!(
                "a run cannot go from {from} to {to}"
            )));
        }
        let mut tx = self.write_tx().await?;
        let changed = set_run_state_in(&mut tx, id, from, to, reason).await?;
        tx.commit().await?;
        Ok(changed)
    }
}

async fn set_run_state_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: RunId,
    from: State,
    to: State,
    reason: Option<&str>,
) -> Result<bool> {
    let now = now_ms();
    let finished = to.is_final().then_some(now);
    let done = sqlx::query(
        "UPDATE runs SET state = $1, reason = $2, finished_at = $3 WHERE id = $4 AND state = $5",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(finished)
    .bind(id.0)
    .bind(from.as_str())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    record_transition(tx, "run", id.0, Some(from), to, reason, now).await?;
    Ok(true)
}

impl Store {
    /// Brings a run up to date after one of its jobs changed: queues jobs whose
    /// needs all succeeded, skips jobs whose needs did not, and finishes the run
    /// once every job has. Returns the run as it now is.
    pub async fn settle_run(&self, id: RunId) -> Result<Run> {
        let mut tx = self.write_tx().await?;
        if nothing_to_settle(&mut tx, id).await? {
            tx.commit().await?;
            return self.run(id).await;
        }
        let rows = sqlx::query(sql(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE run_id = $1 ORDER BY id"
        )))
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await?;
        let mut jobs: Vec<Job> = rows.iter().map(job).collect::<Result<_>>()?;
        release_waiting(&mut tx, &mut jobs).await?;
        let row = sqlx::query(sql(format!("SELECT {COLUMNS} FROM runs WHERE id = $1")))
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        let current = run(&row)?;
        if let Some((to, reason)) = next_run_state(current.state, &jobs) {
            set_run_state_in(&mut tx, id, current.state, to, reason.as_deref()).await?;
        }
        tx.commit().await?;
        self.run(id).await
    }

    /// Cancels a run: jobs not started are canceled, running ones are taken from
    /// their workers (whose next heartbeat tells them to stop).
    pub async fn cancel_run(&self, id: RunId, reason: &str) -> Result<Run> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query("SELECT id, state FROM jobs WHERE run_id = $1 AND state IN ('waiting', 'queued', 'running')")
            .bind(id.0)
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let job_id: i64 = row.try_get("id")?;
            let from = state_of(&row.try_get::<String, _>("state")?)?;
            let done = sqlx::query(
                "UPDATE jobs SET state = 'canceled', reason = $1, finished_at = $2, lease_until = NULL WHERE id = $3 AND state = $4",
            )
            .bind(reason)
            .bind(now)
            .bind(job_id)
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?;
            // A job that finished meanwhile keeps its own end.
            if done.rows_affected() == 0 {
                continue;
            }
            record_transition(
                &mut tx,
                "job",
                job_id,
                Some(from),
                State::Canceled,
                Some(reason),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.settle_run(id).await
    }
}

/// The common case, answered by counting alone: the run is already running,
/// some of its jobs are still open, and none waits for others.
async fn nothing_to_settle(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: RunId) -> Result<bool> {
    let row = sqlx::query(
        "SELECT COALESCE(SUM(CASE WHEN jobs.state IN ('waiting', 'queued', 'running') THEN 1 ELSE 0 END), 0) AS open, \
                COALESCE(SUM(CASE WHEN jobs.state = 'waiting' THEN 1 ELSE 0 END), 0) AS waiting, \
                MAX(runs.state) AS run_state \
         FROM runs LEFT JOIN jobs ON jobs.run_id = runs.id WHERE runs.id = $1",
    )
    .bind(id.0)
    .fetch_one(&mut **tx)
    .await?;
    let open: i64 = row.try_get("open")?;
    let waiting: i64 = row.try_get("waiting")?;
    let run_state: Option<String> = row.try_get("run_state")?;
    Ok(open > 0 && waiting == 0 && run_state.as_deref() == Some("running"))
}

/// Queues or skips waiting jobs until nothing changes (a skip can cascade).
async fn release_waiting(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    jobs: &mut [Job],
) -> Result<()> {
    loop {
        let mut changed = false;
        for i in 0..jobs.len() {
            if jobs[i].state != State::Waiting {
                continue;
            }
            let Some((to, reason)) = release(&jobs[i], jobs) else {
                continue;
            };
            let now = now_ms();
            sqlx::query("UPDATE jobs SET state = $1, reason = $2, queued_at = $3 WHERE id = $4 AND state = 'waiting'")
                .bind(to.as_str())
                .bind(reason.as_deref())
                .bind(now)
                .bind(jobs[i].id.0)
                .execute(&mut **tx)
                .await?;
            record_transition(
                tx,
                "job",
                jobs[i].id.0,
                Some(State::Waiting),
                to,
                reason.as_deref(),
                now,
            )
            .await?;
            jobs[i].state = to;
            changed = true;
        }
        if !changed {
            return Ok(());
        }
    }
}

/// What a waiting job becomes given its needs, if anything yet.
fn release(waiting: &Job, jobs: &[Job]) -> Option<(State, Option<String>)> {
    let mut all_done = true;
    for need in &waiting.needs {
        let Some(dep) = jobs.iter().find(|j| &j.name == need) else {
            continue;
        };
        let passed =
            dep.state == State::Succeeded || (dep.state == State::Failed && dep.allow_failure);
        if dep.state.is_final() && !passed {
            return Some((
                State::Skipped,
                Some(format!("needs `{need}`, which {}", dep.state)),
            ));
        }
        all_done &= passed;
    }
    all_done.then_some((State::Queued, None))
}

/// The state a run moves to given its jobs, when it changes.
fn next_run_state(current: State, jobs: &[Job]) -> Option<(State, Option<String>)> {
    if current.is_final() {
        return None;
    }
    if !jobs.iter().all(|j| j.state.is_final()) {
        let started = jobs
            .iter()
            .any(|j| j.state != State::Queued && j.state != State::Waiting);
        return (current == State::Queued && started).then_some((State::Running, None));
    }
    let failed: Vec<&str> = jobs
        .iter()
        .filter(|j| j.state == State::Failed && !j.allow_failure)
        .map(|j| j.name.as_str())
        .collect();
    if !failed.is_empty() {
        return Some((
            State::Failed,
            Some(format!("failed jobs: {}", failed.join(", "))),
        ));
    }
    if let Some(canceled) = jobs.iter().find(|j| j.state == State::Canceled) {
        return Some((State::Canceled, canceled.reason.clone()));
    }
    Some((State::Succeeded, None))
}
