//! File-tree work shared by workspaces, caches and artifacts: copying, glob
//! matching and hashing. Blocking I/O; callers run it on the blocking pool.

use std::io;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};
use slipway_quality::job_files;

/// A set of workspace-relative globs, where `*` stays within one directory.
pub fn glob_set(patterns: &[String]) -> io::Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p.trim_end_matches('/'))
            .literal_separator(true)
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The topmost paths under `root` that a glob matches (a matched directory
/// stands for everything inside it), relative to `root`, sorted. Slipway's
/// own directory at the top (`.slipway`) is never matched, whatever the
/// glob (`*`, `.s*`): a cache entry keeps its own state there, so a job's
/// `.slipway` (a link to `/`, say) must never be copied into one.
pub fn matches(root: &Path, patterns: &[String]) -> io::Result<Vec<PathBuf>> {
    let set = glob_set(patterns)?;
    let mut found = Vec::new();
    let mut walk = walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(io::Error::from)?;
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if rel == Path::new(crate::source::STATE_DIR) {
            if entry.file_type().is_dir() {
                walk.skip_current_dir();
            }
            continue;
        }
        if set.is_match(rel) {
            found.push(rel.to_path_buf());
            if entry.file_type().is_dir() {
                walk.skip_current_dir();
            }
        }
    }
    Ok(found)
}

/// The files (not directories) below `dir`, relative to `root`, skipping
/// entries `keep` rejects and everything below them.
pub fn files_in(
    root: &Path,
    dir: &Path,
    keep: impl Fn(&walkdir::DirEntry) -> bool,
) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(dir).sort_by_file_name().into_iter();
    for entry in walk.filter_entry(keep) {
        let entry = entry.map_err(io::Error::from)?;
        if !entry.file_type().is_dir() {
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            files.push(rel.to_path_buf());
        }
    }
    Ok(files)
}

