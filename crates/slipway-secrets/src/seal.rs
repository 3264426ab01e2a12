//! Sealing values: authenticated encryption bound to the value's place.
//!
//! A sealed value is `nonce (24 bytes) || ciphertext || tag (16 bytes)`.

use chacha20poly1305::XNonce;
use chacha20poly1305::aead::{Aead as _, Payload};

use crate::{SecretKey, SecretsError, random_bytes};

/// Length of the random nonce at the start of every sealed value.
pub const NONCE_LEN: usize = 24;

/// Length of the authentication tag at the end of every sealed value.
pub const TAG_LEN: usize = 16;

impl SecretKey {
    /// Encrypts and authenticates `plaintext`, binding it to `associated`.
    ///
    /// `associated` names the value's place (e.g.
    /// `"project:web/secret:DB_PASSWORD"`); it is not encrypted, but the
    /// sealed value opens only with the same `associated`, so a value
    /// copied to another name or project is refused. A fresh random nonce
    /// is prepended, so sealing the same plaintext twice gives different
    /// results.
    ///
    /// # Panics
    /// If the operating system's random number generator fails, or
    /// `plaintext` is longer than 256 GiB.
    #[must_use]
    pub fn seal(&self, plaintext: &[u8], associated: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random_bytes();
        let payload = Payload {
            msg: plaintext,
            aad: associated,
        };
        let ciphertext = self
            .cipher()
            .encrypt(&XNonce::from(nonce), payload)
            .expect("XChaCha20-Poly1305 fails only for plaintexts over 256 GiB");
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Checks and decrypts a value made by [`SecretKey::seal`] with the
    /// same key and the same `associated` data.
    ///
    /// # Errors
    /// - [`SecretsError::Truncated`] when `sealed` is too short to be a sealed value;
    /// - [`SecretsError::Open`] when the key or `associated` differ, or the
    ///   value was modified.
    pub fn open(&self, sealed: &[u8], associated: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let place = || String::from_utf8_lossy(associated).into_owned();
        let min = NONCE_LEN + TAG_LEN;
        let (nonce, ciphertext) = match sealed.split_first_chunk::<NONCE_LEN>() {
            Some(parts) if sealed.len() >= min => parts,
            _ => {
                let len = sealed.len();
                return Err(SecretsError::Truncated {
                    associated: place(),
                    len,
                    min,
                });
            }
        };
        let payload = Payload {
            msg: ciphertext,
            aad: associated,
        };
        self.cipher()
            .decrypt(&XNonce::from(*nonce), payload)
            .map_err(|_| SecretsError::Open {
                associated: place(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: &[u8] = b"project:web/secret:DB_PASSWORD";

    #[test]
    fn round_trip() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"hunter2", PLACE);
        assert_eq!(sealed.len(), NONCE_LEN + 7 + TAG_LEN);
        assert_eq!(key.open(&sealed, PLACE).expect("open"), b"hunter2");
        let empty = key.seal(b"", PLACE);
        assert_eq!(key.open(&empty, PLACE).expect("open empty"), b"");
    }

    #[test]
    fn sealing_twice_differs() {
        let key = SecretKey::generate();
        assert_ne!(key.seal(b"same", PLACE), key.seal(b"same", PLACE));
    }

    #[test]
    fn wrong_associated_data_fails() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"hunter2", PLACE);
        let err = key
            .open(&sealed, b"project:web/secret:OTHER")
            .expect_err("moved value must not open");
        assert!(matches!(err, SecretsError::Open { .. }));
        assert!(
            err.to_string().contains("project:web/secret:OTHER"),
            "{err}"
        );
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"hunter2", PLACE);
        for i in [0, NONCE_LEN, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[i] ^= 1;
            let err = key.open(&tampered, PLACE).expect_err("tampered must fail");
            assert!(matches!(err, SecretsError::Open { .. }), "byte {i}: {err}");
        }
    }

    #[test]
    fn different_key_fails() {
        let sealed = SecretKey::generate().seal(b"hunter2", PLACE);
        let err = SecretKey::generate()
            .open(&sealed, PLACE)
            .expect_err("other key");
        assert!(matches!(err, SecretsError::Open { .. }));
    }

    #[test]
    fn truncated_values_fail_without_panic() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"hunter2", PLACE);
        for len in [0, 10, NONCE_LEN, NONCE_LEN + TAG_LEN - 1] {
            let err = key.open(&sealed[..len], PLACE).expect_err("truncated");
            assert!(
                matches!(err, SecretsError::Truncated { .. }),
                "len {len}: {err}"
            );
        }
        let err = key
            .open(&sealed[..NONCE_LEN + TAG_LEN], PLACE)
            .expect_err("cut");
        assert!(matches!(err, SecretsError::Open { .. }));
    }
}
