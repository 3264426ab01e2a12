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
//! The launcher starts with a fixed environment (the server's `PATH`): what
//! a job sets (`LD_PRELOAD`, `LD_AUDIT`, `GCONV_PATH`, `BASH_FUNC_*`, …) is
//! handed over as data on its standard input and becomes the step's
//! environment only at the final `exec`. Its first acts are joining the job's
//! cgroup (`--cgroup`) and `setsid` (no controlling terminal to type into).
//!
//! What the launcher does next, in this order (each step needs the one before
//! to still hold its privileges):
//! 1. a private mount namespace (with a user namespace when not root), in
//!    which the sockets the server named (`--hide`: the container engines',
//!    user runtime directories, the system bus, PostgreSQL's, tmux's, …) are
//!    covered (an engine is root-equivalent, and Landlock up to ABI 8 cannot
//!    refuse a `connect()` to a pathname socket), `/dev/shm` is a tmpfs of its own (the host's is
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

/// Where pathname sockets of the host's services live (Landlock cannot
/// refuse a `connect()`): the user sessions' runtime directories (D-Bus,
/// rootless Docker and Podman, agents), the system bus, screen's sockets and
/// PostgreSQL's (peer authentication trusts the connecting uid). Each that
/// exists gets an empty read-only tmpfs over it in the job's mount namespace.
const SERVICE_SOCKET_DIRS: &[&str] = &[
    "/run/user",
    "/run/dbus",
    "/run/screen",
    "/var/run/screen",
    "/var/run/postgresql",
    "/run/postgresql",
];

/// Covered socket by socket, not whole: `/etc/resolv.conf` may lead into it.
const SYSTEMD_RUNTIME: &str = "/run/systemd";

