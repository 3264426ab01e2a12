//! Running one job, start to end: workspace, caches, steps (host or container),
//! image build, artifacts, retries and the timeout. The local runner and the
//! server both call [`run_job`].

mod images;
mod services;
mod stores;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use slipway_spec::{Env, Job, TemplateVars};
use tokio_util::sync::CancellationToken;

use crate::container::{self, ContainerJob};
use crate::docker::Engine;
use crate::event::{Event, EventSender, JobStatus};
use crate::host::HostJob;
use crate::image_build;
use crate::image_owner::{self, Owner, PROJECT_LABEL, PROTECTED_LABEL};
use crate::mask::Masker;
use crate::output::note;
use crate::report::{JobReport, StepReport};
use crate::workspace::{ArtifactStore, CacheStore, JobHome, Source, Workspace};

/// A job that runs longer than this without its own `timeout` is stopped.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Everything a job needs from the run it belongs to.
#[derive(Debug)]
pub struct RunContext {
    /// The project's name (empty for `slipway run`), for labels.
    pub project: String,
    pub run_number: u64,
    pub revision: slipway_git::Revision,
    pub source: Source,
    pub artifacts: ArtifactStore,
    pub caches: CacheStore,
    /// Where cache entries are shared beyond this machine, if anywhere.
    pub cache_remote: Option<std::sync::Arc<dyn crate::workspace::CacheRemote>>,
    /// Parent directory of job workspaces.
    pub work_root: PathBuf,
    /// Whether the run's branch is protected: its jobs get a home of their
    /// own level (the worker gives them caches of it too).
    pub protected: bool,
    pub pipeline_env: Env,
    pub secrets: BTreeMap<String, String>,
    pub docker: Option<Engine>,
    /// Where host steps are confined; `None` runs them as this process
    /// (`slipway run`: a developer's own code on their own machine).
    pub sandbox: Option<crate::Sandbox>,
    /// Where `image_build.push` pushes to; `None` outside a server.
    pub registry: Option<crate::RegistryAccess>,
    /// The run's new code (`git diff -U0 -M` from its reference), for quality gates.
    pub new_code: Option<String>,
    /// What `new_code` was measured from (the reference and why), for the gate's report.
    pub new_code_base: Option<slipway_quality::diff::NewCodeBase>,
    /// Issue fingerprints of the reference's gate: issues with these are not new.
    pub reference_issues: Option<Vec<String>>,
    pub events: EventSender,
}

/// Runs a job, retrying as it asks, until it succeeds, runs out of tries or is canceled.
pub async fn run_job(ctx: &RunContext, job: &Job, cancel: &CancellationToken) -> JobReport {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let mut report;
    let mut attempt = 1;
    loop {
        let _ = ctx
            .events
            .send(Event::JobStarted {
                job: job.name.to_string(),
                attempt,
            })
            .await;
        report = Attempt::new(ctx, job, cancel).run().await;
        report.attempts = attempt;
        let retry =
            report.status == JobStatus::Failed && attempt <= job.retry && !cancel.is_cancelled();
        if !retry {
            break;
        }
        note(
            &ctx.events,
            job.name.as_str(),
            format!(
                "job failed ({}); retrying, attempt {} of {}",
                report.reason.as_deref().unwrap_or("no reason"),
                attempt + 1,
                job.retry + 1
            ),
        )
        .await;
        attempt += 1;
    }
    report.started_at = Some(started_at);
    report.finished_at = Some(SystemTime::now());
    report.duration_ms = crate::millis(started.elapsed()).unsigned_abs();
    let _ = ctx
        .events
        .send(Event::JobFinished {
            job: job.name.to_string(),
            status: report.status,
            duration: started.elapsed(),
            reason: report.reason.clone(),
        })
        .await;
    report
}

/// One try at a job.
struct Attempt<'a> {
    ctx: &'a RunContext,
    job: &'a Job,
    cancel: CancellationToken,
    timed_out: Arc<AtomicBool>,
    /// Hides the secrets this job can see from everything it reports.
    masker: Masker,
    report: JobReport,
}

