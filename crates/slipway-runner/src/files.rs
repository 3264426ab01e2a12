//! File-tree work shared by workspaces, caches and artifacts: copying, glob
//! matching and hashing. Blocking I/O; callers run it on the blocking pool.

use std::io;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};

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
/// stands for everything inside it), relative to `root`, sorted.
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
        if set.is_match(rel) {
            found.push(rel.to_path_buf());
            if entry.file_type().is_dir() {
                walk.skip_current_dir();
            }
        }
    }
    Ok(found)
}

/// Every file under the given relative paths (directories expanded), sorted.
fn files_under(root: &Path, paths: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        files.extend(files_in(root, &root.join(p), |_| true)?);
    }
    files.sort();
    Ok(files)
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
/// stable order; `None` when nothing matches.
pub fn hash_matching(root: &Path, patterns: &[String]) -> io::Result<Option<String>> {
    let files = files_under(root, &matches(root, patterns)?)?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    for f in &files {
        hasher.update(f.to_string_lossy().as_bytes());
        hasher.update([0]);
        let mut file = std::fs::File::open(root.join(f))?;
        io::copy(&mut file, &mut hasher)?;
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    Ok(Some(digest.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Copies the listed relative paths from `from` to `to`, recreating directories;
/// directories in the list are copied whole, symlinks stay symlinks.
pub fn copy_paths(from: &Path, to: &Path, paths: &[PathBuf]) -> io::Result<()> {
    for p in paths {
        copy_entry(&from.join(p), &to.join(p))?;
    }
    Ok(())
}

/// Copies everything inside `from` into `to` (merging with what is there).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in walkdir::WalkDir::new(from).min_depth(1) {
        let entry = entry.map_err(io::Error::from)?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target)?;
        } else {
            copy_entry(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn copy_entry(from: &Path, to: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        return copy_tree(from, to);
    }
    if to.symlink_metadata().is_ok() {
        std::fs::remove_file(to)?;
    }
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else {
        std::fs::copy(from, to).map(drop)
    }
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
