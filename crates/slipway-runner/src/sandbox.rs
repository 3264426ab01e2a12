//! Host steps in a sandbox: what a job runs on a server worker or an agent
//! must not reach the powers of the process that runs it (its data
//! directory, keys, tokens, database, other jobs, the Docker engine).
//!
//! The sandbox is entered by re-executing Slipway's own binary as a small
//! launcher (`slipway sandbox-exec …`), which confines itself and then
//! `exec`s the step's shell. A fresh single-threaded process can make the
//! confinement with ordinary, allocating, safe code (and report a clear
//! error) instead of doing it between `fork` and `exec`.
//!
//! What the launcher does, in this order (each step needs the one before
//! to still hold its privileges):
//! 1. a private mount namespace (with a user namespace when not root), in
//!    which the Docker and containerd sockets are covered (the engine is
//!    root-equivalent, and Landlock up to ABI 8 cannot refuse a `connect()`
//!    to a pathname socket), `/dev/shm` is a tmpfs of its own (the host's is
//!    shared by every process) and `/dev/pts` a new devpts instance (the
//!    host's holds the terminals of the server's user: with one open, a
//!    `TIOCSTI` types commands into it);
//! 2. every capability dropped (bounding, ambient, inheritable, permitted,
//!    effective), so uid 0 in a job is an ordinary owner of its files;
//! 3. Landlock: read and execute everywhere but the protected paths and
//!    `/dev` (a few harmless devices excepted: a raw disk is readable by
//!    uid 0 without any capability), write only in the job's own
//!    directories; signals and abstract Unix sockets scoped to the job
//!    (it cannot signal the server, the agent or other jobs). Landlock also
//!    forbids undoing the mounts of step 1. `no_new_privs` is set with it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

/// The launcher's subcommand of the `slipway` binary.
pub const LAUNCHER_COMMAND: &str = "sandbox-exec";

/// The Landlock ABI whose rights we handle: 5 brings device ioctls, 6 the
/// signal and abstract-socket scopes. An older kernel is refused.
const FS_ABI: ABI = ABI::V5;
const SCOPE_ABI: ABI = ABI::V6;

/// Sockets that give control of the container engine: covered in the
/// job's mount namespace. Directories are covered whole (containerd keeps
/// its shims' sockets below its own).
const ENGINE_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/docker",
    "/run/containerd",
    "/var/run/containerd",
    "/run/podman",
    "/run/buildkit",
];

/// Paths no job reads whoever runs it: the engine's state (images, volumes,
/// other containers' files) and the credentials of the server's user.
const ALWAYS_PROTECTED: &[&str] = &["/var/lib/docker", "/var/lib/containerd"];
const HOME_CREDENTIALS: &[&str] = &[
    ".ssh",
    ".docker",
    ".git-credentials",
    ".netrc",
    ".pgpass",
    ".config/slipway",
    ".gnupg",
];

/// Devices a job may use; everything else in `/dev` is out of reach.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
];

/// Why a job cannot be confined.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "this kernel cannot confine jobs: {0}; Slipway needs Landlock ABI 6 (Linux 6.12 or later, \
         with `landlock` in the `lsm=` boot parameter)"
    )]
    Unsupported(String),
    #[error("cannot start the sandbox launcher {path}: {source}")]
    Launcher {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the sandbox launcher fails: {0}")]
    Probe(String),
    #[error(
        "jobs cannot be let write {shared}: it holds or is inside {protected}, which they must not reach; \
         name a directory of its own"
    )]
    Overlap { shared: PathBuf, protected: PathBuf },
    #[error("sandbox: cannot {what}: {source}")]
    Setup {
        what: String,
        source: std::io::Error,
    },
    #[error("sandbox: cannot run {program}: {source}")]
    Exec {
        program: String,
        source: std::io::Error,
    },
}

fn setup(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Setup { what, source }
}

