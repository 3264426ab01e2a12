//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Messages say what went wrong, where, and how to fix it. They never
/// contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// `SLIPWAY_SECRET_KEY` is set but is not a 32-byte key.
    #[error(
        "SLIPWAY_SECRET_KEY is not a valid key ({found}): expected 64 hex characters \
         or base64 of exactly 32 bytes; generate one with `openssl rand -hex 32`"
    )]
    BadEnvKey {
        /// What was found instead, without the value itself (e.g. "12 characters").
        found: String,
    },

    /// The key file exists but does not hold a 32-byte key.
    #[error(
        "key file {path} is not a valid key ({found}): expected 64 hex characters \
         or base64 of exactly 32 bytes; restore it from a backup (deleting it makes \
         every stored secret unreadable)",
        path = path.display()
    )]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What was found instead, without the value itself.
        found: String,
    },

    /// The key file can be read by users other than its owner.
    #[error(
        "key file {path} has permissions {mode:04o}, but it must not be accessible to \
         group or others (0600); fix with `chmod 600 {path}`",
        path = path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A file system operation failed.
    #[error("cannot {action} {path}: {source}", path = path.display())]
    Io {
        /// What was being done, e.g. "read key file".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// A sealed value is shorter than a nonce plus an authentication tag.
    #[error(
        "sealed value for `{associated}` is {len} bytes, shorter than the minimum {min}: \
         it was truncated or was not produced by `seal`"
    )]
    Truncated {
        /// The associated data (the value's place), lossily decoded as UTF-8.
        associated: String,
        /// Length of the sealed value.
        len: usize,
        /// Minimum length of any sealed value.
        min: usize,
    },

    /// Authentication failed when opening a sealed value.
    #[error(
        "cannot open sealed value for `{associated}`: it was sealed with a different \
         key (check SLIPWAY_SECRET_KEY or DATA_DIR/secret.key), for a different place, \
         or it was modified"
    )]
    Open {
        /// The associated data (the value's place), lossily decoded as UTF-8.
        associated: String,
    },

    /// A role name is not one of the known roles.
    #[error("unknown role `{0}`: expected one of viewer, developer, admin")]
    UnknownRole(String),
}

impl SecretsError {
    /// Builds an [`SecretsError::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
