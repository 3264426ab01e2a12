//! Source times that keep restored build outputs incremental.
//!
//! A checkout stamps every file "now", so a restored Cargo `target` (whose
//! files keep their times) looks older than all its sources and is rebuilt
//! in full. So a cache entry records, for each tracked file the job left as
//! it was checked out, its content (blob id) and time; a later job restoring
//! the entry gives the files whose content is the same that time again, and
//! leaves the changed ones "now": what changed is rebuilt, nothing else.
//! Commit times would not do: a commit made before the cache was saved
//! (then pushed later) would look older than outputs built without it.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use slipway_quality::job_files;

/// Where, inside a cache entry, the record is kept: under Slipway's own
/// directory, which a restore never copies into the workspace.
const RECORD_IN_ENTRY: &str = ".slipway/sources";

/// A file's time to the nanosecond.
type Time = (i64, i64);

/// What says a file is the one checked out: its modification time, and
/// what no step can set back (`cp -p` and `touch -r` keep the time, not the
/// change time): inode, change time and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    time: Time,
    inode: u64,
    changed: Time,
    size: u64,
}

/// The tracked files of a fresh checkout: content and state of each.
#[derive(Debug, Clone, Default)]
pub struct SourceStamps {
    files: BTreeMap<PathBuf, (String, Seen)>,
}

impl SourceStamps {
    /// Reads them from a checkout no step has run in yet, made from
    /// `commit` in `repo` (the blobs are read there: git never runs in the
    /// workspace, whose config the confined fetch of submodules and LFS
    /// files could have written); `laid` (the user's edits copied over it)
    /// are left out: their content is not the blob git names.
    pub async fn of_checkout(
        dir: &Path,
        repo: &Path,
        commit: &str,
        laid: &[PathBuf],
    ) -> SourceStamps {
        // Without them builds are merely slower: never a reason to fail a job.
        let Ok(blobs) = slipway_git::tracked_blobs(repo, commit).await else {
            return SourceStamps::default();
        };
        let files = blobs
            .into_iter()
            .filter(|(path, _)| !laid.contains(path))
            .filter_map(|(path, blob)| Some((seen(&dir.join(&path))?, path, blob)))
            .map(|(seen, path, blob)| (path, (blob, seen)))
            .collect();
        SourceStamps { files }
    }

