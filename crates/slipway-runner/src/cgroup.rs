//! A cgroup v2 per host job, so that nothing a job starts outlives it. A
//! process group is not enough: `setsid` or a double fork leaves it, and a
//! daemon a step starts would run on after the job (and after a `kill -9`
//! of the server, whose restart kills groups it finds recorded). A cgroup is
//! left only by a process allowed to write to a `cgroup.procs` file, which a
//! confined step is not, and `cgroup.kill` ends all of its processes at once.
//!
//! Job cgroups live in a `slipway` sub-tree of this process's own cgroup
//! (`<own>/slipway/job-<pid>-<workspace>`), which works as root and where
//! the cgroup is delegated (systemd's `Delegate=yes`). No controller is
//! enabled: only membership and `cgroup.kill` are used. Where none can be
//! made (no cgroup v2 hierarchy, no right to write it), jobs fall back to
//! process groups, and the start log says so.
//!
//! A step enters its job's cgroup before it runs anything: the sandbox
//! launcher writes its own pid into the cgroup's `cgroup.procs` as its first
//! act (`--cgroup`; no shell runs with the job's variables before the sandbox
//! holds). Unconfined steps (`--unsafe-host-jobs`) are started through
//! `/bin/sh`, which does the same and then `exec`s the step's shell.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The sub-tree of this process's cgroup that holds job cgroups.
const SUBTREE: &str = "slipway";
/// Every job cgroup's name starts so; the reaper kills nothing else.
const PREFIX: &str = "job-";
/// How long the processes of a killed cgroup may take to exit.
const EMPTY_LIMIT: Duration = Duration::from_secs(5);

/// Writes its own pid into the cgroup named by `$1`, then becomes `$2 …`.
const ENTER: &str = r#"echo 0 > "$1/cgroup.procs" || exit 126; shift; exec "$@""#;

/// Why job cgroups cannot be made here.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(String);

/// One job's cgroup; removed by [`JobCgroup::remove`].
#[derive(Debug)]
pub struct JobCgroup {
    path: PathBuf,
}

impl JobCgroup {
    /// Makes the cgroup of the job whose workspace is named `workspace`.
    pub fn create(workspace: &str) -> Result<JobCgroup, Unavailable> {
        let parent = subtree()?;
        let name: String = workspace
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = parent.join(format!("{PREFIX}{}-{name}", std::process::id()));
        std::fs::create_dir(&path)
            .map_err(|e| Unavailable(format!("cannot create {}: {e}", path.display())))?;
        Ok(JobCgroup { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `command` started inside this cgroup, for unconfined steps (confined
    /// ones join through the launcher): through `/bin/sh` (an absolute
    /// path: the job's `PATH` must not choose it), which enters the cgroup
    /// and then execs the command with its arguments.
    pub fn enter_first(&self, command: &tokio::process::Command) -> tokio::process::Command {
        let inner = command.as_std();
        let mut outer = tokio::process::Command::new("/bin/sh");
        outer
            .arg("-c")
            .arg(ENTER)
            .arg("slipway-enter-cgroup")
            .arg(&self.path)
            .arg(inner.get_program())
            .args(inner.get_args());
        outer
    }

    /// Sends `signal` to every process in the cgroup.
    pub fn signal(&self, signal: Signal) {
        for pid in members(&self.path) {
            // ESRCH: it exited meanwhile, which is what we want.
            let _ = kill(pid, signal);
        }
    }

    /// SIGKILL to every process in the cgroup, at once.
    pub fn kill(&self) {
        let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
    }

    /// Kills what is left, waits (bounded) until the cgroup is empty and
    /// removes it. An error when it could not be removed.
    pub async fn remove(self) -> std::io::Result<()> {
        self.kill();
        let deadline = Instant::now() + EMPTY_LIMIT;
        while populated(&self.path) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::remove_dir(&self.path)
    }
}

/// Kills every process in a cgroup a dead Slipway recorded, and removes it.
/// Only a job cgroup (in a `slipway` sub-tree, named `job-…`, on a cgroup v2
/// file system) is touched: the record is a file, not an authority. Returns
/// whether it held processes.
pub fn kill_recorded(path: &Path) -> bool {
    let is_job_cgroup = path.is_absolute()
        && path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(PREFIX))
        && path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == SUBTREE)
        && mount_point().is_some_and(|m| path.starts_with(m))
        && path.join("cgroup.kill").is_file();
    if !is_job_cgroup {
        return false;
    }
    let had = populated(path);
    let _ = std::fs::write(path.join("cgroup.kill"), "1");
    let deadline = Instant::now() + EMPTY_LIMIT;
    while populated(path) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir(path);
    had
}

/// Kills and removes the job cgroups of Slipway processes that are gone
/// (the pid in their name runs no more), wherever their records went: a
/// server killed and never restarted on its data directory leaves them.
/// Returns how many held processes.
pub fn sweep() -> usize {
    let Ok(dir) = subtree() else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok());
        // A live pid may be a recycled one: left alone, like a live owner.
        let gone =
            owner.is_some_and(|pid| kill(Pid::from_raw(pid), None) == Err(nix::Error::ESRCH));
        if gone && kill_recorded(&entry.path()) {
            killed += 1;
        }
    }
    killed
}

/// One line for the start log: how a job's processes are kept from outliving it.
pub fn describe() -> String {
    match subtree() {
        Ok(dir) => format!(
            "each host job runs in a cgroup of its own under {} (cgroup v2): \
             everything it starts is killed when it ends, or at the next start after a crash",
            dir.display()
        ),
        Err(e) => format!(
            "host jobs run in process groups only ({e}): a step that calls setsid or \
             double-forks can outlive its job; run as root or with a delegated cgroup \
             (systemd Delegate=yes) to contain them"
        ),
    }
}

/// `<own cgroup>/slipway`, made when missing.
fn subtree() -> Result<PathBuf, Unavailable> {
    let mount =
        mount_point().ok_or_else(|| Unavailable("no cgroup v2 file system is mounted".into()))?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .ok_or_else(|| Unavailable("this process is in no cgroup v2 cgroup".into()))?;
    let own = mount.join(own.trim_start_matches('/'));
    // Moving a step into a job cgroup needs write access to the
    // `cgroup.procs` of the cgroup it comes from (this one).
    nix::unistd::access(&own.join("cgroup.procs"), nix::unistd::AccessFlags::W_OK).map_err(
        |e| {
            Unavailable(format!(
                "cannot move processes out of {}: {e}",
                own.display()
            ))
        },
    )?;
    let dir = own.join(SUBTREE);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Unavailable(format!("cannot create {}: {e}", dir.display()))),
    }
    if !dir.join("cgroup.kill").is_file() {
        return Err(Unavailable(format!(
            "{} has no cgroup.kill (Linux 5.14 or later is needed)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on hybrid systems), from `/proc/self/mountinfo`.
fn mount_point() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        let fields: Vec<&str> = fields.split(' ').collect();
        // The mount must show the hierarchy from its root for paths to add up.
        let whole = rest.starts_with("cgroup2 ") && fields.get(3) == Some(&"/");
        fields.get(4).filter(|_| whole).map(PathBuf::from)
    })
}

fn members(cgroup: &Path) -> Vec<Pid> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// Whether any process is left in the cgroup (or below it).
fn populated(cgroup: &Path) -> bool {
    std::fs::read_to_string(cgroup.join("cgroup.events"))
        .is_ok_and(|events| events.lines().any(|l| l == "populated 1"))
}
