//! How an agent's mirror of a project follows the server's: the agent says
//! which commits it has, the server answers with a `git bundle` of what is
//! missing (the run's commit, branches and tags), and the agent fetches from
//! it. A project's second job on an agent thus moves only the new commits.
//! When nothing is missing (a new tag on a commit the agent has), the
//! server answers with its references instead, which the agent takes.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::{GitError, Mirror, git};

/// The most commits an agent may say it has: its branches and tags.
pub const MAX_HAVES: usize = 20_000;

/// Where an agent's mirror keeps the last commit it was sent, so that
/// commit (even off every branch) counts among what it has.
const LAST_SENT: &str = "refs/slipway/last-run";

/// The most of a bundle's beginning read before it is answered: its header
/// (one line per reference) ends well within.
const MAX_HEADER: usize = 8 << 20;

/// A `git bundle create` under way: the header it has written, and the
/// rest as it comes. Dropping it kills the git process.
#[derive(Debug)]
pub struct BundleOutput {
    head: Vec<u8>,
    stdout: ChildStdout,
    child: Child,
    stderr: JoinHandle<Vec<u8>>,
    dir: PathBuf,
}

impl BundleOutput {
    /// The next piece of the bundle; `None` once git finished well.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, GitError> {
        if !self.head.is_empty() {
            return Ok(Some(std::mem::take(&mut self.head)));
        }
        let mut buf = vec![0; 64 * 1024];
        let n = self.stdout.read(&mut buf).await.map_err(GitError::Spawn)?;
        if n > 0 {
            buf.truncate(n);
            return Ok(Some(buf));
        }
        let status = self.child.wait().await.map_err(GitError::Spawn)?;
        if status.success() {
            return Ok(None);
        }
        Err(self.failure().await)
    }

    async fn failure(&mut self) -> GitError {
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        GitError::Failed {
            args: "bundle create - --ignore-missing --stdin".into(),
            dir: self.dir.clone(),
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        }
    }
}

/// A bundle of `commit`, the mirror's branches and tags, less the history
/// of `haves` (commits the mirror does not know are ignored: they may be
/// another project's, and say nothing about this one). Each have must be a
/// full commit id. `None` when the agent has all of it: only references
/// may have moved (see [`Mirror::heads_and_tags`]).
///
/// Streamed: nothing but the header is held in memory, and the caller
/// bounds how long it runs (dropping the output kills git).
pub async fn bundle_since(
    mirror: &Mirror,
    commit: &str,
    haves: &[String],
) -> Result<Option<BundleOutput>, GitError> {
    let dir = mirror.path();
    let mut revs = format!("{commit}\n--branches\n--tags\n--not\n");
    for have in haves {
        revs.push_str(have);
        revs.push('\n');
    }
    let mut child = Command::new("git")
        .args([
            "bundle",
            "create",
            "--quiet",
            "-",
            "--ignore-missing",
            "--stdin",
        ])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(GitError::Spawn)?;
    let (Some(mut stdin), Some(stdout), Some(mut err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(GitError::Spawn(std::io::Error::other(
            "git's pipes are missing",
        )));
    };
    let stderr = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = (&mut err).take(64 * 1024).read_to_end(&mut text).await;
        text
    });
    stdin
        .write_all(revs.as_bytes())
        .await
        .map_err(GitError::Spawn)?;
    drop(stdin);
    read_header(BundleOutput {
        head: Vec::new(),
        stdout,
        child,
        stderr,
        dir: dir.to_path_buf(),
    })
    .await
}

/// Reads the bundle's header, up to its pack: git refuses an empty bundle
/// only after it wrote the header, so what it refused is known only then.
async fn read_header(mut out: BundleOutput) -> Result<Option<BundleOutput>, GitError> {
    let mut buf = vec![0; 64 * 1024];
    // Each read is searched (with the end of the one before) once.
    let mut searched = 0;
    while out.head.len() < MAX_HEADER {
        let n = out.stdout.read(&mut buf).await.map_err(GitError::Spawn)?;
        if n > 0 {
            out.head.extend_from_slice(&buf[..n]);
            if out.head[searched..].windows(6).any(|w| w == b"\n\nPACK") {
                break;
            }
            searched = out.head.len().saturating_sub(5);
            continue;
        }
        let status = out.child.wait().await.map_err(GitError::Spawn)?;
        if status.success() {
            break;
        }
        return match out.failure().await {
            GitError::Failed { stderr, .. } if stderr.contains("empty bundle") => Ok(None),
            e => Err(e),
        };
    }
    Ok(Some(out))
}

/// The branches and tags of the repository at `dir`, one `ID REFNAME` line
/// each, sorted by name: what an agent's mirror takes from the server's.
pub async fn heads_and_tags(dir: &Path) -> Result<String, GitError> {
    git(
        dir,
        [
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads",
            "refs/tags",
        ],
    )
    .await
}