impl<'a> Attempt<'a> {
    fn new(ctx: &'a RunContext, job: &'a Job, parent: &CancellationToken) -> Attempt<'a> {
        Attempt {
            ctx,
            job,
            cancel: parent.child_token(),
            timed_out: Arc::default(),
            masker: masker_for(ctx, job),
            report: JobReport::not_run(job, JobStatus::Failed, ""),
        }
    }

    async fn run(mut self) -> JobReport {
        let timeout = self.job.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let timer = {
            let (cancel, flag) = (self.cancel.clone(), self.timed_out.clone());
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                flag.store(true, Ordering::SeqCst);
                cancel.cancel();
            })
        };
        let result = self.execute().await;
        timer.abort();
        let (status, reason) = if self.timed_out.load(Ordering::SeqCst) {
            (
                JobStatus::Failed,
                Some(format!(
                    "timed out after {}",
                    humantime::format_duration(timeout)
                )),
            )
        } else if self.cancel.is_cancelled() {
            (JobStatus::Canceled, Some("canceled".to_string()))
        } else {
            match result {
                Ok(()) => (JobStatus::Succeeded, None),
                Err(reason) => (JobStatus::Failed, Some(reason)),
            }
        };
        self.report.status = status;
        self.report.reason = reason;
        if status == JobStatus::Succeeded {
            self.report.exit_code = Some(0);
        }
        self.report
    }

    fn name(&self) -> &str {
        self.job.name.as_str()
    }

    async fn execute(&mut self) -> Result<(), String> {
        let workspace = self.prepare().await?;
        let keys = self
            .restore_caches(workspace.path(), workspace.stamps())
            .await?;
        let ws = workspace.path().to_path_buf();
        blocking(move || crate::workspace::open_for_job(&ws))
            .await
            .map_err(|e| format!("cannot prepare the workspace: {e}"))?;
        let env = self.env(workspace.path());
        let mut services = crate::services::Services::default();
        let steps = self
            .steps_beside_services(&mut services, workspace.path(), env)
            .await;
        services.remove().await;
        let gate = self
            .judge_reports(workspace.path(), steps.as_ref().err())
            .await;
        steps?;
        gate?;
        if let Some(build) = &self.job.image_build {
            self.build_image(build, workspace.path()).await?;
        }
        self.keep(workspace.path(), &keys, workspace.stamps()).await
    }

    /// A fresh workspace with the sources and the artifacts of the needed jobs.
    async fn prepare(&self) -> Result<Workspace, String> {
        let checkout = self.job.checkout.clone().unwrap_or_default();
        let ws = Workspace::create(
            &self.ctx.work_root,
            self.job.name.as_str(),
            &self.ctx.source,
            &checkout,
            self.ctx.sandbox.as_ref(),
        )
        .await?;
        let (artifacts, needs, dir) = (
            self.ctx.artifacts.clone(),
            self.job.needs.clone(),
            ws.path().to_path_buf(),
        );
        blocking(move || {
            for need in &needs {
                artifacts.lay(need.as_str(), &dir)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("cannot prepare the workspace: {e}"))?;
        Ok(ws)
    }

    fn vars(&self) -> TemplateVars {
        TemplateVars {
            run_number: self.ctx.run_number,
            commit: self.ctx.revision.commit.clone(),
            branch: self.ctx.revision.branch.clone(),
            job: self.job.name.to_string(),
        }
    }

    /// Variables for every step: pipeline, job, built-ins, then secrets.
    fn env(&self, ws: &Path) -> Vec<(String, String)> {
        let in_container = self.job.image.is_some();
        let workspace = if in_container {
            container::WORKSPACE.to_string()
        } else {
            ws.display().to_string()
        };
        let mut env: Vec<(String, String)> = self
            .ctx
            .pipeline_env
            .iter()
            .chain(&self.job.env)
            .cloned()
            .collect();
        env.extend([
            ("CI".into(), "true".into()),
            ("SLIPWAY".into(), "true".into()),
            ("SLIPWAY_COMMIT".into(), self.ctx.revision.commit.clone()),
            ("SLIPWAY_BRANCH".into(), self.ctx.revision.branch.clone()),
            ("SLIPWAY_RUN_NUMBER".into(), self.ctx.run_number.to_string()),
            ("SLIPWAY_JOB".into(), self.job.name.to_string()),
            ("SLIPWAY_WORKSPACE".into(), workspace),
        ]);
        for name in &self.job.secrets {
            if let Some(value) = self.ctx.secrets.get(name) {
                env.push((name.clone(), value.clone()));
            }
        }
        env
    }

    fn workdir(&self, ws: &Path) -> PathBuf {
        self.job
            .workdir
            .as_ref()
            .map_or_else(|| ws.to_path_buf(), |w| ws.join(w))
    }

    async fn host_steps(&mut self, ws: &Path, env: &[(String, String)]) -> Result<(), String> {
        let record = crate::orphans::record_path(&self.ctx.work_root, ws);
        let (home, confinement) = match &self.ctx.sandbox {
            Some(sandbox) => {
                let home = JobHome::create(
                    &self.ctx.work_root,
                    ws,
                    &self.ctx.project,
                    self.ctx.protected,
                )
                .map_err(|e| format!("cannot prepare the job's home: {e}"))?;
                let mut writable = home.writable();
                writable.push(ws.to_path_buf());
                (Some(home), Some((sandbox.clone(), writable)))
            }
            None => (None, None),
        };
        let env: Vec<(String, String)> = home
            .iter()
            .flat_map(JobHome::env)
            .chain(env.iter().cloned())
            .collect();
        let mut host = HostJob::new(
            self.name(),
            self.masker.clone(),
            self.ctx.events.clone(),
            Some((record, ws.to_path_buf())),
            confinement,
        );
        let result = self.host_steps_in(&mut host, ws, &env).await;
        host.finish().await;
        result
    }

    async fn host_steps_in(
        &mut self,
        host: &mut HostJob,
        ws: &Path,
        env: &[(String, String)],
    ) -> Result<(), String> {
        let dir = self.workdir(ws);
        let count = self.job.steps.len();
        let masker = self.masker.clone();
        for (index, step) in self.job.steps.iter().enumerate() {
            let title = masker.mask_text(step.title());
            let _ = self
                .ctx
                .events
                .send(Event::StepStarted {
                    job: self.name().into(),
                    index,
                    count,
                    title,
                })
                .await;
            let started = Instant::now();
            let step_env: Vec<_> = env.iter().chain(&step.env).cloned().collect();
            let exit = host
                .step(&step.run, &dir, &step_env, &self.cancel)
                .await
                .map_err(|e| {
                    format!("cannot start step {} in {}: {e}", index + 1, dir.display())
                })?;
            self.step_finished(index, exit, started.elapsed()).await?;
            if self.cancel.is_cancelled() {
                return Err("canceled".into());
            }
        }
        Ok(())
    }

    /// Records a finished step; an error when it failed.
    async fn step_finished(
        &mut self,
        index: usize,
        exit: Option<i32>,
        duration: Duration,
    ) -> Result<(), String> {
        let _ = self
            .ctx
            .events
            .send(Event::StepFinished {
                job: self.name().into(),
                index,
                exit_code: exit,
                duration,
            })
            .await;
        self.record_step(index, exit, duration)
    }

    fn record_step(
        &mut self,
        index: usize,
        exit: Option<i32>,
        duration: Duration,
    ) -> Result<(), String> {
        let title = self
            .job
            .steps
            .get(index)
            .map(|s| self.masker.mask_text(s.title()))
            .unwrap_or_default();
        self.report.steps.push(StepReport {
            title: title.clone(),
            exit_code: exit,
            duration_ms: crate::millis(duration).unsigned_abs(),
        });
        self.report.exit_code = exit;
        match exit {
            Some(0) => Ok(()),
            Some(code) => Err(format!(
                "step {} ({title}) exited with code {code}",
                index + 1
            )),
            None => Err(format!("step {} ({title}) was killed", index + 1)),
        }
    }

    async fn container_steps(
        &mut self,
        ws: &Path,
        env: Vec<(String, String)>,
        network: Option<&str>,
    ) -> Result<(), String> {
        let engine = self.engine()?;
        let image = self.job.image.as_deref().unwrap_or_default();
        if let Some(owner) = self.image_owner() {
            owner.may_use(&engine, image).await?;
        }
        let labels = self.labels();
        let masker = self.masker.clone();
        let titles: Vec<String> = self
            .job
            .steps
            .iter()
            .map(|s| masker.mask_text(s.title()))
            .collect();
        let spec = ContainerJob {
            job: self.job.name.as_str(),
            image,
            workspace: ws,
            workdir: self.job.workdir.as_deref(),
            env,
            steps: self
                .job
                .steps
                .iter()
                .zip(&titles)
                .map(|(s, t)| (t.as_str(), s.run.as_str(), s.env.clone()))
                .collect(),
            labels: labels.into_iter().collect(),
            network,
        };
        let outcome = container::run(&engine, spec, masker, &self.ctx.events, &self.cancel).await?;
        let ran = outcome.step_exits.len();
        for (index, (duration, exit)) in outcome.step_exits.into_iter().enumerate() {
            self.record_step(index, exit, duration)?;
        }
        if outcome.canceled {
            return Err("canceled".into());
        }
        if ran < self.job.steps.len() {
            return Err(format!(
                "the container stopped after {ran} of {} steps",
                self.job.steps.len()
            ));
        }
        Ok(())
    }

    /// Reads the reports and judges the gate whatever the steps did: a failing
    /// test run (`pytest` exits 1) is when its failed tests matter most. Only a
    /// job canceled by hand is not judged. After a failed step the job keeps
    /// that failure as its reason; the gate is recorded and logged beside it.
    async fn judge_reports(
        &mut self,
        ws: &Path,
        failed_step: Option<&String>,
    ) -> Result<(), String> {
        let job = self.job;
        let Some(reports) = &job.reports else {
            return Ok(());
        };
        if self.cancel.is_cancelled() && !self.timed_out.load(Ordering::SeqCst) {
            return Ok(());
        }
        let failed_step = failed_step.map(|reason| {
            if self.timed_out.load(Ordering::SeqCst) {
                "the job timed out".to_string()
            } else {
                reason.clone()
            }
        });
        let judged = self.judge(reports, ws, failed_step.as_deref()).await;
        match (judged, failed_step) {
            (Err(gate), Some(_)) => {
                note(&self.ctx.events, self.name(), gate).await;
                Ok(())
            }
            (judged, _) => judged,
        }
    }

    /// The files of the run's commit (and the user's edits over it), which
    /// report paths are matched with: listed from the repository the job
    /// was checked out from, never from the workspace's `.git` (the job may
    /// have rewritten its config to run commands as this process).
    async fn repository_files(&self) -> Result<Vec<String>, String> {
        let source = &self.ctx.source;
        let mut files: Vec<String> = source
            .files
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        if let Some(repo) = &source.repository {
            let mirror = slipway_git::Mirror::at(&repo.from);
            let tracked = mirror
                .files_at(&repo.commit)
                .await
                .map_err(|e| format!("quality gate: cannot list the commit's files: {e}"))?;
            files.extend(tracked);
        }
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// The quality gate over the job's reports; its outcome goes into the report
    /// either way. After `failed_step` the gate is failed whatever it measured.
    async fn judge(
        &mut self,
        reports: &slipway_spec::Reports,
        ws: &Path,
        failed_step: Option<&str>,
    ) -> Result<(), String> {
        let files = self.repository_files().await?;
        let new_code = self.ctx.new_code.as_deref().unwrap_or("");
        let outcome = crate::gate::judge(
            self.name(),
            reports,
            ws,
            files,
            crate::gate::Reference {
                new_code,
                base: self.ctx.new_code_base.as_ref(),
                issues: self.ctx.reference_issues.as_deref(),
            },
            &self.ctx.events,
        )
        .await?;
        let mut gate = outcome.to_json();
        if let Some(reason) = failed_step {
            let line = crate::gate::fail_after_failed_step(&mut gate, reason);
            note(&self.ctx.events, self.name(), line).await;
        }
        self.report.gate = Some(gate);
        if outcome.passed && failed_step.is_none() {
            Ok(())
        } else {
            Err(outcome.summary())
        }
    }
}

/// The values to hide: each secret this job can see, and each line of a
/// multi-line one (logs are masked line by line).
fn masker_for(ctx: &RunContext, job: &Job) -> Masker {
    let values = job.secrets.iter().filter_map(|n| ctx.secrets.get(n));
    let lines = values
        .clone()
        .filter(|v| v.contains('\n'))
        .flat_map(|v| v.lines())
        .map(str::trim)
        .filter(|l| l.len() >= 3);
    Masker::new(values.map(String::as_str).chain(lines))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}
