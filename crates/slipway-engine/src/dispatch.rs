//! How a worker gets work and reports back. In-process workers use
//! [`LocalDispatch`] (the store and the data directory directly); remote agents
//! implement [`Dispatch`] over the server's HTTP API. Both run jobs the same way.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slipway_quality::diff::NewCodeBase;
use slipway_runner::{JobReport, JobStatus, millis};
use slipway_spec::NewCodeReference;
use slipway_store::{Claim, Job, JobId, Project, Run, State};

use crate::{Engine, Result};

/// A claimed job and everything needed to run it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    pub job_id: i64,
    pub job: String,
    pub run_id: i64,
    pub run_number: i64,
    pub project_id: i64,
    pub project: String,
    pub commit: String,
    pub branch: String,
    /// The project's repository URL without credentials: the checkout's `origin`.
    #[serde(default)]
    pub origin: Option<String>,
    /// Whether the branch is one of the project's protected branches: the
    /// job's caches and home are then apart from other branches' (an old
    /// server that does not say is taken as unprotected).
    #[serde(default)]
    pub protected: bool,
    /// The pipeline file of the run's commit.
    pub pipeline: String,
    /// Values of the secrets the job lists.
    pub secrets: BTreeMap<String, String>,
    /// Secrets the job lists that its branch may not have, with why.
    #[serde(default)]
    pub withheld: BTreeMap<String, String>,
    /// How long the claim holds without a heartbeat.
    pub lease_ms: u64,
    /// Which try at the job this is (1 for the first).
    pub attempt: i64,
    /// Credentials for the job's `image_build.push`, issued with the claim.
    #[serde(default)]
    pub registry: Option<slipway_runner::RegistryAccess>,
    /// For a job with reports: `git diff -U0 -M` from the run's reference
    /// (its branch's last successful run; without one, what the run's push
    /// or commit changed) to this commit.
    #[serde(default)]
    pub new_code: Option<String>,
    /// What `new_code` was measured from, for the gate's report (an older
    /// server does not say).
    #[serde(default)]
    pub new_code_base: Option<NewCodeBase>,
    /// For a job with reports: the issue fingerprints its gate recorded at
    /// the reference commit (issues with these are not new).
    #[serde(default)]
    pub reference_issues: Option<Vec<String>>,
}

/// The work queue as a worker sees it.
pub trait Dispatch: Send + Sync + 'static {
    /// The next job for a worker with these labels, waiting up to `wait` for one.
    fn claim(
        &self,
        worker: &str,
        labels: &[String],
        wait: Duration,
    ) -> impl Future<Output = Result<Option<Assignment>>> + Send;
    /// Keeps the claim alive; `false` means stop: the job was canceled or given to another worker.
    fn heartbeat(&self, job: i64, worker: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Stores a chunk of masked log lines and step times.
    fn append_log(
        &self,
        job: i64,
        chunk: crate::LogChunk,
    ) -> impl Future<Output = Result<()>> + Send;
    /// A repository on this machine holding the run's commit, its
    /// branches and tags (the server's mirror, or an agent's own brought up
    /// to date): jobs check out from it.
    fn source(&self, a: &Assignment) -> impl Future<Output = Result<PathBuf>> + Send;
    /// The local directory holding the artifacts of the jobs this one needs.
    fn artifacts(
        &self,
        a: &Assignment,
        needs: &[String],
    ) -> impl Future<Output = Result<PathBuf>> + Send;
    /// The local directory of the project's caches for the job's protection level.
    fn caches(&self, a: &Assignment) -> PathBuf;
    /// Where cache entries are shared beyond this machine (agents: their server).
    fn cache_remote(
        &self,
        _a: &Assignment,
    ) -> Option<std::sync::Arc<dyn slipway_runner::CacheRemote>> {
        None
    }
    /// Reports the outcome (and, for agents, uploads the job's artifacts first).
    fn finish(
        &self,
        a: &Assignment,
        worker: &str,
        report: &JobReport,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Gives the job back to the queue (the worker is shutting down).
    fn release(
        &self,
        job: i64,
        worker: &str,
        reason: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Lease given with each claim unless the server is told otherwise; heartbeats renew it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Dispatch straight to the store: what in-process workers use.
#[derive(Debug, Clone)]
pub struct LocalDispatch {
    pub engine: Engine,
}

/// The function inside a [`SecretOpener`].
pub type OpenSecret = dyn Fn(&Project, &str, &[u8]) -> Option<String> + Send + Sync;

/// Turns the sealed bytes of a project secret into its value.
#[derive(Clone)]
pub struct SecretOpener(pub std::sync::Arc<OpenSecret>);

impl std::fmt::Debug for SecretOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretOpener")
    }
}

/// How a job ended, as a worker reports it.
#[derive(Debug, Clone, Copy)]
pub struct JobEnd<'a> {
    pub status: JobStatus,
    pub exit_code: Option<i32>,
    pub reason: Option<&'a str>,
    /// Images it pushed to the registry.
    pub pushed: &'a [slipway_runner::PushedImage],
    /// Its quality gate's outcome, if it has reports.
    pub gate: Option<&'a serde_json::Value>,
}

