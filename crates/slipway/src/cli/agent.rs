//! `slipway agent`: a worker on another host. It speaks the server's agent API
//! and runs jobs with the same worker loop and runner as the server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use slipway_engine::{Assignment, Dispatch, EngineError, LogChunk, Worker, WorkerConfig};
use slipway_runner::{BoxFuture, CacheRemote, JobReport};
use tokio_util::sync::CancellationToken;

use super::agent_mirror::Mirrors;
use super::client::{Client, Connection};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    /// Labels jobs may require, comma-separated (`docker` is added when Docker answers).
    #[arg(long, env = "SLIPWAY_AGENT_LABELS", value_delimiter = ',')]
    labels: Vec<String>,
    /// The agent's name, unique among agents [default: HOST-PID].
    #[arg(long, env = "SLIPWAY_AGENT_NAME")]
    name: Option<String>,
    /// Where sources, workspaces, artifacts and caches go [default: ./slipway-agent].
    #[arg(long, env = "SLIPWAY_AGENT_DIR", default_value = "slipway-agent")]
    work_dir: PathBuf,
    /// Run host steps unconfined when this kernel cannot sandbox them (no
    /// Landlock ABI 6): any pipeline then has this agent's powers (its token,
    /// other jobs' files). Without it such an agent refuses to start.
    #[arg(long, env = "SLIPWAY_UNSAFE_HOST_JOBS")]
    unsafe_host_jobs: bool,
    /// A directory every host step may write besides its own (a shared
    /// scratch directory), comma-separated; never one holding the work directory.
    #[arg(long, env = "SLIPWAY_JOB_WRITABLE", value_delimiter = ',')]
    job_writable: Vec<PathBuf>,
    /// Seconds a running job may go on after SIGTERM before it is given back.
    #[arg(long, env = "SLIPWAY_GRACE_SECONDS", default_value_t = 30)]
    grace_seconds: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing();
    let client = Client::new(&args.conn)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let docker = slipway_runner::Engine::connect().await.ok();
        if let Some(docker) = &docker {
            docker.reap_orphans().await;
        }
        let mut labels = args.labels.clone();
        if docker.is_some() && !labels.iter().any(|l| l == "docker") {
            labels.push("docker".into());
        }
        let work_dir = private_work_dir(&args.work_dir)?;
        slipway_runner::reap_orphans(&work_dir.join("work"));
        tracing::info!("{}", slipway_runner::describe_job_containment());
        let sandbox = super::server::host_job_sandbox(
            std::slice::from_ref(&work_dir),
            &args.job_writable,
            args.unsafe_host_jobs,
            "--unsafe-host-jobs",
        )
        .await?;
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
        let config = WorkerConfig {
            name: name.clone(),
            labels: labels.clone(),
            work_root: work_dir.join("work"),
            grace: Duration::from_secs(args.grace_seconds),
            docker,
            sandbox,
        };
        println!("agent {name} ready (labels: {})", labels.join(","));
        let stop = CancellationToken::new();
        tokio::spawn(super::server::stop_on_signal(stop.clone()));
        let mirrors = Mirrors::new(work_dir.join("mirrors"));
        let dispatch = RemoteDispatch {
            client,
            work_dir,
            mirrors,
        };
        Worker::new(Arc::new(dispatch), config).run(stop).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The work directory, made private as a server's data directory is: it
/// holds sources, artifacts and caches of every project this agent served.
fn private_work_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = std::path::absolute(dir)?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the work directory {}", dir.display()))?;
    let refused = slipway_secrets::make_private_tree(&dir)
        .with_context(|| format!("cannot make the work directory {} private", dir.display()))?;
    if let Some(first) = refused.first() {
        tracing::warn!(
            "{} entries of the work directory stay readable by others (not ours to change), e.g. {}",
            refused.len(),
            first.display()
        );
    }
    Ok(dir)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "agent".into())
}

/// The work queue, over HTTP.
#[derive(Debug)]
struct RemoteDispatch {
    client: Client,
    work_dir: PathBuf,
    mirrors: Mirrors,
}

fn remote(e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("server: {e}"))
}

impl RemoteDispatch {
    fn run_dir(&self, run: i64) -> PathBuf {
        self.work_dir.join("runs").join(run.to_string())
    }

    async fn download_tar(&self, path: &str, dest: &Path) -> Result<(), EngineError> {
        let resp = self
            .client
            .request(Method::GET, path)
            .send()
            .await
            .map_err(remote)?;
        if !resp.status().is_success() {
            return Err(remote(format!("GET {path} answered {}", resp.status())));
        }
        let bytes = resp.bytes().await.map_err(remote)?;
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || unpack(&bytes, &dest))
            .await
            .map_err(remote)??;
        Ok(())
    }
}

/// Unpacks what the server sent as the new contents of `dest`.
fn unpack(tar: &[u8], dest: &Path) -> Result<(), EngineError> {
    Ok(slipway_runner::archive::unpack(
        tar,
        dest,
        slipway_runner::archive::Links::Keep,
    )?)
}

