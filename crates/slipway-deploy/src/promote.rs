//! What follows a healthy deployment, and what production needs first:
//! merging the branch onward on the remote (its pipeline starts), asking the
//! next environment to take the same release, and promoting the release's
//! images into the release repository by digest.

use slipway_spec::Environment;
use slipway_store::{NewPromotion, Project, Release, RepoKind, TagPolicy};

use crate::rollout::{image_name, split_host};
use crate::{DeployError, Deployer, Result};

impl Deployer {
    /// Production deploys from the release repository: the release's images
    /// are promoted there by digest (rows, not bytes), tagged with the version.
    pub(crate) async fn promote_images(
        &self,
        project: &Project,
        release: &Release,
        by: &str,
    ) -> Result<String> {
        let repos = self.store().repositories().await?;
        let target = repos
            .iter()
            .find(|r| r.kind == RepoKind::Oci && r.policy == TagPolicy::Release)
            .ok_or_else(|| {
                DeployError::Invalid(
                    "a production environment needs a release repository: `slipway repo add release --policy release`".into(),
                )
            })?;
        for image in &release.images {
            let (_, path) = split_host(image_name(&image.reference));
            let Some((from_repo, name)) = path.split_once('/') else {
                continue;
            };
            self.store()
                .promote(&NewPromotion {
                    image: name,
                    digest: &image.digest,
                    from_repo,
                    to_repo: &target.name,
                    tag: Some(&release.version),
                    reason: Some(&format!("release {} to production", release.version)),
                    by,
                    immutable_tags: true,
                })
                .await?;
        }
        self.store()
            .audit(
                project.id,
                by,
                "promote-images",
                &format!("release {}", release.version),
                &format!("{} images to {}", release.images.len(), target.name),
            )
            .await?;
        Ok(target.name.clone())
    }

    /// What a healthy deployment sets going: merging its branch onward on the
    /// remote (which starts that branch's pipeline), promoting it onward.
    /// Both are asked for by whoever asked for the deployment (`by`) when
    /// that is a person, so they do not approve what follows from it either.
    pub(crate) async fn after_success(
        &self,
        project: &Project,
        release: &Release,
        env: &Environment,
        by: &str,
    ) {
        let person = match self.store().user(by).await {
            Ok(found) => found.map(|u| u.name),
            Err(_) => None,
        };
        if let Some(merge) = &env.promote.merge {
            let outcome = self
                .merge(
                    project,
                    release,
                    &merge.into,
                    merge.fast_forward_only,
                    person.clone(),
                )
                .await;
            let (action, detail) = match &outcome {
                Ok(head) => (
                    "merge",
                    format!(
                        "{} ({}) into {}: now {}",
                        release.branch,
                        crate::release::short(&release.commit),
                        merge.into,
                        crate::release::short(head)
                    ),
                ),
                Err(e) => (
                    "merge-failed",
                    format!("{} into {}: {e}", release.branch, merge.into),
                ),
            };
            let _ = self
                .store()
                .audit(
                    project.id,
                    "slipway",
                    action,
                    &format!("release {}", release.version),
                    &detail,
                )
                .await;
        }
        if let Some(to) = &env.promote.to
            && let Err(e) = self.promote_to(release, env, to, person.as_deref()).await
        {
            let _ = self
                .store()
                .audit(
                    project.id,
                    "slipway",
                    "promote-failed",
                    &format!("release {}", release.version),
                    &e.to_string(),
                )
                .await;
        }
    }

    /// Asks environment `to` to take the release next, unless that would not
    /// move it forward (refused in the audit log, as an automatic deploy is).
    async fn promote_to(
        &self,
        release: &Release,
        env: &Environment,
        to: &str,
        person: Option<&str>,
    ) -> Result<()> {
        let (_, next) = self.environment_spec(release, to).await?;
        if self.refuse_going_back(release, to, "promotion").await? {
            return Ok(());
        }
        let by = match person {
            Some(person) => person.to_string(),
            None => format!("promotion from {}", env.name),
        };
        self.request_deployment(release, &next, "promote", &by)
            .await?;
        Ok(())
    }

    async fn merge(
        &self,
        project: &Project,
        release: &Release,
        into: &str,
        ff_only: bool,
        person: Option<String>,
    ) -> Result<String> {
        let creds = self.inner.engine.git_credentials(project).await?;
        let head = slipway_git::merge_into(
            &project.git_url,
            creds.as_ref(),
            &release.commit,
            &release.branch,
            into,
            ff_only,
        )
        .await
        .map_err(|e| DeployError::Invalid(e.to_string()))?;
        self.inner
            .engine
            .trigger_by(
                project,
                slipway_engine::Target::Commit {
                    branch: into.to_string(),
                    commit: head.clone(),
                },
                "promotion",
                slipway_store::RunCause {
                    person,
                    pusher: None,
                },
            )
            .await?;
        self.inner.engine.work.notify_waiters();
        Ok(head)
    }

    pub(crate) async fn release_repo(&self) -> Option<String> {
        let repos = self.store().repositories().await.ok()?;
        repos
            .into_iter()
            .find(|r| r.kind == RepoKind::Oci && r.policy == TagPolicy::Release)
            .map(|r| r.name)
    }
}
