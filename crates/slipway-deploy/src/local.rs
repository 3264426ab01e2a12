//! The `local` target: the release's artifacts run as a supervised process on
//! this machine, in its own process group, on a port of its own, confined to
//! its release (see [`crate::sandbox`]). A crash is restarted with backoff;
//! the health monitor shows the environment unhealthy meanwhile.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

use crate::sandbox::ReleaseSandbox;

/// A running local version.
#[derive(Debug, Clone)]
pub struct LocalInstance {
    pub addr: SocketAddr,
    stop: CancellationToken,
    stopped: Arc<tokio::sync::Notify>,
    /// How the process last ended, while it is down (cleared when it runs again).
    pub exited: Arc<Mutex<Option<String>>>,
    /// Rung when the process exits or is started again, so health is noticed at once.
    pub changed: Arc<tokio::sync::Notify>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

/// What the process is given.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    pub command: String,
    /// Where it runs (the release's tree) and what it may write.
    pub sandbox: ReleaseSandbox,
    pub env: Vec<(String, String)>,
    /// Its output goes here (appended).
    pub log: PathBuf,
    /// Its process group id is written here, so a server that died can stop it after a restart.
    pub pid_file: PathBuf,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Running this long resets the backoff: it was a crash, not a crash loop.
const STABLE_AFTER: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A free port on the loopback interface for a new version.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl LocalInstance {
    /// Starts the process and its supervisor.
    pub fn start(spec: LocalSpec) -> std::io::Result<LocalInstance> {
        let port = free_port()?;
        let instance = LocalInstance {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            stop: CancellationToken::new(),
            stopped: Arc::default(),
            exited: Arc::default(),
            changed: Arc::default(),
            done: Arc::default(),
        };
        if let Some(parent) = spec.log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let child = spawn(&spec, port)?;
        tokio::spawn(instance.clone().supervise(spec, port, child));
        Ok(instance)
    }

    async fn supervise(self, spec: LocalSpec, port: u16, mut child: tokio::process::Child) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            let started = Instant::now();
            let pgid = child.id();
            let _ = std::fs::write(
                &spec.pid_file,
                pgid.map(|p| p.to_string()).unwrap_or_default(),
            );
            tokio::select! {
                status = child.wait() => {
                    let how = match status {
                        Ok(s) => s.to_string(),
                        Err(e) => format!("lost: {e}"),
                    };
                    tracing::warn!("{} ({}) exited ({how}); restarting in {backoff:?}", spec.command, self.addr);
                    *self.exited.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("the process exited ({how})"));
                    self.changed.notify_one();
                    if started.elapsed() > STABLE_AFTER {
                        backoff = BACKOFF_FIRST;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stop.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    match spawn(&spec, port) {
                        Ok(c) => {
                            child = c;
                            *self.exited.lock().unwrap_or_else(|e| e.into_inner()) = None;
                            self.changed.notify_one();
                        }
                        Err(e) => {
                            *self.exited.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("cannot start `{}`: {e}", spec.command));
                            break;
                        }
                    }
                }
                _ = self.stop.cancelled() => {
                    if let Some(pgid) = pgid {
                        stop_group(pgid, &mut child).await;
                    }
                    break;
                }
            }
        }
        let _ = std::fs::remove_file(&spec.pid_file);
        self.done.store(true, std::sync::atomic::Ordering::Release);
        self.stopped.notify_waiters();
    }

    /// Stops the process group (TERM, then KILL after a grace period) and waits for it.
    pub async fn stop(&self) {
        let notified = self.stopped.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.stop.cancel();
        if !self.done.load(std::sync::atomic::Ordering::Acquire) {
            notified.await;
        }
    }

    /// Why it is down, if it is.
    pub fn down(&self) -> Option<String> {
        self.exited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn spawn(spec: &LocalSpec, port: u16) -> std::io::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)?;
    let cannot = |e: std::io::Error| {
        std::io::Error::other(format!(
            "cannot start `{}` in {}: {e}",
            spec.command,
            spec.sandbox.tree().display()
        ))
    };
    let mut env = spec.env.clone();
    env.push(("PORT".to_string(), port.to_string()));
    // In a process group (a session, confined) of its own, made by the shell.
    let mut cmd = spec
        .sandbox
        .shell(&format!("exec {}", spec.command), &env)
        .map_err(cannot)?;
    cmd.stdout(log.try_clone()?).stderr(log).kill_on_drop(false);
    cmd.spawn().map_err(cannot)
}

async fn stop_group(pgid: u32, child: &mut tokio::process::Child) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    let group = Pid::from_raw(raw);
    // ESRCH: a launcher that has not called setsid yet; its pid is the group's id.
    if killpg(group, Signal::SIGTERM) == Err(nix::Error::ESRCH) {
        let _ = nix::sys::signal::kill(group, Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.kill().await;
    }
    // Anything the process left in its group goes too.
    let _ = killpg(group, Signal::SIGKILL);
}

/// Stops a process group a previous server left running (its pid file survived a kill).
pub fn reap(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    if let Ok(raw) = text.trim().parse::<i32>()
        && raw > 1
    {
        let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file);
}
