//! A job's workspace as a git working tree of one commit, made from a
//! repository on this machine (the server's or an agent's mirror, or the
//! user's own clone) without the network.
//!
//! The objects are fetched (copied as a pack), never shared: no hard link
//! into the source (writing a hard-linked object would change the mirror's
//! file) and no alternates (the job would need to read the mirror, which
//! lives in the data directory jobs cannot reach). A workspace is thus a
//! repository of its own that a job may do anything with.

use std::path::Path;

use crate::{GitError, git};

/// How much of the repository a checkout brings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutOptions {
    /// Commits of history to fetch; `None` for all of it (with tags).
    pub depth: Option<u32>,
}

/// Whether submodules are checked out with the commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Submodules {
    #[default]
    No,
    /// The ones the commit names, not theirs.
    Yes,
    /// Theirs too, all the way down.
    Recursive,
}

/// Where a checkout's objects and references come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefLayout {
    /// A bare mirror: its branches become the checkout's `origin/…`.
    Mirror,
    /// A user's clone: its own `origin/…` stay `origin/…`.
    Clone,
}

/// One commit to check out.
#[derive(Debug, Clone)]
pub struct Checkout<'a> {
    /// The repository on this machine holding the commit.
    pub from: &'a Path,
    pub layout: RefLayout,
    pub commit: &'a str,
    /// The branch checked out at `commit`; empty for a detached HEAD.
    pub branch: &'a str,
    /// `origin`'s URL as the user knows it (credentials are dropped), or
    /// `None` to leave the checkout without a URL for `origin`.
    pub origin: Option<&'a str>,
}

impl Checkout<'_> {
    /// Makes `dest` (an empty or missing directory) a working tree of the
    /// commit with its `.git`, its branch checked out by name. Submodules
    /// and LFS files are left to the caller (see [`submodule_args`]).
    pub async fn make(&self, dest: &Path, options: &CheckoutOptions) -> Result<(), GitError> {
        std::fs::create_dir_all(dest).map_err(GitError::Spawn)?;
        git(dest, ["init", "--quiet"]).await?;
        self.fetch(dest, options).await?;
        let mut args = vec!["checkout", "--quiet", "--force"];
        if !self.branch.is_empty() {
            args.extend(["-B", self.branch]);
        }
        args.extend(["--end-of-options", self.commit]);
        git(dest, args).await?;
        self.name_origin(dest).await
        // Submodules and LFS files come from URLs the commit names: the
        // caller fetches them as the job would (see [`submodule_args`]).
    }

    async fn fetch(&self, dest: &Path, options: &CheckoutOptions) -> Result<(), GitError> {
        let from = self.from.to_string_lossy();
        let mut args: Vec<String> = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]
            .map(String::from)
            .to_vec();
        if let Some(depth) = options.depth {
            // A shallow checkout is the commit alone: branches and tags
            // would each bring `depth` commits more.
            args.extend([format!("--depth={depth}"), from.to_string()]);
            args.push(self.commit.to_string());
            return git(dest, args).await.map(drop);
        }
        let branches = match self.layout {
            RefLayout::Mirror => "+refs/heads/*:refs/remotes/origin/*",
            RefLayout::Clone => "+refs/remotes/origin/*:refs/remotes/origin/*",
        };
        args.extend([
            from.to_string(),
            self.commit.to_string(),
            branches.to_string(),
            "+refs/tags/*:refs/tags/*".to_string(),
        ]);
        git(dest, args).await.map(drop)
    }

    /// `origin` with the URL the user knows, so `git remote -v` and tools
    /// that read it see the project, never a token or the data directory.
    async fn name_origin(&self, dest: &Path) -> Result<(), GitError> {
        let Some(url) = self.origin.map(without_credentials) else {
            return Ok(());
        };
        git(dest, ["config", "remote.origin.url", url.as_str()]).await?;
        let refspec = "+refs/heads/*:refs/remotes/origin/*";
        git(dest, ["config", "remote.origin.fetch", refspec]).await?;
        Ok(())
    }
}

/// What `slipway run` lays over a checkout of HEAD: the user's edits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    /// Tracked files changed since HEAD and untracked files not ignored.
    pub changed: Vec<std::path::PathBuf>,
    /// Tracked files deleted from disk.
    pub deleted: Vec<std::path::PathBuf>,
}

