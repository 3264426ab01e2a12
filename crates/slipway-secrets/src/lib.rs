//! Slipway's cryptography, and nothing else.
//!
//! This crate owns:
//! - the server's [`SecretKey`]: loaded from `SLIPWAY_SECRET_KEY` or the key
//!   file `DATA_DIR/secret.key`, created there at first start;
//! - sealing and opening values with XChaCha20-Poly1305
//!   ([`SecretKey::seal`], [`SecretKey::open`]), bound to their place by
//!   associated data;
//! - API tokens ([`Token`], [`TokenHash`], [`looks_like_token`]);
//! - [`Role`]s and what they allow;
//! - writing private files atomically with mode 0600 ([`write_private_file`]).
//!
//! It must not know about the database, HTTP, projects or users: callers
//! pass bytes and names in and store what they get back. It never logs and
//! never puts key material or plaintext into errors or `Debug` output.
//! Unix only: file permissions are checked and set as Unix modes.

mod error;
mod key;
mod private_file;
mod role;
mod seal;
mod token;

pub use error::SecretsError;
pub use key::{KEY_FILE_NAME, KEY_LEN, KeyOrigin, SecretKey};
pub use private_file::{make_private_tree, write_private_file};
pub use role::Role;
pub use seal::{NONCE_LEN, TAG_LEN};
pub use token::{TOKEN_LEN, TOKEN_PREFIX, TOKEN_RANDOM_LEN, Token, TokenHash, looks_like_token};

/// `N` bytes from the operating system's random number generator.
///
/// # Panics
/// If that generator fails: without randomness no key, nonce or token can
/// be made safely, and on the supported systems it does not fail.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}
