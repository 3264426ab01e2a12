//! `slipway run`: a whole pipeline on this machine. Schedules the job graph with
//! a parallelism limit, stops everything on the first failure (fail-fast) or on
//! cancel, and keeps each run under `.slipway/runs/<N>/`: one timestamped log per
//! job and `summary.json`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use slipway_quality::diff::NewCodeBase;
use slipway_spec::{Job, JobName, Pipeline};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::docker::Engine;
use crate::event::{Event, EventSender, JobStatus};
use crate::job::{RunContext, run_job};
use crate::report::JobReport;
use crate::workspace::{ArtifactStore, CacheStore, STATE_DIR, Source};

#[derive(Debug)]
pub struct LocalRun {
    /// The repository (or any directory) the pipeline runs on.
    pub dir: PathBuf,
    pub pipeline: Pipeline,
    /// Run only these jobs and what they need; all jobs when empty.
    pub jobs: Vec<JobName>,
    /// At most this many jobs at once.
    pub parallel: usize,
    pub secrets: BTreeMap<String, String>,
}

/// The record of a run, written to `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run: u64,
    #[serde(skip)]
    pub run_dir: PathBuf,
    pub commit: String,
    pub branch: String,
    pub status: JobStatus,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub jobs: Vec<JobReport>,
}

impl RunSummary {
    /// Jobs that failed and were not allowed to.
    pub fn failed_jobs(&self) -> Vec<&JobReport> {
        self.jobs
            .iter()
            .filter(|j| j.status == JobStatus::Failed && !j.allow_failure)
            .collect()
    }
}

impl LocalRun {
    /// Runs the pipeline; events go to `ui` as they happen.
    pub async fn execute(
        self,
        ui: EventSender,
        cancel: CancellationToken,
    ) -> Result<RunSummary, String> {
        let started = (Instant::now(), SystemTime::now());
        let selected: Vec<Job> = if self.jobs.is_empty() {
            self.pipeline.jobs.clone()
        } else {
            self.pipeline
                .with_needs(&self.jobs)?
                .into_iter()
                .cloned()
                .collect()
        };
        check_secrets(&selected, &self.secrets)?;
        let docker = connect_if_needed(&selected).await?;
        if let Some(docker) = &docker {
            docker.reap_orphans().await;
        }
        // Absolute, so labels and workspaces name the same place from anywhere.
        let dir = self
            .dir
            .canonicalize()
            .map_err(|e| format!("cannot open {}: {e}", self.dir.display()))?;
        let source = Source::discover(&dir)
            .await
            .map_err(|e| format!("cannot list the files of {}: {e}", dir.display()))?;
        let revision = revision(&dir).await;
        let state = dir.join(STATE_DIR);
        ignore_everything_in(&state)
            .map_err(|e| format!("cannot write {}/.gitignore: {e}", state.display()))?;
        let (run, run_dir) = allocate_run(&state.join("runs")).map_err(|e| {
            format!(
                "cannot create a run directory under {}: {e}",
                state.display()
            )
        })?;
        let work_root = std::env::temp_dir().join("slipway-workspaces");
        crate::orphans::reap(&work_root);
        let (events, recorder) = Recorder::start(run_dir.clone(), ui);
        let new_code = if self.pipeline.jobs.iter().any(|j| j.reports.is_some()) {
            local_new_code(&dir).await
        } else {
            None
        };
        let ctx = Arc::new(RunContext {
            project: String::new(),
            run_number: run,
            revision: revision.clone(),
            source,
            artifacts: ArtifactStore {
                root: run_dir.join("artifacts"),
            },
            caches: CacheStore {
                root: state.join("cache"),
            },
            cache_remote: None,
            work_root,
            protected: false,
            pipeline_env: self.pipeline.env.clone(),
            secrets: self.secrets,
            docker,
            sandbox: None,
            registry: None,
            new_code_base: new_code.as_ref().map(|(_, base)| base.clone()),
            new_code: new_code.map(|(diff, _)| diff),
            reference_issues: None,
            events,
        });
        let reports = Scheduler::new(ctx.clone(), selected, self.parallel.max(1), cancel)
            .run()
            .await;
        drop(ctx);
        let _ = recorder.await;
        let summary = RunSummary {
            run,
            run_dir: run_dir.clone(),
            commit: revision.commit,
            branch: revision.branch,
            status: overall(&reports),
            started_at: humantime::format_rfc3339_millis(started.1).to_string(),
            finished_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            duration_ms: u64::try_from(started.0.elapsed().as_millis()).unwrap_or(u64::MAX),
            jobs: reports,
        };
        write_summary(&run_dir, &summary)
            .map_err(|e| format!("cannot write the run summary: {e}"))?;
        Ok(summary)
    }
}

