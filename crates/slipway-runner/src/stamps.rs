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

/// Where, inside a cache entry, the record is kept: under Slipway's own
/// directory, which a restore never copies into the workspace.
const RECORD_IN_ENTRY: &str = ".slipway/sources";

/// A file's time to the nanosecond.
type Time = (i64, i64);

/// The tracked files of a fresh checkout: content and time of each.
#[derive(Debug, Clone, Default)]
pub struct SourceStamps {
    files: BTreeMap<PathBuf, (String, Time)>,
}

impl SourceStamps {
    /// Reads them from a checkout no step has run in yet; `laid` (the
    /// user's edits copied over it) are left out: their content is not
    /// the blob git names.
    pub async fn of_checkout(dir: &Path, laid: &[PathBuf]) -> SourceStamps {
        // Without them builds are merely slower: never a reason to fail a job.
        let Ok(blobs) = slipway_git::tracked_blobs(dir).await else {
            return SourceStamps::default();
        };
        let files = blobs
            .into_iter()
            .filter(|(path, _)| !laid.contains(path))
            .filter_map(|(path, blob)| Some((time_of(&dir.join(&path))?, path, blob)))
            .map(|(time, path, blob)| (path, (blob, time)))
            .collect();
        SourceStamps { files }
    }

    /// Writes into a cache entry being assembled the files of `ws` still as
    /// they were checked out (same time: the job did not rewrite them).
    pub fn record(&self, ws: &Path, entry: &Path) -> io::Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (path, (blob, time)) in &self.files {
            let (Some(name), Some(now)) = (path.to_str(), time_of(&ws.join(path))) else {
                continue;
            };
            if now == *time && !name.contains('\0') {
                text.push_str(&format!("{blob} {} {} {name}\0", time.0, time.1));
            }
        }
        let record = entry.join(RECORD_IN_ENTRY);
        if let Some(parent) = record.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(record, text)
    }

    /// Gives the files of `ws` whose content is the one the entry recorded
    /// that entry's time. Called before any step runs, yet after artifacts
    /// of other jobs were laid: no path is followed through a link.
    pub fn apply(&self, ws: &Path, entry: &Path) -> io::Result<()> {
        let Ok(text) = std::fs::read_to_string(entry.join(RECORD_IN_ENTRY)) else {
            return Ok(());
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

fn time_of(path: &Path) -> Option<Time> {
    let meta = path.symlink_metadata().ok().filter(|m| m.is_file())?;
    Some((meta.mtime(), meta.mtime_nsec()))
}

/// Sets the time of the regular file `rel` below `ws`; a link (at `rel` or
/// on the way there) or anything gone is skipped.
fn stamp(ws: &Path, rel: &Path, time: Time) -> io::Result<()> {
    use nix::sys::stat::{SFlag, UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let Ok((dir, name)) = slipway_quality::job_files::parent_beneath(ws, rel, false) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let ok = std::process::Command::new("sh")
            .args(["-ec", script])
            .current_dir(dir)
            .status()
            .expect("sh")
            .success();
        assert!(ok, "{script}");
    }

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
        let stamps = SourceStamps::of_checkout(&first, &[]).await;
        // The job rewrites one file: its time is not recorded.
        sh(&first, "echo c > rewritten");
        stamps.record(&first, &entry).expect("record");

        sh(
            &second,
            &format!(
                "git init -q . && echo a > same && echo B > edited && echo c > rewritten && git add . && {commit} two"
            ),
        );
        let stamps = SourceStamps::of_checkout(&second, &[]).await;
        stamps.apply(&second, &entry).expect("apply");
        assert_eq!(mtime(&second.join("same")), 978_307_200, "2001-01-01");
        assert!(mtime(&second.join("edited")) > 978_307_200);
        assert!(mtime(&second.join("rewritten")) > 978_307_200);
    }
}
