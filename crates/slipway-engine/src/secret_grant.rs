//! Which project secrets a job or a deployment receives. A secret's scope
//! (set by an admin) names the branches whose jobs get it and the
//! environments whose deployments get it. Protected branches are the
//! project's watched branches (`--branch`), which only an admin sets; a
//! project that watches every branch protects only its remote's default
//! branch. A pipeline file cannot widen any of this: it comes from the very
//! branch being judged. A deployment is judged by its release's branch too,
//! so a protected secret never reaches code no protected branch holds.

use slipway_store::{JobScope, Project};

use crate::trigger::builds_branch;
use crate::{Engine, Result};

/// What a job or a deployment asking for a secret gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Value(String),
    /// Set, but not for this branch or environment: why, and how to widen it.
    Withheld(String),
    /// Not set (or it no longer opens with this server's key).
    Missing,
}

impl Engine {
    /// Whether a run on `branch` is on one of the project's protected branches.
    pub async fn protects_branch(&self, project: &Project, branch: &str) -> bool {
        if !project.branches.is_empty() {
            return builds_branch(project, branch);
        }
        self.default_branch(project).await.as_deref() == Some(branch)
    }

    /// The project's protected branches in words, for messages.
    pub async fn protected_branches(&self, project: &Project) -> String {
        if !project.branches.is_empty() {
            return project.branches.join(", ");
        }
        self.default_branch(project)
            .await
            .unwrap_or_else(|| "the default branch".into())
    }

    /// The remote's default branch, as the project's mirror knows it.
    async fn default_branch(&self, project: &Project) -> Option<String> {
        slipway_git::Mirror::at(&self.paths.mirror(project.id))
            .default_branch()
            .await
    }

    /// A secret for a job of a run on `branch`.
    pub async fn secret_for_job(
        &self,
        project: &Project,
        branch: &str,
        name: &str,
    ) -> Result<Grant> {
        let Some((sealed, scope)) = self.store.scoped_secret(project.id, name).await? else {
            return Ok(Grant::Missing);
        };
        let allowed = match scope.jobs {
            JobScope::Any => true,
            JobScope::Protected => self.protects_branch(project, branch).await,
            JobScope::None => false,
        };
        if !allowed {
            return Ok(Grant::Withheld(
                self.job_refusal(project, branch, name, scope.jobs).await,
            ));
        }
        Ok(self.open(project, name, &sealed))
    }

    /// A secret for a deployment to `environment` (and its health and smoke
    /// commands) of a release built on `branch`. Unless the secret is for
    /// any branch, the release must come from a protected branch.
    pub async fn secret_for_environment(
        &self,
        project: &Project,
        environment: &str,
        branch: &str,
        name: &str,
    ) -> Result<Grant> {
        let Some((sealed, scope)) = self.store.scoped_secret(project.id, name).await? else {
            return Ok(Grant::Missing);
        };
        let p = &project.name;
        if !scope.allows_environment(environment) {
            let kept = scope.environments.unwrap_or_default().join(", ");
            return Ok(Grant::Withheld(format!(
                "secret `{name}` of project `{p}` is kept to the environments [{kept}], not `{environment}`; \
                 `slipway secret set {p} {name} --environment {environment}` (with the others) gives it there"
            )));
        }
        if scope.jobs != JobScope::Any && !self.protects_branch(project, branch).await {
            let protected = self.protected_branches(project).await;
            return Ok(Grant::Withheld(format!(
                "secret `{name}` of project `{p}` is kept to code on protected branches ({protected}), and this \
                 release was built on `{branch}`; deploy a release of a protected branch, or widen the secret with \
                 `slipway secret set {p} {name} --any-branch`"
            )));
        }
        Ok(self.open(project, name, &sealed))
    }

    fn open(&self, project: &Project, name: &str, sealed: &[u8]) -> Grant {
        (self.secrets.0)(project, name, sealed).map_or(Grant::Missing, Grant::Value)
    }

    async fn job_refusal(
        &self,
        project: &Project,
        branch: &str,
        name: &str,
        jobs: JobScope,
    ) -> String {
        let p = &project.name;
        if jobs == JobScope::None {
            return format!(
                "secret `{name}` of project `{p}` is kept to deployments: no job receives it; \
                 `slipway secret set {p} {name} --protected-branches` gives it to jobs on protected branches"
            );
        }
        let protected = self.protected_branches(project).await;
        format!(
            "secret `{name}` of project `{p}` is kept to protected branches ({protected}) and `{branch}` is not one, \
             so this job does not get it; merge the change into a protected branch, or widen the secret with \
             `slipway secret set {p} {name} --any-branch`"
        )
    }
}
