//! Jobs in a container: one container per job runs a small driver script that
//! runs each step in turn, so a job pays for one container start, not one per step.
//!
//! The driver prints marker lines (starting with an ASCII record separator) around
//! each step; they are read from stdout to time steps and get exit codes, and are
//! never shown. The container is removed however the job ends.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::docker::Engine;
use crate::event::{Event, EventSender, Stream};
use crate::mask::Masker;
use crate::output::LineStream;

/// Where the workspace is mounted in the container.
pub const WORKSPACE: &str = "/workspace";
/// Where the step scripts are mounted, read-only.
const SCRIPTS: &str = "/.slipway-steps";
const MARK: u8 = 0x1e;

/// What a container job needs to know.
#[derive(Debug)]
pub struct ContainerJob<'a> {
    pub job: &'a str,
    pub image: &'a str,
    pub workspace: &'a Path,
    /// Relative to the workspace.
    pub workdir: Option<&'a str>,
    /// Variables for every step (job level, built-ins, secrets).
    pub env: Vec<(String, String)>,
    pub steps: Vec<ContainerStep<'a>>,
    pub labels: HashMap<String, String>,
    /// The network of the job's services, joined so steps reach them by name.
    pub network: Option<&'a str>,
}

/// One step: its title, its script, and its own extra variables.
pub type ContainerStep<'a> = (&'a str, &'a str, Vec<(String, String)>);

/// How the steps ended: the exit code of each step that ran.
#[derive(Debug, Default)]
pub struct ContainerOutcome {
    pub step_exits: Vec<(Duration, Option<i32>)>,
    pub canceled: bool,
}

pub async fn run(
    engine: &Engine,
    spec: ContainerJob<'_>,
    masker: Masker,
    events: &EventSender,
    cancel: &CancellationToken,
) -> Result<ContainerOutcome, String> {
    engine.require_image(spec.image).await?;
    let scripts = tempfile::tempdir().map_err(|e| format!("cannot create step scripts: {e}"))?;
    write_scripts(scripts.path(), &spec).map_err(|e| format!("cannot write step scripts: {e}"))?;
    let user = JobUser::current();
    user.hand_over(spec.workspace, true).await?;
    let id = match create(engine, &spec, scripts.path(), &user).await {
        Ok(id) => id,
        Err(e) => {
            user.hand_over(spec.workspace, false).await?;
            return Err(e);
        }
    };
    let result = attach_and_run(engine, &id, &spec, masker, events, cancel).await;
    remove(engine, &id).await;
    user.hand_over(spec.workspace, false).await?;
    result
}

/// Who steps run as in a container: never root. A server running as a user
/// lends its own ids (files in the workspace stay its own); one running as
/// root lends `nobody`, and the workspace is that user's for the job only.
#[derive(Debug, Clone, Copy)]
struct JobUser {
    uid: u32,
    gid: u32,
    /// Whether the workspace changes hands around the job.
    lent: bool,
}

/// `nobody`/`nogroup` on most distributions, and unmapped to anything else.
const LENT_ID: u32 = 65534;

impl JobUser {
    fn current() -> JobUser {
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        if uid == 0 {
            JobUser {
                uid: LENT_ID,
                gid: LENT_ID,
                lent: true,
            }
        } else {
            JobUser {
                uid,
                gid,
                lent: false,
            }
        }
    }

    fn docker_user(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }

    /// Gives every file of the workspace to the job's user (`to_job`), or
    /// back to this process's; nothing to do when the job runs as us.
    async fn hand_over(&self, workspace: &Path, to_job: bool) -> Result<(), String> {
        if !self.lent {
            return Ok(());
        }
        let (uid, gid) = if to_job {
            (self.uid, self.gid)
        } else {
            (
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            )
        };
        let root = workspace.to_path_buf();
        tokio::task::spawn_blocking(move || chown_tree(&root, uid, gid))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|e| format!("cannot hand the workspace to uid {uid}: {e}"))
    }
}

fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), String> {
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.map_err(|e| e.to_string())?;
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
    }
    Ok(())
}

