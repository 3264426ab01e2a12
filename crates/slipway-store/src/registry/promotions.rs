//! Promotion: an image made available in another repository by reference
//! (rows, never bytes), with who, when, why and from where.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::blobs::link_in;
use super::manifests::set_tag;
use crate::{Result, Store, StoreError, now_ms};

#[derive(Debug, Clone)]
pub struct NewPromotion<'a> {
    pub image: &'a str,
    pub digest: &'a str,
    pub from_repo: &'a str,
    pub to_repo: &'a str,
    pub tag: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub by: &'a str,
    /// The target is a `release` repository: an existing tag never moves.
    pub immutable_tags: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Promotion {
    pub id: i64,
    pub image: String,
    pub digest: String,
    pub from_repo: String,
    pub to_repo: String,
    pub tag: Option<String>,
    pub reason: Option<String>,
    pub promoted_by: String,
    pub at: i64,
}

fn promotion(row: &AnyRow) -> Result<Promotion> {
    Ok(Promotion {
        id: row.try_get("id")?,
        image: row.try_get("image")?,
        digest: row.try_get("digest")?,
        from_repo: row.try_get("from_repo")?,
        to_repo: row.try_get("to_repo")?,
        tag: row.try_get("tag")?,
        reason: row.try_get("reason")?,
        promoted_by: row.try_get("promoted_by")?,
        at: row.try_get("at")?,
    })
}

impl Store {
    /// Makes a manifest, its index children and all their blobs available in
    /// `to_repo` under the same image name, in one transaction. Returns whether
    /// anything changed; only a promotion that changed something is recorded,
    /// so repeating one is harmless.
    pub async fn promote(&self, new: &NewPromotion<'_>) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let (manifests, blobs) = closure(&mut tx, new.from_repo, new.image, new.digest).await?;
        let now = now_ms();
        let mut changed = false;
        for digest in &manifests {
            let done = sqlx::query("INSERT INTO manifests (repo, image, digest, media_type, size, artifact_type, subject, annotations, pushed_at) SELECT $1, image, digest, media_type, size, artifact_type, subject, annotations, $4 FROM manifests WHERE repo = $2 AND image = $3 AND digest = $5 ON CONFLICT DO NOTHING")
                .bind(new.to_repo)
                .bind(new.from_repo)
                .bind(new.image)
                .bind(now)
                .bind(digest)
                .execute(&mut *tx)
                .await?;
            changed |= done.rows_affected() > 0;
        }
        for digest in manifests.iter().chain(&blobs) {
            // Touched, so a collection running now keeps what just became live here.
            sqlx::query("UPDATE blobs SET touched_at = $2 WHERE digest = $1")
                .bind(digest)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            link_in(&mut tx, new.to_repo, new.image, digest).await?;
        }
        if let Some(tag) = new.tag {
            changed |= set_tag(
                &mut tx,
                new.to_repo,
                new.image,
                tag,
                new.digest,
                new.immutable_tags,
            )
            .await?;
        }
        if changed {
            sqlx::query("INSERT INTO promotions (image, digest, from_repo, to_repo, tag, reason, promoted_by, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(new.image)
                .bind(new.digest)
                .bind(new.from_repo)
                .bind(new.to_repo)
                .bind(new.tag)
                .bind(new.reason)
                .bind(new.by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Promotions of an image (and digest, when given), oldest first.
    pub async fn promotions(&self, image: &str, digest: Option<&str>) -> Result<Vec<Promotion>> {
        let rows = sqlx::query("SELECT id, image, digest, from_repo, to_repo, tag, reason, promoted_by, at FROM promotions WHERE image = $1 AND ($2 = '' OR digest = $2) ORDER BY id")
            .bind(image)
            .bind(digest.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(promotion).collect()
    }
}

/// The manifests (the root and its index children, recursively) and blobs a
/// manifest of `repo`/`image` needs.
async fn closure(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo: &str,
    image: &str,
    root: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    let mut queue = vec![root.to_string()];
    while let Some(digest) = queue.pop() {
        if manifests.contains(&digest) {
            continue;
        }
        let is_manifest = sqlx::query(
            "SELECT 1 AS one FROM manifests WHERE repo = $1 AND image = $2 AND digest = $3",
        )
        .bind(repo)
        .bind(image)
        .bind(&digest)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
        if !is_manifest {
            if digest == root {
                return Err(StoreError::NotFound(format!(
                    "{repo}/{image} holds no manifest {root}"
                )));
            }
            blobs.push(digest);
            continue;
        }
        let targets = sqlx::query("SELECT target FROM manifest_refs WHERE manifest = $1")
            .bind(&digest)
            .fetch_all(&mut **tx)
            .await?;
        for row in &targets {
            queue.push(row.try_get("target")?);
        }
        manifests.push(digest);
    }
    blobs.sort();
    blobs.dedup();
    Ok((manifests, blobs))
}

/// An image a run pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunImage {
    pub job: String,
    pub reference: String,
    pub digest: String,
    pub pushed_at: i64,
}

impl Store {
    /// Records what a job of a run pushed (a retried job's later push wins).
    pub async fn record_run_images(
        &self,
        run: crate::RunId,
        job: &str,
        pushed: &[(String, String)],
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for (reference, digest) in pushed {
            sqlx::query("INSERT INTO run_images (run_id, job, reference, digest, pushed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, reference) DO UPDATE SET digest = excluded.digest, pushed_at = excluded.pushed_at")
                .bind(run.0)
                .bind(job)
                .bind(reference)
                .bind(digest)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn run_images(&self, run: crate::RunId) -> Result<Vec<RunImage>> {
        let rows = sqlx::query("SELECT job, reference, digest, pushed_at FROM run_images WHERE run_id = $1 ORDER BY pushed_at, reference")
            .bind(run.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RunImage {
                    job: r.try_get("job")?,
                    reference: r.try_get("reference")?,
                    digest: r.try_get("digest")?,
                    pushed_at: r.try_get("pushed_at")?,
                })
            })
            .collect()
    }
}
