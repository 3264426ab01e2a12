//! Git, through the `git` command line.
//!
//! Running `git` rather than linking a library means the user's own configuration
//! (credentials, ssh, safe directories) applies and partial clones work. This crate
//! knows about repositories, commits and branches; nothing about pipelines.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run `git` ({0}); install git and make sure it is on PATH")]
    Spawn(#[source] std::io::Error),
    #[error("`git {args}` failed in {dir}: {stderr}")]
    Failed {
        args: String,
        dir: PathBuf,
        stderr: String,
    },
}

/// A directory inside a git work tree.
#[derive(Debug, Clone)]
pub struct WorkTree {
    dir: PathBuf,
}

/// What a run records about the code it ran on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revision {
    /// Full commit id of HEAD; empty outside a repository or before the first commit.
    pub commit: String,
    /// The checked-out branch; empty on a detached HEAD.
    pub branch: String,
}

impl WorkTree {
    /// The work tree containing `dir`, or `None` when `dir` is not inside one.
    pub async fn discover(dir: &Path) -> Result<Option<WorkTree>, GitError> {
        match git(dir, ["rev-parse", "--is-inside-work-tree"]).await {
            Ok(out) if out.trim() == "true" => Ok(Some(WorkTree {
                dir: dir.to_path_buf(),
            })),
            Ok(_) | Err(GitError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Tracked files and untracked files that are not ignored, under this
    /// directory, relative to it. Tracked files deleted from disk are left out.
    pub async fn files(&self) -> Result<Vec<PathBuf>, GitError> {
        let out = git(
            &self.dir,
            [
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
        )
        .await?;
        let mut files: Vec<PathBuf> = out
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .filter(|p| self.dir.join(p).symlink_metadata().is_ok())
            .collect();
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// The commit and branch checked out.
    pub async fn revision(&self) -> Result<Revision, GitError> {
        let commit = git(&self.dir, ["rev-parse", "--verify", "-q", "HEAD"])
            .await
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let branch = git(&self.dir, ["symbolic-ref", "-q", "--short", "HEAD"])
            .await
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Ok(Revision { commit, branch })
    }
}

async fn git<I, S>(dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let out = Command::new("git")
        .args(&args)
        .current_dir(dir)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let ok = std::process::Command::new("sh")
            .args(["-ec", script])
            .current_dir(dir)
            .status()
            .expect("sh runs")
            .success();
        assert!(ok, "{script}");
    }

    #[tokio::test]
    async fn lists_tracked_and_untracked_but_not_ignored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        sh(
            tmp.path(),
            "git init -q -b trunk . && mkdir -p sub target && echo a > sub/a && echo t > target/x \
             && echo 'target/' > .gitignore && git add . && git -c user.name=t -c user.email=t@t commit -qm one \
             && echo new > new.txt && echo gone > gone && git add gone && rm gone",
        );
        let tree = WorkTree::discover(tmp.path())
            .await
            .expect("git")
            .expect("repo");
        let files = tree.files().await.expect("files");
        assert_eq!(files, [".gitignore", "new.txt", "sub/a"].map(PathBuf::from));
        let rev = tree.revision().await.expect("rev");
        assert_eq!(rev.branch, "trunk");
        assert_eq!(rev.commit.len(), 40);
    }

    #[tokio::test]
    async fn outside_a_repository() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(WorkTree::discover(tmp.path()).await.expect("git").is_none());
    }
}