/// Variables of the server's own session that name a way out (an SSH or
/// GPG agent, the session bus, a terminal multiplexer, a display): never
/// handed to a step, whatever the server inherited.
const SESSION_VARIABLES: &[&str] = &[
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "GPG_AGENT_INFO",
    "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_SYSTEM_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
    "TMUX",
    "TMUX_PANE",
    "STY",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "DOCKER_HOST",
    "CONTAINER_HOST",
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
    /// Sockets and socket directories covered in the job's mount namespace,
    /// found here, from the server's environment: the job's own variables
    /// never choose them. (Those that come and go are found at each launch:
    /// see `runtime_sockets`.)
    hidden: Vec<PathBuf>,
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
            hidden: sockets_to_hide(),
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
    /// writing only in `writable` and the admin's shared directories, with
    /// `env` (see [`Sandbox::launch`]); in `cgroup` when given.
    pub(crate) fn command(
        &self,
        writable: &[PathBuf],
        program: &str,
        env: &[(String, String)],
        cgroup: Option<&Path>,
    ) -> std::io::Result<tokio::process::Command> {
        let mut all = writable.to_vec();
        all.extend(self.shared.iter().cloned());
        self.launcher_command(cgroup, &[], &all, program, env)
    }

    /// The launcher command that runs `program ARGS` confined, reading also
    /// `readable` (which may lie inside a protected path: a release's tree in
    /// the data directory) and writing only in `writable`. The jobs' shared
    /// directories are not given: this is for what a release runs.
    ///
    /// The launcher starts with a fixed environment of the server's (no
    /// variable of the job reaches the dynamic loader or anything that runs
    /// before the sandbox holds); `env`, over the server's own variables
    /// (less Slipway's settings and its session's agents), is handed over
    /// as data on the launcher's standard input and becomes the program's
    /// environment only once the sandbox is in force. The program's
    /// standard input is `/dev/null`: callers must not set stdin, nor add
    /// variables to the returned command (they would reach the launcher).
    pub fn launch(
        &self,
        readable: &[PathBuf],
        writable: &[PathBuf],
        program: &str,
        env: &[(String, String)],
    ) -> std::io::Result<tokio::process::Command> {
        self.launcher_command(None, readable, writable, program, env)
    }

    fn launcher_command(
        &self,
        cgroup: Option<&Path>,
        readable: &[PathBuf],
        writable: &[PathBuf],
        program: &str,
        env: &[(String, String)],
    ) -> std::io::Result<tokio::process::Command> {
        let mut command = tokio::process::Command::new(&self.launcher);
        command.arg(LAUNCHER_COMMAND);
        if let Some(cgroup) = cgroup {
            command.arg("--cgroup").arg(cgroup);
        }
        for path in &self.protected {
            command.arg("--protect").arg(path);
        }
        for path in self.hidden.iter().cloned().chain(runtime_sockets()) {
            command.arg("--hide").arg(path);
        }
        for path in readable {
            command.arg("--read").arg(path);
        }
        for path in writable {
            command.arg("--write").arg(path);
        }
        command.arg("--").arg(program);
        command.env_clear().envs(launcher_environment());
        command.stdin(environment_file(env)?);
        Ok(command)
    }

    /// Runs `true` confined once: a launcher that cannot confine fails here,
    /// at startup, not in the middle of the first job.
    async fn probe(&self) -> Result<(), SandboxError> {
        let scratch = tempfile::tempdir().map_err(setup("create a probe directory"))?;
        let out = self
            .command(&[scratch.path().to_path_buf()], "true", &[], None)
            .map_err(setup("hand the probe its environment"))?
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

/// The launcher's own environment: the server's `PATH` and nothing else.
fn launcher_environment() -> Vec<(OsString, OsString)> {
    std::env::var_os("PATH")
        .map(|path| ("PATH".into(), path))
        .into_iter()
        .collect()
}

/// What a confined program's environment is: the server's variables, less
/// Slipway's settings and the server's session's, then `env` over them.
fn program_environment(env: &[(String, String)]) -> Vec<(OsString, OsString)> {
    let mut all: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(name, _)| {
            let name = name.to_string_lossy();
            !name.starts_with("SLIPWAY_") && !SESSION_VARIABLES.contains(&name.as_ref())
        })
        .collect();
    for (name, value) in env {
        all.retain(|(n, _)| n != name.as_str());
        all.push((name.into(), value.into()));
    }
    all
}

/// The program's environment as `NAME=VALUE\0` entries in an unnamed file
/// (no path another process could swap), read from the start.
fn environment_file(env: &[(String, String)]) -> std::io::Result<std::fs::File> {
    use std::io::{Seek as _, Write as _};
    use std::os::unix::ffi::OsStrExt as _;
    let mut file = tempfile::tempfile()?;
    let mut data = Vec::new();
    for (name, value) in program_environment(env) {
        data.extend_from_slice(name.as_bytes());
        data.push(b'=');
        data.extend_from_slice(value.as_bytes());
        data.push(0);
    }
    file.write_all(&data)?;
    file.rewind()?;
    Ok(file)
}

/// Reads what [`environment_file`] wrote from the launcher's standard input.
fn read_environment() -> Result<Vec<(OsString, OsString)>, SandboxError> {
    use std::io::Read as _;
    use std::os::unix::ffi::OsStringExt as _;
    let mut data = Vec::new();
    std::io::stdin()
        .read_to_end(&mut data)
        .map_err(setup("read the step's environment from standard input"))?;
    Ok(data
        .split(|b| *b == 0)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let at = entry.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(entry[..at].to_vec()),
                OsString::from_vec(entry[at + 1..].to_vec()),
            ))
        })
        .collect())
}

