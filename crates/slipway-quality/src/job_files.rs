//! Reading files a job left behind, from the process that ran it (which the
//! job's sandbox does not confine): reports here, cache-key inputs,
//! artifacts and cache entries in the runner. The job chooses what is at
//! each path, so a path is never followed through a symbolic link, and a
//! FIFO or a device is never opened (one would hang the reader, the other
//! could be the host's disk). Below a root the process trusts (the
//! workspace, a store), every component is opened from its parent's
//! descriptor with `O_NOFOLLOW`: a link anywhere on the way is refused, and
//! a directory swapped for a link between listing and opening is caught.

use std::ffi::OsStr;
use std::fs::{File, FileType};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Component, Path};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};

/// Opens the regular file at `path` for reading. Refused when `path` is a
/// symbolic link, a directory, a FIFO, a socket or a device (checked before
/// it is opened, and again on what was opened: it may have been swapped).
/// The directories above `path` are the caller's to trust: below a root,
/// use [`open_regular_beneath`], which follows no link on the way.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let before = std::fs::symlink_metadata(path)?;
    if !before.is_file() {
        return Err(not_regular(path, before.file_type()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) => io::Error::other(format!(
                "`{}` became a symbolic link while it was read; not followed",
                path.display()
            )),
            _ => e,
        })?;
    let opened = file.metadata()?;
    if !opened.is_file() {
        return Err(not_regular(path, opened.file_type()));
    }
    Ok(file)
}

/// Opens the regular file `rel` below `root` for reading, following no
/// link in any component of `rel` (`root` itself is the caller's to trust).
/// Refused like [`open_regular`] when it is not a regular file.
pub fn open_regular_beneath(root: &Path, rel: &Path) -> io::Result<File> {
    let (parent, name) = parent_beneath(root, rel, false)?;
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let fd = openat(&parent, name, flags, Mode::empty())
        .map_err(|e| refused(root, rel, e, "a regular file"))?;
    let file = File::from(fd);
    let opened = file.metadata()?;
    if !opened.is_file() {
        return Err(not_regular(&root.join(rel), opened.file_type()));
    }
    Ok(file)
}

/// The directory `rel` below `root`, opened component by component without
/// following links; with `create`, missing directories are made (mode
/// 0755, before the umask). A link, or anything but a directory, on the
/// way is refused with an error that names it.
pub fn dir_beneath(root: &Path, rel: &Path, create: bool) -> io::Result<OwnedFd> {
    let mut dir = open_dir(root)?;
    let mut walked = std::path::PathBuf::new();
    for name in components(rel)? {
        walked.push(name);
        if create {
            match mkdirat(&dir, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(refused(root, &walked, e, "a directory")),
            }
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        dir = openat(&dir, name, flags, Mode::empty())
            .map_err(|e| refused(root, &walked, e, "a directory"))?;
    }
    Ok(dir)
}

/// The directory holding `rel` (opened as [`dir_beneath`] does) and the
/// last component's name.
pub fn parent_beneath<'a>(
    root: &Path,
    rel: &'a Path,
    create: bool,
) -> io::Result<(OwnedFd, &'a OsStr)> {
    let name = rel.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` names no file", rel.display()),
        )
    })?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    Ok((dir_beneath(root, parent, create)?, name))
}

/// `root` itself, which must be a directory (a link to one is refused too).
fn open_dir(root: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(root)?;
    Ok(OwnedFd::from(file))
}

/// The names in `rel`, which must stay below its root: no `..`, not absolute.
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(name) => names.push(name),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` leads out of its directory: refused", rel.display()),
                ));
            }
        }
    }
    Ok(names)
}

/// An error for `rel` below `root` where `wanted` was expected; a link
/// (ELOOP, or ENOTDIR for a link to a file) is named as one.
fn refused(root: &Path, rel: &Path, e: nix::errno::Errno, wanted: &str) -> io::Error {
    let path = root.join(rel);
    let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink());
    if is_link || e == nix::errno::Errno::ELOOP {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` (in `{}`) is a symbolic link where {wanted} was expected: not \
                 followed, nothing is read or written through a link",
                rel.display(),
                root.display()
            ),
        );
    }
    if e == nix::errno::Errno::ENOTDIR {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` (in `{}`) is not a directory where one was expected",
                rel.display(),
                root.display()
            ),
        );
    }
    io::Error::new(
        io::Error::from(e).kind(),
        format!("`{}`: {e}", path.display()),
    )
}

/// What a file type is, in words: `a FIFO`, `a symbolic link`, …
pub fn kind(file_type: FileType) -> &'static str {
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_char_device() {
        "a character device"
    } else {
        "a regular file"
    }
}

fn not_regular(path: &Path, file_type: FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "`{}` is {}, not a regular file: not read",
            path.display(),
            kind(file_type)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_regular_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").expect("write");
        assert!(open_regular(&file).is_ok());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let err = open_regular(&link).expect_err("a link is refused");
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let err = open_regular(&fifo).expect_err("a FIFO is refused");
        assert!(err.to_string().contains("is a FIFO"), "{err}");
        assert!(open_regular(Path::new("/dev/zero")).is_err());
    }

    #[test]
    fn beneath_a_root_no_component_is_followed() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("real")).expect("mkdir");
        std::fs::write(root.path().join("real/file"), "x").expect("write");
        std::fs::write(outside.path().join("file"), "secret").expect("write");
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).expect("symlink");
        assert!(open_regular_beneath(root.path(), Path::new("real/file")).is_ok());
        let err = open_regular_beneath(root.path(), Path::new("link/file")).expect_err("link");
        assert!(err.to_string().contains("`link` (in"), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = dir_beneath(root.path(), Path::new("link/new"), true).expect_err("link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!outside.path().join("new").exists());
        assert!(dir_beneath(root.path(), Path::new("a/b"), true).is_ok());
        assert!(dir_beneath(root.path(), Path::new("../x"), true).is_err());
    }
}
