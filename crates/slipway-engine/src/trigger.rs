//! Creating runs: from a branch head or a commit, through the project's mirror,
//! with the pipeline file read from that very commit.

use globset::{GlobBuilder, GlobSetBuilder};
use slipway_git::Mirror;
use slipway_spec::Pipeline;
use slipway_store::{NewJob, NewRun, Project, Run, RunCause};

use crate::{Engine, EngineError, Result};

/// What to build.
#[derive(Debug, Clone)]
pub enum Target {
    /// The branch's current head (fetched now).
    Branch(String),
    /// An exact commit on a branch (what a webhook or a poll reports).
    Commit { branch: String, commit: String },
}

impl Engine {
    /// Creates a run for the target. An invalid or missing pipeline file gives a
    /// failed run that says why, so the push is never silently ignored.
    pub async fn trigger(&self, project: &Project, target: Target, trigger: &str) -> Result<Run> {
        self.trigger_by(project, target, trigger, RunCause::default())
            .await
    }

    /// [`Engine::trigger`], remembering who caused the run (they do not
    /// approve the deployments of what it ships).
    pub async fn trigger_by(
        &self,
        project: &Project,
        target: Target,
        trigger: &str,
        cause: RunCause,
    ) -> Result<Run> {
        self.trigger_after(project, target, trigger, cause, None)
            .await
    }

    /// [`Engine::trigger_by`] for a push that moved the branch from
    /// `push_before`: without a green run to compare with, the run measures
    /// that push's change.
    async fn trigger_after(
        &self,
        project: &Project,
        target: Target,
        trigger: &str,
        cause: RunCause,
        push_before: Option<String>,
    ) -> Result<Run> {
        let mirror = self.fetched_mirror(project).await?;
        let (branch, commit) = on_branch(&mirror, project, &target).await?;
        let mut new = NewRun {
            commit: commit.clone(),
            branch,
            trigger: trigger.to_string(),
            cause,
            push_before,
            ..NewRun::default()
        };
        let text = match crate::pipeline_file::read(&mirror, &commit).await? {
            Ok(text) => text,
            Err(reason) => {
                return Ok(self
                    .store
                    .create_failed_run(project.id, &new, &reason)
                    .await?);
            }
        };
        new.pipeline = text;
        let run = match slipway_spec::parse(&new.pipeline) {
            Ok(pipeline) => {
                new.jobs = jobs_for(&pipeline, &new.branch);
                let run = self.store.create_run(project.id, &new).await?;
                // A run whose jobs the branch filters all left out is done at once.
                self.store.settle_run(run.id).await?
            }
            Err(diagnostics) => {
                let reason = crate::pipeline_file::invalid(&new.pipeline, &diagnostics);
                // The reason says what is wrong; the refused text is not kept.
                new.pipeline.clear();
                self.store
                    .create_failed_run(project.id, &new, &reason)
                    .await?
            }
        };
        self.wake_workers();
        Ok(run)
    }

    /// The project's mirror, just brought up to date with its remote.
    async fn fetched_mirror(&self, project: &Project) -> Result<Mirror> {
        let mirror = Mirror::at(&self.paths.mirror(project.id));
        let creds = self.git_credentials(project).await?;
        let lock = self.mirror_lock(project.id);
        let _fetching = lock.lock().await;
        mirror
            .update(&project.git_url, creds.as_ref())
            .await
            .map_err(|e| fetch_failed(project, e))?;
        Ok(mirror)
    }