fn errno(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

fn landlock_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// How a server or an agent confines the host steps it runs.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The `slipway` binary, re-executed as the launcher.
    launcher: PathBuf,
    /// What no job may read: the data directory, config files, credentials.
    protected: Vec<PathBuf>,
    /// Directories every job may write besides its own, as the admin chose.
    shared: Vec<PathBuf>,
}

impl Sandbox {
    /// A sandbox that keeps jobs out of `protected` (besides the engine's
    /// state and the credentials in this user's home), after checking that
    /// this kernel and this binary can enforce it.
    /// `shared`: directories the admin lets every job write (a scratch
    /// directory); none may hold or be inside a protected path.
    pub async fn new(
        launcher: PathBuf,
        protected: &[PathBuf],
        shared: &[PathBuf],
    ) -> Result<Sandbox, SandboxError> {
        kernel_support()?;
        for dir in shared {
            if let Some(p) = protected
                .iter()
                .find(|p| p.starts_with(dir) || dir.starts_with(p))
            {
                return Err(SandboxError::Overlap {
                    shared: dir.clone(),
                    protected: p.clone(),
                });
            }
        }
        let mut all: Vec<PathBuf> = protected.to_vec();
        all.extend(ALWAYS_PROTECTED.iter().map(PathBuf::from));
        if let Some(home) = std::env::var_os("HOME") {
            all.extend(HOME_CREDENTIALS.iter().map(|c| Path::new(&home).join(c)));
        }
        let sandbox = Sandbox {
            launcher,
            protected: all,
            shared: shared.to_vec(),
        };
        sandbox.probe().await?;
        Ok(sandbox)
    }

    /// One line for the startup log: what is enforced.
    pub fn describe(&self) -> String {
        format!(
            "host steps are sandboxed: Landlock (no read of {}; writes only in the job's workspace, \
             temporary directory and home; no signals outside the job), no capabilities, \
             no_new_privs, the container engine's sockets hidden, /dev/shm and terminals \
             of their own",
            self.protected
                .iter()
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// The launcher command that runs a job's `program ARGS` confined,
    /// writing only in `writable` and the admin's shared directories.
    pub(crate) fn command(&self, writable: &[PathBuf], program: &str) -> tokio::process::Command {
        let mut all = writable.to_vec();
        all.extend(self.shared.iter().cloned());
        self.launch(&[], &all, program)
    }

    /// The launcher command that runs `program ARGS` confined, reading also
    /// `readable` (which may lie inside a protected path: a release's tree in
    /// the data directory) and writing only in `writable`. The jobs' shared
    /// directories are not given: this is for what a release runs.
    pub fn launch(
        &self,
        readable: &[PathBuf],
        writable: &[PathBuf],
        program: &str,
    ) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.launcher);
        command.arg(LAUNCHER_COMMAND);
        for path in &self.protected {
            command.arg("--protect").arg(path);
        }
        for path in readable {
            command.arg("--read").arg(path);
        }
        for path in writable {
            command.arg("--write").arg(path);
        }
        command.arg("--").arg(program);
        command
    }

    /// Runs `true` confined once: a launcher that cannot confine fails here,
    /// at startup, not in the middle of the first job.
    async fn probe(&self) -> Result<(), SandboxError> {
        let scratch = tempfile::tempdir().map_err(setup("create a probe directory"))?;
        let out = self
            .command(&[scratch.path().to_path_buf()], "true")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|source| SandboxError::Launcher {
                path: self.launcher.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SandboxError::Probe(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }
}

/// Whether this kernel offers what the sandbox needs (Landlock with scopes).
pub fn kernel_support() -> Result<(), SandboxError> {
    ruleset()
        .and_then(|r| r.create())
        .map(drop)
        .map_err(|e| SandboxError::Unsupported(e.to_string()))
}

fn ruleset() -> Result<Ruleset, landlock::RulesetError> {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(FS_ABI))?
        .scope(Scope::from_all(SCOPE_ABI))
}

/// What the launcher was asked: the paths to keep out of reach, what may
/// be read even inside them, and the job's own directories.
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    pub protected: Vec<PathBuf>,
    pub readable: Vec<PathBuf>,
    pub writable: Vec<PathBuf>,
}

