//! Manifests and tags: pushed, read by tag or digest, listed, deleted.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Backend, Result, Store, StoreError, now_ms, sql};

/// A manifest as one repository/image holds it (its bytes are the blob of the same digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestRecord {
    pub repo: String,
    pub image: String,
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
    /// The manifest's `annotations`, as JSON.
    pub annotations: Option<String>,
    pub pushed_at: i64,
}

const COLUMNS: &str = "m.repo, m.image, m.digest, m.media_type, m.size, m.artifact_type, m.subject, m.annotations, m.pushed_at";

fn manifest(row: &AnyRow) -> Result<ManifestRecord> {
    Ok(ManifestRecord {
        repo: row.try_get("repo")?,
        image: row.try_get("image")?,
        digest: row.try_get("digest")?,
        media_type: row.try_get("media_type")?,
        size: row.try_get("size")?,
        artifact_type: row.try_get("artifact_type")?,
        subject: row.try_get("subject")?,
        annotations: row.try_get("annotations")?,
        pushed_at: row.try_get("pushed_at")?,
    })
}

/// A manifest being pushed. Its bytes are stored (and linked) already.
#[derive(Debug, Clone)]
pub struct NewManifest<'a> {
    pub repo: &'a str,
    pub image: &'a str,
    pub digest: &'a str,
    pub media_type: &'a str,
    pub size: i64,
    pub artifact_type: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub annotations: Option<&'a str>,
    /// Config and layers: blobs this repository/image must already serve.
    pub blobs: &'a [String],
    /// Index children: manifests this repository/image must already hold.
    pub children: &'a [String],
    pub tag: Option<&'a str>,
    /// A `release` repository: an existing tag never moves.
    pub immutable_tags: bool,
    /// A proxy caches manifests before their blobs (those come on demand):
    /// references are recorded without being required.
    pub lazy: bool,
}

/// One page of tags, in lexical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPage {
    pub tags: Vec<String>,
    /// Whether tags follow the last one returned.
    pub more: bool,
}

impl Store {
    /// Records a pushed manifest and its tag in one transaction. A reference
    /// this repository/image does not hold is `NotFound` naming it; moving a
    /// tag of a release repository is `Conflict`. Every referenced blob is
    /// touched, so a garbage collection running now spares it.
    pub async fn put_manifest(&self, new: &NewManifest<'_>) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        for blob in new.blobs.iter().filter(|_| !new.lazy) {
            require(
                &mut tx,
                "SELECT 1 FROM blob_links WHERE repo = $2 AND image = $3 AND digest = $1",
                new,
                blob,
                now,
                "blob",
            )
            .await?;
        }
        for child in new.children.iter().filter(|_| !new.lazy) {
            require(
                &mut tx,
                "SELECT 1 FROM manifests WHERE repo = $2 AND image = $3 AND digest = $1",
                new,
                child,
                now,
                "manifest",
            )
            .await?;
        }
        super::blobs::link_in(&mut tx, new.repo, new.image, new.digest).await?;
        sqlx::query("INSERT INTO manifests (repo, image, digest, media_type, size, artifact_type, subject, annotations, pushed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING")
            .bind(new.repo)
            .bind(new.image)
            .bind(new.digest)
            .bind(new.media_type)
            .bind(new.size)
            .bind(new.artifact_type)
            .bind(new.subject)
            .bind(new.annotations)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for target in new.blobs.iter().chain(new.children) {
            sqlx::query("INSERT INTO manifest_refs (manifest, target) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(new.digest)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(tag) = new.tag {
            set_tag(
                &mut tx,
                new.repo,
                new.image,
                tag,
                new.digest,
                new.immutable_tags,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A manifest of `repo`/`image` by tag or by digest (`sha256:…`).
    pub async fn manifest(
        &self,
        repo: &str,
        image: &str,
        reference: &str,
    ) -> Result<Option<ManifestRecord>> {
        let query = if reference.starts_with("sha256:") {
            format!(
                "SELECT {COLUMNS} FROM manifests m WHERE m.repo = $1 AND m.image = $2 AND m.digest = $3"
            )
        } else {
            format!(
                "SELECT {COLUMNS} FROM tags t JOIN manifests m ON m.repo = t.repo AND m.image = t.image AND m.digest = t.digest WHERE t.repo = $1 AND t.image = $2 AND t.tag = $3"
            )
        };
        let row = sqlx::query(sql(query))
            .bind(repo)
            .bind(image)
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(manifest).transpose()
    }

    /// When a tag was last set (proxies re-check theirs after a while).
    pub async fn tag_updated_at(&self, repo: &str, image: &str, tag: &str) -> Result<Option<i64>> {
        let row =
            sqlx::query("SELECT updated_at FROM tags WHERE repo = $1 AND image = $2 AND tag = $3")
                .bind(repo)
                .bind(image)
                .bind(tag)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("updated_at")?),
            None => None,
        })
    }

