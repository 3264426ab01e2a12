//! Where the sockets a job must not reach are: the container engines' and
//! the host services', fixed and found at each launch.

use std::path::{Path, PathBuf};

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

/// The sockets of container engines and host services a job must not
/// reach, from this (the server's) environment: the fixed places and the
/// engine named by `DOCKER_HOST`/`CONTAINER_HOST`.
pub(super) fn sockets_to_hide() -> Vec<PathBuf> {
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
pub(super) fn runtime_sockets() -> Vec<PathBuf> {
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
