//! The artifact repository: a content-addressed blob store shared by every
//! repository, where a blob is written whole and verified or not at all; the
//! registry service over it and the database (uploads, manifests, tags,
//! promotion); and the garbage collector.
//!
//! This crate knows nothing of HTTP or runs: the server's `/v2/` routes call it.

mod blob;
mod digest;
mod error;
mod gc;
pub mod manifest;
mod proxy;
mod raw;
mod registry;
mod spec;
mod upload;

pub use blob::{BlobError, BlobStore};
pub use digest::{Digest, DigestError};
pub use error::RegistryError;
pub use gc::{GcOptions, GcReport};
pub use raw::RawEntry;
pub use registry::{Pushed, Registry, valid_image, valid_tag};
pub use spec::RepoSpec;
