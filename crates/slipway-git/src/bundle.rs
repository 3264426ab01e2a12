//! How an agent's mirror of a project follows the server's: the agent says
//! which commits it has, the server answers with a `git bundle` of what is
//! missing (the run's commit, branches and tags), and the agent fetches from
//! it. A project's second job on an agent thus moves only the new commits.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::{GitError, Mirror, git};

/// The most commits an agent may say it has: its branches and tags.
pub const MAX_HAVES: usize = 20_000;

/// Where an agent's mirror keeps the last commit it was sent, so that
/// commit (even off every branch) counts among what it has.
const LAST_SENT: &str = "refs/slipway/last-run";

/// A bundle of `commit`, the mirror's branches and tags, less the history
/// of `haves` (commits the mirror does not know are ignored: they may be
/// another project's, and say nothing about this one). Each have must be a
/// full commit id.
pub async fn bundle_since(
    mirror: &Mirror,
    commit: &str,
    haves: &[String],
) -> Result<Vec<u8>, GitError> {
    let dir = mirror.path();
    let mut revs = format!("{commit}\n--branches\n--tags\n--not\n");
    for have in haves {
        revs.push_str(have);
        revs.push('\n');
    }
    let args = [
        "bundle",
        "create",
        "--quiet",
        "-",
        "--ignore-missing",
        "--stdin",
    ];
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(GitError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(revs.as_bytes())
            .await
            .map_err(GitError::Spawn)?;
    }
    let out = child.wait_with_output().await.map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Whether `id` is a full commit id (SHA-1 or SHA-256 hex).
pub fn is_commit_id(id: &str) -> bool {
    matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An agent's bare mirror of one project, fed by bundles from the server.
#[derive(Debug, Clone)]
pub struct AgentMirror {
    path: PathBuf,
}

impl AgentMirror {
    /// The mirror at `path`, made empty the first time.
    pub async fn open(path: &Path) -> Result<AgentMirror, GitError> {
        if !path.join("HEAD").exists() {
            std::fs::create_dir_all(path).map_err(GitError::Spawn)?;
            git(path, ["init", "--quiet", "--bare"]).await?;
        }
        Ok(AgentMirror {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the mirror holds `commit` already.
    pub async fn has(&self, commit: &str) -> bool {
        let spec = format!("{commit}^{{commit}}");
        git(&self.path, ["cat-file", "-e", &spec]).await.is_ok()
    }

    /// The commits (and tags) its references name: what the server need not send.
    pub async fn haves(&self) -> Result<Vec<String>, GitError> {
        let out = git(&self.path, ["for-each-ref", "--format=%(objectname)"]).await?;
        let mut haves: Vec<String> = out.lines().map(str::to_string).collect();
        haves.sort();
        haves.dedup();
        haves.truncate(MAX_HAVES);
        Ok(haves)
    }

    /// Takes in a bundle from the server: its branches and tags replace the
    /// mirror's, and `commit` is kept as the last one sent.
    pub async fn receive(&self, bundle: &[u8], commit: &str) -> Result<(), GitError> {
        let file = tempfile::Builder::new()
            .prefix(".incoming-")
            .suffix(".bundle")
            .tempfile_in(&self.path)
            .map_err(GitError::Spawn)?;
        std::fs::write(file.path(), bundle).map_err(GitError::Spawn)?;
        let from = file.path().to_string_lossy().to_string();
        // Kept as the pack it came as (never exploded into loose objects):
        // one file per update, and its size is what was sent.
        let args = [
            "-c",
            "fetch.unpackLimit=1",
            "fetch",
            "--quiet",
            "--no-write-fetch-head",
            from.as_str(),
            commit,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        ];
        git(&self.path, args).await?;
        git(&self.path, ["update-ref", LAST_SENT, commit])
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) -> String {
        let out = std::process::Command::new("sh")
            .args(["-ec", script])
            .current_dir(dir)
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    const COMMIT: &str = "git -c user.name=t -c user.email=t@t commit -qm";

    #[tokio::test]
    async fn a_second_bundle_brings_only_the_new_commit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let origin = tmp.path().join("origin");
        std::fs::create_dir_all(&origin).expect("mkdir");
        sh(
            &origin,
            &format!(
                "git init -q -b main . && head -c 200000 /dev/urandom > big && git add . \
                 && {COMMIT} one && git tag v1"
            ),
        );
        let mirror = Mirror::at(&tmp.path().join("mirror.git"));
        mirror
            .update(&origin.to_string_lossy(), None)
            .await
            .expect("mirror");
        let first = mirror.resolve("main").await.expect("main");
        let agent = AgentMirror::open(&tmp.path().join("agent.git"))
            .await
            .expect("open");
        assert!(!agent.has(&first).await);
        let haves = agent.haves().await.expect("haves");
        let whole = bundle_since(&mirror, &first, &haves).await.expect("bundle");
        agent.receive(&whole, &first).await.expect("receive");
        assert!(agent.has(&first).await);

        sh(
            &origin,
            &format!("echo small > f && git add f && {COMMIT} two"),
        );
        mirror
            .update(&origin.to_string_lossy(), None)
            .await
            .expect("fetch");
        let second = mirror.resolve("main").await.expect("main");
        let mut haves = agent.haves().await.expect("haves");
        // Another project's commit is ignored, not an error.
        haves.push("0123456789012345678901234567890123456789".into());
        let increment = bundle_since(&mirror, &second, &haves)
            .await
            .expect("bundle");
        assert!(
            increment.len() * 20 < whole.len(),
            "{} bytes then {} bytes",
            whole.len(),
            increment.len()
        );
        agent.receive(&increment, &second).await.expect("receive");
        assert!(agent.has(&second).await);
        let tags = sh(agent.path(), "git tag");
        assert_eq!(tags, "v1");
    }

    #[test]
    fn commit_ids_are_full_hex() {
        assert!(is_commit_id(&"a".repeat(40)));
        assert!(is_commit_id(&"0".repeat(64)));
        assert!(!is_commit_id("abc123"));
        assert!(!is_commit_id(&format!("--{}", "a".repeat(38))));
    }
}
