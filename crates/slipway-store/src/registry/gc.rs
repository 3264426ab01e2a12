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
    /// unless a release repository holds what they point at. The manifests
    /// left untagged go with [`Store::remove_untagged`].
    pub async fn apply_retention(
        &self,
        repo: &str,
        keep: i64,
        dry_run: bool,
    ) -> Result<Vec<RetiredTag>> {
        let keep = usize::try_from(keep).unwrap_or(0);
        let mut retired = Vec::new();
        for (_, image) in self.images(Some(repo)).await? {
            for (tag, digest, _) in self.tag_digests(repo, &image).await?.into_iter().skip(keep) {
                if self.in_release(&digest).await? {
                    continue;
                }
                if !dry_run {
                    self.delete_tag(repo, &image, &tag).await?;
                }
                retired.push(RetiredTag {
                    repo: repo.to_string(),
                    image: image.clone(),
                    tag,
                    digest,
                });
            }
        }
        Ok(retired)
    }

    /// Removes manifests of `repo` pushed before `before` that nothing keeps:
    /// no tag, no index of the same image, no subject still held (a
    /// signature or SBOM stays with its image), no release repository.
    /// Returns (image, digest) of each.
    pub async fn remove_untagged(
        &self,
        repo: &str,
        before: i64,
        dry_run: bool,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT m.image, m.digest FROM manifests m WHERE m.repo = $1 AND m.pushed_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.image = m.image AND t.digest = m.digest) \
             AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests p ON p.digest = r.manifest AND p.repo = m.repo AND p.image = m.image WHERE r.target = m.digest) \
             AND NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repo = m.repo AND s.image = m.image AND s.digest = m.subject) \
             AND NOT EXISTS (SELECT 1 FROM manifests x JOIN repositories r ON r.name = x.repo WHERE r.policy = 'release' AND x.digest = m.digest) \
             ORDER BY m.image, m.digest",
        )
        .bind(repo)
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        let mut removed = Vec::new();
        for row in &rows {
            let (image, digest): (String, String) = (row.try_get("image")?, row.try_get("digest")?);
            if !dry_run {
                self.delete_manifest(repo, &image, &digest).await?;
            }
            removed.push((image, digest));
        }
        Ok(removed)
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
