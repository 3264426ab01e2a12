//! Blob uploads in progress: bytes appended to a file in the upload area,
//! hashed as they arrive, then verified and renamed into the blob store.
//!
//! Appends go through a writer that hashes and writes on the blocking pool a
//! megabyte at a time, so neither the async threads nor memory carry the blob.
//! The running hash is kept in memory between requests; after a restart (or
//! if requests interleave oddly) the file is simply hashed again at the end.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};

use crate::blob::{BlobError, io};
use crate::digest::Digest;

/// How much is gathered before one blocking write.
const BATCH: usize = 1024 * 1024;

/// Hashes of uploads in progress, by upload id, with the length they cover.
#[derive(Debug, Default, Clone)]
pub(crate) struct Hashers(Arc<Mutex<HashMap<String, (u64, Sha256)>>>);

impl Hashers {
    fn take(&self, id: &str, at: u64) -> Option<Sha256> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.remove(id) {
            Some((len, hasher)) if len == at => Some(hasher),
            _ => None,
        }
    }

    fn keep(&self, id: &str, len: u64, hasher: Sha256) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(id.to_string(), (len, hasher));
    }

    pub(crate) fn forget(&self, id: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the client's body failed: {0}")]
    Body(String),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// An open upload file with its running hash, moved to the blocking pool for each batch.
struct Writer {
    file: std::fs::File,
    path: PathBuf,
    hasher: Option<Sha256>,
    len: u64,
}

impl Writer {
    fn write(mut self, batch: Vec<u8>) -> Result<Writer, BlobError> {
        if let Some(h) = self.hasher.as_mut() {
            h.update(&batch);
        }
        self.file.write_all(&batch).map_err(io(&self.path))?;
        self.len += batch.len() as u64;
        Ok(self)
    }
}

/// Appends a body to upload `id`'s file, which must currently be `at` bytes
/// long. Returns the new length.
pub(crate) async fn append<E: std::fmt::Display>(
    path: &Path,
    hashers: &Hashers,
    id: &str,
    at: u64,
    mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
) -> Result<u64, AppendError> {
    let hasher = hashers.take(id, at);
    let mut writer = {
        let path = path.to_path_buf();
        blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            file.seek(SeekFrom::End(0)).map_err(io(&path))?;
            Ok(Writer {
                file,
                path,
                hasher,
                len: at,
            })
        })
        .await?
    };
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| AppendError::Body(e.to_string()))?;
        batch.extend_from_slice(&chunk);
        if batch.len() >= BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            writer = blocking(move || writer.write(full)).await?;
        }
    }
    if !batch.is_empty() {
        writer = blocking(move || writer.write(batch)).await?;
    }
    if let Some(hasher) = writer.hasher.take() {
        hashers.keep(id, writer.len, hasher);
    }
    Ok(writer.len)
}

/// The digest of a finished upload file: from the running hash when it
/// covers the whole file, otherwise by reading it. The file is flushed to disk.
pub(crate) async fn seal(
    path: &Path,
    hashers: &Hashers,
    id: &str,
) -> Result<(Digest, u64), BlobError> {
    let len = match tokio::fs::metadata(path).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(path)(e)),
    };
    let running = hashers.take(id, len);
    let path = path.to_path_buf();
    blocking(move || {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io(&path))?;
        let hasher = match running {
            Some(h) => h,
            None => {
                let mut h = Sha256::new();
                let mut buf = vec![0u8; BATCH];
                file.seek(SeekFrom::Start(0)).map_err(io(&path))?;
                loop {
                    let n = file.read(&mut buf).map_err(io(&path))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h
            }
        };
        file.sync_all().map_err(io(&path))?;
        Ok((Digest::from_bytes(&hasher.finalize()), len))
    })
    .await
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BlobError::Io {
            path: PathBuf::from("<blocking task>"),
            source: std::io::Error::other(e.to_string()),
        })?
}
