//! Running one job, start to end: workspace, caches, steps (host or container),
//! image build, artifacts, retries and the timeout. The local runner and the
//! server both call [`run_job`].

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
    report.duration_ms = millis(started.elapsed());
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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
        let keys = self.restore_caches(workspace.path()).await?;
        let ws = workspace.path().to_path_buf();
        blocking(move || crate::workspace::open_for_job(&ws))
            .await
            .map_err(|e| format!("cannot prepare the workspace: {e}"))?;
        let env = self.env(workspace.path());
        let steps = if self.job.image.is_some() {
            self.container_steps(workspace.path(), env.clone()).await
        } else {
            self.host_steps(workspace.path(), &env).await
        };
        let gate = self
            .judge_reports(workspace.path(), steps.as_ref().err())
            .await;
        steps?;
        gate?;
        if let Some(build) = &self.job.image_build {
            self.build_image(build, workspace.path()).await?;
        }
        self.keep(workspace.path(), &keys).await
    }

    /// A fresh workspace with the sources and the artifacts of the needed jobs.
    async fn prepare(&self) -> Result<Workspace, String> {
        let (root, source, artifacts) = (
            self.ctx.work_root.clone(),
            self.ctx.source.clone(),
            self.ctx.artifacts.clone(),
        );
        let (name, needs) = (self.job.name.to_string(), self.job.needs.clone());
        blocking(move || {
            let ws = Workspace::create(&root, &name, &source)?;
            for need in &needs {
                artifacts.lay(need.as_str(), ws.path())?;
            }
            Ok(ws)
        })
        .await
        .map_err(|e| format!("cannot prepare the workspace: {e}"))
    }

    fn vars(&self) -> TemplateVars {
        TemplateVars {
            run_number: self.ctx.run_number,
            commit: self.ctx.revision.commit.clone(),
            branch: self.ctx.revision.branch.clone(),
            job: self.job.name.to_string(),
        }
    }

    /// Restores each cache; returns the rendered key of each and whether it was a hit.
    async fn restore_caches(&mut self, ws: &Path) -> Result<Vec<(String, bool)>, String> {
        let mut keys = Vec::new();
        for cache in &self.job.caches {
            // As GitHub's hashFiles: globs that match nothing hash to nothing
            // (a project without a lock file yet still gets its cache).
            let mut unmatched = Vec::new();
            let key =
                cache.key.render(&self.vars(), |globs| {
                    match crate::files::hash_matching(ws, globs) {
                        Ok(Some(h)) => Ok(h),
                        Ok(None) => {
                            unmatched.push(format!("{globs:?}"));
                            Ok(String::new())
                        }
                        Err(e) => Err(format!("cache key `{}`: {e}", cache.key)),
                    }
                })?;
            for globs in unmatched {
                note(
                    &self.ctx.events,
                    self.name(),
                    format!(
                        "cache key `{}`: hash {globs} matches no file; it hashes nothing",
                        cache.key
                    ),
                )
                .await;
            }
            let key = CacheStore::sanitize(&key);
            if key.is_empty() {
                return Err(format!(
                    "cache key `{}` renders to an empty name here (an empty branch on a detached commit?); add a fixed prefix",
                    cache.key
                ));
            }
            self.fetch_shared(&key).await;
            let (store, dest, k) = (self.ctx.caches.clone(), ws.to_path_buf(), key.clone());
            let home = self.cache_home(cache).await;
            let hit = blocking(move || {
                if let Some(home) = &home {
                    std::fs::create_dir_all(home)?;
                }
                store.restore(&k, &dest, home.as_deref())
            })
            .await
            .map_err(|e| format!("cannot restore cache `{key}`: {e}"))?;
            let text = if hit { "restored" } else { "no entry yet for" };
            note(
                &self.ctx.events,
                self.name(),
                format!("cache: {text} `{key}`"),
            )
            .await;
            if hit {
                self.report.cache_hits.push(key.clone());
            } else {
                self.report.cache_misses.push(key.clone());
            }
            keys.push((key, hit));
        }
        Ok(keys)
    }

    /// The home whose `~/…` paths `cache` keeps: a sandboxed host job's own
    /// (per project and protection level). Other jobs' HOME is the server
    /// user's or the image's, never the job's to keep, so their `~/…` paths
    /// are skipped, and the log says so.
    async fn cache_home(&self, cache: &slipway_spec::Cache) -> Option<PathBuf> {
        if !cache.paths.iter().any(|p| p.starts_with("~/")) {
            return None;
        }
        if self.ctx.sandbox.is_some() && self.job.image.is_none() {
            return Some(JobHome::home_of(
                &self.ctx.work_root,
                &self.ctx.project,
                self.ctx.protected,
            ));
        }
        note(
            &self.ctx.events,
            self.name(),
            format!(
                "cache `{}`: `~/…` paths skipped: only host jobs confined by a server worker or agent have a home of their own",
                cache.key
            ),
        )
        .await;
        None
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
            duration_ms: millis(duration),
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

    fn engine(&self) -> Result<Engine, String> {
        self.ctx
            .docker
            .clone()
            .ok_or_else(|| format!("job `{}` needs Docker, which is not available", self.name()))
    }

    /// Labels on containers and images, so they can be traced back to the run.
    fn labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            ("slipway.job".to_string(), self.name().to_string()),
            ("slipway.run".to_string(), self.ctx.run_number.to_string()),
            (
                "slipway.commit".to_string(),
                self.ctx.revision.commit.clone(),
            ),
            (
                "slipway.source".to_string(),
                self.ctx.source.root.display().to_string(),
            ),
        ]);
        if !self.ctx.project.is_empty() {
            labels.insert(PROJECT_LABEL.to_string(), self.ctx.project.clone());
            labels.insert(PROTECTED_LABEL.to_string(), self.ctx.protected.to_string());
        }
        labels
    }

    /// Whose images this job may tag and use; `None` for `slipway run` (no
    /// project: the developer's own machine keeps free tags).
    fn image_owner(&self) -> Option<Owner<'_>> {
        (!self.ctx.project.is_empty()).then(|| Owner {
            project: &self.ctx.project,
            protected: self.ctx.protected,
            registry: self.ctx.registry.as_ref().map(|r| r.host.as_str()),
        })
    }

    /// Before a build: every tag is the project's and replaces no other
    /// project's image, and every `FROM` image is one this job may use.
    /// Names to push are held to the registry's push rule instead, which
    /// refuses them with its own message.
    async fn check_image_names(
        &self,
        engine: &Engine,
        build: &slipway_spec::ImageBuild,
        ws: &Path,
        (tags, pushed): (&[String], &[String]),
    ) -> Result<(), String> {
        let Some(owner) = self.image_owner() else {
            return Ok(());
        };
        for tag in tags.iter().filter(|t| !pushed.contains(t)) {
            owner.may_tag(tag)?;
        }
        for tag in tags.iter().chain(pushed) {
            owner.may_overwrite(engine, tag).await?;
        }
        let path = ws.join(&build.context).join(&build.dockerfile);
        let dockerfile = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the Dockerfile {}: {e}", path.display()))?;
        for base in image_owner::base_images(&dockerfile, &build.build_args) {
            owner.may_use(engine, &base).await?;
        }
        Ok(())
    }

    async fn build_image(
        &mut self,
        build: &slipway_spec::ImageBuild,
        ws: &Path,
    ) -> Result<(), String> {
        let engine = self.engine()?;
        let render = |templates: &[slipway_spec::Template]| -> Result<Vec<String>, String> {
            templates
                .iter()
                .map(|t| {
                    t.render(&self.vars(), |_| {
                        Err::<String, String>("hash is not allowed in image tags".into())
                    })
                })
                .collect()
        };
        let pushed = match (&build.push, &self.ctx.registry) {
            (Some(target), Some(access)) => render(&build.push_tags)?
                .iter()
                .map(|t| format!("{}/{target}:{t}", access.host))
                .collect(),
            (Some(target), None) => {
                note(
                    &self.ctx.events,
                    self.name(),
                    format!("not pushing to {target}: only runs on a Slipway server push images"),
                )
                .await;
                Vec::new()
            }
            (None, _) => Vec::new(),
        };
        let mut tags = render(&build.tags)?;
        if tags.is_empty() {
            tags = match &build.push {
                Some(target) if pushed.is_empty() => render(&build.push_tags)?
                    .iter()
                    .map(|t| format!("{target}:{t}"))
                    .collect(),
                _ => pushed.clone(),
            };
        }
        self.check_image_names(&engine, build, ws, (&tags, &pushed))
            .await?;
        let spec = image_build::Build {
            job: self.job.name.as_str(),
            masker: &self.masker,
            context: ws.join(&build.context),
            dockerfile: &build.dockerfile,
            tags: tags.clone(),
            build_args: build.build_args.clone(),
            labels: self.labels().into_iter().collect(),
        };
        image_build::build(&engine, spec, &self.ctx.events, &self.cancel).await?;
        self.report.images = tags.clone();
        self.push_images(&engine, &tags[0], &pushed).await
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

    /// The quality gate over the job's reports; its outcome goes into the report
    /// either way. After `failed_step` the gate is failed whatever it measured.
    async fn judge(
        &mut self,
        reports: &slipway_spec::Reports,
        ws: &Path,
        failed_step: Option<&str>,
    ) -> Result<(), String> {
        let files = self
            .ctx
            .source
            .files
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        let new_code = self.ctx.new_code.as_deref().unwrap_or("");
        let outcome = crate::gate::judge(
            self.name(),
            reports,
            ws,
            files,
            new_code,
            self.ctx.reference_issues.as_deref(),
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

    /// Tags the built image with each pushed name and pushes it.
    async fn push_images(
        &mut self,
        engine: &Engine,
        built: &str,
        names: &[String],
    ) -> Result<(), String> {
        let Some(access) = self.ctx.registry.clone() else {
            return Ok(());
        };
        for name in names {
            if name != built {
                image_build::tag(engine, built, name).await?;
            }
            let digest = crate::push::push(
                engine,
                &access,
                name,
                self.name(),
                &self.ctx.events,
                &self.cancel,
            )
            .await?;
            self.report.pushed.push(crate::PushedImage {
                reference: name.clone(),
                digest,
            });
        }
        Ok(())
    }

    /// After success: save caches that missed, keep artifacts.
    /// Brings a shared entry into the local store when the local one lacks it.
    async fn fetch_shared(&self, key: &str) {
        let Some(remote) = &self.ctx.cache_remote else {
            return;
        };
        let entry = self.ctx.caches.root.join(key);
        if entry.is_dir() {
            return;
        }
        if let Err(e) = remote.fetch(key, &entry).await {
            note(
                &self.ctx.events,
                self.name(),
                format!("cache: cannot fetch `{key}` from the server ({e}); building without it"),
            )
            .await;
        }
    }

    /// Sends a newly saved entry to the shared cache; a failure costs speed only.
    async fn share(&self, key: &str) {
        let Some(remote) = &self.ctx.cache_remote else {
            return;
        };
        if let Err(e) = remote.store(key, &self.ctx.caches.root.join(key)).await {
            note(
                &self.ctx.events,
                self.name(),
                format!("cache: cannot send `{key}` to the server: {e}"),
            )
            .await;
        }
    }

    async fn keep(&mut self, ws: &Path, keys: &[(String, bool)]) -> Result<(), String> {
        for (cache, (key, hit)) in self.job.caches.iter().zip(keys) {
            if *hit {
                continue;
            }
            let (store, src, k, paths) = (
                self.ctx.caches.clone(),
                ws.to_path_buf(),
                key.clone(),
                cache.paths.clone(),
            );
            let home = self.cache_home(cache).await;
            let saved = blocking(move || store.save(&k, &src, home.as_deref(), &paths))
                .await
                .map_err(|e| format!("cannot save cache `{key}`: {e}"))?;
            note(
                &self.ctx.events,
                self.name(),
                format!("cache: saved `{key}` ({} paths)", saved.len()),
            )
            .await;
            self.share(key).await;
        }
        if !self.job.artifacts.is_empty() {
            let (store, src, name, globs) = (
                self.ctx.artifacts.clone(),
                ws.to_path_buf(),
                self.name().to_string(),
                self.job.artifacts.clone(),
            );
            let kept = blocking(move || store.save(&name, &src, &globs))
                .await
                .map_err(|e| format!("cannot keep artifacts: {e}"))?;
            if kept.is_empty() {
                return Err(format!(
                    "artifacts {:?} match no file in the workspace",
                    self.job.artifacts
                ));
            }
            note(
                &self.ctx.events,
                self.name(),
                format!("artifacts: kept {} paths", kept.len()),
            )
            .await;
            self.report.artifacts = kept;
        }
        Ok(())
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
