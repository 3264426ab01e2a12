//! Projects: a git repository Slipway watches.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Project, ProjectId, Result, Store, StoreError, json_of, now_ms, sql, strings_of};

const COLUMNS: &str = "id, name, git_url, branches, poll_seconds, max_running, created_at";

fn project(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: ProjectId(row.try_get("id")?),
        name: row.try_get("name")?,
        git_url: row.try_get("git_url")?,
        branches: strings_of(&row.try_get::<String, _>("branches")?)?,
        poll_seconds: row.try_get("poll_seconds")?,
        max_running: row.try_get("max_running")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    pub async fn add_project(
        &self,
        name: &str,
        git_url: &str,
        branches: &[String],
        poll_seconds: Option<i64>,
    ) -> Result<Project> {
        if self.project(name).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "a project named `{name}` exists already"
            )));
        }
        let row = sqlx::query(sql(format!(
            "INSERT INTO projects (name, git_url, branches, poll_seconds, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        )))
        .bind(name)
        .bind(git_url)
        .bind(json_of(branches))
        .bind(poll_seconds)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match e {
            // Two adds racing: the unique index decides.
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(format!("a project named `{name}` exists already"))
            }
            e => e.into(),
        })?;
        project(&row)
    }

    pub async fn project(&self, name: &str) -> Result<Option<Project>> {
        let row = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM projects WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(project).transpose()
    }

    pub async fn project_by_id(&self, id: ProjectId) -> Result<Project> {
        let row = sqlx::query(sql(format!("SELECT {COLUMNS} FROM projects WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no project with id {id}")))?;
        project(&row)
    }

    pub async fn projects(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query(sql(format!("SELECT {COLUMNS} FROM projects ORDER BY name")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(project).collect()
    }

    /// At most `limit` jobs of the project run at once (`None`: no limit).
    pub async fn set_max_running(&self, project: ProjectId, limit: Option<i64>) -> Result<()> {
        sqlx::query("UPDATE projects SET max_running = $1 WHERE id = $2")
            .bind(limit)
            .bind(project.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a project with its runs, jobs and logs.
    pub async fn remove_project(&self, name: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM projects WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no project named `{name}`")));
        }
        Ok(())
    }
}
