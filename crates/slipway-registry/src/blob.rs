//! Blobs on disk by digest. A write streams into a temporary file while
//! hashing, is flushed to disk, and is renamed into place only when its digest
//! is the one expected: a wrong digest or a crash leaves nothing behind but a
//! temporary file, and memory never grows with blob size.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the content's digest is {actual}, not the {expected} it was sent as")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob store I/O at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BlobError {
    /// Whether the write failed for want of space (or quota): the client is
    /// told 507 and what is full, and may push again once space is freed.
    pub fn is_storage_full(&self) -> bool {
        match self {
            BlobError::Io { source, .. } => slipway_store::io_is_storage_full(source),
            BlobError::DigestMismatch { .. } => false,
        }
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Content-addressed blobs under one directory: `sha256/<2 hex>/<64 hex>`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// How much is read at a time while streaming a blob in.
const CHUNK: usize = 256 * 1024;

impl BlobStore {
    pub fn new(root: &Path) -> BlobStore {
        BlobStore {
            root: root.to_path_buf(),
        }
    }

    /// Where a blob lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex())
    }

    fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Where upload `id`'s bytes gather (the same file system as the blobs,
    /// so finishing is a rename).
    pub fn upload_path(&self, id: &str) -> PathBuf {
        self.uploads().join(id)
    }

    /// Makes sure the upload area exists.
    pub async fn prepare(&self) -> Result<(), BlobError> {
        let uploads = self.uploads();
        tokio::fs::create_dir_all(&uploads)
            .await
            .map_err(io(&uploads))
    }

    /// Streams `content` in; returns its digest and size. With `expected`, a
    /// different digest is refused and nothing is stored.
    pub async fn put(
        &self,
        content: impl AsyncRead + Unpin,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), BlobError> {
        let (temp, digest, size) = self.stage(content, expected).await?;
        self.place(&temp, &digest).await?;
        Ok((digest, size))
    }

    /// Streams `content` into a verified temporary file, not yet in place.
    pub(crate) async fn stage(
        &self,
        mut content: impl AsyncRead + Unpin,
        expected: Option<&Digest>,
    ) -> Result<(PathBuf, Digest, u64), BlobError> {
        self.prepare().await?;
        let temp = self.uploads().join(unique_name());
        let (digest, size) = match self.stream_to(&mut content, &temp).await {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(e);
            }
        };
        if let Some(expected) = expected.filter(|e| **e != digest) {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(BlobError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        Ok((temp, digest, size))
    }

    async fn stream_to(
        &self,
        content: &mut (impl AsyncRead + Unpin),
        temp: &Path,
    ) -> Result<(Digest, u64), BlobError> {
        let mut file = tokio::fs::File::create(temp).await.map_err(io(temp))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = content.read(&mut buf).await.map_err(io(temp))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).await.map_err(io(temp))?;
            size += n as u64;
        }
        file.sync_all().await.map_err(io(temp))?;
        Ok((Digest::from_bytes(&hasher.finalize()), size))
    }

    /// Renames a verified temporary file into place; the same content stored
    /// twice (two uploads racing) keeps one copy. Returns whether the blob is
    /// new. The temporary file is gone afterwards, whatever happened: a failed
    /// write (a full disk) must not leave its bytes taking the space.
    pub(crate) async fn place(&self, temp: &Path, digest: &Digest) -> Result<bool, BlobError> {
        let placed = self.rename_into_place(temp, digest).await;
        if placed.is_err() {
            let _ = tokio::fs::remove_file(temp).await;
        }
        placed
    }

    async fn rename_into_place(&self, temp: &Path, digest: &Digest) -> Result<bool, BlobError> {
        let dest = self.path(digest);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&dir).await.map_err(io(&dir))?;
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            let _ = tokio::fs::remove_file(temp).await;
            return Ok(false);
        }
        tokio::fs::rename(temp, &dest).await.map_err(io(&dest))?;
        // The rename is durable only once the directory is on disk too.
        let d = tokio::fs::File::open(&dir).await.map_err(io(&dir))?;
        d.sync_all().await.map_err(io(&dir))?;
        Ok(true)
    }

    /// The size of a stored blob, or `None`.
    pub async fn size(&self, digest: &Digest) -> Option<u64> {
        tokio::fs::metadata(self.path(digest))
            .await
            .ok()
            .map(|m| m.len())
    }

    /// Opens a stored blob for streaming out.
    pub async fn open(&self, digest: &Digest) -> Option<tokio::fs::File> {
        tokio::fs::File::open(self.path(digest)).await.ok()
    }

    /// Every blob file, for the collector's check against the database.
    pub async fn files(&self) -> Result<Vec<PathBuf>, BlobError> {
        let root = self.root.join("sha256");
        tokio::task::spawn_blocking(move || {
            let mut files = Vec::new();
            let Ok(dirs) = std::fs::read_dir(&root) else {
                return Ok(files);
            };
            for dir in dirs.flatten() {
                for file in std::fs::read_dir(dir.path())
                    .map_err(io(&dir.path()))?
                    .flatten()
                {
                    files.push(file.path());
                }
            }
            Ok(files)
        })
        .await
        .unwrap_or_else(|e| {
            Err(BlobError::Io {
                path: PathBuf::from("<blocking task>"),
                source: std::io::Error::other(e.to_string()),
            })
        })
    }

    /// Removes a blob (garbage collection decides when).
    pub async fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        let path = self.path(digest);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(bytes: &[u8]) -> Digest {
        Digest::from_bytes(&Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn stores_reads_and_deletes_by_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path());
        let content = b"layer bytes".to_vec();
        let (digest, size) = store
            .put(&content[..], Some(&sha256(&content)))
            .await
            .expect("put");
        assert_eq!((digest.clone(), size), (sha256(&content), 11));
        let mut back = Vec::new();
        store
            .open(&digest)
            .await
            .expect("stored")
            .read_to_end(&mut back)
            .await
            .expect("read");
        assert_eq!(back, content);
        // The same content again keeps one copy.
        store.put(&content[..], None).await.expect("again");
        assert!(store.delete(&digest).await.expect("delete"));
        assert_eq!(store.size(&digest).await, None);
    }

    #[tokio::test]
    async fn a_wrong_digest_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path());
        let claimed = sha256(b"something else");
        let err = store
            .put(&b"actual bytes"[..], Some(&claimed))
            .await
            .expect_err("refused");
        assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
        assert_eq!(store.size(&sha256(b"actual bytes")).await, None);
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads"))
                .expect("uploads")
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn streams_large_blobs_in_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path());
        let content: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let (digest, size) = store.put(&content[..], None).await.expect("put");
        assert_eq!(size, content.len() as u64);
        assert_eq!(digest, sha256(&content));
    }
}