impl crate::WorkTree {
    /// Whether this directory is the top of its work tree (a checkout of
    /// the repository lays files where they are only from there).
    pub async fn is_top(&self) -> Result<bool, GitError> {
        let top = git(&self.dir, ["rev-parse", "--show-toplevel"]).await?;
        let top = Path::new(top.trim())
            .canonicalize()
            .map_err(GitError::Spawn)?;
        let here = self.dir.canonicalize().map_err(GitError::Spawn)?;
        Ok(top == here)
    }

    /// The user's edits since HEAD (see [`Edits`]).
    pub async fn edits(&self) -> Result<Edits, GitError> {
        let list = |args: &'static [&'static str]| async move {
            let out = git(&self.dir, args).await?;
            Ok::<_, GitError>(
                out.split('\0')
                    .filter(|p| !p.is_empty())
                    .map(std::path::PathBuf::from)
                    .collect::<Vec<_>>(),
            )
        };
        let changed = list(&[
            "ls-files",
            "-z",
            "--modified",
            "--others",
            "--exclude-standard",
        ]);
        let mut changed = changed.await?;
        let deleted = list(&["ls-files", "-z", "--deleted"]).await?;
        changed.retain(|p| self.dir.join(p).symlink_metadata().is_ok());
        changed.sort();
        changed.dedup();
        Ok(Edits { changed, deleted })
    }

    /// `origin`'s URL, if the repository has one.
    pub async fn origin_url(&self) -> Option<String> {
        let url = git(&self.dir, ["config", "--get", "remote.origin.url"]).await;
        url.ok()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
    }
}

/// The paths of the files in `commit`'s tree (links included, submodules
/// not), read from `repo` (a mirror or a clone): the repository's files a
/// quality gate maps report paths onto.
pub async fn tree_files(repo: &Path, commit: &str) -> Result<Vec<std::path::PathBuf>, GitError> {
    let entries = tree_entries(repo, commit).await?;
    Ok(entries
        .into_iter()
        .filter(|(mode, _, _)| mode != "160000")
        .map(|(_, _, path)| path)
        .collect())
}

/// The regular files in `commit`'s tree (not links, not submodules) and
/// the blob each holds: what a cache entry's record of source times is
/// matched against. Read from `repo` (the mirror or the user's clone the
/// checkout was made from), never from the job's workspace: git reads a
/// repository's config, and a job (or the confined fetch of submodules
/// and LFS files) may have written `core.fsmonitor` into the workspace's.
pub async fn tracked_blobs(
    repo: &Path,
    commit: &str,
) -> Result<Vec<(std::path::PathBuf, String)>, GitError> {
    let entries = tree_entries(repo, commit).await?;
    Ok(entries
        .into_iter()
        .filter(|(mode, _, _)| matches!(mode.as_str(), "100644" | "100755"))
        .map(|(_, blob, path)| (path, blob))
        .collect())
}

/// `git ls-tree -r` of `commit` in `repo`: (mode, object id, path) of each entry.
async fn tree_entries(
    repo: &Path,
    commit: &str,
) -> Result<Vec<(String, String, std::path::PathBuf)>, GitError> {
    let listing = git(repo, ["ls-tree", "-r", "-z", "--end-of-options", commit]).await?;
    Ok(listing
        .split('\0')
        .filter_map(|entry| {
            let (meta, path) = entry.split_once('\t')?;
            let mut fields = meta.split(' ');
            let (mode, _kind, id) = (fields.next()?, fields.next()?, fields.next()?);
            Some((
                mode.to_string(),
                id.to_string(),
                std::path::PathBuf::from(path),
            ))
        })
        .collect())
}

/// The `git` arguments that check out the submodules the commit's
/// `.gitmodules` names (local paths allowed: git refuses `file` transport
/// for submodules by default), or `None` when none are wanted. Those URLs
/// are the commit's to choose: run this with no more power than the job
/// (it could name another project's repository on this machine).
pub fn submodule_args(mode: Submodules) -> Option<Vec<&'static str>> {
    let mut args = vec![
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "update",
        "--init",
        "--quiet",
    ];
    match mode {
        Submodules::No => return None,
        Submodules::Yes => {}
        Submodules::Recursive => args.push("--recursive"),
    }
    Some(args)
}

/// The `git` arguments that fetch and check out Git LFS files from
/// `origin` (the same caution as [`submodule_args`] applies).
pub const LFS_PULL: &[&str] = &["lfs", "pull"];

