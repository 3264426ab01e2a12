//! Sealed project secrets and API tokens. The store keeps bytes it cannot
//! read: sealing and opening happen in `slipway-secrets`, above it.

use sqlx::Row;

use crate::{ProjectId, Result, Store, StoreError, now_ms};

impl Store {
    pub async fn set_secret(&self, project: ProjectId, name: &str, sealed: &[u8]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM secrets WHERE project_id = $1 AND name = $2")
            .bind(project.0)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO secrets (project_id, name, sealed, updated_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(project.0)
        .bind(name)
        .bind(sealed.to_vec())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sealed value of a secret, if set.
    pub async fn secret(&self, project: ProjectId, name: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT sealed FROM secrets WHERE project_id = $1 AND name = $2")
            .bind(project.0)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("sealed")).transpose()?)
    }

    /// Names only: values never leave the server in a listing.
    pub async fn secret_names(&self, project: ProjectId) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM secrets WHERE project_id = $1 ORDER BY name")
            .bind(project.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    pub async fn remove_secret(&self, project: ProjectId, name: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM secrets WHERE project_id = $1 AND name = $2")
            .bind(project.0)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no secret named `{name}`")));
        }
        Ok(())
    }

    /// Stores an API token by its hash.
    pub async fn add_token(&self, hash: &str, name: &str, role: &str) -> Result<()> {
        sqlx::query("INSERT INTO tokens (hash, name, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(name)
            .bind(role)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Who a token stands for, for approvals: an email (compared with commit
    /// authors) and groups.
    pub async fn set_token_identity(
        &self,
        hash: &str,
        email: Option<&str>,
        groups: &[String],
    ) -> Result<()> {
        sqlx::query("UPDATE tokens SET email = $1, groups_json = $2 WHERE hash = $3")
            .bind(email)
            .bind(serde_json::to_string(groups).unwrap_or_else(|_| "[]".into()))
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The email and groups of the token with this hash.
    pub async fn token_identity(&self, hash: &str) -> Result<(Option<String>, Vec<String>)> {
        let row = sqlx::query("SELECT email, groups_json FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok((None, Vec::new()));
        };
        let groups: String = row.try_get("groups_json")?;
        Ok((row.try_get("email")?, crate::strings_of(&groups)?))
    }

    /// The name and role of the token with this hash.
    pub async fn token(&self, hash: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT name, role FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("name")?, r.try_get("role")?)))
            .transpose()
    }

    pub async fn token_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
