//! Jobs as a work queue: atomic claiming with a lease, heartbeats, completion,
//! and re-queueing jobs whose worker stopped heartbeating.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    Backend, Job, JobId, Result, RunId, State, Store, StoreError, now_ms, record_transition, sql,
    state_of, strings_of,
};

pub(crate) const JOB_COLUMNS: &str = "id, run_id, name, state, labels, needs, allow_failure, attempt, worker, lease_until, exit_code, reason, queued_at, started_at, finished_at, matrix";

pub(crate) fn job(row: &AnyRow) -> Result<Job> {
    Ok(Job {
        id: JobId(row.try_get("id")?),
        run_id: RunId(row.try_get("run_id")?),
        name: row.try_get("name")?,
        state: state_of(&row.try_get::<String, _>("state")?)?,
        labels: strings_of(&row.try_get::<String, _>("labels")?)?,
        needs: strings_of(&row.try_get::<String, _>("needs")?)?,
        allow_failure: row.try_get::<i64, _>("allow_failure")? != 0,
        attempt: row.try_get("attempt")?,
        worker: row.try_get("worker")?,
        lease_until: row.try_get("lease_until")?,
        exit_code: row.try_get("exit_code")?,
        reason: row.try_get("reason")?,
        queued_at: row.try_get("queued_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        matrix: row
            .try_get::<Option<String>, _>("matrix")?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("a job's matrix: {e}")))?,
    })
}

/// One job: by its id, or by its run and name (as agents' artifact uploads name it).
#[derive(Debug, Clone, Copy)]
pub enum JobRef<'a> {
    Id(JobId),
    Named(RunId, &'a str),
}

impl From<JobId> for JobRef<'_> {
    fn from(id: JobId) -> Self {
        JobRef::Id(id)
    }
}

impl<'a> From<(RunId, &'a str)> for JobRef<'a> {
    fn from((run, name): (RunId, &'a str)) -> Self {
        JobRef::Named(run, name)
    }
}

/// Who asks for work, and for how long a claim holds without a heartbeat.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub worker: &'a str,
    pub labels: &'a [String],
    pub lease_ms: i64,
    /// At most this many jobs run at once across the whole installation.
    pub max_running: Option<i64>,
}

/// Tries a job gets before a lost worker fails it instead of re-queueing it.
pub const MAX_ATTEMPTS: i64 = 3;

/// How many queued jobs one claim looks at for one whose labels match.
const CLAIM_WINDOW: i64 = 32;