fn overall(reports: &[JobReport]) -> JobStatus {
    let blocking = |s| {
        reports
            .iter()
            .any(|r| r.status == s && !(s == JobStatus::Failed && r.allow_failure))
    };
    if blocking(JobStatus::Failed) {
        JobStatus::Failed
    } else if blocking(JobStatus::Canceled) {
        JobStatus::Canceled
    } else {
        JobStatus::Succeeded
    }
}

fn check_secrets(jobs: &[Job], secrets: &BTreeMap<String, String>) -> Result<(), String> {
    let missing: Vec<String> = jobs
        .iter()
        .flat_map(|j| j.secrets.iter().map(move |s| (j, s)))
        .filter(|(_, s)| !secrets.contains_key(*s))
        .map(|(j, s)| format!("`{s}` (job `{}`)", j.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "missing secrets: {}; give each with --secret NAME=VALUE or in a --secret-file",
        missing.join(", ")
    ))
}

async fn connect_if_needed(jobs: &[Job]) -> Result<Option<Engine>, String> {
    let needing: Vec<&str> = jobs
        .iter()
        .filter(|j| j.needs_docker())
        .map(|j| j.name.as_str())
        .collect();
    if needing.is_empty() {
        return Ok(None);
    }
    Engine::connect()
        .await
        .map(Some)
        .map_err(|e| format!("{e}\njobs that need Docker: {}", needing.join(", ")))
}

/// The run state is the user's clone's neighbour, not part of it: a
/// `.gitignore` of `*` inside it keeps `git add -A` from ever picking it up,
/// without touching the project's own `.gitignore`.
fn ignore_everything_in(state: &Path) -> std::io::Result<()> {
    let ignore = state.join(".gitignore");
    if ignore.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(state)?;
    std::fs::write(ignore, "# Slipway's local run state; never committed.\n*\n")
}

async fn revision(dir: &Path) -> slipway_git::Revision {
    match slipway_git::WorkTree::discover(dir).await {
        Ok(Some(tree)) => tree.revision().await.unwrap_or_default(),
        _ => slipway_git::Revision::default(),
    }
}

/// A local run's new code: the last commit and what is not committed yet
/// (with a single commit, everything: compared with the empty tree), and
/// what it was measured from.
async fn local_new_code(dir: &Path) -> Option<(String, NewCodeBase)> {
    const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    let tree = slipway_git::WorkTree::discover(dir).await.ok()??;
    match tree.resolve("HEAD~1").await {
        Ok(parent) => {
            let diff = tree.diff_since(&parent).await.ok()?;
            let why = "HEAD's first parent: the last commit and what is not committed";
            Some((diff, NewCodeBase::since(parent, why)))
        }
        Err(_) => {
            let diff = tree.diff_since(EMPTY_TREE).await.ok()?;
            let why = "HEAD has no parent: nothing to compare with";
            Some((diff, NewCodeBase::everything(why)))
        }
    }
}

