//! Where a job runs and what it starts with: a fresh checkout of the sources
//! (see [`crate::source`]), the artifacts of the jobs it needs, and its
//! restored caches.

use std::io;
use std::path::{Path, PathBuf};

use slipway_quality::job_files;

use crate::files;

pub use crate::source::{Repository, STATE_DIR, Source};
pub use crate::stamps::SourceStamps;

/// A job's private directory, removed when dropped.
#[derive(Debug)]
pub struct Workspace {
    dir: tempfile::TempDir,
    stamps: std::sync::Arc<SourceStamps>,
    /// Dropped after `dir`: the record goes once the workspace has.
    _record: crate::orphans::WorkspaceRecord,
}

impl Workspace {
    /// A fresh checkout of `source` under `parent`, as `checkout` asks.
    pub async fn create(
        parent: &Path,
        job: &str,
        source: &Source,
        checkout: &slipway_spec::Checkout,
        sandbox: Option<&crate::Sandbox>,
    ) -> Result<Workspace, String> {
        let dir = std::fs::create_dir_all(parent)
            .and_then(|()| {
                tempfile::Builder::new()
                    .prefix(&format!("{job}-"))
                    .tempdir_in(parent)
            })
            .map_err(|e| format!("cannot create a workspace under {}: {e}", parent.display()))?;
        // Before the checkout: a `kill -9` from here on leaves a workspace the next start removes.
        let record = crate::orphans::WorkspaceRecord::write(parent, dir.path())
            .map_err(|e| format!("cannot record the workspace {}: {e}", dir.path().display()))?;
        let stamps = source.lay(dir.path(), checkout, sandbox).await?;
        Ok(Workspace {
            dir,
            stamps: std::sync::Arc::new(stamps),
            _record: record,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Its sources' times as checked out, for cache entries.
    pub fn stamps(&self) -> std::sync::Arc<SourceStamps> {
        self.stamps.clone()
    }
}

/// Artifacts kept by finished jobs, one directory per job.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    pub root: PathBuf,
}

impl ArtifactStore {
    /// Keeps what `patterns` match in the workspace; returns the kept paths.
    pub fn save(
        &self,
        job: &str,
        workspace: &Path,
        patterns: &[String],
    ) -> io::Result<Vec<PathBuf>> {
        let found = files::matches(workspace, patterns)?;
        let dest = self.root.join(job);
        if dest.exists() {
            std::fs::remove_dir_all(&dest)?;
        }
        std::fs::create_dir_all(&dest)?;
        files::copy_paths(workspace, &dest, &found)?;
        set_modes(&dest, private_mode)?;
        Ok(found)
    }

    /// Lays a finished job's artifacts into a workspace.
    pub fn lay(&self, job: &str, workspace: &Path) -> io::Result<()> {
        let from = self.root.join(job);
        if from.is_dir() {
            files::copy_tree(&from, workspace)?;
        }
        Ok(())
    }
}

/// Cached paths by key. An entry is immutable once written: it is assembled in
/// a temporary directory and renamed into place, so a crash never leaves half
/// an entry, and a key that exists is never written again.
#[derive(Debug, Clone)]
pub struct CacheStore {
    pub root: PathBuf,
}

/// Where, inside a cache entry, the paths saved from the job's home (`~/…`)
/// are kept: under Slipway's own directory, which no workspace path can be.
const HOME_IN_ENTRY: &str = ".slipway/home";

/// Splits cache paths into workspace globs and home globs (`~/` stripped).
fn split_home(patterns: &[String]) -> (Vec<String>, Vec<String>) {
    let (home, workspace): (Vec<_>, Vec<_>) = patterns.iter().partition(|p| p.starts_with("~/"));
    let home = home
        .into_iter()
        .map(|p| p.trim_start_matches("~/").to_string())
        .collect();
    (workspace.into_iter().cloned().collect(), home)
}

impl CacheStore {
    /// Restores the entry for `key` into the workspace (and what it keeps of
    /// the job's home into `home`, when the job has one), and gives sources
    /// unchanged since it was saved their times of then; `false` on a miss.
    pub fn restore(
        &self,
        key: &str,
        workspace: &Path,
        home: Option<&Path>,
        stamps: &SourceStamps,
    ) -> io::Result<bool> {
        let entry = self.root.join(key);
        if !entry.is_dir() {
            return Ok(false);
        }
        files::copy_tree_except(&entry, workspace, Path::new(STATE_DIR))?;
        stamps
            .apply(workspace, &entry)
            .map_err(|e| poisoned(&entry, e))?;
        if let Some(home) = home {
            restore_home(&entry, home).map_err(|e| poisoned(&entry, e))?;
        }
        Ok(true)
    }

    /// Saves what `patterns` match under `key` (`~/…` from `home`, skipped
    /// when the job has none), with the times of the sources it was built
    /// from; returns the saved paths.
    pub fn save(
        &self,
        key: &str,
        workspace: &Path,
        home: Option<&Path>,
        patterns: &[String],
        stamps: &SourceStamps,
    ) -> io::Result<Vec<PathBuf>> {
        let (in_workspace, in_home) = split_home(patterns);
        let found = files::matches(workspace, &in_workspace)?;
        let found_home = match home {
            Some(home) if !in_home.is_empty() => files::matches(home, &in_home)?,
            _ => Vec::new(),
        };
        std::fs::create_dir_all(&self.root)?;
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&self.root)?;
        // The entry's own directory is made here, before anything the job
        // left is copied (`files::matches` never yields `.slipway`), and
        // opened without following links whenever it is written.
        job_files::dir_beneath(staging.path(), Path::new(STATE_DIR), true)?;
        files::copy_paths(workspace, staging.path(), &found)?;
        if let Some(home) = home.filter(|_| !found_home.is_empty()) {
            job_files::dir_beneath(staging.path(), Path::new(HOME_IN_ENTRY), true)?;
            files::copy_paths(home, &staging.path().join(HOME_IN_ENTRY), &found_home)?;
        }
        stamps.record(workspace, staging.path())?;
        set_modes(staging.path(), private_mode)?;
        match std::fs::rename(staging.path(), self.root.join(key)) {
            Ok(()) => {}
            // Another job saved the same key first; theirs is as good as ours.
            Err(e) if self.root.join(key).is_dir() => drop(e),
            Err(e) => return Err(e),
        }
        let home_paths = found_home.into_iter().map(|p| Path::new("~").join(p));
        Ok(found.into_iter().chain(home_paths).collect())
    }

    /// Turns a rendered key into a directory name: anything unusual becomes `-`.
    pub fn sanitize(key: &str) -> String {
        key.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string()
    }
}

/// Copies what the entry keeps of a job's home into `home`. The entry's
/// `.slipway/home` is opened without following links: an entry saved
/// before `.slipway` was kept out of caches may hold the job's link there.
fn restore_home(entry: &Path, home: &Path) -> io::Result<()> {
    match job_files::dir_beneath(entry, Path::new(HOME_IN_ENTRY), false) {
        Ok(_) => files::copy_tree(&entry.join(HOME_IN_ENTRY), home),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// What to do about an entry whose own directory holds a link (or what is
/// not a directory) where Slipway keeps its state; other errors pass.
fn poisoned(entry: &Path, e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::InvalidInput {
        return e;
    }
    io::Error::new(
        e.kind(),
        format!(
            "{e}; the cache entry `{}` holds a job's file where Slipway keeps its own \
             (saved before Slipway kept a job's `.slipway` out of caches, from a \
             job that made it a link): delete that directory and run the job again",
            entry.display()
        ),
    )
}

/// A shared cache behind a machine's own one (an agent's server): an entry the
/// local store lacks is fetched from it, and a newly saved entry is sent to it.
pub trait CacheRemote: Send + Sync + std::fmt::Debug {
    /// Places the entry for `key` at `into` (which does not exist yet); `false` when the remote has none.
    fn fetch<'a>(&'a self, key: &'a str, into: &'a Path) -> BoxFuture<'a, Result<bool, String>>;
    /// Sends the entry stored at `entry` under `key`.
    fn store<'a>(&'a self, key: &'a str, entry: &'a Path) -> BoxFuture<'a, Result<(), String>>;
}

/// A boxed future, so [`CacheRemote`] can be used as a trait object.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The directories a sandboxed job writes besides its workspace: a private
/// temporary directory (removed with the job) and a home per project, kept
/// between its jobs (tool caches such as `~/.cargo` live there) and never
/// shared with another project.
#[derive(Debug)]
pub struct JobHome {
    tmp: tempfile::TempDir,
    home: PathBuf,
}

impl JobHome {
    /// The home of `project`'s jobs at this protection level (made by
    /// [`JobHome::create`]); caches of `~/…` are saved from and restored into it.
    pub fn home_of(work_root: &Path, project: &str, protected: bool) -> PathBuf {
        let project = match CacheStore::sanitize(project) {
            p if p.is_empty() => "_local".to_string(),
            p => p,
        };
        work_root
            .join(".homes")
            .join(protection_level(protected))
            .join(project)
    }