impl Store {
    /// Takes the oldest queued job this worker can run, atomically: two workers
    /// (or two servers on one PostgreSQL) never get the same job.
    pub async fn claim_job(&self, claim: &Claim<'_>) -> Result<Option<Job>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        // PostgreSQL locks the rows it looks at and skips rows others hold;
        // SQLite has one writer, and the state check in the UPDATE below
        // makes the claim safe there too.
        let lock = if self.backend == Backend::Postgres {
            " FOR UPDATE OF jobs SKIP LOCKED"
        } else {
            ""
        };
        let running = running_per_project(&mut tx).await?;
        let total: i64 = running.iter().map(|(_, n, _)| n).sum();
        if claim.max_running.is_some_and(|max| total >= max) {
            tx.commit().await?;
            return Ok(None);
        }
        // Page through the queue in id order until a job this worker may run
        // turns up: jobs nobody can take (labels, full projects) never block the rest.
        let mut after = 0i64;
        loop {
            let candidates = sqlx::query(sql(format!(
                "SELECT jobs.id, jobs.labels, runs.project_id FROM jobs JOIN runs ON runs.id = jobs.run_id \
                 WHERE jobs.state = 'queued' AND jobs.id > $1 ORDER BY jobs.id LIMIT $2{lock}"
            )))
            .bind(after)
            .bind(CLAIM_WINDOW)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = candidates.last() else { break };
            after = last.try_get("id")?;
            for row in &candidates {
                let wanted = strings_of(&row.try_get::<String, _>("labels")?)?;
                if !wanted.iter().all(|l| claim.labels.contains(l)) {
                    continue;
                }
                let project: i64 = row.try_get("project_id")?;
                let full = running
                    .iter()
                    .any(|(p, n, max)| *p == project && max.is_some_and(|m| *n >= m));
                if full {
                    continue;
                }
                let id: i64 = row.try_get("id")?;
                let claimed = sqlx::query(sql(format!(
                    "UPDATE jobs SET state = 'running', worker = $1, lease_until = $2, started_at = $3, attempt = attempt + 1, reason = NULL, holder = NULL \
                     WHERE id = $4 AND state = 'queued' RETURNING {JOB_COLUMNS}"
                )))
                .bind(claim.worker)
                .bind(now + claim.lease_ms)
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = claimed {
                    let claimed = job(&row)?;
                    let reason = format!("claimed by {}", claim.worker);
                    start_run(&mut tx, claimed.run_id, now).await?;
                    record_transition(
                        &mut tx,
                        "job",
                        id,
                        Some(State::Queued),
                        State::Running,
                        Some(&reason),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(Some(claimed));
                }
            }
        }
        tx.commit().await?;
        Ok(None)
    }

    /// Extends the lease of a job the worker still holds; `false` when it no
    /// longer does (canceled, or re-queued after a missed lease).
    pub async fn heartbeat(&self, id: JobId, worker: &str, lease_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND worker = $3 AND state = 'running'",
        )
        .bind(now_ms() + lease_ms)
        .bind(id.0)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a running job held by `worker`; `false` when the worker no longer holds it.
    pub async fn finish_job(
        &self,
        id: JobId,
        worker: &str,
        to: State,
        exit_code: Option<i64>,
        reason: Option<&str>,
    ) -> Result<bool> {
        if !to.is_final() {
            return Err(StoreError::Conflict(format!("{to} is not a final state")));
        }
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, exit_code = $2, reason = $3, finished_at = $4, lease_until = NULL \
             WHERE id = $5 AND worker = $6 AND state = 'running'",
        )
        .bind(to.as_str())
        .bind(exit_code)
        .bind(reason)
        .bind(now)
        .bind(id.0)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        record_transition(&mut tx, "job", id.0, Some(State::Running), to, reason, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Puts running jobs whose lease ran out back in the queue, with the reason
    /// recorded; returns them. Called periodically and at start-up.
    pub async fn requeue_expired(&self) -> Result<Vec<JobId>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let expired = sqlx::query(
            "SELECT id, worker, attempt FROM jobs WHERE state = 'running' AND lease_until < $1",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = Vec::new();
        for row in &expired {
            let id: i64 = row.try_get("id")?;
            let worker: Option<String> = row.try_get("worker")?;
            let worker = worker.as_deref().unwrap_or("its worker");
            // A job that keeps losing its worker (it may be what kills it) fails
            // instead of going round for ever.
            let attempt: i64 = row.try_get("attempt")?;
            let (to, reason) = if attempt >= MAX_ATTEMPTS {
                let why = format!(
                    "failed: lost its worker {attempt} times (last {worker}); not re-queued"
                );
                (State::Failed, why)
            } else {
                (
                    State::Queued,
                    format!("re-queued: {worker} stopped heartbeating"),
                )
            };
            let done = sqlx::query(
                "UPDATE jobs SET state = $1, worker = CASE WHEN $1 = 'queued' THEN NULL ELSE worker END, \
                 lease_until = NULL, reason = $2, finished_at = CASE WHEN $1 = 'queued' THEN NULL ELSE $3 END \
                 WHERE id = $4 AND state = 'running' AND lease_until < $3",
            )
            .bind(to.as_str())
            .bind(&reason)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                record_transition(
                    &mut tx,
                    "job",
                    id,
                    Some(State::Running),
                    to,
                    Some(&reason),
                    now,
                )
                .await?;
                ids.push(JobId(id));
            }
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Gives a running job back to the queue (its worker is shutting down).
    pub async fn release_job(&self, id: JobId, worker: &str, reason: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL, reason = $1 WHERE id = $2 AND worker = $3 AND state = 'running'",
        )
        .bind(reason)
        .bind(id.0)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        record_transition(
            &mut tx,
            "job",
            id.0,
            Some(State::Running),
            State::Queued,
            Some(reason),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records which agent token holds a job its worker just claimed: only
    /// that token may then send the job's logs, artifacts, caches and results.
    pub async fn hold_job(&self, id: JobId, worker: &str, holder: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET holder = $1 WHERE id = $2 AND worker = $3 AND state = 'running'",
        )
        .bind(holder)
        .bind(id.0)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The job, if it is running under `holder`'s claim and the lease has
    /// not run out; named by its id or by its run and name.
    pub async fn held_job<'a>(
        &self,
        which: impl Into<JobRef<'a>>,
        holder: &str,
    ) -> Result<Option<Job>> {
        let (id, run, name) = match which.into() {
            JobRef::Id(id) => (id.0, -1, ""),
            JobRef::Named(run, name) => (-1, run.0, name),
        };
        let row = sqlx::query(sql(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (id = $1 OR (run_id = $2 AND name = $3)) \
             AND holder = $4 AND state = 'running' AND lease_until > $5"
        )))
        .bind(id)
        .bind(run)
        .bind(name)
        .bind(holder)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job).transpose()
    }

    /// Whether `holder` holds a running job of the run (`run`) or of any run
    /// of the project (`project`): what reading its sources, artifacts and
    /// caches takes.
    pub async fn holds_job_in(
        &self,
        run: Option<RunId>,
        project: Option<crate::ProjectId>,
        holder: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs JOIN runs ON runs.id = jobs.run_id \
             WHERE jobs.holder = $1 AND jobs.state = 'running' AND jobs.lease_until > $2 \
             AND ($3 < 0 OR jobs.run_id = $3) AND ($4 < 0 OR runs.project_id = $4)",
        )
        .bind(holder)
        .bind(now_ms())
        .bind(run.map_or(-1, |r| r.0))
        .bind(project.map_or(-1, |p| p.0))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    pub async fn job(&self, id: JobId) -> Result<Job> {
        let row = sqlx::query(sql(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no job with id {id}")))?;
        job(&row)
    }
}

/// A run starts running when its first job is claimed.
async fn start_run(tx: &mut sqlx::Transaction<'_, sqlx::Any>, run: RunId, now: i64) -> Result<()> {
    let started =
        sqlx::query("UPDATE runs SET state = 'running' WHERE id = $1 AND state = 'queued'")
            .bind(run.0)
            .execute(&mut **tx)
            .await?;
    if started.rows_affected() == 1 {
        record_transition(
            tx,
            "run",
            run.0,
            Some(State::Queued),
            State::Running,
            None,
            now,
        )
        .await?;
    }
    Ok(())
}

/// For each project with running jobs: (project, running jobs, its limit).
async fn running_per_project(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<Vec<(i64, i64, Option<i64>)>> {
    let rows = sqlx::query(
        "SELECT runs.project_id AS project, COUNT(*) AS running, MAX(projects.max_running) AS max_running \
         FROM jobs JOIN runs ON runs.id = jobs.run_id JOIN projects ON projects.id = runs.project_id \
         WHERE jobs.state = 'running' GROUP BY runs.project_id",
    )
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("project")?,
                r.try_get("running")?,
                r.try_get("max_running")?,
            ))
        })
        .collect()
}
