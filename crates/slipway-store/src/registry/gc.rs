//! What the garbage collector and retention need: which blobs are alive,
//! which are idle, removing one only if it is still unused, and trimming old
//! tags of `ci` repositories.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use crate::{Result, Store, StoreError};

/// A tag retention removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RetiredTag {
    pub repo: String,
    pub image: String,
    pub tag: String,
    pub digest: String,
    /// Whether the manifest went too (no other tag pointed at it).
    pub manifest_removed: bool,
}

impl Store {
    /// Every blob something alive uses: manifests held by a repository, what
    /// they reference (through index children, recursively), raw files.
    pub async fn live_blobs(&self) -> Result<HashSet<String>> {
        let mut refs: HashMap<String, Vec<String>> = HashMap::new();
        for row in sqlx::query("SELECT manifest, target FROM manifest_refs")
            .fetch_all(&self.pool)
            .await?
        {
            refs.entry(row.try_get("manifest")?)
                .or_default()
                .push(row.try_get("target")?);
        }
        let mut live = HashSet::new();
        let mut queue: Vec<String> = strings(
            sqlx::query(
                "SELECT DISTINCT digest FROM manifests UNION SELECT DISTINCT digest FROM raw_files",
            )
            .fetch_all(&self.pool)
            .await?,
        )?;
        while let Some(digest) = queue.pop() {
            if let Some(targets) = refs.get(&digest) {
                queue.extend(targets.iter().filter(|t| !live.contains(*t)).cloned());
            }
            live.insert(digest);
        }
        Ok(live)
    }

    /// Every blob with its size and when it was last touched.
    pub async fn blobs_by_touch(&self) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query("SELECT digest, size, touched_at FROM blobs ORDER BY digest")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("digest")?,
                    r.try_get("size")?,
                    r.try_get("touched_at")?,
                ))
            })
            .collect()
    }

    /// Forgets a blob only if it is still idle since `before` and nothing
    /// held references it directly: a manifest pushed meanwhile touched it,
    /// and then it stays. The caller removes the file when this says yes.
    pub async fn forget_blob(&self, digest: &str, before: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "DELETE FROM blobs WHERE digest = $1 AND touched_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM manifests WHERE digest = $1) \
             AND NOT EXISTS (SELECT 1 FROM raw_files WHERE digest = $1) \
             AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests m ON m.digest = r.manifest WHERE r.target = $1)",
        )
        .bind(digest)
        .bind(before)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM manifest_refs WHERE manifest = $1")
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Keeps the newest `keep` tags of each image of `repo`; older ones go,
    /// and their manifests with them when no other tag points there. Anything
    /// a release repository holds is never touched.
    pub async fn apply_retention(
        &self,
        repo: &str,
        keep: i64,
        dry_run: bool,
    ) -> Result<Vec<RetiredTag>> {
        let mut retired = Vec::new();
        for (_, image) in self.images(Some(repo)).await? {
            let tags = self.tag_digests(repo, &image).await?;
            let kept: HashSet<&str> = tags
                .iter()
                .take(usize::try_from(keep).unwrap_or(0))
                .map(|(_, d, _)| d.as_str())
                .collect();
            for (tag, digest, _) in tags.iter().skip(usize::try_from(keep).unwrap_or(0)) {
                if self.in_release(digest).await? {
                    continue;
                }
                let manifest_removed = !kept.contains(digest.as_str())
                    && tags.iter().filter(|(_, d, _)| d == digest).count() == 1;
                if !dry_run {
                    self.delete_tag(repo, &image, tag).await?;
                    if manifest_removed {
                        self.delete_manifest(repo, &image, digest).await?;
                    }
                }
                retired.push(RetiredTag {
                    repo: repo.to_string(),
                    image: image.clone(),
                    tag: tag.clone(),
                    digest: digest.clone(),
                    manifest_removed,
                });
            }
        }
        Ok(retired)
    }

    /// Whether a release repository holds this manifest.
    async fn in_release(&self, digest: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 AS one FROM manifests m JOIN repositories r ON r.name = m.repo WHERE r.policy = 'release' AND m.digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }
}

fn strings(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<String>> {
    rows.iter()
        .map(|r| r.try_get(0).map_err(StoreError::from))
        .collect()
}
