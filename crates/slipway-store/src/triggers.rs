//! What triggers remember: webhook deliveries already handled, and the branch
//! heads a poller last saw.

use sqlx::Row;

use crate::{ProjectId, Result, RunId, Store, json_of, now_ms};

impl Store {
    /// Records a webhook delivery id; `false` when it was seen before (a
    /// redelivery), so the caller creates no second run.
    pub async fn first_delivery(&self, project: ProjectId, delivery: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let seen = sqlx::query(
            "SELECT 1 FROM webhook_deliveries WHERE project_id = $1 AND delivery_id = $2",
        )
        .bind(project.0)
        .bind(delivery)
        .fetch_optional(&mut *tx)
        .await?;
        if seen.is_some() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO webhook_deliveries (project_id, delivery_id, received_at) VALUES ($1, $2, $3)")
            .bind(project.0)
            .bind(delivery)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets a delivery whose push could not be built, so a redelivery is tried again.
    pub async fn forget_delivery(&self, project: ProjectId, delivery: &str) -> Result<()> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE project_id = $1 AND delivery_id = $2")
            .bind(project.0)
            .bind(delivery)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Notes which runs a delivery created (for the delivery log).
    pub async fn delivery_runs(
        &self,
        project: ProjectId,
        delivery: &str,
        runs: &[RunId],
    ) -> Result<()> {
        let ids: Vec<String> = runs.iter().map(|r| r.0.to_string()).collect();
        sqlx::query(
            "UPDATE webhook_deliveries SET run_ids = $1 WHERE project_id = $2 AND delivery_id = $3",
        )
        .bind(json_of(&ids))
        .bind(project.0)
        .bind(delivery)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The head commit last seen for each branch of a project.
    pub async fn branch_heads(&self, project: ProjectId) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT branch, commit_sha FROM branch_heads WHERE project_id = $1 ORDER BY branch",
        )
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("branch")?, r.try_get("commit_sha")?)))
            .collect()
    }

    /// Remembers a branch head; `false` when it was already the known head.
    pub async fn set_branch_head(
        &self,
        project: ProjectId,
        branch: &str,
        commit: &str,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let known: Option<String> = sqlx::query(
            "SELECT commit_sha FROM branch_heads WHERE project_id = $1 AND branch = $2",
        )
        .bind(project.0)
        .bind(branch)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("commit_sha"))
        .transpose()?;
        if known.as_deref() == Some(commit) {
            return Ok(false);
        }
        let query = if known.is_some() {
            "UPDATE branch_heads SET commit_sha = $3 WHERE project_id = $1 AND branch = $2"
        } else {
            "INSERT INTO branch_heads (project_id, branch, commit_sha) VALUES ($1, $2, $3)"
        };
        sqlx::query(query)
            .bind(project.0)
            .bind(branch)
            .bind(commit)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
