//! A worker: claims jobs and runs them with the runner, streaming logs and
//! heartbeats, until told to stop. The same loop serves in-process workers and
//! remote agents; only the [`Dispatch`] differs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use slipway_runner::{
    ArtifactStore, CacheStore, Engine as Docker, Event, JobReport, RunContext, Sandbox, Source,
    run_job,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Result;
use crate::dispatch::{Assignment, Dispatch};
use crate::shipper::Batch;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique among all workers: claims and heartbeats are checked against it.
    pub name: String,
    pub labels: Vec<String>,
    /// Parent of job workspaces.
    pub work_root: PathBuf,
    /// How long running jobs may go on after shutdown is asked before they are canceled.
    pub grace: Duration,
    pub docker: Option<Docker>,
    /// Where host steps are confined; `None` only when the admin chose
    /// to run them unconfined (`--unsafe-host-jobs`).
    pub sandbox: Option<Sandbox>,
}

#[derive(Debug)]
pub struct Worker<D> {
    dispatch: Arc<D>,
    config: WorkerConfig,
    /// Parsed pipelines of the runs this worker ran jobs of lately.
    pipelines: crate::PipelineCache,
}

/// Lines per stored log chunk, and the longest a line waits to be stored.
const CHUNK_LINES: usize = 500;
const CHUNK_WAIT: Duration = Duration::from_millis(200);

impl<D: Dispatch> Worker<D> {
    pub fn new(dispatch: Arc<D>, config: WorkerConfig) -> Worker<D> {
        Worker {
            dispatch,
            config,
            pipelines: crate::PipelineCache::default(),
        }
    }

