//! What a job takes from and leaves to the stores: caches restored before
//! the steps (local, then shared through the server), and after success the
//! caches that missed and the artifacts.

use std::path::{Path, PathBuf};

use super::*;

impl Attempt<'_> {
    /// Restores each cache; returns the rendered key of each and whether it was a hit.
    pub(super) async fn restore_caches(
        &mut self,
        ws: &Path,
        stamps: std::sync::Arc<crate::SourceStamps>,
    ) -> Result<Vec<(String, bool)>, String> {
        let mut keys = Vec::new();
        for cache in &self.job.caches {
            // As GitHub's hashFiles: globs that match nothing hash to nothing
            // (a project without a lock file yet still gets its cache).
            let mut unmatched = Vec::new();
            let key =
                cache.key.render(&self.vars(), |globs| {
                    match crate::files::hash_matching(ws, globs) {
                        Ok(Some(h)) => Ok(h),
                        Ok(None) => {
                            unmatched.push(format!("{globs:?}"));
                            Ok(String::new())
                        }
                        Err(e) => Err(format!("cache key `{}`: {e}", cache.key)),
                    }
                })?;
            for globs in unmatched {
                note(
                    &self.ctx.events,
                    self.name(),
                    format!(
                        "cache key `{}`: hash {globs} matches no file; it hashes nothing",
                        cache.key
                    ),
                )
                .await;
            }
            let key = CacheStore::sanitize(&key);
            if key.is_empty() {
                return Err(format!(
                    "cache key `{}` renders to an empty name here (an empty branch on a detached commit?); add a fixed prefix",
                    cache.key
                ));
            }
            self.fetch_shared(&key).await;
            let (store, dest, k) = (self.ctx.caches.clone(), ws.to_path_buf(), key.clone());
            let home = self.cache_home(cache).await;
            let stamps = stamps.clone();
            let hit = blocking(move || {
                if let Some(home) = &home {
                    std::fs::create_dir_all(home)?;
                }
                store.restore(&k, &dest, home.as_deref(), &stamps)
            })
            .await
            .map_err(|e| format!("cannot restore cache `{key}`: {e}"))?;
            let text = if hit { "restored" } else { "no entry yet for" };
            note(
                &self.ctx.events,
                self.name(),
                format!("cache: {text} `{key}`"),
            )
            .await;
            if hit {
                self.report.cache_hits.push(key.clone());
            } else {
                self.report.cache_misses.push(key.clone());
            }
            keys.push((key, hit));
        }
        Ok(keys)
    }

    /// The home whose `~/…` paths `cache` keeps: a sandboxed host job's own
    /// (per project and protection level). Other jobs' HOME is the server
    /// user's or the image's, never the job's to keep, so their `~/…` paths
    /// are skipped, and the log says so.
    async fn cache_home(&self, cache: &slipway_spec::Cache) -> Option<PathBuf> {
        if !cache.paths.iter().any(|p| p.starts_with("~/")) {
            return None;
        }
        if self.ctx.sandbox.is_some() && self.job.image.is_none() {
            return Some(JobHome::home_of(
                &self.ctx.work_root,
                &self.ctx.project,
                self.ctx.protected,
            ));
        }
        note(
            &self.ctx.events,
            self.name(),
            format!(
                "cache `{}`: `~/…` paths skipped: only host jobs confined by a server worker or agent have a home of their own",
                cache.key
            ),
        )
        .await;
        None
    }
    /// Brings a shared entry into the local store when the local one lacks it.
    async fn fetch_shared(&self, key: &str) {
        let Some(remote) = &self.ctx.cache_remote else {
            return;
        };
        let entry = self.ctx.caches.root.join(key);
        if entry.is_dir() {
            return;
        }
        if let Err(e) = remote.fetch(key, &entry).await {
            note(
                &self.ctx.events,
                self.name(),
                format!("cache: cannot fetch `{key}` from the server ({e}); building without it"),
            )
            .await;
        }
    }

    /// Sends a newly saved entry to the shared cache; a failure costs speed only.
    async fn share(&self, key: &str) {
        let Some(remote) = &self.ctx.cache_remote else {
            return;
        };
        if let Err(e) = remote.store(key, &self.ctx.caches.root.join(key)).await {
            note(
                &self.ctx.events,
                self.name(),
                format!("cache: cannot send `{key}` to the server: {e}"),
            )
            .await;
        }
    }

    /// After success: save caches that missed, keep artifacts.
    pub(super) async fn keep(
        &mut self,
        ws: &Path,
        keys: &[(String, bool)],
        stamps: std::sync::Arc<crate::SourceStamps>,
    ) -> Result<(), String> {
        for (cache, (key, hit)) in self.job.caches.iter().zip(keys) {
            if *hit {
                continue;
            }
            let (store, src, k, paths) = (
                self.ctx.caches.clone(),
                ws.to_path_buf(),
                key.clone(),
                cache.paths.clone(),
            );
            let home = self.cache_home(cache).await;
            let stamps = stamps.clone();
            let saved = blocking(move || store.save(&k, &src, home.as_deref(), &paths, &stamps))
                .await
                .map_err(|e| format!("cannot save cache `{key}`: {e}"))?;
            note(
                &self.ctx.events,
                self.name(),
                format!("cache: saved `{key}` ({} paths)", saved.len()),
            )
            .await;
            self.share(key).await;
        }
        if !self.job.artifacts.is_empty() {
            let (store, src, name, globs) = (
                self.ctx.artifacts.clone(),
                ws.to_path_buf(),
                self.name().to_string(),
                self.job.artifacts.clone(),
            );
            let kept = blocking(move || store.save(&name, &src, &globs))
                .await
                .map_err(|e| format!("cannot keep artifacts: {e}"))?;
            if kept.is_empty() {
                return Err(format!(
                    "artifacts {:?} match no file in the workspace",
                    self.job.artifacts
                ));
            }
            note(
                &self.ctx.events,
                self.name(),
                format!("artifacts: kept {} paths", kept.len()),
            )
            .await;
            self.report.artifacts = kept;
        }
        Ok(())
    }
}
