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
            }
        }
        let live = self.store.live_blobs().await?;
        self.free_unreferenced(&live, cutoff, &mut report).await?;
        if !options.dry_run {
            report.uploads_removed = self.remove_abandoned_uploads(started).await?;
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

    async fn remove_abandoned_uploads(&self, now: i64) -> Result<usize> {
        let before = now - to_i64(UPLOAD_EXPIRY.as_millis() as u64);
        let ids = self.store.uploads_started_before(before).await?;
        for id in &ids {
            let _ = tokio::fs::remove_file(self.blobs.upload_path(id)).await;
            self.store.end_upload(id).await?;
        }
        Ok(ids.len())
    }
}