impl Confinement {
    /// Confines this process and becomes `command`; returns only on failure.
    /// Must run while the process has a single thread (user namespaces demand it).
    pub fn exec(self, command: &[OsString]) -> SandboxError {
        let Some((program, args)) = command.split_first() else {
            return SandboxError::Exec {
                program: String::new(),
                source: std::io::Error::other("no command given"),
            };
        };
        if let Err(e) = self.enter() {
            return e;
        }
        use std::os::unix::process::CommandExt as _;
        let source = std::process::Command::new(program).args(args).exec();
        SandboxError::Exec {
            program: program.to_string_lossy().into_owned(),
            source,
        }
    }

    fn enter(&self) -> Result<(), SandboxError> {
        // The server keeps its own files private (umask 077); what a job makes
        // is the job's, with the usual 022: a binary it builds may be copied
        // into an image that runs as another user.
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
        let ruleset = self.read_rules()?;
        private_mounts()?;
        private_devices()?;
        hide_engine_sockets()?;
        // After the mounts: the rules on `/dev/shm` and `/dev/pts` must
        // name the job's own instances, not the host's they cover.
        let ruleset = self.own_rules(ruleset)?;
        drop_capabilities()?;
        let status = ruleset
            .restrict_self()
            .map_err(|e| setup("enforce Landlock")(landlock_error(e)))?;
        if status.ruleset != RulesetStatus::FullyEnforced || !status.no_new_privs {
            return Err(setup("enforce Landlock")(std::io::Error::other(
                "the kernel enforced only part of the rules",
            )));
        }
        Ok(())
    }

    /// Read everywhere but the protected paths and `/dev`, and in the
    /// readable paths asked for.
    fn read_rules(&self) -> Result<RulesetCreated, SandboxError> {
        let mut created = ruleset().and_then(|r| r.create()).map_err(rules_error)?;
        let mut excluded: Vec<PathBuf> = self
            .protected
            .iter()
            .map(PathBuf::as_path)
            .filter_map(canonical)
            .collect();
        excluded.push(PathBuf::from("/dev"));
        let read = AccessFs::from_read(FS_ABI);
        let asked = self.readable.iter().filter(|p| p.exists()).cloned();
        for path in readable_paths(Path::new("/"), &excluded)
            .into_iter()
            .chain(asked)
        {
            created = add_rule(created, &path, read).map_err(rules_error)?;
        }
        Ok(created)
    }

    /// All rights in the job's own directories and on a few devices.
    fn own_rules(&self, mut created: RulesetCreated) -> Result<RulesetCreated, SandboxError> {
        let all = AccessFs::from_all(FS_ABI);
        for path in DEVICES
            .iter()
            .map(PathBuf::from)
            .chain(self.writable.clone())
        {
            if path.exists() {
                created = add_rule(created, &path, all).map_err(rules_error)?;
            }
        }
        Ok(created)
    }
}

fn rules_error(e: landlock::RulesetError) -> SandboxError {
    setup("build the Landlock rules")(landlock_error(e))
}

fn canonical(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok()
}

/// Grants `access` beneath `path` (only the file rights when it is a file).
fn add_rule(
    created: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, landlock::RulesetError> {
    let Ok(fd) = PathFd::new(path) else {
        // Gone since it was listed: nothing to grant.
        return Ok(created);
    };
    let access = if path.is_dir() {
        access
    } else {
        access & AccessFs::from_file(FS_ABI)
    };
    created.add_rule(PathBeneath::new(fd, access))
}

/// The largest subtrees of `root` that hold none of `excluded`: Landlock only
/// allows, so a hole is made by granting every sibling along the way down to
/// it. Symbolic links are skipped (their targets have their own place).
fn readable_paths(root: &Path, excluded: &[PathBuf]) -> Vec<PathBuf> {
    if excluded.iter().any(|e| e == root) {
        return Vec::new();
    }
    if !excluded.iter().any(|e| e.starts_with(root)) {
        return vec![root.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for entry in entries.flatten() {
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if !is_link {
            paths.extend(readable_paths(&entry.path(), excluded));
        }
    }
    paths
}

fn private_mounts() -> Result<(), SandboxError> {
    if nix::unistd::geteuid().is_root() {
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| setup("make a mount namespace")(errno(e)))?;
    } else {
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(|e| {
            setup("make a user namespace (are unprivileged user namespaces enabled?)")(errno(e))
        })?;
        // The job keeps its own ids; it only gains (and then drops) the
        // capabilities needed to change its private mounts.
        std::fs::write("/proc/self/setgroups", "deny").map_err(setup("deny setgroups"))?;
        std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))
            .map_err(setup("map the user id"))?;
        std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
            .map_err(setup("map the group id"))?;
    }
    // Nothing done here may reach the host's mount table.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| setup("make the mounts private")(errno(e)))
}