/// The next run number: one more than the highest kept, claimed by creating its directory.
fn allocate_run(runs: &Path) -> std::io::Result<(u64, PathBuf)> {
    std::fs::create_dir_all(runs)?;
    let highest = std::fs::read_dir(runs)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let mut n = highest + 1;
    loop {
        let dir = runs.join(n.to_string());
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((n, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    }
}

fn write_summary(run_dir: &Path, summary: &RunSummary) -> std::io::Result<()> {
    let tmp = run_dir.join("summary.json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    serde_json::to_writer_pretty(&mut file, summary)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(tmp, run_dir.join("summary.json"))
}

/// Walks the job graph: starts what is ready, reacts to what finishes.
struct Scheduler {
    ctx: Arc<RunContext>,
    jobs: Vec<Job>,
    parallel: usize,
    cancel: CancellationToken,
    reports: HashMap<String, JobReport>,
    running: JoinSet<JobReport>,
    tokens: HashMap<String, CancellationToken>,
    /// Why no new job may start (a failure or a cancel), once that happens.
    stopping: Option<String>,
}

impl Scheduler {
    fn new(
        ctx: Arc<RunContext>,
        jobs: Vec<Job>,
        parallel: usize,
        cancel: CancellationToken,
    ) -> Scheduler {
        Scheduler {
            ctx,
            jobs,
            parallel,
            cancel,
            reports: HashMap::new(),
            running: JoinSet::new(),
            tokens: HashMap::new(),
            stopping: None,
        }
    }

    async fn run(mut self) -> Vec<JobReport> {
        loop {
            self.start_ready();
            if self.running.is_empty() {
                break;
            }
            tokio::select! {
                Some(done) = self.running.join_next() => match done {
                    Ok(report) => self.finished(report),
                    Err(e) => self.stop(format!("a job task crashed: {e}")),
                },
                () = self.cancel.cancelled(), if self.stopping.is_none() => self.stop("canceled".into()),
            }
        }
        let mut reports = self.reports;
        self.jobs
            .iter()
            .map(|j| {
                reports.remove(j.name.as_str()).unwrap_or_else(|| {
                    JobReport::not_run(j, JobStatus::Canceled, "not started: the run was stopped")
                })
            })
            .collect()
    }

    fn start_ready(&mut self) {
        for i in 0..self.jobs.len() {
            let job = &self.jobs[i];
            let name = job.name.to_string();
            if self.reports.contains_key(&name) || self.tokens.contains_key(&name) {
                continue;
            }
            if let Some(reason) = self.skip_reason(job) {
                let report = JobReport::not_run(job, JobStatus::Skipped, reason);
                self.reports.insert(name, report);
                continue;
            }
            let ready = job.needs.iter().all(|n| {
                self.reports
                    .get(n.as_str())
                    .is_some_and(JobReport::unblocks_dependents)
            });
            if ready && self.stopping.is_none() && self.tokens.len() < self.parallel {
                let token = self.cancel.child_token();
                self.tokens.insert(name, token.clone());
                let (ctx, job) = (self.ctx.clone(), job.clone());
                self.running
                    .spawn(async move { run_job(&ctx, &job, &token).await });
            }
        }
    }

    fn skip_reason(&self, job: &Job) -> Option<String> {
        let branch = &self.ctx.revision.branch;
        if !job.branches.allows(branch) {
            return Some(format!(
                "branch `{branch}` is excluded by the job's `branches`"
            ));
        }
        job.needs.iter().find_map(|n| {
            let r = self.reports.get(n.as_str())?;
            (!r.unblocks_dependents()).then(|| format!("needs `{n}`, which {}", r.status.as_str()))
        })
    }

    fn finished(&mut self, mut report: JobReport) {
        self.tokens.remove(&report.name);
        if report.status == JobStatus::Canceled
            && let Some(why) = &self.stopping
        {
            report.reason = Some(format!("canceled: {why}"));
        }
        if report.status == JobStatus::Failed && !report.allow_failure && self.stopping.is_none() {
            self.stop(format!("job `{}` failed", report.name));
        }
        self.reports.insert(report.name.clone(), report);
    }

    /// Fail-fast: no new job starts and the running ones are canceled.
    fn stop(&mut self, why: String) {
        self.stopping = Some(why);
        for token in self.tokens.values() {
            token.cancel();
        }
    }
}

/// Writes each job's log file and passes every event on to the UI.
struct Recorder {
    run_dir: PathBuf,
    files: HashMap<String, std::io::BufWriter<std::fs::File>>,
    started: HashMap<String, Instant>,
}

impl Recorder {
    fn start(run_dir: PathBuf, ui: EventSender) -> (EventSender, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Event>(1024);
        let handle = tokio::task::spawn(async move {
            let mut recorder = Recorder {
                run_dir,
                files: HashMap::new(),
                started: HashMap::new(),
            };
            while let Some(event) = rx.recv().await {
                recorder.record(&event);
                let _ = ui.send(event).await;
            }
            for file in recorder.files.values_mut() {
                let _ = file.flush();
            }
        });
        (tx, handle)
    }

    fn record(&mut self, event: &Event) {
        let text = match event {
            Event::JobStarted { attempt, .. } => {
                self.started.insert(event.job().to_string(), Instant::now());
                format!("sys job started (attempt {attempt})")
            }
            Event::StepStarted {
                index,
                count,
                title,
                ..
            } => format!("sys step {}/{count}: {title}", index + 1),
            Event::Line { stream, text, .. } => format!("{} {text}", stream.tag()),
            Event::StepFinished {
                index,
                exit_code,
                duration,
                ..
            } => {
                let code = exit_code.map_or("killed".to_string(), |c| format!("exit code {c}"));
                format!(
                    "sys step {} finished: {code} after {}ms",
                    index + 1,
                    duration.as_millis()
                )
            }
            Event::JobFinished { status, reason, .. } => {
                format!(
                    "sys job {}{}",
                    status.as_str(),
                    reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )
            }
        };
        let Some(file) = self.file(event.job()) else {
            return;
        };
        let now = humantime::format_rfc3339_millis(SystemTime::now());
        let _ = writeln!(file, "{now} {text}");
        if matches!(event, Event::JobFinished { .. }) {
            let _ = file.flush();
        }
    }

    fn file(&mut self, job: &str) -> Option<&mut std::io::BufWriter<std::fs::File>> {
        if !self.files.contains_key(job) {
            let file = std::fs::File::create(self.run_dir.join(format!("{job}.log"))).ok()?;
            self.files
                .insert(job.to_string(), std::io::BufWriter::new(file));
        }
        self.files.get_mut(job)
    }
}
