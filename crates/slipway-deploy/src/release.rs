//! Green runs become releases: version, commit, run, the images it pushed,
//! its artifacts kept apart, and the commits since the release before it.
//! Environments that take the branch then get their deployment.

use slipway_git::Mirror;
use slipway_spec::{Pipeline, Source, TemplateVars};
use slipway_store::{
    NewRelease, Project, Release, ReleaseCommit, ReleaseImage, Run, RunId, StoreError,
};

use crate::{DeployError, Deployer, Result};

/// At most this many commits are listed in a release.
const MAX_COMMITS: usize = 500;

impl Deployer {
    /// Looks at every succeeded run not yet looked at.
    pub(crate) async fn deliver_runs(&self) -> Result<()> {
        for id in self.store().undelivered_runs().await? {
            match self.deliver(id).await {
                Ok(()) => {}
                // A run that cannot make a release is not retried forever: the reason is in the log.
                Err(e @ DeployError::Invalid(_)) => {
                    tracing::warn!("run {id} could not make a release: {e}")
                }
                // Anything else (the database away) is tried again at the next tick.
                Err(e) => {
                    tracing::warn!("run {id}: {e}; trying again");
                    continue;
                }
            }
            self.store().mark_delivered(id).await?;
        }
        Ok(())
    }

    /// Makes the run's release (once) and asks the environments that take
    /// its branch for their deployments (those not asked yet, so a restart
    /// half-way through finishes the job).
    async fn deliver(&self, id: RunId) -> Result<()> {
        let run = self.store().run(id).await?;
        let Some(pipeline) = self.inner.engine.pipeline(id).await? else {
            return Ok(());
        };
        if !pipeline.releases_branch(&run.branch) {
            return Ok(());
        }
        let project = self.store().project_by_id(run.project_id).await?;
        if !self
            .inner
            .engine
            .protects_branch(&project, &run.branch)
            .await
        {
            return self.refuse_release(&project, &run).await;
        }
        let release = match self.store().release_of_run(id).await? {
            Some(made) => made,
            None => self.make_release(&run, &pipeline).await?,
        };
        for (position, env) in pipeline.environments.iter().enumerate() {
            self.store()
                .ensure_environment(
                    run.project_id,
                    &env.name,
                    i64::try_from(position).unwrap_or(0),
                )
                .await?;
        }
        let asked = self.store().deployments_of_release(release.id).await?;
        for declared in &pipeline.environments {
            let (_, env) = self.environment_spec(&release, &declared.name).await?;
            let takes = env.auto && env.source == Source::Branch(run.branch.clone());
            if takes && !asked.iter().any(|d| d.environment == env.name) {
                if self
                    .refuse_going_back(&release, &env.name, "deploy")
                    .await?
                {
                    continue;
                }
                self.request_deployment(
                    &release,
                    &env,
                    "deploy",
                    &crate::decide::requester_of(&run),
                )
                .await?;
            }
        }
        self.wake();
        Ok(())
    }

    /// A run of a branch that is not protected makes no release, whatever
    /// its own pipeline file says: the file comes from the very branch
    /// being judged, so `evil` could otherwise declare an environment that
    /// takes it and deploy itself. The reason goes to the audit log.
    async fn refuse_release(&self, project: &Project, run: &Run) -> Result<()> {
        let protected = self.inner.engine.protected_branches(project).await;
        let why = format!(
            "run {} is of branch `{}`, which is not protected ({protected}): only runs of protected branches \
             become releases, whatever the branch's pipeline file declares; merge the change into a protected \
             branch (an admin sets them with `slipway project add … --branch`)",
            run.number, run.branch
        );
        self.store()
            .audit(
                project.id,
                "slipway",
                "release-refused",
                &format!("run {}", run.number),
                &why,
            )
            .await?;
        Ok(())
    }

    /// Whether an automatic deployment of `release` to `environment` must be
    /// refused because it does not move forward: what runs there is neither
    /// the release's commit nor in its history (the release is older, or on
    /// a line beside it, such as a commit a force-push removed). The reason
    /// goes to the audit log. Only a person moves an environment elsewhere:
    /// `rollback`, or `deploy` of a chosen version.
    pub(crate) async fn refuse_going_back(
        &self,
        release: &Release,
        environment: &str,
        action: &str,
    ) -> Result<bool> {
        let Some(live) = self.live_release(release.project_id, environment).await? else {
            return Ok(false);
        };
        if live.commit == release.commit {
            return Ok(false);
        }
        let mirror = Mirror::at(&self.inner.engine.paths.mirror(release.project_id));
        let forward = mirror
            .is_ancestor(&live.commit, &release.commit)
            .await
            .map_err(|e| DeployError::Invalid(format!("cannot compare commits: {e}")))?;
        if forward {
            return Ok(false);
        }
        let why = format!(
            "release {} ({}) is older than, or beside, release {} ({}) that {environment} runs (its commit is not in \
             the release's history): an automatic {action} only moves forward; `slipway deploy {environment} {}` or `slipway rollback` \
             moves elsewhere, by a person",
            release.version,
            short(&release.commit),
            live.version,
            short(&live.commit),
            release.version
        );
        self.store()
            .audit(
                release.project_id,
                "slipway",
                "auto-deploy-refused",
                &format!("release {} to {environment}", release.version),
                &why,
            )
            .await?;
        Ok(true)
    }

