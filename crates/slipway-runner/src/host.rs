//! Steps on the host: each in its own process group, and the whole job in a
//! cgroup of its own where one can be made (see `cgroup`), so that a
//! timeout, a cancel or the end of the job kills everything the steps
//! started, even what left their process groups.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::EventSender;
use crate::cgroup::JobCgroup;
use crate::event::Stream;
use crate::mask::Masker;
use crate::output::LineStream;
use crate::sandbox::Sandbox;

/// How long processes get between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// How long output readers may lag behind once every process of a job is dead.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The processes and output readers of one host job.
#[derive(Debug)]
pub struct HostJob {
    job: String,
    groups: Arc<Mutex<Vec<Pid>>>,
    readers: JoinSet<()>,
    masker: Masker,
    events: EventSender,
    shell: &'static [&'static str],
    /// Where each group is written down (see `orphans`), with the workspace.
    record: Option<(PathBuf, PathBuf)>,
    /// The sandbox steps run in, with the directories they may write.
    confinement: Option<(Sandbox, Vec<PathBuf>)>,
    cgroup: Containment,
}

/// Whether the job's processes are held by a cgroup (made at its first step).
#[derive(Debug)]
enum Containment {
    NotYet,
    Cgroup(JobCgroup),
    GroupsOnly,
}

impl HostJob {
    /// `record`: the record file and workspace under which groups are noted,
    /// so a later start can kill what a crash left behind.
    pub fn new(
        job: &str,
        masker: Masker,
        events: EventSender,
        record: Option<(PathBuf, PathBuf)>,
        confinement: Option<(Sandbox, Vec<PathBuf>)>,
    ) -> HostJob {
        HostJob {
            job: job.to_string(),
            groups: Arc::default(),
            readers: JoinSet::new(),
            masker,
            events,
            shell: shell(),
            record,
            confinement,
            cgroup: Containment::NotYet,
        }
    }