/// The sockets of container engines and host services a job must not
/// reach, from this (the server's) environment: the fixed places and the
/// engine named by `DOCKER_HOST`/`CONTAINER_HOST`.
fn sockets_to_hide() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = ENGINE_SOCKETS
        .iter()
        .chain(SERVICE_SOCKET_DIRS)
        .map(PathBuf::from)
        .collect();
    for name in ["DOCKER_HOST", "CONTAINER_HOST"] {
        let from_env = std::env::var(name)
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from));
        paths.extend(from_env);
    }
    if let Some(tmux) = std::env::var_os("TMUX_TMPDIR") {
        paths.extend(tmux_dirs(Path::new(&tmux)));
    }
    let mut seen = Vec::new();
    for path in paths.into_iter().filter_map(|p| p.canonicalize().ok()) {
        if !seen.contains(&path) {
            seen.push(path);
        }
    }
    seen
}

/// Sockets that appear and go while the server runs, found at each launch:
/// rootless engines in every user's runtime directory, tmux's and
/// ssh-agent's socket directories in `/tmp`, and the sockets systemd keeps in `/run/systemd`.
fn runtime_sockets() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for user in entries(Path::new("/run/user")) {
        paths.push(user.join("docker.sock"));
        paths.push(user.join("podman"));
    }
    paths.extend(tmux_dirs(Path::new("/tmp")));
    paths.extend(sockets_below(Path::new(SYSTEMD_RUNTIME), 3));
    paths
}

/// The socket directories sessions make in `root`: tmux's per user
/// (`tmux-UID`), ssh-agent's (`ssh-XXXX`).
fn tmux_dirs(root: &Path) -> Vec<PathBuf> {
    entries(root)
        .into_iter()
        .filter(|p| p.is_dir())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("tmux-") || n.starts_with("ssh-")
            })
        })
        .collect()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The Unix sockets in `dir`, down to `depth` levels.
fn sockets_below(dir: &Path, depth: u32) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in read.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_socket() {
            found.push(entry.path());
        } else if kind.is_dir() && depth > 1 {
            found.extend(sockets_below(&entry.path(), depth - 1));
        }
    }
    found
}

/// The launcher's first acts: into the job's cgroup (so nothing it starts
/// escapes it), then out of the server's session (a step has no
/// controlling terminal to type into). The server started it in no process
/// group of its own, so `setsid` may succeed; the new group's id is the pid.
pub fn begin(cgroup: Option<&Path>) -> Result<(), SandboxError> {
    if let Some(cgroup) = cgroup {
        let procs = cgroup.join("cgroup.procs");
        std::fs::write(&procs, "0").map_err(setup(format!(
            "join the job's cgroup ({})",
            procs.display()
        )))?;
    }
    nix::unistd::setsid()
        .map(drop)
        .map_err(|e| setup("leave the server's session (setsid)")(errno(e)))
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
    /// Sockets and socket directories to cover (see [`Sandbox`]).
    pub hidden: Vec<PathBuf>,
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
        // Read before anything else: it is data until the sandbox holds.
        let env = match read_environment() {
            Ok(env) => env,
            Err(e) => return e,
        };
        if let Err(e) = self.enter() {
            return e;
        }
        use std::os::unix::process::CommandExt as _;
        let source = std::process::Command::new(program)
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(std::process::Stdio::null())
            .exec();
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
        self.hide_sockets()?;
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

impl Confinement {
    /// Covers each socket (bound to `/dev/null`) and socket directory (an
    /// empty read-only tmpfs) asked for that exists, but not one that holds
    /// a directory the job is given.
    fn hide_sockets(&self) -> Result<(), SandboxError> {
        let given: Vec<PathBuf> = self
            .writable
            .iter()
            .chain(&self.readable)
            .filter_map(|p| canonical(p))
            .collect();
        for path in self.hidden.iter().filter_map(|p| canonical(p)) {
            if given.iter().any(|g| g.starts_with(&path)) {
                continue;
            }
            hide(&path)?;
        }
        Ok(())
    }
}

fn hide(path: &Path) -> Result<(), SandboxError> {
    let result = if path.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=4k,mode=0555"),
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    result.map_err(|e| setup(format!("hide {}", path.display()))(errno(e)))
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
