//! Traceability: for each environment, the chain from what serves now back
//! to the commit — release, images, run, commit, author, who deployed it and
//! when, and health; and the same chain from an image digest.

use serde::Serialize;
use slipway_store::{DeployState, Deployment, Project, Release, ReleaseImage};

use crate::decide::Pending;
use crate::{Deployer, Result};

#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentStatus {
    pub environment: String,
    pub url: Option<String>,
    pub health: String,
    pub health_note: Option<String>,
    /// What runs now (absent before the first successful deployment).
    pub live: Option<Live>,
    /// The newest deployment, when it is not the live one (waiting, running or failed).
    pub latest: Option<DeploymentView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Live {
    pub release: String,
    pub release_id: i64,
    pub images: Vec<ReleaseImage>,
    pub run: i64,
    pub run_id: i64,
    pub branch: String,
    pub commit: String,
    pub author: String,
    pub message: String,
    pub deployment: i64,
    pub deployed_at: Option<i64>,
    pub deployed_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentView {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub release: String,
    pub pending: Option<Pending>,
}

/// Where an image digest went: the releases that carry it and their deployments.
#[derive(Debug, Clone, Serialize)]
pub struct ImageTrace {
    pub digest: String,
    pub releases: Vec<TracedRelease>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TracedRelease {
    pub project: String,
    pub release: String,
    pub run: i64,
    pub commit: String,
    pub author: String,
    pub message: String,
    pub environments: Vec<String>,
}

impl Deployer {
    /// Every environment of a project in promotion order.
    pub async fn status(&self, project: &Project) -> Result<Vec<EnvironmentStatus>> {
        let mut out = Vec::new();
        for env in self.store().environments(project.id).await? {
            let live = match env.current {
                Some(id) => Some(self.live_view(id).await?),
                None => None,
            };
            let newest = self
                .store()
                .deployments(project.id, &env.name, 1)
                .await?
                .into_iter()
                .next();
            let latest = match newest.filter(|d| Some(d.id) != env.current) {
                Some(d) => Some(self.view(d).await?),
                None => None,
            };
            out.push(EnvironmentStatus {
                url: env
                    .port
                    .map(|p| format!("http://{}:{p}", self.inner.config.public_host)),
                environment: env.name,
                health: env.health,
                health_note: env.health_note,
                live,
                latest,
            });
        }
        Ok(out)
    }

    async fn live_view(&self, deployment: i64) -> Result<Live> {
        let d = self.store().deployment(deployment).await?;
        let r: Release = self.store().release(d.release_id).await?;
        let run = self.store().run(r.run_id).await?;
        Ok(Live {
            release: r.version,
            release_id: r.id,
            images: r.images,
            run: run.number,
            run_id: run.id.0,
            branch: r.branch,
            commit: r.commit,
            author: r.author,
            message: r.message,
            deployment: d.id,
            deployed_at: d.finished_at,
            deployed_by: d.requested_by,
        })
    }

    /// A deployment with its release's version and, when it waits, who may approve.
    pub async fn view(&self, deployment: Deployment) -> Result<DeploymentView> {
        let release = self.store().release(deployment.release_id).await?;
        let pending = self.pending(&deployment).await?;
        Ok(DeploymentView {
            deployment,
            release: release.version,
            pending,
        })
    }

    /// The releases that carry an image digest, and where each is live.
    pub async fn trace(&self, digest: &str) -> Result<ImageTrace> {
        let mut releases = Vec::new();
        for project in self.store().projects().await? {
            let envs = self.store().environments(project.id).await?;
            for r in self.store().releases(project.id, 10_000).await? {
                if !r.images.iter().any(|i| i.digest == digest) {
                    continue;
                }
                let mut environments = Vec::new();
                for e in &envs {
                    if let Some(id) = e.current {
                        let d = self.store().deployment(id).await?;
                        if d.release_id == r.id && d.state == DeployState::Succeeded {
                            environments.push(e.name.clone());
                        }
                    }
                }
                let run = self.store().run(r.run_id).await?;
                releases.push(TracedRelease {
                    project: project.name.clone(),
                    release: r.version,
                    run: run.number,
                    commit: r.commit,
                    author: r.author,
                    message: r.message,
                    environments,
                });
            }
        }
        Ok(ImageTrace {
            digest: digest.to_string(),
            releases,
        })
    }
}