/// Whether Git LFS is installed here (and if so, its filters set up in
/// `dest`); the error says what to do when not. It runs git in `dest` as
/// this process: call it on a fresh checkout, before anything confined
/// (the submodules' fetch, `git lfs pull`, a step) could write its config.
pub async fn lfs_available(dest: &Path) -> Result<(), GitError> {
    match git(dest, ["lfs", "version"]).await {
        Ok(_) => git(dest, ["lfs", "install", "--local"]).await.map(drop),
        Err(GitError::Failed { .. }) => Err(GitError::Failed {
            args: "lfs version".into(),
            dir: dest.to_path_buf(),
            stderr: "`checkout: { lfs: true }` needs Git LFS, which is not installed on this \
                     machine: install `git-lfs` where jobs run, or set `lfs: false`"
                .into(),
        }),
        Err(e) => Err(e),
    }
}

/// `url` without credentials: over HTTP(S) the whole user part goes (a
/// token is often given as the user name: `https://tok@host/x`); elsewhere
/// only a password (`ssh://git@host/x` keeps its user). Scp-like
/// `git@host:x` and paths are left as they are.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((user, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        return format!("{scheme}://{host}{path}");
    }
    let user = user.split_once(':').map_or(user, |(name, _)| name);
    format!("{scheme}://{user}@{host}{path}")
}

/// `sh -ec SCRIPT` in `dir`, for this crate's tests: its output, trimmed.
#[cfg(test)]
pub(crate) fn sh(dir: &Path, script: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_checkout_has_tags_its_branch_and_no_secret() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let origin = tmp.path().join("origin");
        std::fs::create_dir_all(&origin).expect("mkdir");
        let commit = crate::bundle::testing::COMMIT;
        sh(
            &origin,
            &format!(
                "git init -q -b main . && echo a > a && git add . && {commit} one \
                 && git tag -a -m r v1.2.3 && echo b > b && git add . && {commit} two"
            ),
        );
        let mirror = crate::Mirror::at(&tmp.path().join("mirror.git"));
        mirror
            .update(&origin.to_string_lossy(), None)
            .await
            .expect("mirror");
        let head = mirror.resolve("main").await.expect("main");
        let ws = tmp.path().join("ws");
        let checkout = Checkout {
            from: mirror.path(),
            layout: RefLayout::Mirror,
            commit: &head,
            branch: "main",
            origin: Some("https://tok:secret@git.example/p.git"),
        };
        checkout
            .make(&ws, &CheckoutOptions::default())
            .await
            .expect("checkout");
        assert_eq!(
            sh(&ws, "git describe --tags"),
            format!("v1.2.3-1-g{}", &head[..7])
        );
        assert_eq!(sh(&ws, "git rev-parse --abbrev-ref HEAD"), "main");
        assert_eq!(sh(&ws, "git rev-parse origin/main"), head);
        let config = std::fs::read_to_string(ws.join(".git/config")).expect("config");
        assert!(
            !config.contains("secret") && !config.contains("mirror.git"),
            "{config}"
        );
        assert_eq!(sh(&ws, "git status --porcelain"), "");
        let blobs = tracked_blobs(mirror.path(), &head).await.expect("ls-tree");
        let names: Vec<_> = blobs.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(blobs[0].1, sh(&ws, "git hash-object a"));

        let shallow = tmp.path().join("shallow");
        let options = CheckoutOptions { depth: Some(1) };
        checkout.make(&shallow, &options).await.expect("shallow");
        assert_eq!(
            sh(&shallow, "git rev-parse --is-shallow-repository"),
            "true"
        );
        assert_eq!(sh(&shallow, "git rev-list --count HEAD"), "1");
    }

    #[test]
    fn credentials_are_dropped_from_urls() {
        assert_eq!(
            without_credentials("https://x-token:s3cret@git.example/a/b.git"),
            "https://git.example/a/b.git"
        );
        assert_eq!(
            without_credentials("ssh://git:pw@host:22/x"),
            "ssh://git@host:22/x"
        );
        assert_eq!(without_credentials("git@host:a/b"), "git@host:a/b");
        assert_eq!(without_credentials("/srv/repo"), "/srv/repo");
        assert_eq!(without_credentials("https://host/a@b"), "https://host/a@b");
    }
}
