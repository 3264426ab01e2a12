//! A rollout: the new version starts beside the old one, passes its health
//! check, takes the traffic, passes the smoke tests; then the old one drains
//! and stops. A failure before the end leaves (or puts) the old one serving.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use slipway_spec::{Environment, Pipeline, TargetSpec};
use slipway_store::{DeployState, Deployment, Project, Release};

use crate::docker::{self, ContainerSpec, Pull};
use crate::local::{LocalInstance, LocalSpec};
use crate::{Backend, Deployer, Live, Result, Runtime, verify};

/// How long requests already on their way get to finish on the old version.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// How a rollout ended.
pub(crate) struct Ending {
    pub(crate) state: DeployState,
    pub(crate) reason: String,
}

impl Deployer {
    /// Starts the oldest queued deployment of every environment not busy.
    pub(crate) async fn start_queued(&self) -> Result<()> {
        for dep in self.store().deployments_in(DeployState::Queued).await? {
            let project = self.store().project_by_id(dep.project_id).await?;
            let release = self.store().release(dep.release_id).await?;
            let Some((pipeline, env, rt)) = self.rollout_target(&dep, &project, &release).await?
            else {
                continue;
            };
            let Ok(busy) = rt.rollout.clone().try_lock_owned() else {
                continue;
            };
            if !self
                .store()
                .set_deploy_state(dep.id, DeployState::Queued, DeployState::Deploying, None)
                .await?
            {
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                let _busy = busy;
                me.deploy(dep.id, project, rt, release, pipeline, env).await;
            });
        }
        Ok(())
    }

    /// The pipeline, environment and runtime a queued deployment goes to;
    /// `None` when they cannot be had, and the deployment has failed.
    async fn rollout_target(
        &self,
        dep: &Deployment,
        project: &Project,
        release: &Release,
    ) -> Result<Option<(Arc<Pipeline>, Environment, Arc<Runtime>)>> {
        let (pipeline, env) = match self.environment_spec(release, &dep.environment).await {
            Ok(found) => found,
            Err(e) => {
                self.finish(dep, DeployState::Failed, &e.to_string())
                    .await?;
                return Ok(None);
            }
        };
        match self.runtime(project, &env.name, env.port).await {
            Ok(rt) => Ok(Some((pipeline, env, rt))),
            Err(e) => {
                self.finish(dep, DeployState::Failed, &e.to_string())
                    .await?;
                Ok(None)
            }
        }
    }

    /// Rolls out a deployment already marked deploying, and records how it
    /// ended: its state, the environment's health, what follows a success.
    async fn deploy(
        &self,
        id: i64,
        project: Project,
        rt: Arc<Runtime>,
        release: Release,
        pipeline: Arc<Pipeline>,
        env: Environment,
    ) {
        let dep = match self.store().deployment(id).await {
            Ok(d) => d,
            Err(e) => return tracing::error!("deployment {id} vanished: {e}"),
        };
        self.store()
            .set_health(
                project.id,
                &env.name,
                "deploying",
                Some(&format!("release {}", release.version)),
            )
            .await
            .ok();
        let ending = self
            .guarded_roll_out(
                project.clone(),
                rt.clone(),
                dep.clone(),
                release.clone(),
                pipeline,
                env.clone(),
            )
            .await;
        let health = match (&ending.state, rt.live()) {
            (_, Live::Nothing) => ("none", None),
            (DeployState::Succeeded, _) => ("healthy", None),
            _ => ("healthy", Some("the previous release kept serving")),
        };
        self.store()
            .set_health(project.id, &env.name, health.0, health.1)
            .await
            .ok();
        if let Err(e) = self.finish(&dep, ending.state, &ending.reason).await {
            tracing::error!("deployment {} could not be recorded: {e}", dep.id);
        }
        if ending.state == DeployState::Succeeded {
            // A decision still pending on an older release would take the environment back.
            let superseded = format!("superseded: release {} went live first", release.version);
            let _ = self
                .store()
                .supersede_pending(project.id, &env.name, release.id, &superseded)
                .await;
            self.after_success(&project, &release, &env, &dep.requested_by)
                .await;
        }
        self.wake();
    }

    /// The rollout in a task of its own: one that panics must not leave the
    /// deployment deploying forever.
    async fn guarded_roll_out(
        &self,
        project: Project,
        rt: Arc<Runtime>,
        dep: Deployment,
        release: Release,
        pipeline: Arc<Pipeline>,
        env: Environment,
    ) -> Ending {
        let version = release.version.clone();
        let rollout = tokio::spawn({
            let (me, rt) = (self.clone(), rt.clone());
            async move {
                me.roll_out(&project, &rt, &dep, &release, &pipeline, &env)
                    .await
            }
        });
        match rollout.await {
            Ok(Ok(())) => Ending {
                state: DeployState::Succeeded,
                reason: format!("release {version} is live and healthy"),
            },
            Ok(Err(ending)) => ending,
            Err(e) => Ending {
                state: match rt.live() {
                    Live::Nothing => DeployState::Failed,
                    _ => DeployState::RolledBack,
                },
                reason: format!("the rollout stopped unexpectedly: {e}"),
            },
        }
    }

    pub(crate) async fn finish(
        &self,
        dep: &Deployment,
        state: DeployState,
        reason: &str,
    ) -> Result<()> {
        let from = self.store().deployment(dep.id).await?.state;
        self.inner
            .engine
            .history
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        // Never over an end someone else recorded.
        if from.is_final()
            || !self
                .store()
                .set_deploy_state(dep.id, from, state, Some(reason))
                .await?
        {
            return Ok(());
        }
        self.store()
            .audit(
                dep.project_id,
                "slipway",
                state.as_str(),
                &format!("deployment {} to {}", dep.id, dep.environment),
                reason,
            )
            .await?;
        Ok(())
    }

    /// The variables the application gets: release defaults, then the
    /// environment's own, then its secrets, then what Slipway says.
    pub(crate) async fn config(
        &self,
        project: &Project,
        release: &Release,
        pipeline: &Pipeline,
        env: &Environment,
    ) -> Result<Vec<(String, String)>, Ending> {
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.extend(pipeline.release.config.iter().cloned());
        vars.extend(env.config.iter().cloned());
        for name in &env.secrets {
            let grant = self
                .inner
                .engine
                .secret_for_environment(project, &env.name, &release.branch, name)
                .await
                .map_err(|e| fail(format!("cannot read secret {name}: {e}")))?;
            let value = match grant {
                slipway_engine::Grant::Value(value) => value,
                slipway_engine::Grant::Withheld(why) => return Err(fail(why)),
                slipway_engine::Grant::Missing => {
                    return Err(fail(format!(
                        "secret {name} is not set; `slipway secret set {} {name}` sets it",
                        project.name
                    )));
                }
            };
            vars.insert(name.clone(), value);
        }
        vars.insert("SLIPWAY_PROJECT".into(), project.name.clone());
        vars.insert("SLIPWAY_ENVIRONMENT".into(), env.name.clone());
        vars.insert("SLIPWAY_RELEASE".into(), release.version.clone());
        vars.insert("SLIPWAY_COMMIT".into(), release.commit.clone());
        let mut out: Vec<_> = vars.into_iter().collect();
        out.sort();
        Ok(out)
    }

    async fn roll_out(
        &self,
        project: &Project,
        rt: &Runtime,
        dep: &Deployment,
        release: &Release,
        pipeline: &Pipeline,
        env: &Environment,
    ) -> Result<(), Ending> {
        let had = !matches!(rt.live(), Live::Nothing);
        let failed = |why: String| Ending {
            state: if had {
                DeployState::RolledBack
            } else {
                DeployState::Failed
            },
            reason: if had {
                format!("{why}; the previous release kept serving")
            } else {
                why
            },
        };
        let vars = self
            .config(project, release, pipeline, env)
            .await
            .map_err(|e| failed(e.reason))?;
        // Production runs images from the release repository (a release
        // without images, such as a `local` one, has nothing to promote).
        let repo = if env.production && !release.images.is_empty() {
            Some(
                self.promote_images(project, release, &dep.requested_by)
                    .await
                    .map_err(|e| failed(e.to_string()))?,
            )
        } else {
            None
        };
        if let TargetSpec::Swarm {
            image,
            port,
            replicas,
        } = &env.target
        {
            return self
                .roll_out_swarm(
                    project,
                    rt,
                    dep,
                    release,
                    env,
                    (image.as_deref(), *port, *replicas),
                    repo.as_deref(),
                    &vars,
                )
                .await
                .map_err(failed);
        }
        let new = self
            .start_version(project, dep, release, env, repo.as_deref(), &vars)
            .await
            .map_err(&failed)?;
        let addr = match &new {
            Live::Local(i) => i.addr,
            Live::Container(c) => c.addr,
            _ => return Err(failed("unexpected target".into())),
        };
        let sandbox = self.release_sandbox(project.id, &env.name, release);
        let checked =
            verify::until_healthy(&[addr], &env.health, &sandbox, || self.down(&new)).await;
        if let Err(why) = checked {
            self.stop_version(new).await;
            return Err(failed(why));
        }
        let old_backends = rt.proxy.route.switch(vec![Backend::new(addr)]);
        let env_url = rt.url(&self.inner.config.public_host);
        if let Err(why) = verify::smoke(&env.smoke, &env_url, &sandbox, &vars).await {
            // Back to the old version before anything else: it never stopped.
            let new_backends = rt.proxy.route.switch(old_backends);
            for b in &new_backends {
                b.drain(DRAIN_LIMIT).await;
            }
            self.stop_version(new).await;
            return Err(failed(why));
        }
        let old = rt.set_live(new);
        for b in &old_backends {
            b.drain(DRAIN_LIMIT).await;
        }
        self.stop_version(old).await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn roll_out_swarm(
        &self,
        project: &Project,
        rt: &Runtime,
        dep: &Deployment,
        release: &Release,
        env: &Environment,
        (image, port, replicas): (Option<&str>, u16, u32),
        repo: Option<&str>,
        vars: &[(String, String)],
    ) -> Result<(), String> {
        let d = self.docker().await.map_err(|e| e.to_string())?;
        let pull = self.pull_for(release, image, repo)?;
        docker::pull(&d, &pull).await?;
        let spec = ContainerSpec {
            name: service_name(project, &env.name),
            image: pull.reference.clone(),
            port,
            env: vars.to_vec(),
            labels: labels(project, &env.name, release, dep),
            health_cmd: Some(swarm_health(&env.health.check, port)),
        };
        let timeout = env.health.timeout + Duration::from_secs(60);
        let had = matches!(rt.live(), Live::Swarm(_));
        let outcome =
            docker::swarm_deploy(&d, &spec, replicas, &pull, &rt.proxy.route, timeout).await;
        let why = match outcome {
            Ok(docker::SwarmOutcome::Updated(addrs)) => {
                rt.proxy
                    .route
                    .switch(addrs.into_iter().map(Backend::new).collect());
                let env_url = rt.url(&self.inner.config.public_host);
                let sandbox = self.release_sandbox(project.id, &env.name, release);
                match verify::smoke(&env.smoke, &env_url, &sandbox, vars).await {
                    Ok(()) => {
                        rt.set_live(Live::Swarm(spec.name));
                        return Ok(());
                    }
                    Err(why) => why,
                }
            }
            Ok(docker::SwarmOutcome::RolledBack(why)) => format!(
                "the engine rolled the service back: {why} (the update waits on the check inside the container: {})",
                spec.health_cmd.as_deref().unwrap_or("none")
            ),
            Err(why) => why,
        };
        self.undo_swarm(&d, rt, &spec.name, had, timeout).await;
        Err(why)
    }

    /// After a failed swarm deployment: the previous spec back (or, when there
    /// was none, no service), and the proxy on whatever serves.
    async fn undo_swarm(
        &self,
        d: &bollard::Docker,
        rt: &Runtime,
        name: &str,
        had: bool,
        timeout: Duration,
    ) {
        if !had {
            let _ = d.delete_service(name).await;
            rt.proxy.route.switch(Vec::new());
            return;
        }
        if let Err(e) = docker::swarm_rollback(d, name, timeout).await {
            tracing::warn!("service {name}: {e}");
        }
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Ok(addrs) = docker::healthy_tasks(d, name, None).await
                && !addrs.is_empty()
            {
                rt.proxy
                    .route
                    .switch(addrs.into_iter().map(Backend::new).collect());
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts a version of the release on a local or docker target.
    pub(crate) async fn start_version(
        &self,
        project: &Project,
        dep: &Deployment,
        release: &Release,
        env: &Environment,
        repo: Option<&str>,
        vars: &[(String, String)],
    ) -> Result<Live, String> {
        match &env.target {
            TargetSpec::Local { command } => {
                let dir = self.dir(project.id, &env.name);
                let instance = LocalInstance::start(LocalSpec {
                    command: command.clone(),
                    sandbox: self.release_sandbox(project.id, &env.name, release),
                    env: vars.to_vec(),
                    log: dir.join(format!("{}.log", dep.id)),
                    pid_file: dir.join(format!("{}.pid", dep.id)),
                })
                .map_err(|e| e.to_string())?;
                Ok(Live::Local(instance))
            }
            TargetSpec::Docker { image, port } => {
                let d = self.docker().await.map_err(|e| e.to_string())?;
                let pull = self.pull_for(release, image.as_deref(), repo)?;
                docker::pull(&d, &pull).await?;
                let spec = ContainerSpec {
                    name: format!("{}-{}", service_name(project, &env.name), dep.id),
                    image: pull.reference,
                    port: *port,
                    env: vars.to_vec(),
                    labels: labels(project, &env.name, release, dep),
                    health_cmd: None,
                };
                Ok(Live::Container(docker::start_container(&d, &spec).await?))
            }
            TargetSpec::Swarm { .. } => Err("a swarm target has no single version to start".into()),
        }
    }

    /// Why a version is not running, if it is not.
    pub(crate) async fn down(&self, live: &Live) -> Option<String> {
        match live {
            Live::Local(i) => i.down(),
            Live::Container(c) => match self.docker().await {
                Ok(d) => docker::down(&d, &c.id).await,
                Err(e) => Some(e.to_string()),
            },
            _ => None,
        }
    }

    pub(crate) async fn stop_version(&self, live: Live) {
        match live {
            Live::Local(i) => i.stop().await,
            Live::Container(c) => {
                if let Ok(d) = self.docker().await {
                    docker::remove_container(&d, &c.id).await;
                }
            }
            Live::Swarm(_) | Live::Nothing => {}
        }
    }

    /// The image of the release a container target runs, with pull credentials:
    /// the one named `image`, or the release's only one.
    fn pull_for(
        &self,
        release: &Release,
        image: Option<&str>,
        repo: Option<&str>,
    ) -> Result<Pull, String> {
        let named = |r: &slipway_store::ReleaseImage| {
            let name = image_name(&r.reference);
            image.is_none_or(|want| {
                name.rsplit('/').next() == Some(want) || name.ends_with(&format!("/{want}"))
            })
        };
        let found: Vec<_> = release.images.iter().filter(|i| named(i)).collect();
        let chosen = match found.as_slice() {
            [] => {
                return Err(format!(
                    "release {} has no image{}: its run pushed none (add `push:` to an `image_build` job)",
                    release.version,
                    image.map(|i| format!(" named {i}")).unwrap_or_default()
                ));
            }
            [one, rest @ ..] if rest.iter().all(|r| r.digest == one.digest) => *one,
            _ => {
                return Err(format!(
                    "release {} has several images; name one with `image:` in the target",
                    release.version
                ));
            }
        };
        let (_, path) = split_host(image_name(&chosen.reference));
        let path = match repo {
            Some(repo) => format!(
                "{repo}/{}",
                path.split_once('/').map_or(path, |(_, rest)| rest)
            ),
            None => path.to_string(),
        };
        let (host, username, password) = (self.inner.config.pulls.0)(&path);
        Ok(Pull {
            reference: format!("{host}/{path}@{}", chosen.digest),
            username,
            password,
        })
    }
}

fn fail(reason: String) -> Ending {
    Ending {
        state: DeployState::Failed,
        reason,
    }
}

/// `HOST/PATH:TAG` or `HOST/PATH@DIGEST` without its tag or digest.
pub(crate) fn image_name(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rfind(':') {
        Some(i) if !without_digest[i..].contains('/') => &without_digest[..i],
        _ => without_digest,
    }
}

pub(crate) fn split_host(name: &str) -> (&str, &str) {
    name.split_once('/').unwrap_or(("", name))
}

/// By project id, not name: names could collide once cleaned for Docker
/// (`shop` + `eu-prod` and `shop-eu` + `prod`), and ids keep it short.
pub(crate) fn service_name(project: &Project, environment: &str) -> String {
    format!("slipway-{}-{environment}", project.id)
}

fn labels(
    project: &Project,
    environment: &str,
    release: &Release,
    dep: &Deployment,
) -> HashMap<String, String> {
    HashMap::from([
        (docker::LABEL_PROJECT.to_string(), project.name.clone()),
        (
            docker::LABEL_ENVIRONMENT.to_string(),
            environment.to_string(),
        ),
        (docker::LABEL_RELEASE.to_string(), release.version.clone()),
        (docker::LABEL_COMMIT.to_string(), release.commit.clone()),
        (docker::LABEL_RUN.to_string(), release.run_id.to_string()),
        (docker::LABEL_DEPLOYMENT.to_string(), dep.id.to_string()),
    ])
}

/// The in-container health check swarm waits on during an update.
fn swarm_health(check: &slipway_spec::HealthCheck, port: u16) -> String {
    match check {
        slipway_spec::HealthCheck::Http(path) => {
            format!("wget -q -O /dev/null http://127.0.0.1:{port}{path}")
        }
        slipway_spec::HealthCheck::Command(cmd) => {
            format!("export SLIPWAY_INSTANCE_URL=http://127.0.0.1:{port}; {cmd}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_lose_tag_and_digest_but_keep_the_port() {
        assert_eq!(
            image_name("127.0.0.1:5000/ci/app:12"),
            "127.0.0.1:5000/ci/app"
        );
        assert_eq!(
            image_name("127.0.0.1:5000/ci/app@sha256:ab"),
            "127.0.0.1:5000/ci/app"
        );
        assert_eq!(image_name("127.0.0.1:5000/ci/app"), "127.0.0.1:5000/ci/app");
        assert_eq!(
            split_host("127.0.0.1:5000/ci/app"),
            ("127.0.0.1:5000", "ci/app")
        );
    }
}
