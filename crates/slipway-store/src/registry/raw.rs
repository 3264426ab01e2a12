//! Files of raw repositories.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawFile {
    pub path: String,
    pub digest: String,
    pub size: i64,
    pub updated_at: i64,
}

fn raw_file(row: &AnyRow) -> Result<RawFile> {
    Ok(RawFile {
        path: row.try_get("path")?,
        digest: row.try_get("digest")?,
        size: row.try_get("size")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Points `path` of a raw repository at a stored blob (replacing what was there).
    pub async fn put_raw_file(
        &self,
        repo: &str,
        path: &str,
        digest: &str,
        size: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO raw_files (repo, path, digest, size, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo, path) DO UPDATE SET digest = excluded.digest, size = excluded.size, updated_at = excluded.updated_at")
            .bind(repo)
            .bind(path)
            .bind(digest)
            .bind(size)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn raw_file(&self, repo: &str, path: &str) -> Result<Option<RawFile>> {
        let row = sqlx::query(
            "SELECT path, digest, size, updated_at FROM raw_files WHERE repo = $1 AND path = $2",
        )
        .bind(repo)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(raw_file).transpose()
    }

    /// Files whose path starts with `prefix` (a directory, ending in `/`, or empty), by path.
    pub async fn raw_files(&self, repo: &str, prefix: &str) -> Result<Vec<RawFile>> {
        // A prefix match without LIKE, whose `%` and `_` would need escaping.
        let rows = sqlx::query("SELECT path, digest, size, updated_at FROM raw_files WHERE repo = $1 AND substr(path, 1, length($2)) = $2 ORDER BY path")
            .bind(repo)
            .bind(prefix)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(raw_file).collect()
    }

    pub async fn delete_raw_file(&self, repo: &str, path: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM raw_files WHERE repo = $1 AND path = $2")
            .bind(repo)
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