/// Issues a job of project `.0` credentials for pushing to `REPOSITORY/IMAGE`
/// `.1` (`.2` names the job in the token); the server sets it, as only it
/// holds the key. A target the project may not push to comes back refused.
pub type IssueRegistryAccess =
    dyn Fn(&str, &str, &str) -> slipway_runner::RegistryAccess + Send + Sync;

#[derive(Clone, Default)]
pub struct RegistryIssuer(pub Option<std::sync::Arc<IssueRegistryAccess>>);

impl std::fmt::Debug for RegistryIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegistryIssuer")
    }
}

impl LocalDispatch {
    async fn assignment(&self, job: Job) -> Result<Assignment> {
        let store = &self.engine.store;
        let run: Run = store.run(job.run_id).await?;
        let project = store.project_by_id(run.project_id).await?;
        let pipeline = store.pipeline_of(run.id).await?;
        let spec = self
            .engine
            .pipeline(run.id)
            .await?
            .and_then(|p| p.job(&job.name).cloned());
        let wanted = spec.as_ref().map(|j| j.secrets.clone()).unwrap_or_default();
        let (secrets, withheld) = self.job_secrets(&project, &run.branch, wanted).await?;
        let push = spec
            .as_ref()
            .and_then(|j| j.image_build.as_ref())
            .and_then(|b| b.push.as_deref());
        let registry = push.and_then(|target| self.registry_access(&project, &run, &job, target));
        let (new_code, new_code_base, reference_issues) =
            match spec.as_ref().and_then(|j| j.reports.as_ref()) {
                Some(reports) => {
                    let (base, diff, known) = self
                        .gate_reference(&run, &job.name, &reports.new_code)
                        .await?;
                    (Some(diff), Some(base), known)
                }
                None => (None, None, None),
            };
        let protected = self.engine.protects_branch(&project, &run.branch).await;
        Ok(Assignment {
            job_id: job.id.0,
            attempt: job.attempt,
            job: job.name,
            run_id: run.id.0,
            run_number: run.number,
            project_id: project.id.0,
            project: project.name,
            protected,
            commit: run.commit,
            branch: run.branch,
            origin: Some(slipway_git::without_credentials(&project.git_url)),
            pipeline,
            secrets,
            withheld,
            lease_ms: u64::try_from(millis(self.engine.lease)).unwrap_or(30_000),
            registry,
            new_code,
            new_code_base,
            reference_issues,
        })
    }

    /// The secrets a job on `branch` lists: the values it gets, and why it
    /// gets none of the others that are set.
    async fn job_secrets(
        &self,
        project: &Project,
        branch: &str,
        wanted: Vec<String>,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        let (mut secrets, mut withheld) = (BTreeMap::new(), BTreeMap::new());
        for name in wanted {
            match self.engine.secret_for_job(project, branch, &name).await? {
                crate::Grant::Value(value) => {
                    secrets.insert(name, value);
                }
                crate::Grant::Withheld(why) => {
                    withheld.insert(name, why);
                }
                crate::Grant::Missing => {}
            }
        }
        Ok((secrets, withheld))
    }

    /// Credentials for pushing the job's image to `target`, when the server
    /// issues them.
    fn registry_access(
        &self,
        project: &Project,
        run: &Run,
        job: &Job,
        target: &str,
    ) -> Option<slipway_runner::RegistryAccess> {
        let issue = self.engine.registry.0.as_ref()?;
        // The job id and attempt let the registry refuse the token once
        // this attempt ended (the job may run again, with a new token).
        let subject = format!(
            "{}/{}/{}@{}.{}",
            project.name, run.number, job.name, job.id, job.attempt
        );
        Some(issue(&project.name, target, &subject))
    }

    /// A gate's new code: what it was measured from, the diff from there,
    /// and the issue fingerprints the job had at that commit, if it ran there.
    async fn gate_reference(
        &self,
        run: &Run,
        job: &str,
        reference: &NewCodeReference,
    ) -> Result<(NewCodeBase, String, Option<Vec<String>>)> {
        let mirror = slipway_git::Mirror::at(&self.engine.paths.mirror(run.project_id));
        let base = match self.reference(run, &mirror, reference).await? {
            Some(base) => base,
            None => self.change_of(run, &mirror).await?,
        };
        let diff = mirror.diff(base.commit.as_deref(), &run.commit).await?;
        let known = match &base.commit {
            Some(commit) => {
                self.engine
                    .store
                    .gate_fingerprints(run.project_id, commit, job)
                    .await?
            }
            None => None,
        };
        Ok((base, diff, known))
    }