    async fn make_release(&self, run: &Run, pipeline: &Pipeline) -> Result<Release> {
        let version = release_version(run, pipeline)?;
        let images = self.run_images(run.id).await?;
        let mirror = Mirror::at(&self.inner.engine.paths.mirror(run.project_id));
        let commits = self.release_commits(&mirror, run).await?;
        let (author, message) = head_commit(&mirror, run).await?;
        self.keep_artifacts(run.id)?;
        let made = self
            .store()
            .create_release(&NewRelease {
                project: run.project_id,
                version: &version,
                run: run.id,
                commit: &run.commit,
                branch: &run.branch,
                author: &author,
                message: &message,
                images: &images,
                commits: &commits,
            })
            .await;
        let release = match made {
            Ok(release) => release,
            Err(e) => return self.release_not_made(run, e).await,
        };
        self.store()
            .audit(
                run.project_id,
                "slipway",
                "release",
                &format!("release {version}"),
                &format!(
                    "run {} of {} at {}: {} commits, {} images",
                    run.number,
                    run.branch,
                    short(&run.commit),
                    commits.len(),
                    images.len()
                ),
            )
            .await?;
        Ok(release)
    }

    /// The images the run pushed, as the release ships them.
    async fn run_images(&self, run: RunId) -> Result<Vec<ReleaseImage>> {
        Ok(self
            .store()
            .run_images(run)
            .await?
            .into_iter()
            .map(|i| ReleaseImage {
                reference: i.reference,
                digest: i.digest,
            })
            .collect())
    }

    /// The commits the release brings since the branch's previous release.
    async fn release_commits(&self, mirror: &Mirror, run: &Run) -> Result<Vec<ReleaseCommit>> {
        let before = self
            .store()
            .release_before(run.project_id, &run.branch, i64::MAX)
            .await?;
        Ok(mirror
            .log(
                before.as_ref().map(|r| r.commit.as_str()),
                &run.commit,
                MAX_COMMITS,
            )
            .await
            .map_err(|e| DeployError::Invalid(format!("cannot list the release's commits: {e}")))?
            .into_iter()
            .map(|c| ReleaseCommit {
                sha: c.sha,
                author: c.author,
                email: c.email,
                message: c.subject,
                at: c.at.map(|secs| secs * 1000),
                committer: c.committer,
                committer_email: c.committer_email,
            })
            .collect())
    }

    /// When the store refuses the release: the one another server made
    /// first for the same run, or the refusal, audited.
    async fn release_not_made(&self, run: &Run, error: StoreError) -> Result<Release> {
        match error {
            // Another server made it first.
            StoreError::Conflict(_)
                if let Some(r) = self.store().release_of_run(run.id).await? =>
            {
                Ok(r)
            }
            StoreError::Conflict(why) => {
                self.store()
                    .audit(
                        run.project_id,
                        "slipway",
                        "release-refused",
                        &format!("run {}", run.number),
                        &why,
                    )
                    .await?;
                Err(DeployError::Invalid(why))
            }
            e => Err(e.into()),
        }
    }

    /// Copies the run's artifacts (every job's) into the release's own tree,
    /// assembled aside and renamed, so a release tree is always whole.
    fn keep_artifacts(&self, run: RunId) -> Result<()> {
        let target = self
            .inner
            .engine
            .paths
            .data_dir
            .join("releases")
            .join(run.to_string());
        if target.is_dir() {
            return Ok(());
        }
        let parent = target.parent().unwrap_or(&target).to_path_buf();
        std::fs::create_dir_all(&parent)?;
        let staging = parent.join(format!(".{run}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        let artifacts = self.inner.engine.paths.artifacts(run);
        if artifacts.is_dir() {
            for job in std::fs::read_dir(&artifacts)? {
                let job = job?;
                // Laid without following links (one job's artifact may be
                // a link where another's is a directory); a clash is the
                // pipeline's to fix, so it is not retried.
                if job.file_type()?.is_dir() {
                    slipway_runner::copy_tree(&job.path(), &staging).map_err(|e| {
                        DeployError::Invalid(format!(
                            "cannot merge the artifacts of job `{}` into the release: {e}",
                            job.file_name().to_string_lossy()
                        ))
                    })?;
                }
            }
        }
        std::fs::rename(&staging, &target)?;
        Ok(())
    }
}

pub(crate) fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The release's version, from the pipeline's template for this run.
fn release_version(run: &Run, pipeline: &Pipeline) -> Result<String> {
    let vars = TemplateVars {
        run_number: u64::try_from(run.number).unwrap_or_default(),
        commit: run.commit.clone(),
        branch: run.branch.clone(),
        job: String::new(),
    };
    pipeline
        .release
        .version
        .render(&vars, |_| Err::<String, _>(()))
        .map_err(|()| DeployError::Invalid("`release.version` cannot use `hash`".into()))
}

/// The author and subject of the release's own commit.
async fn head_commit(mirror: &Mirror, run: &Run) -> Result<(String, String)> {
    let head = mirror
        .log(None, &run.commit, 1)
        .await
        .map_err(|e| DeployError::Invalid(format!("cannot read commit {}: {e}", run.commit)))?;
    Ok(head
        .first()
        .map(|c| (format!("{} <{}>", c.author, c.email), c.subject.clone()))
        .unwrap_or_default())
}