    /// A new run of an earlier run's commit and pipeline. With `failed_only`,
    /// jobs that succeeded are carried over (with their artifacts) and only the
    /// others run again. The commit must still be on its branch at the remote
    /// (as for any trigger): a commit a force-push took off `main` is no
    /// longer `main`'s code, and must not be built, released or deployed as it.
    pub async fn rerun(&self, old: &Run, failed_only: bool, cause: RunCause) -> Result<Run> {
        let store = &self.store;
        let project = store.project_by_id(old.project_id).await?;
        let mirror = self.fetched_mirror(&project).await?;
        let target = Target::Commit {
            branch: old.branch.clone(),
            commit: old.commit.clone(),
        };
        on_branch(&mirror, &project, &target).await?;
        let pipeline_text = store.pipeline_of(old.id).await?;
        let pipeline = slipway_spec::parse(&pipeline_text).map_err(|_| {
            EngineError::Invalid(format!(
                "run {} has no valid pipeline to run again",
                old.number
            ))
        })?;
        let previous = store.jobs_of(old.id).await?;
        let mut jobs = jobs_for(&pipeline, &old.branch);
        if failed_only {
            for job in &mut jobs {
                let passed = previous
                    .iter()
                    .any(|p| p.name == job.name && p.state == slipway_store::State::Succeeded);
                job.kept_from = passed.then_some(old.number);
            }
        }
        let new = NewRun {
            commit: old.commit.clone(),
            branch: old.branch.clone(),
            trigger: format!("rerun of {}", old.number),
            pipeline: pipeline_text,
            jobs,
            // The new caller starts it, the old run's pusher still pushed
            // its commit: neither may approve what it ships.
            cause: RunCause {
                pusher: cause.pusher.or_else(|| old.cause.pusher.clone()),
                ..cause
            },
            // The same change as the old run, measured the same way.
            push_before: store.push_before(old.id).await?,
        };
        let run = store.create_run(old.project_id, &new).await?;
        for job in new.jobs.iter().filter(|j| j.kept_from.is_some()) {
            let from = self.paths.artifacts(old.id).join(&job.name);
            if from.is_dir() {
                let to = self.paths.artifacts(run.id).join(&job.name);
                tokio::task::spawn_blocking(move || copy_dir(&from, &to))
                    .await
                    .map_err(|e| EngineError::Io(std::io::Error::other(e)))??;
            }
        }
        let run = store.settle_run(run.id).await?;
        self.wake_workers();
        Ok(run)
    }

    /// A pushed commit: a run when the branch is one the project builds and
    /// the commit is new to it. A commit the branch's recent runs built, or
    /// one in their history, makes no run: a captured delivery sent again
    /// (under a new delivery id) must not build and ship old code over new.
    /// `before` is where the push moved the branch from, when it said.
    pub async fn on_push(
        &self,
        project: &Project,
        push: Pushed<'_>,
        trigger: &str,
        cause: RunCause,
    ) -> Result<Option<Run>> {
        let Pushed {
            branch,
            commit,
            before,
        } = push;
        if !builds_branch(project, branch) || self.built_already(project, branch, commit).await? {
            return Ok(None);
        }
        let target = Target::Commit {
            branch: branch.to_string(),
            commit: commit.to_string(),
        };
        let before = before.map(str::to_string);
        self.trigger_after(project, target, trigger, cause, before)
            .await
            .map(Some)
    }
}

/// A branch a push moved: to `commit`, from `before` when the push said.
#[derive(Debug, Clone, Copy)]
pub struct Pushed<'a> {
    pub branch: &'a str,
    pub commit: &'a str,
    pub before: Option<&'a str>,
}

/// The branch and the full commit a target names, once the commit is known
/// to be on the branch at the remote (just fetched): a run labelled with a
/// branch only ever builds code that branch holds, so a commit pushed to any
/// other branch cannot become a release of it.
async fn on_branch(
    mirror: &Mirror,
    project: &Project,
    target: &Target,
) -> Result<(String, String)> {
    let (branch, rev) = match target {
        Target::Branch(b) => (b.as_str(), None),
        Target::Commit { branch, commit } => (branch.as_str(), Some(commit.as_str())),
    };
    if branch.is_empty() {
        return Err(EngineError::Invalid(format!(
            "name the branch commit {} is on (`--branch NAME` beside `--commit`): a run builds a branch",
            rev.unwrap_or_default()
        )));
    }
    // Before any git command sees it: a name git would read as an option or
    // a revision expression (`main~1`, `x@{1}`) names no branch. Here rather
    // than at each edge, so reruns of runs stored before the rule refuse too.
    slipway_spec::names::check_branch_name(branch).map_err(EngineError::Invalid)?;
    let tip = mirror.branch_tip(branch).await?.ok_or_else(|| {
        EngineError::Invalid(format!(
            "{} has no branch `{branch}`; push it first, or name one of its branches",
            project.git_url
        ))
    })?;
    let Some(rev) = rev else {
        return Ok((branch.to_string(), tip));
    };
    let commit = mirror.resolve(rev).await.map_err(|_| {
        EngineError::Invalid(format!("`{rev}` is not a commit of {}", project.git_url))
    })?;
    if !mirror.is_ancestor(&commit, &tip).await? {
        return Err(EngineError::Invalid(format!(
            "commit {commit} is not on branch `{branch}` of {} (its tip is {tip}): only what the branch holds \
             is built as `{branch}`; merge the commit into `{branch}` and push, or trigger its own branch",
            project.git_url
        )));
    }
    Ok((branch.to_string(), commit))
}