    /// Writes into a cache entry being assembled the files of `ws` still as
    /// they were checked out (not rewritten, even with their time kept).
    /// The record is a new file in the entry's own directory, made without
    /// following a link.
    pub fn record(&self, ws: &Path, entry: &Path) -> io::Result<()> {
        use std::io::Write as _;
        if self.files.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (path, (blob, then)) in &self.files {
            let (Some(name), Some(now)) = (path.to_str(), seen(&ws.join(path))) else {
                continue;
            };
            if now == *then && !name.contains('\0') {
                let time = then.time;
                text.push_str(&format!("{blob} {} {} {name}\0", time.0, time.1));
            }
        }
        let (dir, name) = job_files::parent_beneath(entry, Path::new(RECORD_IN_ENTRY), true)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(&dir, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(io::Error::from)?;
        std::fs::File::from(fd).write_all(text.as_bytes())
    }

    /// Gives the files of `ws` whose content is the one the entry recorded
    /// that entry's time. Called before any step runs, yet after artifacts
    /// of other jobs were laid: no path is followed through a link, in the
    /// workspace or in the entry.
    pub fn apply(&self, ws: &Path, entry: &Path) -> io::Result<()> {
        use std::io::Read as _;
        let mut text = String::new();
        match job_files::open_regular_beneath(entry, Path::new(RECORD_IN_ENTRY)) {
            Ok(mut file) => file.read_to_string(&mut text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for line in text.split('\0').filter(|l| !l.is_empty()) {
            let mut fields = line.splitn(4, ' ');
            let (Some(blob), Some(secs), Some(nanos), Some(name)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let path = Path::new(name);
            let ours = self.files.get(path).map(|(b, _)| b.as_str());
            let (Ok(secs), Ok(nanos)) = (secs.parse(), nanos.parse()) else {
                continue;
            };
            if ours == Some(blob) {
                stamp(ws, path, (secs, nanos))?;
            }
        }
        Ok(())
    }
}

/// A regular file's state (a link or anything gone: `None`).
fn seen(path: &Path) -> Option<Seen> {
    let meta = path.symlink_metadata().ok().filter(|m| m.is_file())?;
    Some(Seen {
        time: (meta.mtime(), meta.mtime_nsec()),
        inode: meta.ino(),
        changed: (meta.ctime(), meta.ctime_nsec()),
        size: meta.size(),
    })
}

/// Sets the time of the regular file `rel` below `ws`; a link (at `rel` or
/// on the way there) or anything gone is skipped.
fn stamp(ws: &Path, rel: &Path, time: Time) -> io::Result<()> {
    use nix::sys::stat::{SFlag, UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let Ok((dir, name)) = job_files::parent_beneath(ws, rel, false) else {
        return Ok(());
    };
    let is_file = nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|s| SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG);
    if !is_file {
        return Ok(());
    }
    let mtime = TimeSpec::new(time.0, time.1);
    utimensat(&dir, name, &mtime, &mtime, UtimensatFlags::NoFollowSymlink).map_err(io::Error::from)
}

/// `sh -ec SCRIPT` in `dir`, for this crate's tests.
#[cfg(test)]
pub(crate) fn sh(dir: &Path, script: &str) {
    let out = std::process::Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(out.status.success(), "{script}: {out:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mtime(path: &Path) -> i64 {
        path.metadata().expect("stat").mtime()
    }

    #[tokio::test]
    async fn unchanged_files_get_the_recorded_time_and_changed_ones_keep_theirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (first, second, entry) = (
            tmp.path().join("first"),
            tmp.path().join("second"),
            tmp.path().join("entry"),
        );
        for dir in [&first, &second, &entry] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let commit = "git -c user.name=t -c user.email=t@t commit -qm";
        sh(
            &first,
            &format!(
                "git init -q . && echo a > same && echo b > edited && echo c > rewritten && git add . && {commit} one && touch -d @978307200 same edited rewritten"
            ),
        );
        let stamps = SourceStamps::of_checkout(&first, &first, "HEAD", &[]).await;
        // The job rewrites one file: its time is not recorded.
        sh(&first, "echo c > rewritten");
        stamps.record(&first, &entry).expect("record");

        sh(
            &second,
            &format!(
                "git init -q . && echo a > same && echo B > edited && echo c > rewritten && git add . && {commit} two"
            ),
        );
        let stamps = SourceStamps::of_checkout(&second, &second, "HEAD", &[]).await;
        stamps.apply(&second, &entry).expect("apply");
        assert_eq!(mtime(&second.join("same")), 978_307_200, "2001-01-01");
        assert!(mtime(&second.join("edited")) > 978_307_200);
        assert!(mtime(&second.join("rewritten")) > 978_307_200);
    }

    const COMMIT: &str = "git -c user.name=t -c user.email=t@t commit -qm";

    #[tokio::test]
    async fn a_file_rewritten_with_its_time_kept_is_not_recorded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (first, second, entry) = (
            tmp.path().join("first"),
            tmp.path().join("second"),
            tmp.path().join("entry"),
        );
        for dir in [&first, &second, &entry] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let make = format!(
            "git init -q . && echo 'fn main() {{}}' > main.rs && git add . && {COMMIT} one && touch -d @978307200 main.rs"
        );
        sh(&first, &make);
        let stamps = SourceStamps::of_checkout(&first, &first, "HEAD", &[]).await;
        // A step changes the source, then gives it its old time back: the
        // build it cached was made from this content, not the commit's.
        sh(
            &first,
            "echo 'fn main() { evil() }' > new.rs && touch -r main.rs new.rs && cp -p new.rs main.rs",
        );
        assert_eq!(mtime(&first.join("main.rs")), 978_307_200);
        stamps.record(&first, &entry).expect("record");

        sh(
            &second,
            &make.replace(" && touch -d @978307200 main.rs", ""),
        );
        let stamps = SourceStamps::of_checkout(&second, &second, "HEAD", &[]).await;
        stamps.apply(&second, &entry).expect("apply");
        assert!(
            mtime(&second.join("main.rs")) > 978_307_200,
            "the commit's main.rs is newer than a build made from other content"
        );
    }

    #[tokio::test]
    async fn git_never_runs_in_the_workspace_with_its_config() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (origin, ws) = (tmp.path().join("origin"), tmp.path().join("ws"));
        std::fs::create_dir_all(&origin).expect("mkdir");
        sh(
            &origin,
            &format!("git init -q . && echo a > a && git add . && {COMMIT} one"),
        );
        sh(tmp.path(), "git clone -q origin ws");
        // What a confined submodule or LFS fetch could leave behind.
        let pwned = tmp.path().join("pwned");
        let hook = format!("touch {}; false", pwned.display());
        sh(&ws, &format!("git config core.fsmonitor '{hook}'"));
        let stamps = SourceStamps::of_checkout(&ws, &origin, "HEAD", &[]).await;
        assert!(!pwned.exists(), "the workspace's core.fsmonitor ran");
        assert_eq!(stamps.files.len(), 1, "{stamps:?}");
    }
}