    /// Makes (or reuses) them under `work_root`, which jobs cannot list.
    pub fn create(
        work_root: &Path,
        workspace: &Path,
        project: &str,
        protected: bool,
    ) -> io::Result<JobHome> {
        let name = workspace
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp_root = work_root.join(".tmp");
        std::fs::create_dir_all(&tmp_root)?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(&tmp_root)?;
        let home = Self::home_of(work_root, project, protected);
        std::fs::create_dir_all(&home)?;
        Ok(JobHome { tmp, home })
    }

    /// What the job may write besides its workspace.
    pub fn writable(&self) -> Vec<PathBuf> {
        vec![self.tmp.path().to_path_buf(), self.home.clone()]
    }

    /// HOME and TMPDIR, and toolchains that keep working with another HOME:
    /// rustup's toolchains stay where they are (read-only), cargo's own
    /// downloads go to the project's home.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("HOME".to_string(), self.home.display().to_string()),
            ("TMPDIR".to_string(), self.tmp.path().display().to_string()),
            (
                "CARGO_HOME".to_string(),
                self.home.join(".cargo").display().to_string(),
            ),
        ];
        let own_home = std::env::var_os("HOME").map(PathBuf::from);
        for (var, dir) in [("RUSTUP_HOME", ".rustup"), ("PYENV_ROOT", ".pyenv")] {
            if std::env::var_os(var).is_some() {
                continue;
            }
            if let Some(path) = own_home
                .as_ref()
                .map(|h| h.join(dir))
                .filter(|p| p.is_dir())
            {
                env.push((var.to_string(), path.display().to_string()));
            }
        }
        env
    }
}