    /// Runs one step to its end; `None` when it was killed by a signal or canceled.
    pub async fn step(
        &mut self,
        script: &str,
        dir: &Path,
        env: &[(String, String)],
        cancel: &CancellationToken,
    ) -> std::io::Result<Option<i32>> {
        // A long script cannot be one argument (Linux caps each at 128 KiB):
        // the shell reads it from a file in the job's workspace instead,
        // removed when the step ends.
        let workspace = self.record.as_ref().map_or(dir, |(_, ws)| ws.as_path());
        let file = long_script_file(script, workspace)?;
        let (options, last) = match &file {
            Some(file) => (
                &self.shell[1..self.shell.len() - 1],
                file.path().as_os_str().to_owned(),
            ),
            None => (&self.shell[1..], script.into()),
        };
        let args: Vec<std::ffi::OsString> = options.iter().map(Into::into).chain([last]).collect();
        if let Containment::NotYet = self.cgroup {
            self.cgroup = self.contain(workspace).await?;
        }
        let mut command = self.command(env)?;
        let mut child = command
            .args(&args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
            self.groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Pid::from_raw(pid));
            if let Some((file, workspace)) = &self.record {
                crate::orphans::record(file, pid, workspace)?;
            }
        }
        if let Some(out) = child.stdout.take() {
            self.read(out, Stream::Stdout);
        }
        if let Some(err) = child.stderr.take() {
            self.read(err, Stream::Stderr);
        }
        tokio::select! {
            status = child.wait() => Ok(status?.code()),
            () = cancel.cancelled() => {
                self.terminate(&mut child).await;
                Ok(None)
            }
        }
    }

    /// What starts a step's shell. Confined: the launcher, which joins the
    /// cgroup itself, leaves the server's session and takes the job's
    /// variables as data (see `Sandbox::launch`). Unconfined (the admin's
    /// `--unsafe-host-jobs`): the shell with the job's variables, in a
    /// process group of its own, entering the cgroup through `/bin/sh`.
    fn command(&self, env: &[(String, String)]) -> std::io::Result<Command> {
        let cgroup = match &self.cgroup {
            Containment::Cgroup(cgroup) => Some(cgroup),
            _ => None,
        };
        if let Some((sandbox, writable)) = &self.confinement {
            return sandbox.command(writable, self.shell[0], env, cgroup.map(JobCgroup::path));
        }
        let mut command = Command::new(self.shell[0]);
        if let Some(cgroup) = cgroup {
            command = cgroup.enter_first(&command);
        }
        without_slipway_settings(&mut command);
        command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0);
        Ok(command)
    }

    /// Makes the job's cgroup and writes it down before any step runs in
    /// it; where none can be made, says so in the job's log.
    async fn contain(&self, workspace: &Path) -> std::io::Result<Containment> {
        let name = workspace
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match JobCgroup::create(&name) {
            Ok(cgroup) => {
                if let Some((file, _)) = &self.record {
                    crate::orphans::record_cgroup(file, cgroup.path())?;
                }
                Ok(Containment::Cgroup(cgroup))
            }
            Err(e) => {
                let text = format!(
                    "this job's processes are held by process groups only ({e}): \
                     one that calls setsid can outlive the job"
                );
                crate::output::note(&self.events, &self.job, text).await;
                Ok(Containment::GroupsOnly)
            }
        }
    }

    /// Reads one pipe to its end in the background. Background processes of a
    /// step may keep writing after the step ends; their lines still reach the log.
    fn read(
        &mut self,
        mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        stream: Stream,
    ) {
        let mut lines =
            LineStream::new(&self.job, stream, self.masker.clone(), self.events.clone());
        self.readers.spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                lines.feed(&buf[..n]).await;
            }
            lines.finish().await;
        });
    }

    /// SIGTERM to every group, SIGKILL to what is left after the grace period.
    async fn terminate(&self, child: &mut tokio::process::Child) {
        self.signal_all(Signal::SIGTERM);
        if tokio::time::timeout(KILL_GRACE, child.wait())
            .await
            .is_err()
        {
            self.signal_all(Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }

    fn signal_all(&self, signal: Signal) {
        for pgid in self.groups.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // ESRCH: the group is gone, or a launcher has not made it yet
            // (it calls setsid first thing; its group's id is its pid).
            if killpg(*pgid, signal) == Err(nix::Error::ESRCH) {
                let _ = nix::sys::signal::kill(*pgid, signal);
            }
        }
        if let Containment::Cgroup(cgroup) = &self.cgroup {
            match signal {
                Signal::SIGKILL => cgroup.kill(),
                other => cgroup.signal(other),
            }
        }
    }

    /// Ends the job: kills whatever its steps left running and waits for the
    /// last output to arrive.
    pub async fn finish(mut self) {
        self.signal_all(Signal::SIGKILL);
        if let Containment::Cgroup(cgroup) =
            std::mem::replace(&mut self.cgroup, Containment::GroupsOnly)
        {
            let path = cgroup.path().to_path_buf();
            if let Err(e) = cgroup.remove().await {
                let text = format!("cannot remove the job's cgroup {}: {e}", path.display());
                crate::output::note(&self.events, &self.job, text).await;
            }
        }
        if let Some((file, _)) = &self.record {
            let _ = std::fs::remove_file(file);
        }
        let drained = tokio::time::timeout(DRAIN_LIMIT, async {
            while self.readers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // A process that left its group (setsid) still holds a pipe: stop reading it.
            self.readers.abort_all();
        }
    }
}

/// Scripts longer than this run from a file, not from the command line.
const LONG_SCRIPT: usize = 64 * 1024;

/// The script written to a hidden file in `workspace` when it is too long
/// for an argument; `None` for ordinary scripts.
fn long_script_file(
    script: &str,
    workspace: &Path,
) -> std::io::Result<Option<tempfile::NamedTempFile>> {
    if script.len() <= LONG_SCRIPT {
        return Ok(None);
    }
    let mut file = tempfile::Builder::new()
        .prefix(".slipway-step-")
        .suffix(".sh")
        .tempfile_in(workspace)?;
    std::io::Write::write_all(&mut file, script.as_bytes())?;
    Ok(Some(file))
}

/// `bash -eo pipefail` where bash exists (what CI users expect), POSIX `sh -e` otherwise.
fn shell() -> &'static [&'static str] {
    static BASH: &[&str] = &["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"];
    static SH: &[&str] = &["sh", "-e", "-c"];
    let has_bash = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("bash").is_file()));
    if has_bash { BASH } else { SH }
}

/// Slipway's own settings (the sealing key, the database URL, an agent's
/// token) must never reach what it runs for users (steps, deployed
/// applications, health checks, smoke tests): drops every inherited
/// `SLIPWAY_*` variable. Variables Slipway sets on purpose are added after.
pub fn without_slipway_settings(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLIPWAY_") {
            command.env_remove(&name);
        }
    }
    command
}
