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

/// The jobs of one name that ended in one state in a window: how many, and
/// their run and queue times (ms) for percentiles. Aggregated in the database,
/// so a window of 30 000 jobs is a handful of rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobGroup {
    pub name: String,
    pub state: String,
    pub count: i64,
    /// Start to end, of those that started.
    pub run_ms: Vec<i64>,
    /// Queued to started, of those that started.
    pub queue_ms: Vec<i64>,
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

    /// Jobs of a project's runs that finished in `[from, to)`, by name and state.
    pub async fn job_groups(
        &self,
        project: ProjectId,
        from: i64,
        to: i64,
    ) -> Result<Vec<JobGroup>> {
        let list = |expr: &str| match self.backend {
            crate::Backend::Sqlite => format!("GROUP_CONCAT({expr})"),
            crate::Backend::Postgres => format!("STRING_AGG(CAST({expr} AS TEXT), ',')"),
        };
        let query = format!(
            "SELECT j.name, j.state, COUNT(*) AS n, {} AS runs, {} AS queues FROM jobs j JOIN runs r ON r.id = j.run_id WHERE r.project_id = $1 AND j.finished_at >= $2 AND j.finished_at < $3 GROUP BY j.name, j.state ORDER BY j.name, j.state",
            list("j.finished_at - j.started_at"),
            list("j.started_at - j.queued_at"),
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(project.0)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
        let numbers = |text: Option<String>| -> Vec<i64> {
            text.unwrap_or_default()
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        };
        rows.iter()
            .map(|r| {
                Ok(JobGroup {
                    name: r.try_get("name")?,
                    state: r.try_get("state")?,
                    count: r.try_get("n")?,
                    run_ms: numbers(r.try_get("runs")?),
                    queue_ms: numbers(r.try_get("queues")?),
                })
            })
            .collect()
    }
}
