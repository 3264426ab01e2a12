//! Retention and online garbage collection.
//!
//! The collector runs while pushes and pulls go on. It frees a blob only if
//! no manifest a repository holds reaches it, no raw file uses it, and
//! nothing touched it during the grace window (an upload finishing, a client
//! checking it exists before a push, a manifest referencing it). The final
//! check and the removal happen under the blob's stripe lock and in one
//! conditional delete, so a manifest pushed during the collection keeps its
//! blobs. Uploads abandoned for a day are removed too.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;
use slipway_store::{RetiredTag, TagPolicy, now_ms};

use crate::digest::Digest;
use crate::error::Result;
use crate::registry::{Registry, to_i64};

/// Uploads untouched this long are abandoned.
const UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Blobs touched more recently than this are spared.
    pub grace: Duration,
    /// Report what would go; change nothing.
    pub dry_run: bool,
}

/// What a collection freed (or, dry, would free).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub retired_tags: Vec<RetiredTag>,
    /// Manifests of retention-managed repositories that nothing kept any more.
    pub untagged_manifests_removed: usize,
    pub blobs_freed: usize,
    pub bytes_freed: u64,
    /// Unreferenced blobs left because they were touched inside the grace window.
    pub blobs_in_grace: usize,
    pub uploads_removed: usize,
    pub duration_ms: i64,
}

impl Registry {
    /// Applies retention to every `ci` repository that asks for it, then collects.
    pub async fn collect_garbage(&self, options: GcOptions) -> Result<GcReport> {
        let started = now_ms();
        let cutoff = started - to_i64(options.grace.as_millis() as u64);
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        for repo in self.store.repositories().await? {
            if let (TagPolicy::Ci, Some(keep)) = (repo.policy, repo.keep_tags) {
                let retired = self
                    .store
                    .apply_retention(&repo.name, keep, options.dry_run)
                    .await?;
                report.retired_tags.extend(retired);
                let untagged = self
                    .store
                    .remove_untagged(&repo.name, cutoff, options.dry_run)
                    .await?;
                report.untagged_manifests_removed += untagged.len();
            }
        }
        let live = self.store.live_blobs().await?;
        self.free_unreferenced(&live, cutoff, &mut report).await?;
        if !options.dry_run {
            report.uploads_removed = self.remove_abandoned_uploads(started).await?;
            report.blobs_freed += self.remove_stray_files(cutoff).await?;
        }
        report.duration_ms = now_ms() - started;
        Ok(report)
    }

    /// Frees unreferenced blobs untouched since `cutoff`; counts those still in grace.
    async fn free_unreferenced(
        &self,
        live: &HashSet<String>,
        cutoff: i64,
        report: &mut GcReport,
    ) -> Result<()> {
        for (digest, size, touched_at) in self.store.blobs_by_touch().await? {
            if live.contains(&digest) {
                continue;
            }
            if touched_at >= cutoff {
                report.blobs_in_grace += 1;
                continue;
            }
            let Ok(parsed) = Digest::parse(&digest) else {
                continue;
            };
            if !report.dry_run {
                let _guard = self.stripes.lock(&parsed).await;
                if !self.store.forget_blob(&digest, cutoff).await? {
                    continue;
                }
                self.blobs.delete(&parsed).await?;
            }
            report.blobs_freed += 1;
            report.bytes_freed += u64::try_from(size).unwrap_or(0);
        }
        Ok(())
    }

