//! Git, through the `git` command line.
//!
//! Running `git` rather than linking a library means the user's own configuration
//! (credentials, ssh, safe directories) applies and partial clones work. This crate
//! knows about repositories, commits and branches; nothing about pipelines.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use tokio::process::Command;

mod bundle;
mod checkout;
mod revisions;

pub use bundle::{
    AgentMirror, BundleOutput, Incoming, MAX_HAVES, bundle_since, heads_and_tags, is_commit_id,
    refs_digest,
};
pub use checkout::{
    Checkout, CheckoutOptions, Edits, LFS_PULL, RefLayout, Submodules, lfs_available,
    submodule_args, tracked_blobs, tree_files, without_credentials,
};

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

    /// Fixed prefixes and unquoted paths, whatever the user's git config says,
    /// so the reader sees `+++ b/PATH`.
    /// `git diff -U0 -M BASE` of the work tree (commits since BASE and
    /// uncommitted changes), paths relative to this directory: what new-code
    /// measures read.
    pub async fn diff_since(&self, base: &str) -> Result<String, GitError> {
        git(
            &self.dir,
            [
                "-c",
                "core.quotePath=false",
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--src-prefix=a/",
                "--dst-prefix=b/",
                "--relative",
                "-U0",
                "-M",
                base,
                "--",
            ],
        )
        .await
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

/// Where a mirror's `HEAD` points when the remote has no default branch:
/// outside `refs/heads`, so no branch, whatever its name, is taken for it.
const NO_DEFAULT: &str = "refs/slipway/no-default-branch";

/// A bare mirror of a project's remote repository, kept by the server: runs
/// read their pipeline file and sources from it, never from a work tree.
#[derive(Debug, Clone)]
pub struct Mirror {
    path: PathBuf,
}

impl Mirror {
    pub fn at(path: &Path) -> Mirror {
        Mirror {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clones the remote the first time, then fetches every branch and tag
    /// (pruning deleted ones: a job's checkout has the tags `git describe`
    /// reads). `url` may be a path or any URL git understands.
    pub async fn update(&self, url: &str, creds: Option<&Credentials>) -> Result<(), GitError> {
        if !self.path.join("HEAD").exists() {
            let parent = self.path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(GitError::Spawn)?;
            let target = std::path::absolute(&self.path)
                .map_err(GitError::Spawn)?
                .to_string_lossy()
                .to_string();
            remote_git(
                parent,
                // No hard links into a local remote: the mirror's objects are
                // its own files, private to the data directory.
                [
                    "clone",
                    "--quiet",
                    "--mirror",
                    "--no-hardlinks",
                    url,
                    &target,
                ],
                creds,
            )
            .await?;
            return Ok(());
        }
        remote_git(
            &self.path,
            [
                "fetch",
                "--quiet",
                "--prune",
                url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
            creds,
        )
        .await?;
        self.refresh_default(url, creds).await
    }

    /// Points the mirror's `HEAD` where the remote's points now: the default
    /// branch is protected, and one the remote's admin moved away from must
    /// stop being so.
    async fn refresh_default(
        &self,
        url: &str,
        creds: Option<&Credentials>,
    ) -> Result<(), GitError> {
        let out = remote_git(&self.path, ["ls-remote", "--symref", url, "HEAD"], creds).await?;
        let out = String::from_utf8_lossy(&out);
        let named = out.lines().find_map(|l| {
            let (target, name) = l.strip_prefix("ref: ")?.split_once('\t')?;
            (name == "HEAD").then(|| target.strip_prefix("refs/heads/"))?
        });
        // A remote whose HEAD names a missing branch lists none: no default then.
        let target = named.map_or_else(|| NO_DEFAULT.to_string(), |b| format!("refs/heads/{b}"));
        // Written only when it moved: a fetch that brought nothing writes
        // nothing (and so still works on a full disk).
        let current = git(&self.path, ["symbolic-ref", "--quiet", "HEAD"]).await;
        if current.is_ok_and(|c| c.trim() == target) {
            return Ok(());
        }
        git(&self.path, ["symbolic-ref", "HEAD", target.as_str()]).await?;
        Ok(())
    }

    /// The full commit id a branch name, tag or (abbreviated) commit names.
    pub async fn resolve(&self, rev: &str) -> Result<String, GitError> {
        let spec = format!("{rev}^{{commit}}");
        Ok(git(
            &self.path,
            [
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ],
        )
        .await?
        .trim()
        .to_string())
    }

    /// A file's size at a commit without reading it (`git cat-file -s`), or
    /// `None` when the commit has no such file: callers refuse what is too
    /// large before a byte of it is read.
    pub async fn file_size(&self, commit: &str, path: &str) -> Result<Option<u64>, GitError> {
        let spec = format!("{commit}:{path}");
        match git(&self.path, ["cat-file", "-s", &spec]).await {
            Ok(size) => Ok(size.trim().parse().ok()),
            Err(GitError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The remote's default branch (what its `HEAD` named at the last fetch),
    /// if that branch exists: a default naming a missing branch protects nothing
    /// (else whoever pushes a branch of that name first gets its protection).
    pub async fn default_branch(&self) -> Option<String> {
        let branch = git(&self.path, ["symbolic-ref", "--quiet", "HEAD"])
            .await
            .ok()?
            .trim()
            .strip_prefix("refs/heads/")
            .filter(|b| !b.is_empty())?
            .to_string();
        self.branch_tip(&branch)
            .await
            .ok()
            .flatten()
            .map(|_| branch)
    }

    /// A file's text at a commit, or `None` when the commit has no such file.
    pub async fn read_file(&self, commit: &str, path: &str) -> Result<Option<String>, GitError> {
        let spec = format!("{commit}:{path}");
        match git(&self.path, ["cat-file", "-e", &spec]).await {
            Ok(_) => Ok(Some(git(&self.path, ["cat-file", "blob", &spec]).await?)),
            Err(GitError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The commits `commit` has that `since` has not (all of its history when
    /// `since` is `None`), newest first, at most `limit`.
    pub async fn log(
        &self,
        since: Option<&str>,
        commit: &str,
        limit: usize,
    ) -> Result<Vec<CommitInfo>, GitError> {
        let range = match since {
            Some(since) => format!("{since}..{commit}"),
            None => commit.to_string(),
        };
        let max = format!("--max-count={limit}");
        let text = git(
            &self.path,
            [
                "log",
                max.as_str(),
                "--format=%H%x1f%an%x1f%ae%x1f%s%x1f%ct%x1f%cn%x1f%ce%x1e",
                "--end-of-options",
                range.as_str(),
            ],
        )
        .await?;
        Ok(text
            .split('\x1e')
            .filter_map(|record| {
                let mut f = record.trim_start_matches('\n').split('\x1f');
                Some(CommitInfo {
                    sha: f.next().filter(|s| !s.is_empty())?.to_string(),
                    author: f.next()?.to_string(),
                    email: f.next()?.to_string(),
                    subject: f.next()?.to_string(),
                    at: f.next().and_then(|t| t.trim().parse().ok()),
                    committer: f.next().unwrap_or_default().to_string(),
                    committer_email: f.next().unwrap_or_default().trim().to_string(),
                })
            })
            .collect())
    }

    /// Whether `commit` is `descendant` or in its history (`git merge-base
    /// --is-ancestor`); `false` when either is unknown.
    pub async fn is_ancestor(&self, commit: &str, descendant: &str) -> Result<bool, GitError> {
        let args = ["merge-base", "--is-ancestor", commit, descendant];
        match git(&self.path, args).await {
            Ok(_) => Ok(true),
            Err(GitError::Failed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The commit branch `branch` points at in the mirror (as fetched), if it exists.
    pub async fn branch_tip(&self, branch: &str) -> Result<Option<String>, GitError> {
        let spec = format!("refs/heads/{branch}^{{commit}}");
        let args = [
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ];
        match git(&self.path, args).await {
            Ok(out) => Ok(Some(out.trim().to_string())),
            Err(GitError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The merge-base of `branch` (as the remote has it) and `commit`, if both exist.
    pub async fn merge_base(&self, branch: &str, commit: &str) -> Option<String> {
        let branch = format!("refs/heads/{branch}");
        let out = git(&self.path, ["merge-base", branch.as_str(), commit])
            .await
            .ok()?;
        Some(out.trim().to_string()).filter(|c| !c.is_empty())
    }

    /// The last commit in `commit`'s history from more than `days` days ago.
    pub async fn commit_before(&self, commit: &str, days: u32) -> Option<String> {
        let before = format!("--before={days} days ago");
        let out = git(&self.path, ["rev-list", "-1", before.as_str(), commit])
            .await
            .ok()?;
        Some(out.trim().to_string()).filter(|c| !c.is_empty())
    }

    /// `git diff -U0 -M` from `base` (or, without one, from nothing: every
    /// line is new) to `commit`: a run's new code.
    pub async fn diff(&self, base: Option<&str>, commit: &str) -> Result<String, GitError> {
        // The empty tree: what a first run compares against.
        const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
        let base = base.unwrap_or(EMPTY_TREE);
        git(
            &self.path,
            [
                "-c",
                "core.quotePath=false",
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--src-prefix=a/",
                "--dst-prefix=b/",
                "-U0",
                "-M",
                base,
                commit,
                "--",
            ],
        )
        .await
    }

    /// Writes the tree of `commit` into `dest` (which must not exist yet).
    pub async fn export(&self, commit: &str, dest: &Path) -> Result<(), GitError> {
        std::fs::create_dir_all(dest).map_err(GitError::Spawn)?;
        let tar = self.archive(commit).await?;
        // Unpacking is blocking work: keep it off the async threads.
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || tar_extract(&tar, &dest))
            .await
            .map_err(|e| GitError::Spawn(std::io::Error::other(e)))?
            .map_err(GitError::Spawn)
    }

    /// The tree of `commit` as a tar archive. Entries are owner-only (0600,
    /// 0700): unpacked in a private data directory they stay private.
    pub async fn archive(&self, commit: &str) -> Result<Vec<u8>, GitError> {
        let args = ["-c", "tar.umask=0077", "archive", "--format=tar", commit];
        git_bytes(&self.path, args).await
    }
}

/// Every branch of a remote and its head commit (`git ls-remote --heads`).
pub async fn remote_heads(
    url: &str,
    creds: Option<&Credentials>,
) -> Result<Vec<(String, String)>, GitError> {
    let out = remote_git(Path::new("."), ["ls-remote", "--heads", url], creds).await?;
    let out = String::from_utf8_lossy(&out);
    Ok(out
        .lines()
        .filter_map(|l| {
            let (sha, name) = l.split_once('\t')?;
            Some((
                name.strip_prefix("refs/heads/")?.to_string(),
                sha.to_string(),
            ))
        })
        .collect())
}

fn tar_extract(tar: &[u8], dest: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(dest)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(tar)?;
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "tar -x failed with {status}"
        )));
    }
    Ok(())
}

/// One commit as a log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    pub author: String,
    pub email: String,
    pub subject: String,
    /// The committer time, seconds since the epoch.
    pub at: Option<i64>,
    /// Who made the commit object (`--author` can name anyone; this is who ran `git commit`).
    pub committer: String,
    pub committer_email: String,
}

/// Brings `commit` into branch `into` on the remote at `url` and pushes it:
/// a fast-forward, or else (unless `fast_forward_only`) a merge commit by
/// Slipway. Returns the branch's new head. Works in a scratch clone, so the
/// mirror and the remote only ever see a finished result.
pub async fn merge_into(
    url: &str,
    creds: Option<&Credentials>,
    commit: &str,
    from_branch: &str,
    into: &str,
    fast_forward_only: bool,
) -> Result<String, GitError> {
    let scratch = tempfile::tempdir().map_err(GitError::Spawn)?;
    let dir = scratch.path();
    let target = dir.join("tree");
    let target = target.to_string_lossy().to_string();
    remote_git(
        dir,
        [
            "clone",
            "--quiet",
            "--no-tags",
            "--branch",
            into,
            url,
            &target,
        ],
        creds,
    )
    .await?;
    let tree = Path::new(&target);
    let from_ref = format!("+refs/heads/{from_branch}:refs/remotes/origin/{from_branch}");
    remote_git(
        tree,
        ["fetch", "--quiet", "origin", from_ref.as_str()],
        creds,
    )
    .await?;
    let message = format!(
        "Merge {from_branch} ({}) into {into}, promoted by Slipway",
        short(commit)
    );
    let mut args = vec![
        "-c",
        "user.name=Slipway",
        "-c",
        "user.email=slipway@localhost",
        "merge",
        "--quiet",
    ];
    if fast_forward_only {
        args.push("--ff-only");
    } else {
        args.extend(["--no-edit", "-m", message.as_str()]);
    }
    args.extend(["--end-of-options", commit]);
    git(tree, args).await?;
    let head = git(tree, ["rev-parse", "HEAD"]).await?.trim().to_string();
    let refspec = format!("HEAD:refs/heads/{into}");
    remote_git(tree, ["push", "--quiet", "origin", refspec.as_str()], creds).await?;
    Ok(head)
}

/// A commit id cut to its first 12 digits, as messages show it.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// A username and password (or token) for a private remote, given to git by a
/// credential helper that reads them from the environment of that one git
/// process: they never reach the command line, a file, or the mirror's config.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

const HELPER: &str = "credential.helper=!f() { test \"$1\" = get || exit 0; \
    echo username=\"$SLIPWAY_GIT_USERNAME\"; echo password=\"$SLIPWAY_GIT_PASSWORD\"; }; f";

/// git talking to a remote: never prompts (a server has no terminal), and uses
/// `creds` when given.
async fn remote_git<I, S>(
    dir: &Path,
    args: I,
    creds: Option<&Credentials>,
) -> Result<Vec<u8>, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("git");
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    if let Some(c) = creds {
        // An empty helper first drops any configured ones, so ours is the only answer.
        cmd.args(["-c", "credential.helper=", "-c", HELPER])
            .env("SLIPWAY_GIT_USERNAME", &c.username)
            .env("SLIPWAY_GIT_PASSWORD", &c.password);
    }
    run(cmd, dir, args).await
}

async fn git<I, S>(dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let bytes = git_bytes(dir, args).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

async fn git_bytes<I, S>(dir: &Path, args: I) -> Result<Vec<u8>, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new("git"), dir, args).await
}

async fn run<I, S>(mut cmd: Command, dir: &Path, args: I) -> Result<Vec<u8>, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let out = cmd
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
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bundle::testing::{COMMIT, origin_and_mirror};
    use crate::checkout::sh;

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
    async fn the_default_branch_follows_the_remote_and_must_exist() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = format!(
            "git init -q -b main . && echo x > a && git add . && {COMMIT} one && git branch trunk"
        );
        let (origin, mirror, url) = origin_and_mirror(tmp.path(), &script).await;
        assert_eq!(mirror.default_branch().await.as_deref(), Some("main"));
        sh(&origin, "git symbolic-ref HEAD refs/heads/trunk");
        mirror.update(&url, None).await.expect("fetch");
        assert_eq!(mirror.default_branch().await.as_deref(), Some("trunk"));
        // The remote's default names no branch: nothing is the default.
        sh(&origin, "git symbolic-ref HEAD refs/heads/gone");
        mirror.update(&url, None).await.expect("fetch");
        assert_eq!(mirror.default_branch().await, None);
    }

    #[tokio::test]
    async fn mirrors_read_files_and_export_trees() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = format!(
            "git init -q -b main . && echo 'jobs: {{}}' > .slipway.yml && mkdir src && echo x > src/a \
             && git add . && {COMMIT} one"
        );
        let (origin, mirror, url) = origin_and_mirror(tmp.path(), &script).await;
        let head = mirror.resolve("main").await.expect("resolve");
        assert_eq!(
            remote_heads(&url, None).await.expect("ls-remote"),
            [("main".to_string(), head.clone())]
        );
        assert_eq!(
            mirror
                .read_file(&head, ".slipway.yml")
                .await
                .expect("read")
                .as_deref(),
            Some("jobs: {}\n")
        );
        assert_eq!(mirror.read_file(&head, "nope").await.expect("read"), None);
        sh(
            &origin,
            "echo y > src/b && git add . && git -c user.name=t -c user.email=t@t commit -qm two",
        );
        mirror.update(&url, None).await.expect("fetch");
        let second = mirror.resolve("main").await.expect("resolve");
        assert_ne!(head, second);
        let out = tmp.path().join("export");
        mirror.export(&second, &out).await.expect("export");
        assert!(out.join("src/b").is_file() && out.join(".slipway.yml").is_file());
        assert!(mirror.resolve("no-such-branch").await.is_err());
    }

    #[tokio::test]
    async fn new_code_references_in_a_mirror() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = format!(
            "git init -q -b main . && printf 'a\\n' > f && git add . && {COMMIT} base \
             && git checkout -qb feature && printf 'a\\nb\\n' > f && git add f && {COMMIT} feature \
             && git checkout -q main && printf 'z\\n' > g && git add g && {COMMIT} main-only"
        );
        let (_, mirror, _) = origin_and_mirror(tmp.path(), &script).await;
        let feature = mirror.resolve("feature").await.expect("feature");
        let main = mirror.resolve("main").await.expect("main");
        let base = mirror
            .merge_base("main", &feature)
            .await
            .expect("merge-base");
        assert_ne!(base, main, "the fork point, not main's head");
        let diff = mirror.diff(Some(&base), &feature).await.expect("diff");
        assert!(diff.contains("+b") && !diff.contains("+z"), "{diff}");
        assert_eq!(mirror.merge_base("no-such-branch", &feature).await, None);
        // Every commit is from today: none is older than a day.
        assert_eq!(mirror.commit_before(&feature, 1).await, None);
        let everything = mirror
            .diff(None, &feature)
            .await
            .expect("diff from nothing");
        assert!(
            everything.contains("+a") && everything.contains("+b"),
            "{everything}"
        );
    }

    #[tokio::test]
    async fn outside_a_repository() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(WorkTree::discover(tmp.path()).await.expect("git").is_none());
    }
}