/// A tmpfs of the job's own on `/dev/shm`, and a new devpts instance on
/// `/dev/pts` with `/dev/ptmx` pointing into it: the job makes terminals
/// and shared memory as before, and sees none of the host's.
fn private_devices() -> Result<(), SandboxError> {
    // Not `nodev` on devpts: `/dev/ptmx` is bound from it, and a device
    // node on a `nodev` mount cannot be opened.
    let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    if Path::new("/dev/shm").is_dir() {
        mount(
            Some("tmpfs"),
            "/dev/shm",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        )
        .map_err(|e| setup("give the job a /dev/shm of its own")(errno(e)))?;
    }
    if !Path::new("/dev/pts").is_dir() {
        return Ok(());
    }
    mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        pts_flags,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| setup("give the job terminals of its own (devpts)")(errno(e)))?;
    // Where `/dev/ptmx` is a link (`pts/ptmx`) it already leads to the new instance.
    let ptmx = Path::new("/dev/ptmx");
    let is_node = std::fs::symlink_metadata(ptmx).is_ok_and(|m| !m.file_type().is_symlink());
    if is_node {
        mount(
            Some("/dev/pts/ptmx"),
            ptmx,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| setup("point /dev/ptmx at the job's terminals")(errno(e)))?;
    }
    Ok(())
}

/// Covers each engine socket (and socket directory) that exists.
fn hide_engine_sockets() -> Result<(), SandboxError> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let from_env = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from));
    let candidates = ENGINE_SOCKETS.iter().map(PathBuf::from).chain(from_env);
    for path in candidates.filter_map(|p| p.canonicalize().ok()) {
        if seen.contains(&path) {
            continue;
        }
        let result = if path.is_dir() {
            mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=4k,mode=0555"),
            )
        } else {
            mount(
                Some("/dev/null"),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.map_err(|e| setup(format!("hide {}", path.display()))(errno(e)))?;
        seen.push(path);
    }
    Ok(())
}

/// Every capability goes, the bounding set first (dropping it needs one).
fn drop_capabilities() -> Result<(), SandboxError> {
    use caps::CapSet;
    let fail = |set: &str| {
        let what = format!("drop the {set} capabilities");
        move |e: caps::errors::CapsError| setup(what)(std::io::Error::other(e.to_string()))
    };
    for cap in caps::all() {
        if caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(fail("bounding"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(fail("ambient"))?;
    caps::clear(None, CapSet::Inheritable).map_err(fail("inheritable"))?;
    caps::clear(None, CapSet::Effective).map_err(fail("effective"))?;
    caps::clear(None, CapSet::Permitted).map_err(fail("permitted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hole_is_made_of_siblings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for d in ["a/data/work", "a/other", "b"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        std::fs::write(root.join("a/file"), "x").expect("write");
        let mut got = readable_paths(root, &[root.join("a/data")]);
        got.sort();
        assert_eq!(
            got,
            vec![root.join("a/file"), root.join("a/other"), root.join("b")]
        );
        assert!(readable_paths(root, &[root.to_path_buf()]).is_empty());
        assert_eq!(readable_paths(root, &[]), vec![root.to_path_buf()]);
    }
}