/// The name of a protection level, for its cache namespace and job homes:
/// jobs on protected branches never read what other branches' jobs wrote
/// (a poisoned `target/`, a `~/.cargo/config.toml` with a rustc wrapper).
pub fn protection_level(protected: bool) -> &'static str {
    if protected {
        "protected"
    } else {
        "unprotected"
    }
}

/// Stored copies (artifacts, cache entries) stay private to the server's user,
/// like everything in its data directory.
fn private_mode(mode: u32) -> u32 {
    mode & !0o077
}

/// What a job works on gets the modes umask 022 gives: group and others may
/// read (and enter or run) what the owner may. The server stores and exports
/// files owner-only, yet what a job builds from them (an image that runs as
/// another user) needs the usual modes; the workspace's parent stays private.
fn job_mode(mode: u32) -> u32 {
    let owner = mode & 0o500;
    mode | (owner >> 3) | (owner >> 6)
}

/// Gives a prepared workspace the usual modes (see [`job_mode`]).
pub fn open_for_job(workspace: &Path) -> io::Result<()> {
    set_modes(workspace, job_mode)
}

/// Applies `mode` to every file and directory below `root` (links are left alone).
fn set_modes(root: &Path, mode: fn(u32) -> u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.map_err(io::Error::other)?;
        if entry.file_type().is_symlink() {
            continue;
        }
        let now = entry
            .metadata()
            .map_err(io::Error::other)?
            .permissions()
            .mode()
            & 0o7777;
        let wanted = mode(now);
        if wanted != now {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(wanted))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_modes_are_what_umask_022_gives() {
        assert_eq!(job_mode(0o700), 0o755);
        assert_eq!(job_mode(0o600), 0o644);
        assert_eq!(job_mode(0o400), 0o444);
        assert_eq!(private_mode(0o755), 0o700);
        assert_eq!(private_mode(0o644), 0o600);
    }

    use crate::stamps::sh;

    /// A job's workspace (a checkout) and home, and a directory outside both.
    fn job_dirs(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (ws, home, outside) = (tmp.join("ws"), tmp.join("home"), tmp.join("outside"));
        for dir in [&ws, &home, &outside] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let commit = "git -c user.name=t -c user.email=t@t commit -qm one";
        sh(
            &ws,
            &format!("git init -q . && echo a > a && git add a && {commit}"),
        );
        sh(&home, "mkdir .x && echo from-home > .x/file");
        (ws, home, outside)
    }

    #[tokio::test]
    async fn a_saved_cache_never_writes_through_the_jobs_slipway_link() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ws, home, outside) = job_dirs(tmp.path());
        let stamps = SourceStamps::of_checkout(&ws, &ws, "HEAD", &[]).await;
        std::os::unix::fs::symlink(&outside, ws.join(STATE_DIR)).expect("symlink");
        let store = CacheStore {
            root: tmp.path().join("caches"),
        };
        let patterns = ["*".to_string(), "[.]s*".to_string(), "~/.x".to_string()];
        let saved = store
            .save("k", &ws, Some(&home), &patterns, &stamps)
            .expect("save");
        let written: Vec<_> = std::fs::read_dir(&outside).expect("ls").collect();
        assert!(written.is_empty(), "written outside: {written:?}");
        assert!(!saved.contains(&PathBuf::from(STATE_DIR)), "{saved:?}");
        let state = store.root.join("k").join(STATE_DIR);
        assert!(state.symlink_metadata().expect("state").is_dir());
        let kept = std::fs::read_to_string(state.join("home/.x/file")).expect("home kept");
        assert_eq!(kept, "from-home\n");
        assert!(state.join("sources").is_file(), "the record is kept");
    }

    #[tokio::test]
    async fn a_restore_never_reads_through_a_slipway_link_in_an_entry() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ws, home, outside) = job_dirs(tmp.path());
        let stamps = SourceStamps::of_checkout(&ws, &ws, "HEAD", &[]).await;
        sh(&outside, "mkdir home && echo server-secret > home/secret");
        let store = CacheStore {
            root: tmp.path().join("caches"),
        };
        let entry = store.root.join("k");
        std::fs::create_dir_all(&entry).expect("mkdir");
        std::os::unix::fs::symlink(&outside, entry.join(STATE_DIR)).expect("symlink");
        let err = store
            .restore("k", &ws, Some(&home), &stamps)
            .expect_err("a poisoned entry is refused");
        assert!(err.to_string().contains("delete that directory"), "{err}");
        assert!(!home.join("secret").exists(), "the server's file was read");
    }

    /// The server creates files owner-only (umask 077); the workspace is
    /// opened to the usual modes before the source times are taken, or the
    /// change time of every file moves and no entry records any.
    #[tokio::test]
    async fn a_server_checkout_records_its_sources() {
        use nix::sys::stat::{Mode, umask};
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        let commit = "git -c user.name=t -c user.email=t@t commit -qm one";
        sh(
            &repo,
            &format!("git init -q . && echo a > a && git add a && {commit}"),
        );
        let head = String::from_utf8(
            std::process::Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(&repo)
                .output()
                .expect("git")
                .stdout,
        )
        .expect("utf-8");
        let source = Source::mirror(&repo, head.trim(), "main", None)
            .await
            .expect("source");
        // nextest runs each test in a process of its own: the umask stays here.
        let before = umask(Mode::from_bits_truncate(0o077));
        let ws = Workspace::create(tmp.path(), "job", &source, &Default::default(), None).await;
        umask(before);
        let ws = ws.expect("workspace");
        open_for_job(ws.path()).expect("open");
        let entry = tmp.path().join("entry");
        std::fs::create_dir_all(&entry).expect("mkdir");
        ws.stamps().record(ws.path(), &entry).expect("record");
        let record = std::fs::read_to_string(entry.join(".slipway/sources")).expect("record");
        assert!(record.ends_with(" a\0"), "{record:?}");
    }
}
