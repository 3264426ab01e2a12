//! The secret key: where it comes from and how it is kept on disk.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305};

use crate::private_file::{create_private_file, read_private_file};
use crate::{SecretsError, random_bytes};

/// Name of the key file inside the data directory.
pub const KEY_FILE_NAME: &str = "secret.key";

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// A 32-byte key for XChaCha20-Poly1305.
///
/// Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; KEY_LEN],
}

/// Where [`SecretKey::from_env_or_file`] found the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// From the `SLIPWAY_SECRET_KEY` environment variable.
    Env,
    /// Read from this existing key file.
    File(PathBuf),
    /// Generated now and written to this new key file.
    Created(PathBuf),
}

impl SecretKey {
    /// A new random key.
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    #[must_use]
    pub fn generate() -> Self {
        Self::from_bytes(random_bytes())
    }

    /// A key made of exactly these bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// Loads the server's key.
    ///
    /// `env_value` is the value of `SLIPWAY_SECRET_KEY`, if set: 64 hex
    /// characters or base64 of 32 bytes. Without it the key is read from
    /// `DATA_DIR/secret.key`, which is created (mode 0600, atomically, with a
    /// random key, never replacing an existing file) when it does not exist.
    /// The key file holds the key as hex, so its content can be moved into
    /// `SLIPWAY_SECRET_KEY` as it is.
    ///
    /// # Errors
    /// - [`SecretsError::BadEnvKey`] when `env_value` is not a key;
    /// - [`SecretsError::KeyFilePermissions`] when group or others can access
    ///   the key file;
    /// - [`SecretsError::BadKeyFile`] when the key file does not hold a key;
    /// - [`SecretsError::Io`] when the file or directory cannot be read or written.
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    pub fn from_env_or_file(
        env_value: Option<&str>,
        data_dir: &Path,
    ) -> Result<(Self, KeyOrigin), SecretsError> {
        if let Some(value) = env_value {
            let key = parse_key(value).map_err(|found| SecretsError::BadEnvKey { found })?;
            return Ok((key, KeyOrigin::Env));
        }
        let path = data_dir.join(KEY_FILE_NAME);
        match Self::read_file(&path)? {
            Some(key) => Ok((key, KeyOrigin::File(path))),
            None => Self::create_file(path, data_dir),
        }
    }

    /// The cipher for this key.
    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.bytes.into())
    }

    fn read_file(path: &Path) -> Result<Option<Self>, SecretsError> {
        let Some(bytes) = read_private_file(path)? else {
            return Ok(None);
        };
        let bad = |found| SecretsError::BadKeyFile {
            path: path.into(),
            found,
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| bad(format!("{} bytes of binary data", bytes.len())))?;
        parse_key(text).map(Some).map_err(bad)
    }

    fn create_file(path: PathBuf, data_dir: &Path) -> Result<(Self, KeyOrigin), SecretsError> {
        std::fs::create_dir_all(data_dir)
            .map_err(SecretsError::io("create data directory", data_dir))?;
        let key = Self::generate();
        let text = format!("{}\n", hex::encode(key.bytes));
        if create_private_file(&path, text.as_bytes())? {
            return Ok((key, KeyOrigin::Created(path)));
        }
        // Another process created the file between our read and our write:
        // its key wins, so that both processes use the same one.
        match Self::read_file(&path)? {
            Some(key) => Ok((key, KeyOrigin::File(path))),
            None => Err(SecretsError::io("read", path)(
                io::ErrorKind::NotFound.into(),
            )),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Parses 64 hex characters or base64 (standard or URL-safe, padded or not)
/// of 32 bytes. The error describes what was found, without the value.
fn parse_key(value: &str) -> Result<SecretKey, String> {
    let value = value.trim();
    let is_hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex && value.len() == 2 * KEY_LEN {
        let mut bytes = [0; KEY_LEN];
        hex::decode_to_slice(value, &mut bytes).map_err(|e| e.to_string())?;
        return Ok(SecretKey::from_bytes(bytes));
    }
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok());
    match decoded {
        _ if value.is_empty() => Err("it is empty".into()),
        Some(bytes) if bytes.len() == KEY_LEN => {
            let mut key = [0; KEY_LEN];
            key.copy_from_slice(&bytes);
            Ok(SecretKey::from_bytes(key))
        }
        _ if is_hex => Err(format!("{} hex characters", value.len())),
        Some(bytes) => Err(format!("base64 of {} bytes", bytes.len())),
        None => Err(format!(
            "{} characters, neither hex nor base64",
            value.chars().count()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn load(env: Option<&str>, dir: &Path) -> (SecretKey, KeyOrigin) {
        SecretKey::from_env_or_file(env, dir).expect("load key")
    }

    fn same_key(a: &SecretKey, b: &SecretKey) -> bool {
        a.bytes == b.bytes
    }

    #[test]
    fn key_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE_NAME);
        let (first, origin) = load(None, dir.path());
        assert_eq!(origin, KeyOrigin::Created(path.clone()));
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, origin) = load(None, dir.path());
        assert_eq!(origin, KeyOrigin::File(path));
        assert!(same_key(&first, &second));
    }

    #[test]
    fn missing_data_dir_is_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, origin) = load(None, &dir.path().join("data"));
        assert!(matches!(origin, KeyOrigin::Created(_)));
    }

    #[test]
    fn key_file_readable_by_others_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE_NAME);
        std::fs::write(&path, HEX_KEY).expect("write");
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        let err = SecretKey::from_env_or_file(None, dir.path()).expect_err("must refuse");
        assert!(matches!(
            err,
            SecretsError::KeyFilePermissions { mode: 0o644, .. }
        ));
        let expected = format!("chmod 600 {}", path.display());
        assert!(err.to_string().contains(&expected), "{err}");
    }

    #[test]
    fn corrupt_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::write_private_file(&dir.path().join(KEY_FILE_NAME), b"short").expect("write");
        let err = SecretKey::from_env_or_file(None, dir.path()).expect_err("must refuse");
        assert!(matches!(err, SecretsError::BadKeyFile { .. }), "{err}");
    }

    #[test]
    fn env_key_in_hex_and_base64_is_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (from_hex, origin) = load(Some(HEX_KEY), dir.path());
        assert_eq!(origin, KeyOrigin::Env);
        let bytes: Vec<u8> = (0..32).collect();
        for b64 in [STANDARD.encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes)] {
            let (from_b64, _) = load(Some(&b64), dir.path());
            assert!(same_key(&from_hex, &from_b64));
        }
        let (upper, _) = load(Some(&format!(" {}\n", HEX_KEY.to_uppercase())), dir.path());
        assert!(same_key(&from_hex, &upper));
        assert!(
            !dir.path().join(KEY_FILE_NAME).exists(),
            "env key writes no file"
        );
    }

    #[test]
    fn junk_env_key_is_refused_with_format_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short_b64 = STANDARD.encode([7u8; 16]);
        for junk in ["", "not a key!", &HEX_KEY[..62], &short_b64] {
            let err = SecretKey::from_env_or_file(Some(junk), dir.path()).expect_err(junk);
            let message = err.to_string();
            assert!(matches!(err, SecretsError::BadEnvKey { .. }), "{message}");
            assert!(message.contains("64 hex characters or base64 of exactly 32 bytes"));
            assert!(
                junk.is_empty() || !message.contains(junk),
                "leaks value: {message}"
            );
        }
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let key = SecretKey::from_bytes([0xab; KEY_LEN]);
        assert!(!format!("{key:?}").contains("ab"));
    }
}
