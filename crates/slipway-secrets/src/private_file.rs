//! Private files: written atomically with mode 0600, read only when no one
//! but the owner can access them; and whole private directory trees.

use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::SecretsError;

/// The mode of every file this crate writes.
const PRIVATE_MODE: u32 = 0o600;

/// Permission bits that must be clear on a private file: any access for
/// group or others.
const GROUP_OTHER_BITS: u32 = 0o077;

/// Writes `bytes` to `path` with mode 0600, atomically, replacing any
/// existing file.
///
/// The bytes go to a temporary file that is created with mode 0600 in the
/// same directory, flushed to disk, then renamed over `path`. Readers see
/// either the old file or the complete new one, and the content is never
/// accessible to other users, not even for an instant. The parent directory
/// must exist.
///
/// # Errors
/// [`SecretsError::Io`] when the directory is missing or not writable, or
/// the disk is full.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), SecretsError> {
    let tmp = temp_file_with(path, bytes)?;
    tmp.persist(path)
        .map_err(|e| SecretsError::io("rename a temporary file to", path)(e.error))?;
    sync_parent(path)
}

/// Like [`write_private_file`], but never replaces an existing file: when
/// `path` already exists it is left alone and `Ok(false)` is returned.
pub(crate) fn create_private_file(path: &Path, bytes: &[u8]) -> Result<bool, SecretsError> {
    let tmp = temp_file_with(path, bytes)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => sync_parent(path).map(|()| true),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(SecretsError::io("create", path)(e.error)),
    }
}

/// Reads a private file; `Ok(None)` when it does not exist.
///
/// The permissions are checked on the opened file, so the file that is
/// checked is the file that is read.
///
/// # Errors
/// [`SecretsError::KeyFilePermissions`] when group or others have any access.
pub(crate) fn read_private_file(path: &Path) -> Result<Option<Vec<u8>>, SecretsError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SecretsError::io("open", path)(e)),
    };
    let mode = file
        .metadata()
        .map_err(SecretsError::io("inspect", path))?
        .permissions()
        .mode();
    if mode & GROUP_OTHER_BITS != 0 {
        let mode = mode & 0o7777;
        return Err(SecretsError::KeyFilePermissions {
            path: path.into(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(SecretsError::io("read", path))?;
    Ok(Some(bytes))
}

/// Makes a data directory private: from now on this process creates files
/// 0600 and directories 0700 (umask 077), and what is already in `dir` loses
/// every group and other permission bit, so a directory made by an older
/// version (or touched by hand) is closed at start. Symbolic links are not
/// followed. Returns the paths that could not be changed (owned by another
/// user, e.g. files a root container left), for the caller to report.
///
/// # Errors
/// [`SecretsError::Io`] when `dir` itself cannot be made private.
pub fn make_private_tree(dir: &Path) -> Result<Vec<std::path::PathBuf>, SecretsError> {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(GROUP_OTHER_BITS));
    let mut refused = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & GROUP_OTHER_BITS != 0 {
            let narrowed = Permissions::from_mode(mode & 0o7700);
            if let Err(e) = std::fs::set_permissions(&path, narrowed) {
                if path == dir {
                    return Err(SecretsError::io("make private", dir)(e));
                }
                refused.push(path.clone());
            }
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    Ok(refused)
}

/// A temporary file, created 0600 next to `path`, holding `bytes` on disk.
fn temp_file_with(path: &Path, bytes: &[u8]) -> Result<NamedTempFile, SecretsError> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".slipway-tmp-")
        .permissions(Permissions::from_mode(PRIVATE_MODE))
        .tempfile_in(dir)
        .map_err(SecretsError::io("create a temporary file in", dir))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(SecretsError::io("write a temporary file in", dir))?;
    Ok(tmp)
}

/// Flushes the directory entry of a renamed file, so the rename survives a crash.
fn sync_parent(path: &Path) -> Result<(), SecretsError> {
    let dir = parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SecretsError::io("sync directory", dir))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn writes_0600_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin-token");
        write_private_file(&path, b"one").expect("first write");
        write_private_file(&path, b"two").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert_eq!(mode_of(&path), 0o600);
        let entries = std::fs::read_dir(dir.path()).expect("read_dir").count();
        assert_eq!(entries, 1, "no temporary file is left behind");
    }

    #[test]
    fn replacing_narrows_wider_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"old").expect("write");
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        write_private_file(&path, b"new").expect("write");
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn create_never_clobbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        assert!(create_private_file(&path, b"first").expect("create"));
        assert!(!create_private_file(&path, b"second").expect("create again"));
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
    }

    #[test]
    fn a_tree_is_made_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("runs/1");
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join("log"), b"x").expect("write");
        std::fs::set_permissions(sub.join("log"), Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(&sub, Permissions::from_mode(0o755)).expect("chmod");
        let refused = make_private_tree(dir.path()).expect("private");
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(mode_of(&sub.join("log")), 0o600);
        assert_eq!(mode_of(&sub), 0o700);
        assert_eq!(mode_of(dir.path()), 0o700);
    }

    #[test]
    fn missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing/f");
        let err = write_private_file(&path, b"x").expect_err("must fail");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
