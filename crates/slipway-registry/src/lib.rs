//! The artifact repository. For now its foundation: a content-addressed blob
//! store shared by every repository, where a blob is written whole and
//! verified or not at all. The OCI distribution API, repositories, promotion
//! and garbage collection build on it.
//!
//! This crate knows nothing of HTTP, the database or runs.

mod blob;
mod digest;

pub use blob::{BlobError, BlobStore};
pub use digest::{Digest, DigestError};
