//! Process groups that outlive a crashed Slipway. Each host step's group is
//! written down (with the workspace it runs in and the pid of the Slipway that
//! started it) before the step runs; a clean end removes the record. After a
//! `kill -9`, the next start finds the records of dead owners and kills those
//! groups, checking first that the group still runs in that workspace so a
//! recycled process id is never touched. A job's cgroup (see `cgroup`) is
//! written down before its first step starts, and killed whole: it holds
//! what left the process groups too (`setsid`, double forks).
//!
//! "Dead" has to hold the moment after a `kill -9`: a killed owner stays in
//! `/proc` while its threads exit and until its parent reaps it, and a server
//! restarted at once used to take it for alive and leave its steps running
//! beside their jobs' re-runs. An owner that is a zombie, exiting, or has
//! SIGKILL pending is dead; one whose start time differs is a recycled pid.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Where the records live, below a work root.
const DIR: &str = ".process-groups";

/// The record file of one job's workspace.
pub fn record_path(work_root: &Path, workspace: &Path) -> PathBuf {
    let name = workspace
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    work_root.join(DIR).join(name)
}

/// Notes a process group before anything can be lost: `OWNER PGID WORKSPACE`.
pub fn record(file: &Path, pgid: i32, workspace: &Path) -> std::io::Result<()> {
    append(file, &format!("{pgid} {}", workspace.display()))
}

/// Notes a job's cgroup, before anything runs in it: `OWNER cgroup PATH`.
pub fn record_cgroup(file: &Path, cgroup: &Path) -> std::io::Result<()> {
    append(file, &format!("{CGROUP} {}", cgroup.display()))
}

/// The word that marks a cgroup line (where other lines have a group id).
const CGROUP: &str = "cgroup";
/// The word that marks a workspace line: `OWNER workspace PATH`.
const WORKSPACE: &str = "workspace";

/// A workspace's own record, written when it is made (before its checkout,
/// services or any step), so a `kill -9` at any point leaves nothing the next
/// start does not remove; dropping it (after the workspace) removes the record.
#[derive(Debug)]
pub struct WorkspaceRecord(PathBuf);

impl WorkspaceRecord {
    /// Notes `workspace` (a directory right below `work_root`) as this process's.
    pub fn write(work_root: &Path, workspace: &Path) -> std::io::Result<WorkspaceRecord> {
        let mut file = record_path(work_root, workspace).into_os_string();
        file.push(".workspace");
        let file = PathBuf::from(file);
        append(&file, &format!("{WORKSPACE} {}", workspace.display()))?;
        Ok(WorkspaceRecord(file))
    }
}

impl Drop for WorkspaceRecord {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn append(file: &Path, entry: &str) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    // No fsync: the record guards against Slipway being killed, and the page
    // cache outlives that; a machine crash leaves no process to kill anyway.
    writeln!(f, "{} {entry}", this_owner())
}

/// This process as an owner of what it leaves on the host: `PID@START`
/// (records here, the owner label of containers and networks).
pub(crate) fn this_owner() -> String {
    let me = std::process::id();
    match Process::read(me).map(|p| p.start) {
        Some(start) => format!("{me}@{start}"),
        None => me.to_string(),
    }
}

/// Whether the owner `PID@START` (or a bare `PID`, as older labels and
/// records have it) still runs: the one liveness rule of every sweep.
pub(crate) fn owner_alive(owner: &str) -> bool {
    // An owner that cannot be read is kept: a sweep removes only the provably dead.
    Owner::parse(owner).is_none_or(Owner::alive)
}

