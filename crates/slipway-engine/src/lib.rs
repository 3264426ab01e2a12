//! The run lifecycle on the server: turning a push, a poll or a manual trigger
//! into a run for one exact commit, handing its jobs to workers (in-process or
//! remote agents, through [`Dispatch`]), and keeping runs moving as jobs finish.
//!
//! It runs jobs with `slipway-runner`, the same code as `slipway run`; it knows
//! nothing of HTTP: the server exposes it, and the agent implements
//! [`Dispatch`] over HTTP.

mod dispatch;
mod paths;
mod pipeline_file;
mod poll;
mod secret_grant;
mod shipper;
mod trigger;
mod worker;

use std::sync::Arc;

use slipway_store::Store;
use tokio::sync::Notify;

pub use dispatch::{
    Assignment, DEFAULT_LEASE, Dispatch, JobEnd, LocalDispatch, RegistryIssuer, SecretOpener,
};
pub use paths::Paths;
pub use poll::{poll_once, run_poller, run_reaper};
pub use secret_grant::Grant;
pub use shipper::LogChunk;
pub use trigger::{Pushed, Target};
pub use worker::{Worker, WorkerConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] slipway_store::StoreError),
    #[error("git: {0}")]
    Git(#[from] slipway_git::GitError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What every part of the server shares: the store, where files go, and the
/// signal that new work may be waiting.
#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Store,
    pub paths: Paths,
    /// Rung whenever jobs may have become claimable, so waiting workers and
    /// long-polling agents look again instead of polling on a timer.
    pub work: Arc<Notify>,
    /// Rung when a run finishes: green runs may make releases to deploy.
    pub runs_finished: Arc<Notify>,
    /// Counts what changes delivery figures (a job or a deployment ending), so
    /// figures computed before stay valid exactly until it moves.
    pub history: Arc<std::sync::atomic::AtomicU64>,
    /// The id of every job whose log just grew, for live log streams.
    pub logs: tokio::sync::broadcast::Sender<i64>,
    /// How long a claim holds without a heartbeat before the job is re-queued.
    pub lease: std::time::Duration,
    /// At most this many jobs run at once over every worker and agent.
    pub max_running: Option<i64>,
    /// Parsed pipelines of recent runs: a run of a thousand jobs parses its file once.
    pipelines: PipelineCache,
    /// One lock per project mirror: concurrent fetches into one repository fail.
    mirrors: Arc<std::sync::Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
    /// Opens sealed project secrets (the server sets it; the engine never sees the key).
    pub secrets: dispatch::SecretOpener,
    /// Issues registry credentials for jobs that push images (the server sets it).
    pub registry: dispatch::RegistryIssuer,
}

impl Engine {
    pub fn new(store: Store, paths: Paths) -> Engine {
        Engine {
            store,
            paths,
            work: Arc::new(Notify::new()),
            runs_finished: Arc::new(Notify::new()),
            history: Arc::default(),
            logs: tokio::sync::broadcast::channel(1024).0,
            lease: dispatch::DEFAULT_LEASE,
            max_running: None,
            pipelines: PipelineCache::default(),
            mirrors: Arc::default(),
            secrets: dispatch::SecretOpener(Arc::new(|_, _, _| None)),
            registry: dispatch::RegistryIssuer::default(),
        }
    }

    /// The parsed pipeline of a run (`None` when its file does not parse).
    pub async fn pipeline(
        &self,
        run: slipway_store::RunId,
    ) -> Result<Option<Arc<slipway_spec::Pipeline>>> {
        if let Some(p) = self.pipelines.get(run.0) {
            return Ok(Some(p));
        }
        let text = self.store.pipeline_of(run).await?;
        let Ok(parsed) = slipway_spec::parse(&text) else {
            return Ok(None);
        };
        let parsed = Arc::new(parsed);
        self.pipelines.put(run.0, parsed.clone());
        Ok(Some(parsed))
    }

    /// A project secret's value, if it is set and opens.
    pub async fn secret(
        &self,
        project: &slipway_store::Project,
        name: &str,
    ) -> Result<Option<String>> {
        let sealed = self.store.secret(project.id, name).await?;
        Ok(sealed.and_then(|s| (self.secrets.0)(project, name, &s)))
    }

    /// Credentials for a private remote: the project secrets `GIT_USERNAME` and
    /// `GIT_PASSWORD` (a token works as the password).
    pub async fn git_credentials(
        &self,
        project: &slipway_store::Project,
    ) -> Result<Option<slipway_git::Credentials>> {
        let username = self.secret(project, "GIT_USERNAME").await?;
        let password = self.secret(project, "GIT_PASSWORD").await?;
        Ok(username
            .zip(password)
            .map(|(username, password)| slipway_git::Credentials { username, password }))
    }

    /// The lock that serialises fetches into one project's mirror.
    pub(crate) fn mirror_lock(
        &self,
        project: slipway_store::ProjectId,
    ) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(project.0).or_default().clone()
    }

    pub(crate) fn wake_workers(&self) {
        self.work.notify_waiters();
    }
}

/// A small map of run id → parsed pipeline; emptied when it grows past a bound.
#[derive(Debug, Clone, Default)]
pub struct PipelineCache(
    Arc<std::sync::Mutex<std::collections::HashMap<i64, Arc<slipway_spec::Pipeline>>>>,
);

impl PipelineCache {
    const MAX: usize = 64;

    pub fn get(&self, run: i64) -> Option<Arc<slipway_spec::Pipeline>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&run)
            .cloned()
    }

    pub fn put(&self, run: i64, pipeline: Arc<slipway_spec::Pipeline>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(run, pipeline);
    }
}
