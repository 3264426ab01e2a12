//! After a restart: deployments a stopped server left mid-way end with that
//! reason, and every environment runs its current release again behind the
//! same URL (a container still running is adopted; processes a killed server
//! left are stopped first).

use slipway_spec::{Environment, Pipeline, TargetSpec};
use slipway_store::{DeployState, Deployment, Project, Release};

use crate::docker;
use crate::rollout::service_name;
use crate::{Backend, DeployError, Deployer, Live, Result, verify};

impl Deployer {
    /// After a restart: deployments caught mid-way fail with the reason, and
    /// every environment that ran something runs it again behind its URL.
    pub(crate) async fn recover(&self) -> Result<()> {
        for dep in self.store().deployments_in(DeployState::Deploying).await? {
            let record = self
                .store()
                .environment(dep.project_id, &dep.environment)
                .await?;
            let state = if record.current.is_some() {
                DeployState::RolledBack
            } else {
                DeployState::Failed
            };
            self.finish(&dep, state, "Slipway stopped during this deployment; the environment went back to what it ran before").await?;
        }
        for record in self.store().live_environments().await? {
            let Some(current) = record.current else {
                continue;
            };
            if let Err(e) = self
                .bring_back(record.project_id, &record.name, current)
                .await
            {
                tracing::warn!("environment {} could not be brought back: {e}", record.name);
                let _ = self
                    .store()
                    .set_health(
                        record.project_id,
                        &record.name,
                        "unhealthy",
                        Some(&e.to_string()),
                    )
                    .await;
            }
        }
        Ok(())
    }

    async fn bring_back(
        &self,
        project: slipway_store::ProjectId,
        environment: &str,
        current: i64,
    ) -> Result<()> {
        let project = self.store().project_by_id(project).await?;
        let dep = self.store().deployment(current).await?;
        let release = self.store().release(dep.release_id).await?;
        let (pipeline, env) = self.environment_spec(&release, environment).await?;
        let rt = self.runtime(&project, environment, env.port).await?;
        let _busy = rt.rollout.lock().await;
        let live = self
            .run_again(&project, environment, &dep, &release, &pipeline, &env)
            .await?;
        let addrs = self.addresses(&live).await?;
        let sandbox = self.release_sandbox(project.id, environment, &release);
        let checked =
            verify::until_healthy(&addrs, &env.health, &sandbox, || self.down(&live)).await;
        // Slow to come up or not, it is what the environment runs: serve it
        // and let the health monitor say when it is healthy.
        rt.proxy
            .route
            .switch(addrs.into_iter().map(Backend::new).collect());
        rt.set_live(live);
        let (health, note) = match &checked {
            Ok(()) => ("healthy", None),
            Err(why) => ("unhealthy", Some(why.as_str())),
        };
        self.store()
            .set_health(project.id, environment, health, note)
            .await?;
        Ok(())
    }

    /// What the environment ran before the restart, running again: a `local`
    /// process started anew once those a killed server left are stopped, a
    /// container adopted while it still runs (others of the environment
    /// removed), a swarm service as the engine keeps it.
    async fn run_again(
        &self,
        project: &Project,
        environment: &str,
        dep: &Deployment,
        release: &Release,
        pipeline: &Pipeline,
        env: &Environment,
    ) -> Result<Live> {
        match &env.target {
            TargetSpec::Local { .. } => {
                for pid in std::fs::read_dir(self.dir(project.id, environment))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    if pid.path().extension().is_some_and(|e| e == "pid") {
                        crate::local::reap(&pid.path());
                    }
                }
                self.start_again(project, dep, release, pipeline, env, None)
                    .await
            }
            TargetSpec::Docker { port, .. } => {
                let d = self.docker().await?;
                let found = docker::find_container(&d, dep.id, *port).await;
                docker::remove_others(
                    &d,
                    &project.name,
                    environment,
                    found.as_ref().map(|c| c.id.as_str()),
                )
                .await;
                if let Some(c) = found {
                    return Ok(Live::Container(c));
                }
                let repo = if env.production && !release.images.is_empty() {
                    self.release_repo().await
                } else {
                    None
                };
                self.start_again(project, dep, release, pipeline, env, repo.as_deref())
                    .await
            }
            TargetSpec::Swarm { .. } => Ok(Live::Swarm(service_name(project, environment))),
        }
    }

    /// Starts the deployment's version with the configuration it had.
    async fn start_again(
        &self,
        project: &Project,
        dep: &Deployment,
        release: &Release,
        pipeline: &Pipeline,
        env: &Environment,
        repo: Option<&str>,
    ) -> Result<Live> {
        let vars = self
            .config(project, release, pipeline, env)
            .await
            .map_err(|e| DeployError::Invalid(e.reason))?;
        self.start_version(project, dep, release, env, repo, &vars)
            .await
            .map_err(DeployError::Invalid)
    }

    /// Where a live version answers.
    async fn addresses(&self, live: &Live) -> Result<Vec<std::net::SocketAddr>> {
        Ok(match live {
            Live::Local(i) => vec![i.addr],
            Live::Container(c) => vec![c.addr],
            Live::Swarm(name) => docker::healthy_tasks(&self.docker().await?, name, None)
                .await
                .map_err(DeployError::Invalid)?,
            Live::Nothing => Vec::new(),
        })
    }
}
