//! API tokens: generated here, stored by the server only as hashes.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::random_bytes;

/// The prefix of every API token, so that tokens are recognizable (in logs,
/// by secret scanners) and junk can be rejected cheaply.
pub const TOKEN_PREFIX: &str = "slw_";

/// Number of random characters after the prefix (about 238 bits).
pub const TOKEN_RANDOM_LEN: usize = 40;

/// Total length of an API token.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + TOKEN_RANDOM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Bytes at or above this are skipped: 248 is 4 × 62, so `byte % 62` stays
/// uniform over the accepted bytes.
const UNBIASED_LIMIT: u8 = 248;

/// API tokens: `slw_` followed by 40 random base62 characters.
///
/// This type has no values; it groups the token functions.
#[derive(Debug)]
pub enum Token {}

impl Token {
    /// A new random token: the plain text to show the user once, and the
    /// hash to store.
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    #[must_use]
    pub fn generate() -> (String, TokenHash) {
        let random = std::iter::repeat_with(random_bytes::<32>)
            .flatten()
            .filter(|byte| *byte < UNBIASED_LIMIT)
            .map(|byte| char::from(BASE62[usize::from(byte % 62)]))
            .take(TOKEN_RANDOM_LEN);
        let plain: String = TOKEN_PREFIX.chars().chain(random).collect();
        let hash = TokenHash::of(&plain);
        (plain, hash)
    }
}

/// Whether `s` has the shape of an API token: the prefix, the length and
/// only base62 characters. Lets the server reject junk before hashing it.
#[must_use]
pub fn looks_like_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.strip_prefix(TOKEN_PREFIX)
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The SHA-256 of an API token, as 64 lowercase hex characters.
///
/// The server stores only this and finds a presented token by looking its
/// hash up in the database. No constant-time comparison is needed: the
/// lookup compares hashes, not tokens, and learning through timing how
/// much of a hash matches tells an attacker nothing about a token that
/// would produce it (SHA-256 cannot be inverted). A plain SHA-256 without
/// salt is enough because tokens carry 238 random bits, so there is nothing
/// to guess or precompute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// The hash of a plain token.
    #[must_use]
    pub fn of(plain: &str) -> Self {
        Self(hex::encode(Sha256::digest(plain.as_bytes())))
    }

    /// The hash as 64 lowercase hex characters, as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_prefix_length_and_charset() {
        let (plain, hash) = Token::generate();
        assert!(plain.starts_with(TOKEN_PREFIX), "{plain}");
        assert_eq!(plain.len(), TOKEN_LEN);
        assert_eq!(TOKEN_LEN, 44);
        assert!(looks_like_token(&plain), "{plain}");
        assert_eq!(hash, TokenHash::of(&plain));
    }

    #[test]
    fn two_generations_differ() {
        let (a, hash_a) = Token::generate();
        let (b, hash_b) = Token::generate();
        assert_ne!(a, b);
        assert_ne!(hash_a, hash_b);
    }

    #[test]
    fn hash_is_stable_sha256_hex() {
        let hash = TokenHash::of("slw_example");
        assert_eq!(hash, TokenHash::of("slw_example"));
        assert_eq!(hash.as_str().len(), 64);
        assert!(
            hash.as_str()
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
        // SHA-256 of the empty string, a known vector.
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(TokenHash::of("").as_str(), empty);
        assert_eq!(hash.to_string(), hash.as_str());
    }

    #[test]
    fn looks_like_token_rejects_junk() {
        let (plain, _) = Token::generate();
        let wrong_prefix = plain.replacen("slw_", "abc_", 1);
        let bad_char = format!("{}!", &plain[..TOKEN_LEN - 1]);
        let non_ascii = format!("{}é", &plain[..TOKEN_LEN - 2]);
        let too_long = format!("{plain}a");
        for junk in ["", "slw_", "Bearer x", &plain[..TOKEN_LEN - 1], &too_long] {
            assert!(!looks_like_token(junk), "{junk}");
        }
        for junk in [wrong_prefix, bad_char, non_ascii] {
            assert!(!looks_like_token(&junk), "{junk}");
        }
    }
}
