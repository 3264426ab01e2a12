//! Sealed project secrets and API tokens. The store keeps bytes it cannot
//! read: sealing and opening happen in `slipway-secrets`, above it. Each
//! secret has a [`SecretScope`]: which jobs and environments may receive it.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{ProjectId, Result, Store, StoreError, now_ms};

/// Which jobs may receive a secret, by the branch of their run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobScope {
    /// No job: the secret is for deployments (and their checks) only.
    None,
    /// Jobs of runs on the project's protected branches.
    Protected,
    /// Jobs on every branch, reviewed or not (what secrets set before scopes had).
    Any,
}

impl JobScope {
    pub fn as_str(self) -> &'static str {
        match self {
            JobScope::None => "none",
            JobScope::Protected => "protected",
            JobScope::Any => "any",
        }
    }

    fn parse(text: &str) -> Result<JobScope> {
        match text {
            "none" => Ok(JobScope::None),
            "protected" => Ok(JobScope::Protected),
            "any" => Ok(JobScope::Any),
            other => Err(StoreError::Corrupt(format!(
                "unknown secret job scope `{other}`"
            ))),
        }
    }
}

/// Who may receive a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretScope {
    pub jobs: JobScope,
    /// Environments whose deployments (and health and smoke commands) get
    /// it; `None`: every environment.
    pub environments: Option<Vec<String>>,
}

impl SecretScope {
    /// The default for a new secret: jobs on protected branches and every
    /// environment (releases come from protected branches only).
    pub fn protected() -> SecretScope {
        SecretScope {
            jobs: JobScope::Protected,
            environments: None,
        }
    }

    /// For what the server alone reads (the webhook secret): nothing receives it.
    pub fn server_only() -> SecretScope {
        SecretScope {
            jobs: JobScope::None,
            environments: Some(Vec::new()),
        }
    }

    pub fn allows_environment(&self, environment: &str) -> bool {
        self.environments
            .as_ref()
            .is_none_or(|list| list.iter().any(|e| e == environment))
    }
}

/// A secret as a listing shows it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEntry {
    pub name: String,
    pub scope: SecretScope,
    pub updated_at: i64,
}

fn scope_of(row: &sqlx::any::AnyRow) -> Result<SecretScope> {
    let environments: Option<String> = row.try_get("environments")?;
    Ok(SecretScope {
        jobs: JobScope::parse(&row.try_get::<String, _>("jobs")?)?,
        environments: environments.map(|e| crate::strings_of(&e)).transpose()?,
    })
}

impl Store {
    pub async fn set_secret(
        &self,
        project: ProjectId,
        name: &str,
        sealed: &[u8],
        scope: &SecretScope,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM secrets WHERE project_id = $1 AND name = $2")
            .bind(project.0)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO secrets (project_id, name, sealed, updated_at, jobs, environments) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project.0)
        .bind(name)
        .bind(sealed.to_vec())
        .bind(now_ms())
        .bind(scope.jobs.as_str())
        .bind(scope.environments.as_deref().map(crate::json_of))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sealed value of a secret, if set.
    pub async fn secret(&self, project: ProjectId, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .scoped_secret(project, name)
            .await?
            .map(|(sealed, _)| sealed))
    }

    /// The sealed value of a secret and who may receive it, if set.
    pub async fn scoped_secret(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<Option<(Vec<u8>, SecretScope)>> {
        let row = sqlx::query(
            "SELECT sealed, jobs, environments FROM secrets WHERE project_id = $1 AND name = $2",
        )
        .bind(project.0)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("sealed")?, scope_of(&r)?)))
            .transpose()
    }

    /// Names only: values never leave the server in a listing.
    pub async fn secret_names(&self, project: ProjectId) -> Result<Vec<String>> {
        Ok(self
            .secrets(project)
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect())
    }

    /// Every secret of a project with its scope, by name.
    pub async fn secrets(&self, project: ProjectId) -> Result<Vec<SecretEntry>> {
        let rows = sqlx::query(
            "SELECT name, jobs, environments, updated_at FROM secrets \
             WHERE project_id = $1 ORDER BY name",
        )
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SecretEntry {
                    name: r.try_get("name")?,
                    scope: scope_of(r)?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
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