/// SHA-256 over the names and contents of every file the globs match, in a
/// stable order; `None` when nothing matches. A symbolic link counts by
/// where it points (its text), never by what is there: the job made it, and
/// it may point at the server's files, a FIFO or `/dev/zero`. A FIFO, socket
/// or device is refused, never opened.
pub fn hash_matching(root: &Path, patterns: &[String]) -> io::Result<Option<String>> {
    let mut entries = Vec::new();
    for top in matches(root, patterns)? {
        let walk = walkdir::WalkDir::new(root.join(top)).follow_root_links(false);
        for entry in walk {
            let entry = entry.map_err(io::Error::from)?;
            if !entry.file_type().is_dir() {
                let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
                entries.push((rel.to_path_buf(), entry.file_type()));
            }
        }
    }
    if entries.is_empty() {
        return Ok(None);
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (rel, file_type) in &entries {
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        if file_type.is_symlink() {
            let (dir, name) = job_files::parent_beneath(root, rel, false)?;
            let target = nix::fcntl::readlinkat(&dir, name).map_err(io::Error::from)?;
            hasher.update(b"symlink to ");
            hasher.update(target.as_encoded_bytes());
        } else {
            io::copy(&mut open_regular(root, rel)?, &mut hasher)?;
        }
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    Ok(Some(digest.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Copies the listed relative paths from `from` to `to`, recreating directories;
/// directories in the list are copied whole, symlinks stay symlinks.
pub fn copy_paths(from: &Path, to: &Path, paths: &[PathBuf]) -> io::Result<()> {
    for p in paths {
        copy_walk(from, to, p, 0)?;
    }
    Ok(())
}

/// Copies everything inside `from` into `to` (merging with what is there).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    copy_walk(from, to, Path::new(""), 1)
}

/// [`copy_tree`] but for the top-level entry `skip` (a cache entry's home part).
pub fn copy_tree_except(from: &Path, to: &Path, skip: &Path) -> io::Result<()> {
    let mut tops = Vec::new();
    for entry in std::fs::read_dir(from)? {
        let name = PathBuf::from(entry?.file_name());
        if name != skip {
            tops.push(name);
        }
    }
    tops.sort();
    copy_paths(from, to, &tops)
}

/// Copies `top` below `from` (everything under it, from `min_depth`) to the
/// same place below `to`. Both sides are the job's to shape: what is already
/// in `to` may hold links (laid by another job's artifacts, committed in the
/// repository), so every destination path is opened from `to` one component
/// at a time without following links, and one that crosses a link is
/// refused. This process is not sandboxed: a followed link would let a job
/// write the server's files.
fn copy_walk(from: &Path, to: &Path, top: &Path, min_depth: usize) -> io::Result<()> {
    let walk = walkdir::WalkDir::new(from.join(top))
        .follow_root_links(false)
        .min_depth(min_depth)
        .sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(io::Error::from)?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let kind = entry.file_type();
        if kind.is_dir() {
            job_files::dir_beneath(to, rel, true).map_err(laying)?;
        } else if kind.is_symlink() {
            copy_link(from, to, rel)?;
        } else {
            copy_file(from, to, rel)?;
        }
    }
    Ok(())
}

/// Recreates the link `rel` (its text, never what it points at).
fn copy_link(from: &Path, to: &Path, rel: &Path) -> io::Result<()> {
    let (source_dir, name) = job_files::parent_beneath(from, rel, false)?;
    let target = nix::fcntl::readlinkat(&source_dir, name).map_err(io::Error::from)?;
    let (dir, name) = job_files::parent_beneath(to, rel, true).map_err(laying)?;
    replace(&dir, name, to, rel)?;
    nix::unistd::symlinkat(target.as_os_str(), &dir, name).map_err(io::Error::from)
}

/// Copies a regular file's contents, mode and access and modification
/// times: a restored Cargo `target` (or any build tool's output) is judged
/// fresh by comparing times, so a copy stamped "now" rebuilds everything.
/// What a job left may be a FIFO
/// (the copy would hang) or a device node (the host's disk, read by this
/// unconfined process): those are refused with what to do, never opened.
/// The copy is a new file (`O_EXCL|O_NOFOLLOW`), never a write into what
/// was there.
fn copy_file(from: &Path, to: &Path, rel: &Path) -> io::Result<()> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    use std::os::unix::fs::PermissionsExt as _;
    let mut source = open_regular(from, rel)?;
    let meta = source.metadata()?;
    let mode = meta.permissions().mode() & 0o7777;
    let (dir, name) = job_files::parent_beneath(to, rel, true).map_err(laying)?;
    replace(&dir, name, to, rel)?;
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(&dir, name, flags, Mode::from_bits_truncate(0o600))
        .map_err(io::Error::from)?;
    let mut dest = std::fs::File::from(fd);
    io::copy(&mut source, &mut dest)?;
    dest.set_permissions(std::fs::Permissions::from_mode(mode))?;
    keep_times(&dest, &meta)
}

/// Stamps `dest` (an open file, so no path is followed) with the access and
/// modification times of `source`, to the nanosecond.
fn keep_times(dest: &std::fs::File, source: &std::fs::Metadata) -> io::Result<()> {
    use nix::sys::time::TimeSpec;
    use std::os::unix::fs::MetadataExt as _;
    let atime = TimeSpec::new(source.atime(), source.atime_nsec());
    let mtime = TimeSpec::new(source.mtime(), source.mtime_nsec());
    nix::sys::stat::futimens(dest, &atime, &mtime).map_err(io::Error::from)
}

/// Removes what is at `name` in `dir` (a file or a link, never followed) so
/// a new entry can take its place; a directory there is an error.
fn replace(
    dir: &std::os::fd::OwnedFd,
    name: &std::ffi::OsStr,
    to: &Path,
    rel: &Path,
) -> io::Result<()> {
    use nix::unistd::{UnlinkatFlags, unlinkat};
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(nix::errno::Errno::EISDIR) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` (in `{}`) is a directory where a file or link is laid: \
                 two jobs' artifacts or a cache disagree about it; rename one",
                rel.display(),
                to.display()
            ),
        )),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// What to do about a destination path that crosses a link.
fn laying(e: io::Error) -> io::Error {
    if !e.to_string().contains("symbolic link") {
        return e;
    }
    io::Error::new(
        e.kind(),
        format!(
            "{e}; artifacts and caches are laid without following links \
             (another job's artifact or a committed file put the link there): \
             rename the link or the path laid over it"
        ),
    )
}

/// [`job_files::open_regular_beneath`], with what to do about a file that
/// is not one.
fn open_regular(root: &Path, rel: &Path) -> io::Result<std::fs::File> {
    job_files::open_regular_beneath(root, rel).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{e}; artifacts, caches and `hash` keep regular files, directories and \
                 symbolic links only: leave it out of their globs"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f).expect("write");
        }
        dir
    }

    #[test]
    fn matches_topmost_paths() {
        let dir = tree(&["target/a/b", "target/c", "src/x.rs", "src/y.txt", "README"]);
        let m = matches(dir.path(), &["target".into(), "src/*.rs".into()]).expect("walk");
        assert_eq!(m, [PathBuf::from("src/x.rs"), PathBuf::from("target")]);
        assert!(
            matches(dir.path(), &["*.rs".into()])
                .expect("walk")
                .is_empty()
        );
    }

    #[test]
    fn hash_depends_on_content() {
        let dir = tree(&["Cargo.lock"]);
        let a = hash_matching(dir.path(), &["Cargo.lock".into()]).expect("hash");
        std::fs::write(dir.path().join("Cargo.lock"), "changed").expect("write");
        let b = hash_matching(dir.path(), &["Cargo.lock".into()]).expect("hash");
        assert!(a.is_some() && b.is_some() && a != b);
        assert_eq!(
            hash_matching(dir.path(), &["nope".into()]).expect("hash"),
            None
        );
    }

    #[test]
    fn links_are_hashed_and_copied_as_links_and_fifos_refused() {
        let dir = tree(&["in/plain"]);
        let outside = tree(&["secret"]);
        let link = dir.path().join("in/link");
        std::os::unix::fs::symlink(outside.path().join("secret"), &link).expect("symlink");
        let before = hash_matching(dir.path(), &["in".into()]).expect("hash");
        std::fs::write(outside.path().join("secret"), "changed").expect("write");
        let after = hash_matching(dir.path(), &["in".into()]).expect("hash");
        assert_eq!(before, after, "a link's target is never read");
        let dst = tempfile::tempdir().expect("tempdir");
        copy_paths(dir.path(), dst.path(), &[PathBuf::from("in")]).expect("copy");
        assert!(
            std::fs::symlink_metadata(dst.path().join("in/link"))
                .expect("copied")
                .is_symlink()
        );
        nix::unistd::mkfifo(&dir.path().join("in/pipe"), nix::sys::stat::Mode::S_IRWXU)
            .expect("mkfifo");
        let err = hash_matching(dir.path(), &["in".into()]).expect_err("FIFO refused");
        assert!(err.to_string().contains("is a FIFO"), "{err}");
        let err =
            copy_paths(dir.path(), dst.path(), &[PathBuf::from("in")]).expect_err("FIFO refused");
        assert!(err.to_string().contains("in/pipe` is a FIFO"), "{err}");
    }

    #[test]
    fn copies_keep_times_and_modes() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let src = tree(&["a/tool", "a/data"]);
        let old = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::new(1_000_000_000, 123_456_789);
        let file = std::fs::File::options()
            .write(true)
            .open(src.path().join("a/tool"))
            .expect("open");
        file.set_times(
            std::fs::FileTimes::new()
                .set_modified(old)
                .set_accessed(old),
        )
        .expect("set times");
        std::fs::set_permissions(
            src.path().join("a/tool"),
            std::fs::Permissions::from_mode(0o750),
        )
        .expect("chmod");
        let dst = tempfile::tempdir().expect("tempdir");
        copy_paths(src.path(), dst.path(), &[PathBuf::from("a")]).expect("copy");
        let copied = std::fs::metadata(dst.path().join("a/tool")).expect("copied");
        assert_eq!(copied.modified().expect("mtime"), old);
        assert_eq!(copied.accessed().expect("atime"), old);
        assert_eq!(copied.mode() & 0o7777, 0o750);
    }

    #[test]
    fn copies_trees() {
        let src = tree(&["a/b/c", "d"]);
        let dst = tempfile::tempdir().expect("tempdir");
        copy_paths(
            src.path(),
            dst.path(),
            &[PathBuf::from("a"), PathBuf::from("d")],
        )
        .expect("copy");
        assert_eq!(
            std::fs::read_to_string(dst.path().join("a/b/c")).expect("read"),
            "a/b/c"
        );
        assert_eq!(
            std::fs::read_to_string(dst.path().join("d")).expect("read"),
            "d"
        );
    }
}
