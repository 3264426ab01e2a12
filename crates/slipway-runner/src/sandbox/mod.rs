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

mod environment;
mod mounts;
mod rules;
mod sockets;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use landlock::RulesetStatus;

pub use rules::kernel_support;

use environment::{environment_file, launcher_environment, read_environment};
use mounts::{private_devices, private_mounts};
use sockets::{runtime_sockets, sockets_to_hide};

/// The launcher's subcommand of the `slipway` binary.
pub const LAUNCHER_COMMAND: &str = "sandbox-exec";

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
