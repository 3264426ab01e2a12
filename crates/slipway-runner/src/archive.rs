//! Directories as tar archives, for moving workspaces' products between a
//! server and its agents (artifacts, cache entries).

use std::io;
use std::path::Path;

/// The directory's contents as a tar archive (empty when it does not exist).
/// Symlinks are archived as links, never as what they point at.
pub fn pack(dir: &Path) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    if dir.is_dir() {
        tar.append_dir_all(".", dir)?;
    }
    tar.into_inner()
}

/// Whether an archive may hold links. Archives from untrusted senders must
/// not: a link could point anywhere on the receiving machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Refuse,
    Keep,
}

/// Unpacks `tar` as the new contents of `dest`. It is unpacked beside `dest`
/// first and renamed into place, so a broken archive never leaves half a tree.
pub fn unpack(tar: &[u8], dest: &Path, links: Links) -> io::Result<()> {
    if links == Links::Refuse {
        refuse_links(tar)?;
    }
    let parent = dest.parent().unwrap_or(dest);
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(parent)?;
    tar::Archive::new(tar).unpack(staging.path())?;
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::rename(staging.path(), dest)
}

fn refuse_links(tar: &[u8]) -> io::Result<()> {
    for entry in tar::Archive::new(tar).entries()? {
        let entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let path = entry.path()?.display().to_string();
            return Err(io::Error::other(format!(
                "`{path}` is a link; archives may hold files and directories only"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_links_refused() {
        let src = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(src.path().join("a")).expect("mkdir");
        std::fs::write(src.path().join("a/b"), "b").expect("write");
        let tar = pack(src.path()).expect("pack");
        let dst = tempfile::tempdir().expect("tempdir");
        let out = dst.path().join("out");
        unpack(&tar, &out, Links::Refuse).expect("unpack");
        assert_eq!(std::fs::read_to_string(out.join("a/b")).expect("read"), "b");
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).expect("symlink");
        let tar = pack(src.path()).expect("pack");
        let err = unpack(&tar, &dst.path().join("evil"), Links::Refuse).expect_err("refused");
        assert!(
            err.to_string().contains("`./link` is a link")
                || err.to_string().contains("`link` is a link"),
            "{err}"
        );
        assert!(!dst.path().join("evil").exists());
    }
}