impl RemoteDispatch {
    async fn upload_artifacts(&self, a: &Assignment) -> Result<(), EngineError> {
        let kept = self.run_dir(a.run_id).join("artifacts").join(&a.job);
        if !kept.is_dir() {
            return Ok(());
        }
        let tar = tokio::task::spawn_blocking(move || pack(&kept))
            .await
            .map_err(remote)??;
        let path = format!("/agent/runs/{}/artifacts/{}", a.run_id, a.job);
        self.client
            .send(self.client.request(Method::PUT, &path).body(tar))
            .await
            .map_err(remote)?;
        Ok(())
    }
}

impl Dispatch for RemoteDispatch {
    async fn claim(
        &self,
        worker: &str,
        labels: &[String],
        wait: Duration,
    ) -> Result<Option<Assignment>, EngineError> {
        let body =
            json!({ "worker": worker, "labels": labels, "wait_ms": wait.as_millis() as u64 });
        let resp = self
            .client
            .request(Method::POST, "/agent/claim")
            .json(&body)
            .timeout(wait + Duration::from_secs(15))
            .send()
            .await
            .map_err(remote)?;
        match resp.status() {
            StatusCode::NO_CONTENT => Ok(None),
            s if s.is_success() => Ok(Some(resp.json().await.map_err(remote)?)),
            s => Err(remote(format!(
                "claim answered {s}: {}",
                resp.text().await.unwrap_or_default()
            ))),
        }
    }

    async fn heartbeat(&self, job: i64, worker: &str) -> Result<bool, EngineError> {
        let answer = self
            .client
            .post(
                &format!("/agent/jobs/{job}/heartbeat"),
                &json!({ "worker": worker }),
            )
            .await
            .map_err(remote)?;
        Ok(answer["continue"].as_bool().unwrap_or(false))
    }

    async fn append_log(&self, job: i64, chunk: LogChunk) -> Result<(), EngineError> {
        let body = serde_json::to_value(&chunk).map_err(remote)?;
        self.client
            .post(&format!("/agent/jobs/{job}/log"), &body)
            .await
            .map_err(remote)?;
        Ok(())
    }

    async fn source(&self, a: &Assignment) -> Result<PathBuf, EngineError> {
        self.mirrors.updated(&self.client, a).await
    }

    async fn artifacts(&self, a: &Assignment, needs: &[String]) -> Result<PathBuf, EngineError> {
        let root = self.run_dir(a.run_id).join("artifacts");
        for need in needs {
            self.download_tar(
                &format!("/agent/runs/{}/artifacts/{need}", a.run_id),
                &root.join(need),
            )
            .await?;
        }
        Ok(root)
    }

    /// Apart per protection level, as on the server: a job of a protected
    /// branch never restores what another branch's job saved on this agent.
    fn caches(&self, a: &Assignment) -> PathBuf {
        self.work_dir
            .join("caches")
            .join(slipway_runner::protection_level(a.protected))
            .join(a.project_id.to_string())
    }

    fn cache_remote(&self, a: &Assignment) -> Option<Arc<dyn CacheRemote>> {
        Some(Arc::new(ServerCache {
            client: self.client.clone(),
            job: a.job_id,
        }))
    }

    async fn finish(
        &self,
        a: &Assignment,
        worker: &str,
        report: &JobReport,
    ) -> Result<(), EngineError> {
        let (mut status, mut reason) = (report.status, report.reason.clone());
        // The end is always reported: a failed upload fails the job rather than
        // leaving it running until its lease ends (and then running it again).
        if let Err(e) = self.upload_artifacts(a).await {
            status = slipway_runner::JobStatus::Failed;
            reason = Some(format!("artifacts upload failed: {e}"));
        }
        let body = json!({
            "worker": worker, "status": status, "exit_code": report.exit_code,
            "reason": reason, "pushed": report.pushed, "gate": report.gate,
        });
        self.client
            .post(&format!("/agent/jobs/{}/finish", a.job_id), &body)
            .await
            .map_err(remote)?;
        Ok(())
    }

    async fn release(&self, job: i64, worker: &str, reason: &str) -> Result<(), EngineError> {
        self.client
            .post(
                &format!("/agent/jobs/{job}/release"),
                &json!({ "worker": worker, "reason": reason }),
            )
            .await
            .map_err(remote)?;
        Ok(())
    }
}

fn pack(dir: &Path) -> Result<Vec<u8>, EngineError> {
    Ok(slipway_runner::archive::pack(dir)?)
}

/// The server's shared cache for the job's project and protection level
/// (the server picks both from the job): agents share entries through it.
#[derive(Debug)]
struct ServerCache {
    client: Client,
    job: i64,
}

impl ServerCache {
    fn path(&self, key: &str) -> String {
        format!("/agent/jobs/{}/caches/{key}", self.job)
    }
}

impl CacheRemote for ServerCache {
    fn fetch<'a>(&'a self, key: &'a str, into: &'a Path) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let resp = self
                .client
                .request(Method::GET, &self.path(key))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(false);
            }
            if !resp.status().is_success() {
                return Err(format!("the server answered {}", resp.status()));
            }
            let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
            let into = into.to_path_buf();
            tokio::task::spawn_blocking(move || unpack(&bytes, &into))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok(true)
        })
    }

    fn store<'a>(&'a self, key: &'a str, entry: &'a Path) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let entry = entry.to_path_buf();
            let tar = tokio::task::spawn_blocking(move || pack(&entry))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let req = self.client.request(Method::PUT, &self.path(key)).body(tar);
            self.client.send(req).await.map_err(|e| e.to_string())?;
            Ok(())
        })
    }
}
