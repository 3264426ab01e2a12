//! `oci-proxy` repositories: a pull-through cache of another registry.
//!
//! A tag is served from the cache while it is younger than the repository's
//! TTL, and asked of the upstream after that; a digest never changes, so once
//! cached it is never asked again. Blobs are fetched when first pulled,
//! streamed to disk and verified like any upload. When the upstream fails,
//! whatever is cached is served, so pulls keep working through an outage.
//! Upstreams are reached anonymously over plain HTTP.

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use reqwest::StatusCode;
use slipway_store::{ManifestRecord, Repository, now_ms};
use tokio_util::io::StreamReader;

use crate::digest::Digest;
use crate::error::{RegistryError, Result};
use crate::manifest::{MANIFEST_TYPES, MAX_MANIFEST_BYTES};
use crate::registry::Registry;

impl Registry {
    /// A manifest of a proxy repository, from the cache or the upstream.
    pub async fn proxied_manifest(
        &self,
        repo: &Repository,
        image: &str,
        reference: &str,
    ) -> Result<ManifestRecord> {
        let cached = self.store.manifest(&repo.name, image, reference).await?;
        let fresh = match &cached {
            Some(_) if reference.starts_with("sha256:") => true,
            Some(_) => self.tag_is_fresh(repo, image, reference).await?,
            None => false,
        };
        if let (true, Some(record)) = (fresh, &cached) {
            return Ok(record.clone());
        }
        match self.fetch_manifest(repo, image, reference).await {
            Ok(()) => self.manifest(&repo.name, image, reference).await,
            Err(e @ (RegistryError::Upstream(_) | RegistryError::ManifestUnknown(_))) => {
                match cached {
                    Some(record) => {
                        tracing::warn!("serving cached {}/{image}:{reference}: {e}", repo.name);
                        Ok(record)
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn tag_is_fresh(&self, repo: &Repository, image: &str, tag: &str) -> Result<bool> {
        let ttl_ms = repo.ttl_seconds.unwrap_or(0).saturating_mul(1000);
        Ok(self
            .store
            .tag_updated_at(&repo.name, image, tag)
            .await?
            .is_some_and(|at| now_ms() - at < ttl_ms))
    }

    async fn fetch_manifest(&self, repo: &Repository, image: &str, reference: &str) -> Result<()> {
        let response = self
            .upstream_get(repo, &format!("{image}/manifests/{reference}"))
            .await?
            .header(reqwest::header::ACCEPT, MANIFEST_TYPES.join(", "))
            .send()
            .await
            .map_err(|e| unreachable_upstream(repo, &e))?;
        let response = checked(repo, response, || {
            RegistryError::ManifestUnknown(format!(
                "upstream {} has no manifest {image}:{reference}",
                upstream(repo)
            ))
        })?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_MANIFEST_BYTES as u64)
        {
            return Err(RegistryError::Upstream(format!(
                "upstream manifest {image}:{reference} is too large"
            )));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes: Bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable_upstream(repo, &e))?;
        self.put_manifest(repo, image, reference, content_type.as_deref(), bytes)
            .await?;
        if !reference.starts_with("sha256:") {
            // Unchanged upstream: the tag is fresh again all the same.
            self.store.refresh_tag(&repo.name, image, reference).await?;
        }
        Ok(())
    }

    /// The size of a blob of a proxy repository, fetched and stored first if it is not cached.
    pub async fn proxied_blob(
        &self,
        repo: &Repository,
        image: &str,
        digest: &Digest,
    ) -> Result<u64> {
        if let Ok(size) = self.blob_size(&repo.name, image, digest).await {
            return Ok(size);
        }
        let response = self
            .upstream_get(repo, &format!("{image}/blobs/{digest}"))
            .await?
            .send()
            .await
            .map_err(|e| unreachable_upstream(repo, &e))?;
        let response = checked(repo, response, || {
            RegistryError::BlobUnknown(format!(
                "upstream {} has no blob {digest} in {image}",
                upstream(repo)
            ))
        })?;
        let body = StreamReader::new(response.bytes_stream().map_err(std::io::Error::other));
        let (_, size) = self
            .store_bytes(body, Some(digest), Some((&repo.name, image)))
            .await?;
        Ok(size)
    }

    async fn upstream_get(&self, repo: &Repository, path: &str) -> Result<reqwest::RequestBuilder> {
        Ok(self.http.get(format!("{}/v2/{path}", upstream(repo))))
    }
}

fn upstream(repo: &Repository) -> &str {
    repo.upstream.as_deref().unwrap_or("")
}

fn unreachable_upstream(repo: &Repository, e: &reqwest::Error) -> RegistryError {
    RegistryError::Upstream(format!(
        "upstream {} of `{}` failed: {e}",
        upstream(repo),
        repo.name
    ))
}

fn checked(
    repo: &Repository,
    response: reqwest::Response,
    missing: impl FnOnce() -> RegistryError,
) -> Result<reqwest::Response> {
    match response.status() {
        s if s.is_success() => Ok(response),
        StatusCode::NOT_FOUND => Err(missing()),
        s => Err(RegistryError::Upstream(format!(
            "upstream {} of `{}` answered {s}",
            upstream(repo),
            repo.name
        ))),
    }
}