fn write_scripts(dir: &Path, spec: &ContainerJob<'_>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    // The job's user (not root) reads them; they hold no secret (values come through the environment).
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let mut driver = String::from("#!/bin/sh\n");
    for (i, (_, script, env)) in spec.steps.iter().enumerate() {
        std::fs::write(dir.join(format!("step-{i}.sh")), script)?;
        let exports: String = env
            .iter()
            .map(|(k, v)| format!("export {k}={}; ", shell_quote(v)))
            .collect();
        driver.push_str(&format!(
            "printf '\\036start {i}\\n'\n( {exports}exec sh -e {SCRIPTS}/step-{i}.sh )\nrc=$?\n\
             printf '\\036end {i} %d\\n' \"$rc\"\n[ \"$rc\" -eq 0 ] || exit \"$rc\"\n"
        ));
    }
    std::fs::write(dir.join("driver.sh"), driver)?;
    for entry in std::fs::read_dir(dir)? {
        std::fs::set_permissions(entry?.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// Single-quotes a value for sh: 'it'\''s'.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

async fn create(
    engine: &Engine,
    spec: &ContainerJob<'_>,
    scripts: &Path,
    user: &JobUser,
) -> Result<String, String> {
    let workdir = match spec.workdir {
        Some(w) => format!("{WORKSPACE}/{w}"),
        None => WORKSPACE.to_string(),
    };
    let body = ContainerCreateBody {
        image: Some(spec.image.to_string()),
        cmd: Some(vec!["sh".into(), format!("{SCRIPTS}/driver.sh")]),
        entrypoint: Some(vec![]),
        // A writable HOME (the job's own /tmp) unless the job sets one.
        env: Some(
            std::iter::once("HOME=/tmp".to_string())
                .chain(spec.env.iter().map(|(k, v)| format!("{k}={v}")))
                .collect(),
        ),
        user: Some(user.docker_user()),
        working_dir: Some(workdir),
        labels: Some({
            let mut labels = spec.labels.clone();
            labels.insert(
                crate::docker::OWNER_LABEL.to_string(),
                crate::docker::owner(),
            );
            labels
        }),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        host_config: Some(HostConfig {
            binds: Some(vec![
                format!("{}:{WORKSPACE}", spec.workspace.display()),
                format!("{}:{SCRIPTS}:ro", scripts.display()),
            ]),
            // Only the workspace and the scripts come from the host: never the data directory.
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                "mode=1777".to_string(),
            )])),
            network_mode: spec.network.map(str::to_string),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("slipway-{}-{}", spec.job, unique_suffix());
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let created = engine
        .docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| format!("cannot create a container from `{}`: {e}", spec.image))?;
    Ok(created.id)
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", std::process::id())
}

async fn attach_and_run(
    engine: &Engine,
    id: &str,
    spec: &ContainerJob<'_>,
    masker: Masker,
    events: &EventSender,
    cancel: &CancellationToken,
) -> Result<ContainerOutcome, String> {
    let options = AttachContainerOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    let mut attached = engine
        .docker
        .attach_container(id, Some(options))
        .await
        .map_err(|e| format!("cannot attach to the container: {e}"))?;
    engine
        .docker
        .start_container(id, None)
        .await
        .map_err(|e| format!("cannot start the container from `{}`: {e}", spec.image))?;
    let mut reader = Reader {
        job: spec.job.to_string(),
        titles: spec
            .steps
            .iter()
            .map(|(title, _, _)| title.to_string())
            .collect(),
        stdout: LineStream::new(spec.job, Stream::Stdout, masker.clone(), events.clone()),
        stderr: LineStream::new(spec.job, Stream::Stderr, masker, events.clone()),
        events: events.clone(),
        started: None,
        outcome: ContainerOutcome::default(),
    };
    loop {
        tokio::select! {
            item = attached.output.next() => match item {
                Some(Ok(chunk)) => reader.chunk(chunk).await,
                Some(Err(e)) => return Err(format!("lost the container's output: {e}")),
                None => break,
            },
            () = cancel.cancelled() => {
                remove(engine, id).await;
                reader.outcome.canceled = true;
                return Ok(reader.outcome);
            }
        }
    }
    reader.stdout.finish().await;
    reader.stderr.finish().await;
    // The attach stream ends when the container exits, and the exit codes came
    // with the markers: no wait call is needed (the removal that follows is forced).
    Ok(reader.outcome)
}

/// Splits the container's output into log lines and step markers.
struct Reader {
    job: String,
    titles: Vec<String>,
    stdout: LineStream,
    stderr: LineStream,
    events: EventSender,
    started: Option<Instant>,
    outcome: ContainerOutcome,
}

impl Reader {
    async fn chunk(&mut self, chunk: LogOutput) {
        match chunk {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                for line in self.stdout.raw_lines(&message) {
                    self.stdout_line(&line).await;
                }
            }
            LogOutput::StdErr { message } => self.stderr.feed(&message).await,
            LogOutput::StdIn { .. } => {}
        }
    }

    async fn stdout_line(&mut self, line: &[u8]) {
        let Some(at) = line.iter().position(|b| *b == MARK) else {
            return self.stdout.send_line(line).await;
        };
        // A step that ended without a newline leaves its last text before the marker.
        if at > 0 {
            self.stdout.send_line(&line[..at]).await;
        }
        let marker = String::from_utf8_lossy(&line[at + 1..]).to_string();
        let mut words = marker.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|i| i.parse::<usize>().ok()),
        ) {
            (Some("start"), Some(index)) => {
                self.started = Some(Instant::now());
                let _ = self
                    .events
                    .send(Event::StepStarted {
                        job: self.job.clone(),
                        index,
                        count: self.titles.len(),
                        title: self.titles.get(index).cloned().unwrap_or_default(),
                    })
                    .await;
            }
            (Some("end"), Some(index)) => {
                let code = words.next().and_then(|c| c.parse::<i32>().ok());
                let duration = self.started.map(|s| s.elapsed()).unwrap_or_default();
                self.outcome.step_exits.push((duration, code));
                let _ = self
                    .events
                    .send(Event::StepFinished {
                        job: self.job.clone(),
                        index,
                        exit_code: code,
                        duration,
                    })
                    .await;
            }
            _ => self.stdout.send_line(line).await,
        }
    }
}

async fn remove(engine: &Engine, id: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    let _ = engine.docker.remove_container(id, Some(options)).await;
}