    /// Upload sessions and staged files untouched for a day: their clients
    /// are gone (the file's modification time is the last chunk's).
    async fn remove_abandoned_uploads(&self, now: i64) -> Result<usize> {
        let before = now - to_i64(UPLOAD_EXPIRY.as_millis() as u64);
        let mut removed = 0;
        for id in self.store.uploads_started_before(before).await? {
            let path = self.blobs.upload_path(&id);
            if modified_ms(&path).await.is_some_and(|m| m >= before) {
                continue;
            }
            let _ = tokio::fs::remove_file(&path).await;
            self.forget_upload(&id);
            self.store.end_upload(&id).await?;
            removed += 1;
        }
        // Staged files of uploads that never finished (a crash mid-stream).
        let Ok(mut dir) = tokio::fs::read_dir(self.blobs.upload_path("")).await else {
            return Ok(removed);
        };
        while let Ok(Some(entry)) = dir.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = modified_ms(&entry.path()).await.is_some_and(|m| m < before);
            if stale && !self.store.upload_exists_any(&name).await? {
                let _ = tokio::fs::remove_file(entry.path()).await;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Blob files the database does not know (a crash between the rename and
    /// the record) and that nothing touched since `cutoff`.
    async fn remove_stray_files(&self, cutoff: i64) -> Result<usize> {
        let mut removed = 0;
        for path in self.blobs.files().await? {
            let Some(digest) = path
                .file_name()
                .and_then(|n| Digest::parse(&format!("sha256:{}", n.to_string_lossy())).ok())
            else {
                continue;
            };
            if modified_ms(&path).await.is_none_or(|m| m >= cutoff) {
                continue;
            }
            let _guard = self.stripes.lock(&digest).await;
            if self.store.blob_size(&digest.to_string()).await?.is_none() {
                self.blobs.delete(&digest).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

async fn modified_ms(path: &std::path::Path) -> Option<i64> {
    let modified = tokio::fs::metadata(path).await.ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    async fn registry(dir: &std::path::Path) -> Registry {
        let url = format!("sqlite://{}", dir.join("db.sqlite").display());
        let store = slipway_store::Store::open(&url).await.expect("store");
        Registry::new(store, &dir.join("registry"))
    }

    fn age(path: &std::path::Path, by: Duration) {
        let file = std::fs::File::options()
            .append(true)
            .open(path)
            .expect("open");
        file.set_modified(SystemTime::now() - by).expect("mtime");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn collects_stray_files_and_abandoned_uploads_but_not_recorded_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(dir.path()).await;
        // A recorded blob a raw file uses, and a file the database never heard of.
        let repo = slipway_store::Repository {
            name: "files".into(),
            kind: slipway_store::RepoKind::Raw,
            policy: TagPolicy::Ci,
            keep_tags: None,
            anonymous_pull: false,
            upstream: None,
            ttl_seconds: None,
            created_at: 0,
        };
        registry
            .store
            .put_repository(&repo, false)
            .await
            .expect("repo");
        let kept = registry
            .put_raw("files", "a.txt", &b"kept"[..], None)
            .await
            .expect("raw");
        let (stray, _) = registry
            .blobs
            .put(&b"stray"[..], None)
            .await
            .expect("stray");
        age(&registry.blobs.path(&stray), Duration::from_secs(7200));
        // A staged file a crash left a day ago, and an upload still going.
        let staged = registry.blobs.upload_path("1234-5678-0");
        std::fs::write(&staged, b"half a blob").expect("write");
        age(&staged, UPLOAD_EXPIRY + Duration::from_secs(60));
        let going = registry.start_upload("files", "x").await.expect("upload");
        std::fs::write(registry.blobs.upload_path(&going), b"partial").expect("write");

        let options = GcOptions {
            grace: Duration::from_secs(3600),
            dry_run: false,
        };
        let report = registry.collect_garbage(options).await.expect("gc");
        assert_eq!(report.blobs_freed, 1, "{report:?}");
        assert!(!registry.blobs.path(&stray).exists(), "the stray file went");
        let kept = Digest::parse(&kept.digest).expect("digest");
        assert!(
            registry.blobs.path(&kept).exists(),
            "the recorded blob stayed"
        );
        assert!(!staged.exists(), "the crash's leftover went");
        assert!(
            registry.blobs.upload_path(&going).exists(),
            "the live upload stayed"
        );
        assert_eq!(report.uploads_removed, 1);
    }
}