impl Engine {
    /// Whether `commit` is what one of the branch's recent runs built, or in
    /// its history. Only a commit the mirror knows can be compared: an unknown
    /// one is new (the trigger fetches it).
    async fn built_already(&self, project: &Project, branch: &str, commit: &str) -> Result<bool> {
        /// Runs looked at: a replay of anything older still meets the
        /// deployer, which never moves an environment back by itself.
        const RECENT: i64 = 10;
        let mirror = Mirror::at(&self.paths.mirror(project.id));
        for built in self
            .store
            .recent_commits(project.id, branch, RECENT)
            .await?
        {
            if built == commit || mirror.is_ancestor(commit, &built).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Whether a branch matches the project's patterns (none means every branch).
pub fn builds_branch(project: &Project, branch: &str) -> bool {
    if project.branches.is_empty() {
        return true;
    }
    let mut set = GlobSetBuilder::new();
    for p in &project.branches {
        if let Ok(g) = GlobBuilder::new(p).literal_separator(true).build() {
            set.add(g);
        }
    }
    set.build().is_ok_and(|s| s.is_match(branch))
}

/// The jobs to queue on this branch: those the branch filter allows and whose
/// needs are all there. Jobs that need Docker carry the `docker` label.
fn jobs_for(pipeline: &Pipeline, branch: &str) -> Vec<NewJob> {
    let mut kept: Vec<&slipway_spec::Job> = pipeline
        .jobs
        .iter()
        .filter(|j| j.branches.allows(branch))
        .collect();
    // A job whose need was left out is left out too, and so on down the graph.
    loop {
        let before = kept.len();
        let names: Vec<slipway_spec::JobName> = kept.iter().map(|j| j.name.clone()).collect();
        kept.retain(|j| j.needs.iter().all(|n| names.contains(n)));
        if kept.len() == before {
            break;
        }
    }
    kept.iter()
        .map(|job| NewJob {
            name: job.name.to_string(),
            labels: labels_of(job),
            needs: job.needs.iter().map(ToString::to_string).collect(),
            allow_failure: job.allow_failure,
            kept_from: None,
            matrix: job.matrix.as_ref().map(|m| slipway_store::JobMatrix {
                job: m.job.to_string(),
                title: m.title(),
                values: m.values.iter().cloned().collect(),
            }),
        })
        .collect()
}

/// The job's own labels, plus `docker` when it runs in a container, builds an
/// image or has services.
fn labels_of(job: &slipway_spec::Job) -> Vec<String> {
    let mut labels = job.labels.clone();
    let docker = job.needs_docker();
    if docker && !labels.iter().any(|l| l == "docker") {
        labels.push("docker".into());
    }
    labels
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A failed fetch, with a hint when the remote wanted credentials.
pub(crate) fn fetch_failed(project: &Project, e: slipway_git::GitError) -> EngineError {
    let text = e.to_string();
    let auth = [
        "Authentication failed",
        "terminal prompts disabled",
        "could not read Username",
        "403",
        "401",
    ];
    if auth.iter().any(|a| text.contains(a)) {
        return EngineError::Invalid(format!(
            "cannot fetch {}: the remote wants credentials; set the project secrets GIT_USERNAME and GIT_PASSWORD \
             (a token works as the password): {text}",
            project.git_url
        ));
    }
    EngineError::Git(e)
}
