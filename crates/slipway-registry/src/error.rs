//! What can go wrong in the registry, in the terms of the OCI distribution
//! spec's error codes (the HTTP layer maps each to its status and code).

use slipway_store::StoreError;

use crate::blob::BlobError;
use crate::upload::AppendError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NameUnknown(String),
    #[error("{0}")]
    BlobUnknown(String),
    #[error("{0}")]
    UploadUnknown(String),
    /// A chunk that does not start where the upload ends (416).
    #[error("{message}")]
    RangeInvalid { message: String, offset: u64 },
    #[error("{0}")]
    DigestInvalid(String),
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("the manifest is {0} bytes; at most {max} are accepted", max = crate::manifest::MAX_MANIFEST_BYTES)]
    ManifestTooLarge(usize),
    #[error("{0}")]
    ManifestBlobUnknown(String),
    #[error("{0}")]
    ManifestUnknown(String),
    /// Moving a tag of a release repository.
    #[error("{0}")]
    TagImmutable(String),
    /// The repository's kind does not allow this (pushing to a proxy, OCI calls on a raw repository).
    #[error("{0}")]
    Unsupported(String),
    /// An upstream registry (for a proxy) failed or cannot be reached.
    #[error("{0}")]
    Upstream(String),
    #[error("the upload's body failed: {0}")]
    Body(String),
    #[error(transparent)]
    Blob(BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// Whether the blob store or the database ran out of space.
    pub fn is_storage_full(&self) -> bool {
        match self {
            RegistryError::Blob(b) => b.is_storage_full(),
            RegistryError::Store(s) => s.is_storage_full(),
            _ => false,
        }
    }
}

impl From<BlobError> for RegistryError {
    fn from(e: BlobError) -> RegistryError {
        match e {
            BlobError::DigestMismatch { .. } => {
                RegistryError::DigestInvalid(format!("{e}; nothing was stored"))
            }
            other => RegistryError::Blob(other),
        }
    }
}

impl From<AppendError> for RegistryError {
    fn from(e: AppendError) -> RegistryError {
        match e {
            AppendError::Body(m) => RegistryError::Body(m),
            AppendError::Blob(b) => RegistryError::Blob(b),
        }
    }
}

impl From<crate::digest::DigestError> for RegistryError {
    fn from(e: crate::digest::DigestError) -> RegistryError {
        RegistryError::DigestInvalid(e.to_string())
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
