//! Process groups that outlive a crashed Slipway. Each host step's group is
//! written down (with the workspace it runs in and the pid of the Slipway that
//! started it) before the step runs; a clean end removes the record. After a
//! `kill -9`, the next start finds the records of dead owners and kills those
//! groups, checking first that the group still runs in that workspace so a
//! recycled process id is never touched.

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
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    // No fsync: the record guards against Slipway being killed, and the page
    // cache outlives that; a machine crash leaves no process to kill anyway.
    writeln!(f, "{} {pgid} {}", std::process::id(), workspace.display())
}

/// Kills the groups that dead Slipway processes left under `work_root`, and
/// removes their workspaces. Returns how many groups were killed.
pub fn reap(work_root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(work_root.join(DIR)) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let records: Vec<(i32, i32, &str)> = text.lines().filter_map(parse).collect();
        if records.iter().any(|(owner, _, _)| alive(*owner)) {
            continue;
        }
        for (_, pgid, workspace) in &records {
            if runs_in(*pgid, workspace) && killpg(Pid::from_raw(*pgid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        // Only ever a direct child of the work root: the record is a file, not an authority.
        if let Some((_, _, workspace)) = records.first()
            && Path::new(workspace).parent() == Some(work_root)
        {
            let _ = std::fs::remove_dir_all(workspace);
        }
        let _ = std::fs::remove_file(entry.path());
    }
    killed
}

fn parse(line: &str) -> Option<(i32, i32, &str)> {
    let mut parts = line.splitn(3, ' ');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?,
    ))
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
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