/// A short digest of [`heads_and_tags`] (FNV-1a, the same in every build):
/// the server sends its own, and an agent whose differs asks for the references.
pub fn refs_digest(listing: &str) -> String {
    let hash = listing.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Whether `id` is a full commit id (SHA-1 or SHA-256 hex).
pub fn is_commit_id(id: &str) -> bool {
    matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A bundle being received: a file removed when dropped.
pub type Incoming = tempfile::NamedTempFile;

/// An agent's bare mirror of one project, fed by bundles from the server.
#[derive(Debug, Clone)]
pub struct AgentMirror {
    path: PathBuf,
}

impl AgentMirror {
    /// The mirror at `path`, made empty the first time. What an update cut
    /// short left (a bundle being received, a pack being written) is removed:
    /// only one update of a mirror runs at a time, and none is under way.
    pub async fn open(path: &Path) -> Result<AgentMirror, GitError> {
        if !path.join("HEAD").exists() {
            std::fs::create_dir_all(path).map_err(GitError::Spawn)?;
            git(path, ["init", "--quiet", "--bare"]).await?;
        }
        remove_leftovers(path, ".incoming-");
        remove_leftovers(&path.join("objects/pack"), "tmp_");
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

    /// The digest of its branches and tags (see [`refs_digest`]).
    pub async fn refs_digest(&self) -> Result<String, GitError> {
        Ok(refs_digest(&heads_and_tags(&self.path).await?))
    }

    /// A file in the mirror to write a bundle into (removed when dropped,
    /// or by the next [`AgentMirror::open`] if the agent is killed).
    pub fn incoming(&self) -> Result<Incoming, GitError> {
        tempfile::Builder::new()
            .prefix(".incoming-")
            .suffix(".bundle")
            .tempfile_in(&self.path)
            .map_err(GitError::Spawn)
    }

    /// Takes in a bundle from the server: its branches and tags replace the
    /// mirror's, and `commit` is kept as the last one sent.
    pub async fn receive(&self, bundle: &Path, commit: &str) -> Result<(), GitError> {
        let from = bundle.to_string_lossy().to_string();
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
        self.mark(commit).await
    }

    /// Takes the server's branches and tags ([`heads_and_tags`]) when it had
    /// no object to send: those the mirror lacks the object of are left out
    /// (the next bundle brings them), those the server no longer has go.
    pub async fn take_refs(&self, listing: &str, commit: &str) -> Result<(), GitError> {
        let wanted: Vec<(&str, &str)> = listing
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(id, name)| is_commit_id(id) && is_head_or_tag(name))
            .collect();
        let ids: String = wanted.iter().map(|(id, _)| format!("{id}\n")).collect();
        let found = git_input(&self.path, &["cat-file", "--batch-check"], &ids).await?;
        let mut script = String::new();
        for ((id, name), check) in wanted.iter().zip(found.lines()) {
            if !check.ends_with(" missing") {
                script.push_str(&format!("update {name} {id}\n"));
            }
        }
        for line in heads_and_tags(&self.path).await?.lines() {
            let name = line.split_once(' ').map_or("", |(_, name)| name);
            if !wanted.iter().any(|(_, n)| *n == name) {
                script.push_str(&format!("delete {name}\n"));
            }
        }
        git_input(&self.path, &["update-ref", "--stdin"], &script).await?;
        self.mark(commit).await
    }

    async fn mark(&self, commit: &str) -> Result<(), GitError> {
        git(&self.path, ["update-ref", LAST_SENT, commit])
            .await
            .map(drop)
    }
}

/// Only branches and tags, and no name `update-ref --stdin` would misread.
fn is_head_or_tag(name: &str) -> bool {
    (name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
        && !name.contains(char::is_whitespace)
        && !name.split('/').any(|part| part == "..")
}

/// Removes the entries of `dir` whose names begin with `prefix`.
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let path = entry.path();
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
        }
    }
}