    /// The commit the pipeline's `new_code:` names for this run, if there is one.
    async fn reference(
        &self,
        run: &Run,
        mirror: &slipway_git::Mirror,
        reference: &NewCodeReference,
    ) -> Result<Option<NewCodeBase>> {
        Ok(match reference {
            NewCodeReference::PreviousSuccess => self
                .engine
                .store
                .last_successful_commit(run.project_id, &run.branch, run.number)
                .await?
                .map(|c| NewCodeBase::since(c, format!("last green run of {}", run.branch))),
            NewCodeReference::Branch(branch) => mirror
                .merge_base(branch, &run.commit)
                .await
                .map(|c| NewCodeBase::since(c, format!("merge-base with {branch}"))),
            // A history younger than the window is new code, all of it.
            NewCodeReference::Days(days) => {
                Some(match mirror.commit_before(&run.commit, *days).await {
                    Some(c) => NewCodeBase::since(c, format!("last commit over {days} days old")),
                    None => NewCodeBase::everything(format!("no commit is over {days} days old")),
                })
            }
        })
    }

    /// New code of a run with no reference (no green run on its branch, or
    /// the pipeline's `new_code:` found none), widest first so that no push
    /// narrows what is measured: (b) the newest green run of the project, on
    /// any branch, whose commit is in this one's history (a branch cut from
    /// a green main measures everything since that green commit); (c) else,
    /// when this branch had runs (none green), where the earliest of them
    /// started, if in this commit's history; (d) else the change this run
    /// brings ([`Self::base_of`]). A merge's first parent never comes before
    /// (b) or (c).
    async fn change_of(&self, run: &Run, mirror: &slipway_git::Mirror) -> Result<NewCodeBase> {
        if let Some(base) = self.green_ancestor(run, mirror).await? {
            return Ok(base);
        }
        if let Some(base) = self.branch_start(run, mirror).await? {
            return Ok(base);
        }
        self.base_of(run, mirror).await
    }

    /// The newest green run before `run`, on any branch, whose commit is in
    /// its history (of the newest [`GREEN_ANCESTORS`] green runs).
    async fn green_ancestor(
        &self,
        run: &Run,
        mirror: &slipway_git::Mirror,
    ) -> Result<Option<NewCodeBase>> {
        let store = &self.engine.store;
        let green = store
            .green_runs_before(run.project_id, run.number, GREEN_ANCESTORS)
            .await?;
        let mut seen = std::collections::HashSet::new();
        for g in green {
            if seen.insert(g.commit.clone()) && mirror.is_ancestor(&g.commit, &run.commit).await? {
                let why = format!(
                    "newest green run in its history (run {} of {}), none on {} before",
                    g.number, g.branch, run.branch
                );
                return Ok(Some(NewCodeBase::since(g.commit, why)));
            }
        }
        Ok(None)
    }

    /// Where the branch's earliest run started (its own [`Self::base_of`]),
    /// when the branch had runs before, none green, and that is in this
    /// commit's history: a push after a failed, canceled or superseded one
    /// still answers for everything since.
    async fn branch_start(
        &self,
        run: &Run,
        mirror: &slipway_git::Mirror,
    ) -> Result<Option<NewCodeBase>> {
        let store = &self.engine.store;
        let Some(first) = store
            .first_run_of_branch(run.project_id, &run.branch, run.number)
            .await?
        else {
            return Ok(None);
        };
        let (n, branch) = (first.number, &run.branch);
        Ok(match self.base_of(&first, mirror).await?.commit {
            None => Some(NewCodeBase::everything(format!(
                "run {n}, the first of {branch}, was of a root commit; none green since"
            ))),
            Some(c) if mirror.is_ancestor(&c, &run.commit).await? => Some(NewCodeBase::since(
                c,
                format!("where run {n}, the first of {branch}, started; none green since"),
            )),
            Some(_) => None,
        })
    }

    /// The change `run` brings: its push's `before..after` when the push
    /// said and `before` is in the commit's history, else the commit against
    /// its first parent; only a root commit has nothing to compare with.
    async fn base_of(&self, run: &Run, mirror: &slipway_git::Mirror) -> Result<NewCodeBase> {
        if let Some(before) = self.engine.store.push_before(run.id).await?
            && before != run.commit
            && mirror.is_ancestor(&before, &run.commit).await?
        {
            return Ok(NewCodeBase::since(
                before,
                "the push's previous head, no green run before",
            ));
        }
        Ok(match mirror.first_parent(&run.commit).await? {
            Some(parent) => NewCodeBase::since(parent, "first parent, no green run before"),
            None => NewCodeBase::everything("a root commit: nothing to compare with"),
        })
    }
}

