//! Repositories: added, listed, removed.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{RepoKind, Repository, TagPolicy};
use crate::{Result, Store, StoreError, now_ms, sql};

const COLUMNS: &str =
    "name, kind, policy, keep_tags, anonymous_pull, upstream, ttl_seconds, created_at";

fn repository(row: &AnyRow) -> Result<Repository> {
    let kind: String = row.try_get("kind")?;
    let policy: String = row.try_get("policy")?;
    Ok(Repository {
        name: row.try_get("name")?,
        kind: RepoKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown repository kind `{kind}`")))?,
        policy: TagPolicy::parse(&policy)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown tag policy `{policy}`")))?,
        keep_tags: row.try_get("keep_tags")?,
        anonymous_pull: row.try_get::<i64, _>("anonymous_pull")? != 0,
        upstream: row.try_get("upstream")?,
        ttl_seconds: row.try_get("ttl_seconds")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Adds a repository, or with `replace` updates one of the same name and
    /// kind (the server's config file is applied this way at every start).
    pub async fn put_repository(&self, repo: &Repository, replace: bool) -> Result<Repository> {
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT kind FROM repositories WHERE name = $1")
            .bind(&repo.name)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            let kind: String = row.try_get("kind")?;
            if !replace {
                return Err(StoreError::Conflict(format!(
                    "a repository named `{}` exists already",
                    repo.name
                )));
            }
            if kind != repo.kind.as_str() {
                return Err(StoreError::Conflict(format!(
                    "repository `{}` is of kind {kind}, not {}; remove it first to change its kind",
                    repo.name,
                    repo.kind.as_str()
                )));
            }
            sqlx::query("UPDATE repositories SET policy = $2, keep_tags = $3, anonymous_pull = $4, upstream = $5, ttl_seconds = $6 WHERE name = $1")
                .bind(&repo.name)
                .bind(repo.policy.as_str())
                .bind(repo.keep_tags)
                .bind(i64::from(repo.anonymous_pull))
                .bind(&repo.upstream)
                .bind(repo.ttl_seconds)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(sql(format!(
                "INSERT INTO repositories ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            )))
            .bind(&repo.name)
            .bind(repo.kind.as_str())
            .bind(repo.policy.as_str())
            .bind(repo.keep_tags)
            .bind(i64::from(repo.anonymous_pull))
            .bind(&repo.upstream)
            .bind(repo.ttl_seconds)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM repositories WHERE name = $1"
        )))
        .bind(&repo.name)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        repository(&row)
    }

    pub async fn repository(&self, name: &str) -> Result<Option<Repository>> {
        let row = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM repositories WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(repository).transpose()
    }

    pub async fn repositories(&self) -> Result<Vec<Repository>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM repositories ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(repository).collect()
    }

    /// Removes a repository with its manifests, tags and files; the blobs
    /// they used are left for the garbage collector.
    pub async fn remove_repository(&self, name: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        // Tags reference manifests, which reference the repository: the
        // cascades take them, but tags first keeps SQLite's order simple.
        sqlx::query("DELETE FROM tags WHERE repo = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM repositories WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "no repository named `{name}`"
            )));
        }
        tx.commit().await?;
        Ok(())
    }
}
