//! When each step of a job ran: recorded by the worker as steps start and
//! end, read back per job and per run so people can see where time goes.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{JobId, Result, RunId, Store};

/// One step of one try at a job. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTime {
    /// Which try at the job (1 for the first).
    pub attempt: i64,
    /// The step's place in the job, from 0.
    pub index: i64,
    pub title: String,
    pub started_at: i64,
    /// `None` while the step runs.
    pub finished_at: Option<i64>,
    pub exit_code: Option<i64>,
}

impl StepTime {
    /// The most steps a job records: step indexes run from 0 to this, less
    /// one (steps past it are not recorded), so a worker cannot grow the table.
    pub const MAX_STEPS: i64 = 10_000;

    /// How long the step took, once it ended.
    pub fn duration_ms(&self) -> Option<i64> {
        self.finished_at
            .map(|f| f.saturating_sub(self.started_at).max(0))
    }
}

/// The longest step title kept: titles come from workers, and a page of
/// steps must stay a page.
const MAX_TITLE: usize = 500;

impl Store {
    /// Records steps as they start and end; a step recorded again (its end,
    /// or a retried upload) is updated in place. Steps whose index is not
    /// below [`StepTime::MAX_STEPS`] are not recorded. (The agent API brings an
    /// agent's times within the job's, and its try to the job's.)
    pub async fn record_steps(&self, job: JobId, steps: &[StepTime]) -> Result<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for s in steps
            .iter()
            .filter(|s| (0..StepTime::MAX_STEPS).contains(&s.index))
        {
            let title: String = s.title.chars().take(MAX_TITLE).collect();
            sqlx::query(
                "INSERT INTO job_steps (job_id, attempt, step, title, started_at, finished_at, exit_code) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (job_id, attempt, step) DO UPDATE SET title = excluded.title, \
                 started_at = excluded.started_at, finished_at = excluded.finished_at, exit_code = excluded.exit_code",
            )
            .bind(job.0)
            .bind(s.attempt)
            .bind(s.index)
            .bind(title)
            .bind(s.started_at)
            .bind(s.finished_at)
            .bind(s.exit_code)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The steps of each job of a run, as last tried, in order.
    pub async fn steps_of_run(&self, run: RunId) -> Result<Vec<(JobId, StepTime)>> {
        let rows = sqlx::query(
            "SELECT s.job_id, s.attempt, s.step, s.title, s.started_at, s.finished_at, s.exit_code \
             FROM job_steps s JOIN jobs j ON j.id = s.job_id \
             WHERE j.run_id = $1 AND s.attempt = j.attempt ORDER BY s.job_id, s.step",
        )
        .bind(run.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let step = StepTime {
                    attempt: row.try_get("attempt")?,
                    index: row.try_get("step")?,
                    title: row.try_get("title")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    exit_code: row.try_get("exit_code")?,
                };
                Ok((JobId(row.try_get("job_id")?), step))
            })
            .collect()
    }
}