    /// Claims and runs jobs until `shutdown`; a job running then gets the grace
    /// period, then is canceled and given back to the queue.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let claimed = tokio::select! {
                c = self.dispatch.claim(&self.config.name, &self.config.labels, Duration::from_secs(20)) => c,
                () = shutdown.cancelled() => break,
            };
            match claimed {
                Ok(Some(assignment)) => self.execute(assignment, &shutdown).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(worker = %self.config.name, "cannot claim work: {e}");
                    // The server or database is unreachable: back off before asking again.
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
    }

    async fn execute(&self, a: Assignment, shutdown: &CancellationToken) {
        let cancel = CancellationToken::new();
        let lease = Duration::from_millis(a.lease_ms.max(300));
        let heartbeat = self.spawn_heartbeat(a.job_id, lease, cancel.clone());
        let stopping = self.spawn_grace(shutdown.clone(), cancel.clone());
        let outcome = self.run_assignment(&a, &cancel).await;
        heartbeat.abort();
        let released = stopping.is_finished() && shutdown.is_cancelled();
        stopping.abort();
        let result = match outcome {
            _ if released => {
                self.dispatch
                    .release(
                        a.job_id,
                        &self.config.name,
                        "re-queued: its worker shut down",
                    )
                    .await
            }
            Ok(report) => self.dispatch.finish(&a, &self.config.name, &report).await,
            Err(e) => {
                let report =
                    JobReport::failed(&a.job, format!("the worker could not run the job: {e}"));
                self.dispatch.finish(&a, &self.config.name, &report).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(job = a.job_id, "cannot report the job's end: {e}");
        }
    }

    async fn run_assignment(
        &self,
        a: &Assignment,
        cancel: &CancellationToken,
    ) -> Result<JobReport> {
        let pipeline = match self.pipelines.get(a.run_id) {
            Some(p) => p,
            None => {
                let parsed = slipway_spec::parse(&a.pipeline).map_err(|_| {
                    crate::EngineError::Invalid("the run's pipeline file no longer parses".into())
                })?;
                let parsed = Arc::new(parsed);
                self.pipelines.put(a.run_id, parsed.clone());
                parsed
            }
        };
        let Some(job) = pipeline.job(&a.job).cloned() else {
            return Err(crate::EngineError::Invalid(format!(
                "the pipeline has no job `{}`",
                a.job
            )));
        };
        let missing: Vec<&String> = job
            .secrets
            .iter()
            .filter(|n| !a.secrets.contains_key(*n))
            .collect();
        if let Some(why) = missing.iter().find_map(|n| a.withheld.get(*n)) {
            return Err(crate::EngineError::Invalid(why.clone()));
        }
        if let Some(name) = missing.first() {
            return Err(crate::EngineError::Invalid(format!(
                "secret `{name}` is not set for project `{0}` (or no longer opens with this server's key); \
                 set it with `slipway secret set {0} {name}`",
                a.project
            )));
        }
        let needs: Vec<String> = job.needs.iter().map(ToString::to_string).collect();
        let source_dir = self.dispatch.source(a).await?;
        let artifacts = self.dispatch.artifacts(a, &needs).await?;
        let (events, shipped) = self.spawn_log_shipper(a.job_id, a.attempt);
        let ctx = RunContext {
            project: a.project.clone(),
            run_number: u64::try_from(a.run_number).unwrap_or(0),
            revision: slipway_git::Revision {
                commit: a.commit.clone(),
                branch: a.branch.clone(),
            },
            source: Source::mirror(&source_dir, &a.commit, &a.branch, a.origin.clone()).await?,
            artifacts: ArtifactStore { root: artifacts },
            caches: CacheStore {
                root: self.dispatch.caches(a),
            },
            cache_remote: self.dispatch.cache_remote(a),
            work_root: self.config.work_root.clone(),
            protected: a.protected,
            pipeline_env: pipeline.env.clone(),
            secrets: a.secrets.clone(),
            docker: self.config.docker.clone(),
            sandbox: self.config.sandbox.clone(),
            registry: a.registry.clone(),
            new_code: a.new_code.clone(),
            new_code_base: a.new_code_base.clone(),
            reference_issues: a.reference_issues.clone(),
            events,
        };
        let report = run_job(&ctx, &job, cancel).await;
        drop(ctx);
        let _ = shipped.await;
        Ok(report)
    }

    /// Renews the lease; cancels the job when the server says it is no longer ours.
    fn spawn_heartbeat(
        &self,
        job: i64,
        lease: Duration,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let (dispatch, name) = (self.dispatch.clone(), self.config.name.clone());
        tokio::spawn(async move {
            // Often enough to renew the lease, and to notice a cancel within two seconds.
            let mut tick = tokio::time::interval((lease / 3).min(Duration::from_secs(2)));
            tick.tick().await;
            let mut last_ok = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                match dispatch.heartbeat(job, &name).await {
                    Ok(true) => last_ok = tokio::time::Instant::now(),
                    Ok(false) => return cancel.cancel(),
                    // Past a whole lease without a beat, the job is someone else's
                    // by now: stop, rather than run it twice.
                    Err(e) if last_ok.elapsed() >= lease => {
                        tracing::warn!(
                            job,
                            "no heartbeat for a whole lease ({e}); stopping the job"
                        );
                        return cancel.cancel();
                    }
                    Err(e) => tracing::warn!(job, "heartbeat failed: {e}"),
                }
            }
        })
    }

    /// After shutdown is asked, waits the grace period, then cancels the job.
    fn spawn_grace(
        &self,
        shutdown: CancellationToken,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let grace = self.config.grace;
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
            cancel.cancel();
        })
    }

    /// Collects the job's events into log chunks (lines with their times,
    /// steps with theirs) and stores them.
    fn spawn_log_shipper(
        &self,
        job: i64,
        attempt: i64,
    ) -> (mpsc::Sender<Event>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Event>(1024);
        let dispatch = self.dispatch.clone();
        let handle = tokio::spawn(async move {
            let mut batch = Batch::new(attempt);
            // What a chunk holds waits at most CHUNK_WAIT to be stored, however slowly more follows.
            let mut due: Option<tokio::time::Instant> = None;
            loop {
                let next = match due {
                    Some(at) => tokio::time::timeout_at(at, rx.recv()).await,
                    None => Ok(rx.recv().await),
                };
                let ended = matches!(next, Ok(None));
                if let Ok(Some(event)) = next
                    && batch.take(&event)
                {
                    due.get_or_insert_with(|| tokio::time::Instant::now() + CHUNK_WAIT);
                }
                let overdue = due.is_some_and(|at| tokio::time::Instant::now() >= at);
                if !batch.is_empty() && (ended || overdue || batch.lines() >= CHUNK_LINES) {
                    if let Err(e) = dispatch.append_log(job, batch.take_chunk()).await {
                        tracing::warn!(job, "cannot store log lines: {e}");
                    }
                    due = None;
                }
                if ended {
                    return;
                }
            }
        });
        (tx, handle)
    }
}
