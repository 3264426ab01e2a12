//! Raw repositories: files under paths, stored as blobs like everything else
//! (the same content under two paths is stored once).

use slipway_store::{RawFile, RepoKind, Repository};

use crate::digest::Digest;
use crate::error::{RegistryError, Result};
use crate::registry::{Registry, to_i64};

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RawEntry {
    pub name: String,
    /// `file` or `dir`.
    pub kind: &'static str,
    pub size: Option<i64>,
    pub sha256: Option<String>,
}

impl Registry {
    /// A raw repository by name, or why it cannot be used as one.
    pub async fn raw_repository(&self, name: &str) -> Result<Repository> {
        let repo = self.store.repository(name).await?.ok_or_else(|| {
            RegistryError::NameUnknown(format!(
                "no repository `{name}`: `slipway repo add {name} --kind raw` adds it"
            ))
        })?;
        if repo.kind != RepoKind::Raw {
            return Err(RegistryError::NameUnknown(format!(
                "repository `{name}` holds images, not raw files; use /v2/{name}/IMAGE"
            )));
        }
        Ok(repo)
    }

    /// Stores `content` at `path`, verified against `expected` when given.
    pub async fn put_raw(
        &self,
        repo: &str,
        path: &str,
        content: impl tokio::io::AsyncRead + Unpin,
        expected: Option<&Digest>,
    ) -> Result<RawFile> {
        check_path(path)?;
        let (digest, size) = self.store_bytes(content, expected, None).await?;
        self.store
            .put_raw_file(repo, path, &digest.to_string(), to_i64(size))
            .await?;
        self.raw_file(repo, path).await
    }

    pub async fn raw_file(&self, repo: &str, path: &str) -> Result<RawFile> {
        self.store
            .raw_file(repo, path)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(format!("{repo} has no file `{path}`")))
    }

    /// The files and directories directly under `dir` (empty for the top, else ending in `/`).
    pub async fn raw_listing(&self, repo: &str, dir: &str) -> Result<Vec<RawEntry>> {
        let mut entries: Vec<RawEntry> = Vec::new();
        for file in self.store.raw_files(repo, dir).await? {
            let rest = &file.path[dir.len()..];
            match rest.split_once('/') {
                Some((sub, _)) => {
                    let name = format!("{sub}/");
                    if entries.last().is_none_or(|e| e.name != name) {
                        entries.push(RawEntry {
                            name,
                            kind: "dir",
                            size: None,
                            sha256: None,
                        });
                    }
                }
                None => entries.push(RawEntry {
                    name: rest.to_string(),
                    kind: "file",
                    size: Some(file.size),
                    sha256: Some(file.digest.trim_start_matches("sha256:").to_string()),
                }),
            }
        }
        Ok(entries)
    }

    pub async fn delete_raw(&self, repo: &str, path: &str) -> Result<()> {
        if self.store.delete_raw_file(repo, path).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown(format!(
                "{repo} has no file `{path}`"
            )))
        }
    }
}

/// Paths are relative, without empty, `.` or `..` components.
fn check_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= 1024
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::ManifestInvalid(format!(
            "`{path}` is not a file path: use relative components without `.`, `..` or empty parts"
        )))
    }
}
