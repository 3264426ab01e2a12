//! Runs: one pipeline execution for one exact commit, and its jobs.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::jobs::{JOB_COLUMNS, job};
use crate::{
    Job, ProjectId, Result, Run, RunId, State, Store, StoreError, json_of, now_ms,
    record_transition, sql, state_of,
};

const COLUMNS: &str =
    "id, project_id, number, commit_sha, branch, state, reason, created_at, finished_at";

/// A job to queue with a new run.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub name: String,
    pub labels: Vec<String>,
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
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

impl Store {
    /// Creates a run with the next number of its project and queues its jobs,
    /// all in one transaction.
    pub async fn create_run(
        &self,
        project: ProjectId,
        commit: &str,
        branch: &str,
        jobs: &[NewJob],
    ) -> Result<Run> {
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
            "INSERT INTO runs (project_id, number, commit_sha, branch, state, created_at) VALUES ($1, $2, $3, $4, 'queued', $5) RETURNING {COLUMNS}"
        )))
        .bind(project.0)
        .bind(number)
        .bind(commit)
        .bind(branch)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let created = run(&row)?;
        record_transition(&mut tx, "run", created.id.0, None, State::Queued, None, now).await?;
        for new in jobs {
            let id: i64 = sqlx::query(
                "INSERT INTO jobs (run_id, name, state, labels, queued_at) VALUES ($1, $2, 'queued', $3, $4) RETURNING id",
            )
            .bind(created.id.0)
            .bind(&new.name)
            .bind(json_of(&new.labels))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            record_transition(&mut tx, "job", id, None, State::Queued, None, now).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    pub async fn run(&self, id: RunId) -> Result<Run> {
        let row = sqlx::query(sql(format!("SELECT {COLUMNS} FROM runs WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no run with id {id}")))?;
        run(&row)
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
        let now = now_ms();
        let finished = to.is_final().then_some(now);
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE runs SET state = $1, reason = $2, finished_at = $3 WHERE id = $4 AND state = $5")
            .bind(to.as_str())
            .bind(reason)
            .bind(finished)
            .bind(id.0)
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        record_transition(&mut tx, "run", id.0, Some(from), to, reason, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}