/// How many of a project's newest green runs a run with none on its branch
/// looks through for one in its history.
const GREEN_ANCESTORS: i64 = 200;

impl Dispatch for LocalDispatch {
    async fn claim(
        &self,
        worker: &str,
        labels: &[String],
        wait: Duration,
    ) -> Result<Option<Assignment>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Listen before looking, so a wake-up between the two is not lost.
            let woken = self.engine.work.notified();
            let claim = Claim {
                worker,
                labels,
                lease_ms: millis(self.engine.lease),
                max_running: self.engine.max_running,
            };
            if let Some(job) = self.engine.store.claim_job(&claim).await? {
                return self.assignment(job).await.map(Some);
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn heartbeat(&self, job: i64, worker: &str) -> Result<bool> {
        Ok(self
            .engine
            .store
            .heartbeat(JobId(job), worker, millis(self.engine.lease))
            .await?)
    }

    async fn append_log(&self, job: i64, chunk: crate::LogChunk) -> Result<()> {
        let store = &self.engine.store;
        store
            .append_log(JobId(job), chunk.seq, &chunk.lines, &chunk.times)
            .await?;
        store.record_steps(JobId(job), &chunk.steps).await?;
        // Nobody listening is fine: live streams are optional.
        let _ = self.engine.logs.send(job);
        Ok(())
    }

    async fn source(&self, a: &Assignment) -> Result<PathBuf> {
        Ok(self
            .engine
            .paths
            .mirror(slipway_store::ProjectId(a.project_id)))
    }

    async fn artifacts(&self, a: &Assignment, _needs: &[String]) -> Result<PathBuf> {
        Ok(self.engine.paths.artifacts(slipway_store::RunId(a.run_id)))
    }

    fn caches(&self, a: &Assignment) -> PathBuf {
        self.engine
            .paths
            .cache(slipway_store::ProjectId(a.project_id), a.protected)
    }

    async fn finish(&self, a: &Assignment, worker: &str, report: &JobReport) -> Result<()> {
        self.engine
            .finish_job(
                a.job_id,
                a.run_id,
                worker,
                JobEnd {
                    status: report.status,
                    exit_code: report.exit_code,
                    reason: report.reason.as_deref(),
                    pushed: &report.pushed,
                    gate: report.gate.as_ref(),
                },
            )
            .await
    }

    async fn release(&self, job: i64, worker: &str, reason: &str) -> Result<()> {
        self.engine
            .store
            .release_job(JobId(job), worker, reason)
            .await?;
        self.engine.wake_workers();
        Ok(())
    }
}

impl Engine {
    /// Records a job's outcome and moves its run on (dependents, run state).
    pub async fn finish_job(
        &self,
        job: i64,
        run: i64,
        worker: &str,
        end: JobEnd<'_>,
    ) -> Result<()> {
        let JobEnd {
            status,
            exit_code,
            reason,
            pushed,
            gate,
        } = end;
        // What the job produced is recorded under its name, looked up once.
        if gate.is_some() || !pushed.is_empty() {
            let row = self.store.job(JobId(job)).await?;
            // What a job produced is taken only from the worker holding it.
            if row.state != State::Running || row.worker.as_deref() != Some(worker) {
                return Ok(());
            }
            let name = row.name;
            let run = slipway_store::RunId(run);
            if let Some(gate) = gate {
                self.store.record_gate(run, &name, gate).await?;
            }
            if !pushed.is_empty() {
                let pairs: Vec<(String, String)> = pushed
                    .iter()
                    .map(|p| (p.reference.clone(), p.digest.clone()))
                    .collect();
                self.store.record_run_images(run, &name, &pairs).await?;
            }
        }
        let state = match status {
            JobStatus::Succeeded => State::Succeeded,
            JobStatus::Failed => State::Failed,
            JobStatus::Canceled => State::Canceled,
            JobStatus::Skipped => State::Skipped,
        };
        let code = exit_code.map(i64::from);
        self.store
            .finish_job(JobId(job), worker, state, code, reason)
            .await?;
        let settled = self.store.settle_run(slipway_store::RunId(run)).await?;
        self.history
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        if settled.state.is_final() {
            self.runs_finished.notify_one();
        }
        // Live log followers learn that the job (and maybe the run) ended.
        let _ = self.logs.send(job);
        self.wake_workers();
        Ok(())
    }
}
