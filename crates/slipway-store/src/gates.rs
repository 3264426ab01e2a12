//! Quality gate outcomes of runs, and their history per project and branch.

use serde::Serialize;
use sqlx::Row;

use crate::{ProjectId, Result, RunId, Store, StoreError, now_ms};

/// A job's gate outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateRecord {
    pub run: i64,
    pub commit: String,
    pub branch: String,
    pub job: String,
    pub status: String,
    /// Conditions, measures, uncovered new lines: what `slipway gate --json` prints.
    pub report: serde_json::Value,
    pub at: i64,
}

impl Store {
    /// Records a job's gate outcome (a retried job's last one wins).
    pub async fn record_gate(
        &self,
        run: RunId,
        job: &str,
        report: &serde_json::Value,
    ) -> Result<()> {
        let status = report["status"].as_str().unwrap_or("failed");
        sqlx::query("INSERT INTO run_gates (run_id, job, status, report, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, job) DO UPDATE SET status = excluded.status, report = excluded.report, created_at = excluded.created_at")
            .bind(run.0)
            .bind(job)
            .bind(status)
            .bind(report.to_string())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The issue fingerprints a job's gate recorded at `commit` (its latest
    /// run there): new issues of later runs are judged against them.
    pub async fn gate_fingerprints(
        &self,
        project: ProjectId,
        commit: &str,
        job: &str,
    ) -> Result<Option<Vec<String>>> {
        let row = sqlx::query("SELECT g.report FROM run_gates g JOIN runs r ON r.id = g.run_id WHERE r.project_id = $1 AND r.commit_sha = $2 AND g.job = $3 ORDER BY r.number DESC LIMIT 1")
            .bind(project.0)
            .bind(commit)
            .bind(job)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let report: String = row.try_get("report")?;
        let report: serde_json::Value = serde_json::from_str(&report)
            .map_err(|e| StoreError::Corrupt(format!("gate report: {e}")))?;
        Ok(Some(
            report["issue_fingerprints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect(),
        ))
    }

    /// The gates of one run.
    pub async fn gates_of(&self, run: RunId) -> Result<Vec<GateRecord>> {
        self.gates("r.id = $1", run.0, None, 1000).await
    }

    /// A project's gate outcomes, newest first, on one branch or all.
    pub async fn gate_history(
        &self,
        project: ProjectId,
        branch: Option<&str>,
        limit: i64,
    ) -> Result<Vec<GateRecord>> {
        self.gates("r.project_id = $1", project.0, branch, limit)
            .await
    }

    async fn gates(
        &self,
        filter: &str,
        id: i64,
        branch: Option<&str>,
        limit: i64,
    ) -> Result<Vec<GateRecord>> {
        let rows = sqlx::query(crate::sql(format!(
            "SELECT r.number, r.commit_sha, r.branch, g.job, g.status, g.report, g.created_at FROM run_gates g JOIN runs r ON r.id = g.run_id WHERE {filter} AND ($2 = '' OR r.branch = $2) ORDER BY r.number DESC, g.job LIMIT $3"
        )))
        .bind(id)
        .bind(branch.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let report: String = r.try_get("report")?;
                Ok(GateRecord {
                    run: r.try_get("number")?,
                    commit: r.try_get("commit_sha")?,
                    branch: r.try_get("branch")?,
                    job: r.try_get("job")?,
                    status: r.try_get("status")?,
                    report: serde_json::from_str(&report)
                        .map_err(|e| StoreError::Corrupt(format!("gate report: {e}")))?,
                    at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