    /// Marks a tag as just confirmed (a proxy checked its upstream).
    pub async fn refresh_tag(&self, repo: &str, image: &str, tag: &str) -> Result<()> {
        sqlx::query("UPDATE tags SET updated_at = $4 WHERE repo = $1 AND image = $2 AND tag = $3")
            .bind(repo)
            .bind(image)
            .bind(tag)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a manifest from `repo`/`image` with the tags pointing at it.
    pub async fn delete_manifest(&self, repo: &str, image: &str, digest: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM tags WHERE repo = $1 AND image = $2 AND digest = $3")
            .bind(repo)
            .bind(image)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        let done =
            sqlx::query("DELETE FROM manifests WHERE repo = $1 AND image = $2 AND digest = $3")
                .bind(repo)
                .bind(image)
                .bind(digest)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_tag(&self, repo: &str, image: &str, tag: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tags WHERE repo = $1 AND image = $2 AND tag = $3")
            .bind(repo)
            .bind(image)
            .bind(tag)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Up to `limit` tags after `last`, in byte order on both backends.
    pub async fn tags(
        &self,
        repo: &str,
        image: &str,
        last: Option<&str>,
        limit: i64,
    ) -> Result<TagPage> {
        let collate = match self.backend {
            Backend::Sqlite => "BINARY",
            Backend::Postgres => "\"C\"",
        };
        let rows = sqlx::query(sql(format!(
            "SELECT tag FROM tags WHERE repo = $1 AND image = $2 AND tag COLLATE {collate} > $3 ORDER BY tag COLLATE {collate} LIMIT $4"
        )))
        .bind(repo)
        .bind(image)
        .bind(last.unwrap_or(""))
        .bind(limit.saturating_add(1))
        .fetch_all(&self.pool)
        .await?;
        let mut tags = rows
            .iter()
            .map(|r| r.try_get("tag").map_err(StoreError::from))
            .collect::<Result<Vec<String>>>()?;
        let more = tags.len() as i64 > limit;
        tags.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(TagPage { tags, more })
    }

    /// Tags of `repo`/`image` with the digest each points at, newest first.
    pub async fn tag_digests(&self, repo: &str, image: &str) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query("SELECT tag, digest, updated_at FROM tags WHERE repo = $1 AND image = $2 ORDER BY updated_at DESC, tag DESC")
            .bind(repo)
            .bind(image)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("tag")?,
                    r.try_get("digest")?,
                    r.try_get("updated_at")?,
                ))
            })
            .collect()
    }

    /// Manifests of `repo`/`image` whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &str,
        image: &str,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestRecord>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM manifests m WHERE m.repo = $1 AND m.image = $2 AND m.subject = $3 AND ($4 = '' OR m.artifact_type = $4) ORDER BY m.pushed_at, m.digest"
        )))
        .bind(repo)
        .bind(image)
        .bind(subject)
        .bind(artifact_type.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(manifest).collect()
    }

    /// Every (repository, image) that holds a manifest, in order.
    pub async fn images(&self, repo: Option<&str>) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT DISTINCT repo, image FROM manifests WHERE ($1 = '' OR repo = $1) ORDER BY repo, image")
            .bind(repo.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("repo")?, r.try_get("image")?)))
            .collect()
    }
}

/// Touches `target` if `exists` (a query over `$1` target, `$2` repo, `$3`
/// image) finds it; otherwise the push names what is missing.
async fn require(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    exists: &str,
    new: &NewManifest<'_>,
    target: &str,
    now: i64,
    what: &str,
) -> Result<()> {
    let done = sqlx::query(sql(format!(
        "UPDATE blobs SET touched_at = $4 WHERE digest = $1 AND EXISTS ({exists})"
    )))
    .bind(target)
    .bind(new.repo)
    .bind(new.image)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "the manifest references {what} {target}, which {}/{} does not hold: push it first",
            new.repo, new.image
        )));
    }
    Ok(())
}

/// Points `tag` at `digest`; in a release repository an existing tag never
/// moves. Insert first, then compare: two pushes racing for a new tag on
/// PostgreSQL meet at the unique key, and the second sees the first's digest.
pub(super) async fn set_tag(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo: &str,
    image: &str,
    tag: &str,
    digest: &str,
    immutable: bool,
) -> Result<bool> {
    let now = now_ms();
    let inserted = sqlx::query("INSERT INTO tags (repo, image, tag, digest, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo, image, tag) DO NOTHING")
        .bind(repo)
        .bind(image)
        .bind(tag)
        .bind(digest)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    if inserted.rows_affected() == 1 {
        return Ok(true);
    }
    let existing: String =
        sqlx::query("SELECT digest FROM tags WHERE repo = $1 AND image = $2 AND tag = $3")
            .bind(repo)
            .bind(image)
            .bind(tag)
            .fetch_one(&mut **tx)
            .await?
            .try_get("digest")?;
    if existing == digest {
        return Ok(false);
    }
    if immutable {
        return Err(StoreError::Conflict(format!(
            "tag `{tag}` of {repo}/{image} already points to {existing}, and tags in release repository `{repo}` never move: push under a new tag"
        )));
    }
    sqlx::query(
        "UPDATE tags SET digest = $4, updated_at = $5 WHERE repo = $1 AND image = $2 AND tag = $3",
    )
    .bind(repo)
    .bind(image)
    .bind(tag)
    .bind(digest)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}