/// `git ARGS` in `dir` with `input` on its standard input.
async fn git_input(dir: &Path, args: &[&str], input: &str) -> Result<String, GitError> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(GitError::Spawn)?;
    let stdin = child.stdin.take();
    let write = async move {
        if let Some(mut stdin) = stdin {
            stdin.write_all(input.as_bytes()).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let (written, out) = tokio::join!(write, child.wait_with_output());
    let out = out.map_err(GitError::Spawn)?;
    written.map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What this crate's tests share (with `checkout::sh`).
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    use crate::Mirror;
    use crate::checkout::sh;

    /// `git commit -qm` as a test's author.
    pub const COMMIT: &str = "git -c user.name=t -c user.email=t@t commit -qm";

    /// A repository `origin` in `tmp`, made by `script` run in it, and its
    /// mirror `mirror.git` cloned from it; with the origin's URL.
    pub async fn origin_and_mirror(tmp: &Path, script: &str) -> (PathBuf, Mirror, String) {
        let origin = tmp.join("origin");
        std::fs::create_dir_all(&origin).expect("mkdir");
        sh(&origin, script);
        let url = origin.to_string_lossy().to_string();
        let mirror = Mirror::at(&tmp.join("mirror.git"));
        mirror.update(&url, None).await.expect("clone");
        (origin, mirror, url)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{COMMIT, origin_and_mirror};
    use super::*;
    use crate::checkout::sh;

    /// What the server would send, received by the agent; its size.
    async fn send(mirror: &Mirror, agent: &AgentMirror, commit: &str) -> usize {
        let haves = agent.haves().await.expect("haves");
        let mut out = bundle_since(mirror, commit, &haves)
            .await
            .expect("bundle")
            .expect("something to send");
        let file = agent.incoming().expect("incoming");
        let mut bytes = Vec::new();
        while let Some(chunk) = out.next_chunk().await.expect("chunk") {
            bytes.extend_from_slice(&chunk);
        }
        std::fs::write(file.path(), &bytes).expect("write");
        agent.receive(file.path(), commit).await.expect("receive");
        bytes.len()
    }

    #[tokio::test]
    async fn a_second_bundle_brings_only_the_new_commit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = format!(
            "git init -q -b main . && head -c 200000 /dev/urandom > big && git add . \
             && {COMMIT} one && git tag v1"
        );
        let (origin, mirror, url) = origin_and_mirror(tmp.path(), &script).await;
        let first = mirror.resolve("main").await.expect("main");
        let agent = AgentMirror::open(&tmp.path().join("agent.git"))
            .await
            .expect("open");
        assert!(!agent.has(&first).await);
        let whole = send(&mirror, &agent, &first).await;
        assert!(agent.has(&first).await);

        sh(
            &origin,
            &format!("echo small > f && git add f && {COMMIT} two"),
        );
        mirror.update(&url, None).await.expect("fetch");
        let second = mirror.resolve("main").await.expect("main");
        // Another project's commit is ignored, not an error.
        let mut haves = agent.haves().await.expect("haves");
        haves.push("0123456789012345678901234567890123456789".into());
        assert!(
            bundle_since(&mirror, &second, &haves)
                .await
                .expect("bundle")
                .is_some()
        );
        let increment = send(&mirror, &agent, &second).await;
        assert!(
            increment * 20 < whole,
            "{whole} bytes then {increment} bytes"
        );
        assert!(agent.has(&second).await);
        assert_eq!(sh(agent.path(), "git tag"), "v1");
    }

    #[tokio::test]
    async fn with_nothing_to_send_the_references_are_taken() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = format!("git init -q -b main . && echo x > a && git add a && {COMMIT} one");
        let (origin, mirror, url) = origin_and_mirror(tmp.path(), &script).await;
        let commit = mirror.resolve("main").await.expect("main");
        let agent = AgentMirror::open(&tmp.path().join("agent.git"))
            .await
            .expect("open");
        send(&mirror, &agent, &commit).await;

        sh(&origin, "git tag v2 && git branch gone-soon");
        mirror.update(&url, None).await.expect("fetch");
        let haves = agent.haves().await.expect("haves");
        let answer = bundle_since(&mirror, &commit, &haves)
            .await
            .expect("bundle");
        assert!(
            answer.is_none(),
            "a new tag on a known commit: no objects to send"
        );
        let listing = heads_and_tags(mirror.path()).await.expect("refs");
        assert_ne!(
            agent.refs_digest().await.expect("digest"),
            refs_digest(&listing)
        );
        let hostile = format!("{listing}{commit} refs/remotes/x\n{commit} refs/heads/a b\n");
        agent.take_refs(&hostile, &commit).await.expect("take");
        assert_eq!(
            agent.refs_digest().await.expect("digest"),
            refs_digest(&listing)
        );
        assert_eq!(sh(agent.path(), "git describe --tags main"), "v2");
    }

    #[tokio::test]
    async fn opening_removes_what_an_interrupted_update_left() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("agent.git");
        let agent = AgentMirror::open(&path).await.expect("open");
        let (_, left) = agent.incoming().expect("incoming").keep().expect("keep");
        std::fs::write(path.join("objects/pack/tmp_pack_x"), "partial").expect("write");
        AgentMirror::open(&path).await.expect("open");
        assert!(!left.exists());
        assert!(!path.join("objects/pack/tmp_pack_x").exists());
        assert!(path.join("HEAD").exists());
    }

    #[test]
    fn commit_ids_are_full_hex() {
        assert!(is_commit_id(&"a".repeat(40)));
        assert!(is_commit_id(&"0".repeat(64)));
        assert!(!is_commit_id("abc123"));
        assert!(!is_commit_id(&format!("--{}", "a".repeat(38))));
    }
}
