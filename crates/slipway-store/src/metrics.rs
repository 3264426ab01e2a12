//! What delivery metrics are computed from: counts for Prometheus, and the
//! finished deployments and jobs of a window for the DORA figures.

use sqlx::Row;

use crate::{ProjectId, Result, Store};

/// Counts over the whole server, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// (state, count) of runs.
    pub runs: Vec<(String, i64)>,
    /// (state, count) of jobs.
    pub jobs: Vec<(String, i64)>,
    /// (state, count) of deployments.
    pub deployments: Vec<(String, i64)>,
    /// Bytes of every blob the registry holds.
    pub registry_bytes: i64,
}

/// A finished deployment, for the DORA figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentFact {
    pub id: i64,
    pub environment: String,
    pub release_id: i64,
    pub action: String,
    pub state: String,
    pub created_at: i64,
    pub finished_at: i64,
    /// The release's commits, for lead time (their times, when known).
    pub commits: Vec<crate::ReleaseCommit>,
}

/// A finished job, for pipeline durations and success ratios.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFact {
    pub name: String,
    pub state: String,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: i64,
}

impl Store {
    pub async fn counts(&self) -> Result<Counts> {
        let by_state = |table: &'static str| async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT state, COUNT(*) AS n FROM {table} GROUP BY state ORDER BY state"
            )))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
                .collect::<Result<Vec<(String, i64)>>>()
        };
        let bytes = sqlx::query("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS n FROM blobs")
            .fetch_one(&self.pool)
            .await?;
        Ok(Counts {
            runs: by_state("runs").await?,
            jobs: by_state("jobs").await?,
            deployments: by_state("deployments").await?,
            registry_bytes: bytes.try_get("n")?,
        })
    }

    /// Deployments of a project that ended in `[from, to)`, oldest first
    /// (those a person stopped at a decision point are not deployments).
    pub async fn deployment_facts(
        &self,
        project: ProjectId,
        from: i64,
        to: i64,
    ) -> Result<Vec<DeploymentFact>> {
        let rows = sqlx::query("SELECT d.id, d.environment, d.release_id, d.action, d.state, d.created_at, d.finished_at, r.commits FROM deployments d JOIN releases r ON r.id = d.release_id WHERE d.project_id = $1 AND d.finished_at >= $2 AND d.finished_at < $3 AND d.state IN ('succeeded', 'failed', 'rolled_back') ORDER BY d.finished_at, d.id")
            .bind(project.0)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let commits: String = r.try_get("commits")?;
                Ok(DeploymentFact {
                    id: r.try_get("id")?,
                    environment: r.try_get("environment")?,
                    release_id: r.try_get("release_id")?,
                    action: r.try_get("action")?,
                    state: r.try_get("state")?,
                    created_at: r.try_get("created_at")?,
                    finished_at: r.try_get("finished_at")?,
                    commits: serde_json::from_str(&commits)
                        .map_err(|e| crate::StoreError::Corrupt(format!("release commits: {e}")))?,
                })
            })
            .collect()
    }

    /// Jobs of a project's runs that finished in `[from, to)`.
    pub async fn job_facts(&self, project: ProjectId, from: i64, to: i64) -> Result<Vec<JobFact>> {
        let rows = sqlx::query("SELECT j.name, j.state, j.queued_at, j.started_at, j.finished_at FROM jobs j JOIN runs r ON r.id = j.run_id WHERE r.project_id = $1 AND j.finished_at >= $2 AND j.finished_at < $3 ORDER BY j.finished_at")
            .bind(project.0)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(JobFact {
                    name: r.try_get("name")?,
                    state: r.try_get("state")?,
                    queued_at: r.try_get("queued_at")?,
                    started_at: r.try_get("started_at")?,
                    finished_at: r.try_get("finished_at")?,
                })
            })
            .collect()
    }
}
