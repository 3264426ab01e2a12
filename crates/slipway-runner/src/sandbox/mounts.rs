//! The job's own mount namespace: the host's sockets covered, and a
//! `/dev/shm` and terminals of its own.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use super::rules::canonical;
use super::{Confinement, SandboxError, errno, setup};

pub(super) fn private_mounts() -> Result<(), SandboxError> {
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
pub(super) fn private_devices() -> Result<(), SandboxError> {
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
    pub(super) fn hide_sockets(&self) -> Result<(), SandboxError> {
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
