//! Blobs as the database knows them: stored, linked into a repository/image,
//! touched; and uploads in progress.

use sqlx::Row;

use crate::{Result, Store, StoreError, now_ms};

impl Store {
    /// Records a blob that is now on disk, touched now, and links it into
    /// `repo`/`image` when given. Called with the blob's stripe lock held, so
    /// the garbage collector cannot remove the file in between.
    pub async fn blob_stored(
        &self,
        digest: &str,
        size: i64,
        link: Option<(&str, &str)>,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO blobs (digest, size, touched_at) VALUES ($1, $2, $3) ON CONFLICT (digest) DO UPDATE SET touched_at = excluded.touched_at")
            .bind(digest)
            .bind(size)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        if let Some((repo, image)) = link {
            link_in(&mut tx, repo, image, digest).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The size of a blob `repo`/`image` may serve.
    pub async fn linked_blob(&self, repo: &str, image: &str, digest: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT b.size FROM blob_links l JOIN blobs b ON b.digest = l.digest WHERE l.repo = $1 AND l.image = $2 AND l.digest = $3")
            .bind(repo)
            .bind(image)
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        size_of(row)
    }

    /// Marks a blob as in use now (the garbage collector spares it for its grace window).
    pub async fn touch_blob(&self, digest: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE blobs SET touched_at = $2 WHERE digest = $1")
            .bind(digest)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The size of a stored blob, anywhere.
    pub async fn blob_size(&self, digest: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        size_of(row)
    }

    /// Cross-repository mount: links a blob `from` may serve into `to`, touching it.
    pub async fn mount_blob(
        &self,
        from: (&str, &str),
        to: (&str, &str),
        digest: &str,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let known = sqlx::query(
            "SELECT 1 AS one FROM blob_links WHERE repo = $1 AND image = $2 AND digest = $3",
        )
        .bind(from.0)
        .bind(from.1)
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !known {
            return Ok(false);
        }
        let touched = sqlx::query("UPDATE blobs SET touched_at = $2 WHERE digest = $1")
            .bind(digest)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        // The collector took it a moment ago: the client uploads it instead.
        if touched.rows_affected() == 0 {
            return Ok(false);
        }
        link_in(&mut tx, to.0, to.1, digest).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a blob from `repo`/`image` (its bytes stay while anything else uses them).
    pub async fn unlink_blob(&self, repo: &str, image: &str, digest: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM blob_links WHERE repo = $1 AND image = $2 AND digest = $3")
                .bind(repo)
                .bind(image)
                .bind(digest)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn start_upload(&self, id: &str, repo: &str, image: &str) -> Result<()> {
        sqlx::query("INSERT INTO uploads (id, repo, image, started_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(repo)
            .bind(image)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether upload `id` is in progress for `repo`/`image`.
    pub async fn upload_exists(&self, id: &str, repo: &str, image: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 AS one FROM uploads WHERE id = $1 AND repo = $2 AND image = $3")
                .bind(id)
                .bind(repo)
                .bind(image)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Whether upload `id` is in progress anywhere.
    pub async fn upload_exists_any(&self, id: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 AS one FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    pub async fn end_upload(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Uploads started before `before` (abandoned: the collector removes them).
    pub async fn uploads_started_before(&self, before: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE started_at < $1")
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(StoreError::from))
            .collect()
    }
}

pub(super) async fn link_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo: &str,
    image: &str,
    digest: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO blob_links (repo, image, digest) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(repo)
    .bind(image)
    .bind(digest)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The `size` column of a row that may be missing.
fn size_of(row: Option<sqlx::any::AnyRow>) -> Result<Option<i64>> {
    Ok(row.map(|r| r.try_get("size")).transpose()?)
}
