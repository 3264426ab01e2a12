//! Reading files a job left behind, from the process that ran it (which the
//! job's sandbox does not confine): reports here, cache-key inputs,
//! artifacts and cache entries in the runner. The job chooses what is at
//! each path, so a path is never followed through a symbolic link, and a
//! FIFO or a device is never opened (one would hang the reader, the other
//! could be the host's disk).

use std::fs::{File, FileType};
use std::io;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Opens the regular file at `path` for reading. Refused when `path` is a
/// symbolic link, a directory, a FIFO, a socket or a device (checked before
/// it is opened, and again on what was opened: it may have been swapped).
/// The directories above `path` are the caller's to trust.
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
}