/// One line of a record.
#[derive(Debug, PartialEq, Eq)]
enum Entry<'a> {
    Group { pgid: i32, workspace: &'a str },
    Cgroup(&'a Path),
    Workspace(&'a str),
}

/// Kills the groups that dead Slipway processes left under `work_root`, and
/// removes their workspaces, and every job cgroup whose owner is gone.
/// Returns how many groups and cgroups were killed.
pub fn reap(work_root: &Path) -> usize {
    let swept = crate::cgroup::sweep();
    let Ok(entries) = std::fs::read_dir(work_root.join(DIR)) else {
        return swept;
    };
    let mut entries: Vec<std::fs::DirEntry> = entries.flatten().collect();
    // Groups are killed before any workspace is removed under them.
    entries.sort_by_key(|e| e.file_name().to_string_lossy().ends_with(".workspace"));
    let mut killed = swept;
    for entry in entries {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let records: Vec<(Owner, Entry)> = text.lines().filter_map(parse).collect();
        if records.iter().any(|(owner, _)| owner.alive()) {
            continue;
        }
        for (_, entry) in &records {
            let done = match entry {
                Entry::Group { pgid, workspace } => {
                    runs_in(*pgid, workspace)
                        && killpg(Pid::from_raw(*pgid), Signal::SIGKILL).is_ok()
                }
                Entry::Cgroup(path) => crate::cgroup::kill_recorded(path),
                Entry::Workspace(_) => false,
            };
            killed += usize::from(done);
        }
        let workspace = records.iter().find_map(|(_, entry)| match entry {
            Entry::Group { workspace, .. } | Entry::Workspace(workspace) => Some(*workspace),
            Entry::Cgroup(_) => None,
        });
        // Only ever a direct child of the work root: the record is a file, not an authority.
        if let Some(workspace) = workspace
            && Path::new(workspace).parent() == Some(work_root)
        {
            let _ = std::fs::remove_dir_all(workspace);
        }
        let _ = std::fs::remove_file(entry.path());
    }
    killed
}

fn parse(line: &str) -> Option<(Owner, Entry<'_>)> {
    let mut parts = line.splitn(3, ' ');
    let owner = Owner::parse(parts.next()?)?;
    let kind = parts.next()?;
    let rest = parts.next()?;
    let entry = if kind == CGROUP {
        Entry::Cgroup(Path::new(rest))
    } else if kind == WORKSPACE {
        Entry::Workspace(rest)
    } else {
        Entry::Group {
            pgid: kind.parse().ok()?,
            workspace: rest,
        }
    };
    Some((owner, entry))
}

/// The Slipway process that wrote a record: its pid and, in records written
/// since start times were kept, when it started (clock ticks after boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    pid: u32,
    start: Option<u64>,
}

impl Owner {
    fn parse(text: &str) -> Option<Owner> {
        let (pid, start) = match text.split_once('@') {
            Some((pid, start)) => (pid, Some(start.parse().ok()?)),
            None => (text, None),
        };
        Some(Owner {
            pid: pid.parse().ok()?,
            start,
        })
    }

    /// Whether the owner still runs and will go on running: not gone, not
    /// dying, and not another process that got its pid.
    fn alive(self) -> bool {
        let Some(process) = Process::read(self.pid) else {
            return false;
        };
        !process.dying() && self.start.is_none_or(|start| start == process.start)
    }
}

/// What `/proc/PID/stat` and `/proc/PID/status` say about a process.
#[derive(Debug)]
struct Process {
    /// One letter: `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
    state: char,
    /// The kernel's task flags.
    flags: u64,
    /// Clock ticks after boot.
    start: u64,
    /// Whether SIGKILL is pending for it (delivered, not yet acted on).
    kill_pending: bool,
}

/// `PF_EXITING`: set when a task enters `do_exit`.
const PF_EXITING: u64 = 0x4;

impl Process {
    fn read(pid: u32) -> Option<Process> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields start after the last `)`.
        let fields: Vec<&str> = stat
            .get(stat.rfind(')')? + 1..)?
            .split_whitespace()
            .collect();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        Some(Process {
            state: fields.first()?.chars().next()?,
            flags: fields.get(6)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
            kill_pending: sigkill_pending(&status),
        })
    }

    fn dying(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x') || self.flags & PF_EXITING != 0 || self.kill_pending
    }
}

/// Whether `SigPnd` or `ShdPnd` (hex masks, bit n-1 for signal n) holds SIGKILL.
fn sigkill_pending(status: &str) -> bool {
    const SIGKILL_BIT: u64 = 1 << (9 - 1);
    status.lines().any(|line| {
        let mask = line
            .strip_prefix("SigPnd:")
            .or_else(|| line.strip_prefix("ShdPnd:"));
        mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & SIGKILL_BIT != 0)
    })
}

/// Whether process `pid` still has `SLIPWAY_WORKSPACE=workspace` in its environment.
fn runs_in(pid: i32, workspace: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("SLIPWAY_WORKSPACE={workspace}");
    environ
        .split(|b| *b == 0)
        .any(|var| var == wanted.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = std::process::id();
        let start = Process::read(me).expect("own /proc entry").start;
        assert!(
            Owner {
                pid: me,
                start: Some(start)
            }
            .alive()
        );
        assert!(
            Owner {
                pid: me,
                start: None
            }
            .alive()
        );
        assert!(
            !Owner {
                pid: me,
                start: Some(start + 1)
            }
            .alive()
        );
    }

    #[test]
    fn owner_texts_follow_the_same_rule() {
        let me = this_owner();
        assert!(me.contains('@'), "{me}");
        assert!(owner_alive(&me));
        let (pid, start) = me.split_once('@').expect("PID@START");
        let start: u64 = start.parse().expect("start");
        assert!(!owner_alive(&format!("{pid}@{}", start + 1)));
        assert!(owner_alive("not an owner"));
    }

    #[test]
    fn a_zombie_owner_is_dead() {
        // A child killed and not yet reaped stays in /proc as a zombie.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let owner = Owner {
            pid: child.id(),
            start: None,
        };
        assert!(owner.alive());
        child.kill().expect("kill");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while Process::read(child.id()).is_some_and(|p| p.state != 'Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never became a zombie"
            );
            std::thread::yield_now();
        }
        assert!(!owner.alive(), "a killed, unreaped owner counts as dead");
        child.wait().expect("reap");
    }

    #[test]
    fn reads_old_and_new_records() {
        let owner = |start| Owner { pid: 12, start };
        assert_eq!(
            parse("12 34 /w/a b"),
            Some((
                owner(None),
                Entry::Group {
                    pgid: 34,
                    workspace: "/w/a b"
                }
            ))
        );
        assert_eq!(
            parse("12@99 34 /w/x"),
            Some((
                owner(Some(99)),
                Entry::Group {
                    pgid: 34,
                    workspace: "/w/x"
                }
            ))
        );
        assert_eq!(
            parse("12@99 cgroup /sys/fs/cgroup/slipway/job-1-a"),
            Some((
                owner(Some(99)),
                Entry::Cgroup(Path::new("/sys/fs/cgroup/slipway/job-1-a"))
            ))
        );
        assert_eq!(
            parse("12@99 workspace /w/job-1 x"),
            Some((owner(Some(99)), Entry::Workspace("/w/job-1 x")))
        );
        assert_eq!(parse("12@x 34 /w/x"), None);
    }

    #[test]
    fn reads_sigkill_from_pending_masks() {
        assert!(sigkill_pending(
            "Name:\tx\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\n"
        ));
        assert!(!sigkill_pending(
            "SigPnd:\t0000000000000000\nShdPnd:\t0000000000004000\n"
        ));
    }
}
