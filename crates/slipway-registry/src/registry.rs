//! The registry service: repositories, uploads, blobs and manifests over the
//! blob store and the database. HTTP-free: the server's `/v2/` routes call
//! these and shape responses.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest as _, Sha256};
use slipway_store::{
    ManifestRecord, NewManifest, RepoKind, Repository, Store, StoreError, TagPolicy,
};

use crate::blob::BlobStore;
use crate::digest::Digest;
use crate::error::{RegistryError, Result};
use crate::manifest::{self, MAX_MANIFEST_BYTES};
use crate::upload::{self, Hashers};

/// One lock per slice of the digest space: placing a blob and the collector
/// removing it never interleave.
#[derive(Debug)]
pub(crate) struct Stripes(Vec<tokio::sync::Mutex<()>>);

impl Stripes {
    fn new() -> Stripes {
        Stripes((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    pub(crate) async fn lock(&self, digest: &Digest) -> tokio::sync::MutexGuard<'_, ()> {
        let n = usize::from_str_radix(&digest.hex()[..2], 16).unwrap_or(0);
        self.0[n % self.0.len()].lock().await
    }
}

/// A pushed manifest: its digest, and its subject for the `OCI-Subject` header.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    pub store: Store,
    pub blobs: BlobStore,
    pub(crate) stripes: Arc<Stripes>,
    hashers: Hashers,
    /// For proxy repositories' upstreams.
    pub(crate) http: reqwest::Client,
}

impl Registry {
    /// The registry over `store`, with blobs under `root`.
    pub fn new(store: Store, root: &Path) -> Registry {
        Registry {
            store,
            blobs: BlobStore::new(root),
            stripes: Arc::new(Stripes::new()),
            hashers: Hashers::default(),
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// An OCI repository (hosted or proxy) by name, or `NAME_UNKNOWN` saying how to add it.
    pub async fn oci_repository(&self, name: &str) -> Result<Repository> {
        let repo = self.store.repository(name).await?.ok_or_else(|| {
            RegistryError::NameUnknown(format!(
                "no repository `{name}`: image names are REPOSITORY/IMAGE, and `slipway repo add {name} --kind oci` adds it"
            ))
        })?;
        if repo.kind == RepoKind::Raw {
            return Err(RegistryError::NameUnknown(format!(
                "repository `{name}` holds raw files, not images; use /raw/{name}/PATH"
            )));
        }
        Ok(repo)
    }

    /// Refuses writes a repository's kind does not take.
    pub fn require_hosted(repo: &Repository) -> Result<()> {
        if repo.kind == RepoKind::OciProxy {
            return Err(RegistryError::Unsupported(format!(
                "repository `{}` is a pull-through cache of {}; push to a hosted repository",
                repo.name,
                repo.upstream.as_deref().unwrap_or("another registry")
            )));
        }
        Ok(())
    }

    // --- Uploads -------------------------------------------------------------

    pub async fn start_upload(&self, repo: &str, image: &str) -> Result<String> {
        self.blobs.prepare().await?;
        let id = upload_id();
        self.store.start_upload(&id, repo, image).await?;
        Ok(id)
    }

    /// How many bytes upload `id` holds.
    pub async fn upload_offset(&self, id: &str, repo: &str, image: &str) -> Result<u64> {
        self.known_upload(id, repo, image).await?;
        Ok(tokio::fs::metadata(self.blobs.upload_path(id))
            .await
            .map_or(0, |m| m.len()))
    }

    async fn known_upload(&self, id: &str, repo: &str, image: &str) -> Result<()> {
        if valid_upload_id(id) && self.store.upload_exists(id, repo, image).await? {
            Ok(())
        } else {
            Err(RegistryError::UploadUnknown(format!(
                "no upload `{id}` in progress for {repo}/{image}; start one with POST /v2/{repo}/{image}/blobs/uploads/"
            )))
        }
    }

    /// Appends a chunk. `start` (from `Content-Range`) must be where the upload ends.
    pub async fn append<E: std::fmt::Display>(
        &self,
        id: &str,
        repo: &str,
        image: &str,
        start: Option<u64>,
        body: impl Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    ) -> Result<u64> {
        let at = self.upload_offset(id, repo, image).await?;
        if let Some(start) = start.filter(|s| *s != at) {
            return Err(RegistryError::RangeInvalid {
                message: format!(
                    "this chunk starts at byte {start}, but the upload holds {at} bytes: send the chunk starting at {at}"
                ),
                offset: at,
            });
        }
        let path = self.blobs.upload_path(id);
        match upload::append(&path, &self.hashers, id, at, body).await {
            Ok(len) => Ok(len),
            Err(upload::AppendError::Blob(e)) => {
                // The server could not write (a full disk): the partial bytes
                // go at once, so they do not keep the disk full; the client
                // starts the upload again once space is back.
                self.drop_upload(id).await;
                Err(RegistryError::Blob(e))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes an upload's bytes and record, whatever state it is in.
    async fn drop_upload(&self, id: &str) {
        self.hashers.forget(id);
        let _ = tokio::fs::remove_file(self.blobs.upload_path(id)).await;
        // With the database full too, the record stays; the collector ends it.
        let _ = self.store.end_upload(id).await;
    }

    /// Finishes an upload with its last bytes: verified against `digest`,
    /// stored and linked into `repo`/`image`. A mismatch leaves nothing.
    pub async fn finish<E: std::fmt::Display>(
        &self,
        id: &str,
        repo: &str,
        image: &str,
        digest: &Digest,
        body: impl Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    ) -> Result<u64> {
        self.append(id, repo, image, None, body).await?;
        let path = self.blobs.upload_path(id);
        let (actual, size) = match upload::seal(&path, &self.hashers, id).await {
            Ok(sealed) => sealed,
            Err(e) => {
                self.drop_upload(id).await;
                return Err(e.into());
            }
        };
        if actual != *digest {
            self.cancel_upload(id, repo, image).await?;
            return Err(RegistryError::DigestInvalid(format!(
                "the uploaded content's digest is {actual}, not {digest}; nothing was stored"
            )));
        }
        if let Err(e) = self
            .commit_blob(&path, digest, size, Some((repo, image)))
            .await
        {
            self.drop_upload(id).await;
            return Err(e);
        }
        self.store.end_upload(id).await?;
        Ok(size)
    }

    /// Drops the running hash of an upload that will not continue.
    pub(crate) fn forget_upload(&self, id: &str) {
        self.hashers.forget(id);
    }

    /// Abandons an upload and its bytes.
    pub async fn cancel_upload(&self, id: &str, repo: &str, image: &str) -> Result<()> {
        self.known_upload(id, repo, image).await?;
        self.hashers.forget(id);
        let _ = tokio::fs::remove_file(self.blobs.upload_path(id)).await;
        self.store.end_upload(id).await?;
        Ok(())
    }

    // --- Blobs ---------------------------------------------------------------

    /// The size of a blob `repo`/`image` serves, or `BLOB_UNKNOWN`.
    pub async fn blob_size(&self, repo: &str, image: &str, digest: &Digest) -> Result<u64> {
        self.store
            .linked_blob(repo, image, &digest.to_string())
            .await?
            .map(|s| u64::try_from(s).unwrap_or(0))
            .ok_or_else(|| {
                RegistryError::BlobUnknown(format!("{repo}/{image} has no blob {digest}"))
            })
    }

    /// Stores content not sent through an upload session (manifests, raw
    /// files, proxied blobs), linking it into `link` when given.
    pub async fn store_bytes(
        &self,
        content: impl tokio::io::AsyncRead + Unpin,
        expected: Option<&Digest>,
        link: Option<(&str, &str)>,
    ) -> Result<(Digest, u64)> {
        let (temp, digest, size) = self.blobs.stage(content, expected).await?;
        if let Err(e) = self.commit_blob(&temp, &digest, size, link).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        Ok((digest, size))
    }

    /// Renames a verified file into the store and records it, under the
    /// blob's stripe lock so the collector cannot remove it in between.
    async fn commit_blob(
        &self,
        verified: &Path,
        digest: &Digest,
        size: u64,
        link: Option<(&str, &str)>,
    ) -> Result<()> {
        let _guard = self.stripes.lock(digest).await;
        let new = self.blobs.place(verified, digest).await?;
        let recorded = self
            .store
            .blob_stored(&digest.to_string(), to_i64(size), link)
            .await;
        if recorded.is_err() && new {
            // Unrecorded, the blob would hold its space until the collector's
            // grace ends; under the stripe lock nobody else can have linked it.
            let _ = self.blobs.delete(digest).await;
        }
        Ok(recorded?)
    }

    // --- Manifests -----------------------------------------------------------

    /// Stores a pushed manifest under `reference` (a tag, or its own digest).
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        image: &str,
        reference: &str,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<Pushed> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::ManifestTooLarge(bytes.len()));
        }
        let parsed =
            manifest::parse(content_type, &bytes).map_err(RegistryError::ManifestInvalid)?;
        let digest = Digest::from_bytes(&Sha256::digest(&bytes));
        let tag = match Digest::parse(reference) {
            Ok(named) if named == digest => None,
            Ok(named) => {
                return Err(RegistryError::DigestInvalid(format!(
                    "the manifest's digest is {digest}, not the {named} it was pushed as"
                )));
            }
            Err(_) if reference.starts_with("sha256:") || reference.contains(':') => {
                return Err(RegistryError::DigestInvalid(format!(
                    "`{reference}` is not a valid digest"
                )));
            }
            Err(_) => Some(valid_tag(reference)?),
        };
        self.store_bytes(&bytes[..], Some(&digest), Some((&repo.name, image)))
            .await?;
        let strings = |list: &[Digest]| list.iter().map(Digest::to_string).collect::<Vec<_>>();
        let digest_text = digest.to_string();
        let subject = parsed.subject.as_ref().map(Digest::to_string);
        let new = NewManifest {
            repo: &repo.name,
            image,
            digest: &digest_text,
            media_type: &parsed.media_type,
            size: to_i64(bytes.len() as u64),
            artifact_type: parsed.artifact_type.as_deref(),
            subject: subject.as_deref(),
            annotations: parsed.annotations.as_deref(),
            blobs: &strings(&parsed.blobs),
            children: &strings(&parsed.children),
            tag,
            immutable_tags: repo.policy == TagPolicy::Release,
            lazy: repo.kind == RepoKind::OciProxy,
        };
        self.store.put_manifest(&new).await.map_err(|e| match e {
            StoreError::NotFound(m) => RegistryError::ManifestBlobUnknown(m),
            StoreError::Conflict(m) => RegistryError::TagImmutable(m),
            other => other.into(),
        })?;
        Ok(Pushed {
            digest,
            subject: parsed.subject,
        })
    }

    /// A manifest by tag or digest, or `MANIFEST_UNKNOWN`.
    pub async fn manifest(
        &self,
        repo: &str,
        image: &str,
        reference: &str,
    ) -> Result<ManifestRecord> {
        self.store
            .manifest(repo, image, reference)
            .await?
            .ok_or_else(|| {
                RegistryError::ManifestUnknown(format!(
                    "{repo}/{image} has no manifest `{reference}`"
                ))
            })
    }

    /// A stored manifest's bytes (small: at most 4 MiB).
    pub async fn manifest_bytes(&self, record: &ManifestRecord) -> Result<Bytes> {
        let digest = Digest::parse(&record.digest)?;
        let path = self.blobs.path(&digest);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(crate::blob::io(&path))?;
        Ok(Bytes::from(bytes))
    }

    /// Deletes a manifest (by digest) or only a tag.
    pub async fn delete_manifest(&self, repo: &str, image: &str, reference: &str) -> Result<()> {
        let found = if reference.starts_with("sha256:") {
            Digest::parse(reference)?;
            self.store.delete_manifest(repo, image, reference).await?
        } else {
            self.store.delete_tag(repo, image, reference).await?
        };
        if found {
            Ok(())
        } else {
            Err(RegistryError::ManifestUnknown(format!(
                "{repo}/{image} has no manifest `{reference}`"
            )))
        }
    }
}

/// Tags as the spec allows them: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> Result<&str> {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        Ok(tag)
    } else {
        Err(RegistryError::ManifestInvalid(format!(
            "`{tag}` is not a valid tag: up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
        )))
    }
}

/// Image names below a repository: lowercase path components as the spec allows.
pub fn valid_image(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= 255
        && image.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        })
}

fn upload_id() -> String {
    let mut bytes = [0u8; 16];
    // A failing OS random source is no reason to refuse a push: fall back to time and counter.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes.copy_from_slice(&nanos.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Upload ids name files: only what `upload_id` makes is accepted.
fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
