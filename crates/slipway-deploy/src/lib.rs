//! Deployments: green runs become immutable releases; releases go to the
//! environments the pipeline file names, through decision points (approvals
//! with four-eyes), onto a target (`local` process, `docker` container,
//! `swarm` service) behind a stable URL, verified by health checks and smoke
//! tests, rolled back by themselves when verification fails, promoted from
//! one environment to the next, and traced back to their commit.
//!
//! The [`Deployer`] runs inside the server: a loop turns finished runs into
//! releases and queued deployments into rollouts, one at a time per
//! environment. Everything it decides is in the store first, so a server that
//! stops at any moment resumes (or fails cleanly) what it was doing.

mod decide;
mod delivery;
pub mod docker;
pub mod local;
mod promote;
mod proxy;
mod recover;
mod release;
mod rollout;
pub mod sandbox;
mod status;
pub mod verify;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_engine::Engine;
use slipway_store::{ProjectId, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use decide::{Approver, Request};
pub use delivery::{DEFINITIONS, Delivery};
pub use proxy::{Backend, Proxy, Route};
pub use status::{EnvironmentStatus, ImageTrace};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Engine(#[from] slipway_engine::EngineError),
    /// The request is wrong: says what and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this: says who may.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = DeployError> = std::result::Result<T, E>;

/// `(registry host, username, password)` for pulling one image path.
pub type PullCredentials = (String, String, String);

/// Credentials to pull an image path (`REPOSITORY/IMAGE`) from Slipway's
/// registry. The server makes them.
#[derive(Clone)]
pub struct PullIssuer(pub Arc<dyn Fn(&str) -> PullCredentials + Send + Sync>);

impl std::fmt::Debug for PullIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullIssuer")
    }
}

/// How the deployer is set up.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// Where environment proxies listen (the server's own address).
    pub bind: IpAddr,
    /// The host name environment URLs are given with.
    pub public_host: String,
    pub pulls: PullIssuer,
    /// What confines a release's `local` process, health commands and smoke
    /// tests; `None` only when the admin accepted unconfined host jobs.
    pub sandbox: Option<slipway_runner::Sandbox>,
}

/// Delivery figures are kept per (project id, environment, days).
type FiguresKey = (i64, String, u32);

/// What runs in an environment now.
#[derive(Debug, Clone, Default)]
enum Live {
    #[default]
    Nothing,
    Local(local::LocalInstance),
    Container(docker::ContainerInstance),
    Swarm(String),
}

/// An environment's proxy and what it runs, held in memory by the server.
#[derive(Debug)]
struct Runtime {
    name: String,
    proxy: Proxy,
    live: Mutex<Live>,
    /// Held for a whole rollout: one deployment at a time per environment.
    rollout: Arc<tokio::sync::Mutex<()>>,
    /// Stops its proxy and health monitor (the project went, or the server stops).
    stop: CancellationToken,
}

impl Runtime {
    fn live(&self) -> Live {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_live(&self, live: Live) -> Live {
        std::mem::replace(
            &mut *self.live.lock().unwrap_or_else(|e| e.into_inner()),
            live,
        )
    }

    fn url(&self, host: &str) -> String {
        format!("http://{host}:{}", self.proxy.addr.port())
    }
}

/// The deployment side of the server.
#[derive(Debug, Clone)]
pub struct Deployer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    config: DeployConfig,
    /// Rung when there may be something to do: a run finished, a deployment was asked for.
    wake: Notify,
    runtimes: tokio::sync::Mutex<HashMap<(i64, String), Arc<Runtime>>>,
    docker: tokio::sync::OnceCell<std::result::Result<bollard::Docker, String>>,
    stop: CancellationToken,
    /// Delivery figures by (project, environment, days), with the history
    /// count they were computed at: reused until a job or deployment ends.
    figures: Mutex<HashMap<FiguresKey, (u64, i64, delivery::Delivery)>>,
}

impl Deployer {
    pub fn new(engine: Engine, config: DeployConfig, stop: CancellationToken) -> Deployer {
        Deployer {
            inner: Arc::new(Inner {
                engine,
                config,
                wake: Notify::new(),
                runtimes: tokio::sync::Mutex::default(),
                docker: tokio::sync::OnceCell::new(),
                stop,
                figures: Mutex::default(),
            }),
        }
    }

    fn store(&self) -> &slipway_store::Store {
        &self.inner.engine.store
    }

    /// Looks for work now rather than at the next tick.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Where an environment's files live: release trees, process logs, pid files.
    fn dir(&self, project: ProjectId, environment: &str) -> PathBuf {
        self.inner
            .engine
            .paths
            .data_dir
            .join("deploy")
            .join(project.to_string())
            .join(environment)
    }

    /// The tree a release's `local` target runs in: the run's artifacts, kept.
    fn release_dir(&self, release: &slipway_store::Release) -> PathBuf {
        self.inner
            .engine
            .paths
            .data_dir
            .join("releases")
            .join(release.run_id.to_string())
    }

    /// How a release's own commands run in an environment: confined to its
    /// tree, writing only the environment's `HOME` and `TMPDIR`.
    fn release_sandbox(
        &self,
        project: ProjectId,
        environment: &str,
        release: &slipway_store::Release,
    ) -> sandbox::ReleaseSandbox {
        sandbox::ReleaseSandbox::new(
            self.inner.config.sandbox.clone(),
            self.release_dir(release),
            &self.dir(project, environment),
        )
    }

    async fn docker(&self) -> Result<bollard::Docker> {
        let connected = self.inner.docker.get_or_init(docker::connect).await;
        connected.clone().map_err(DeployError::Invalid)
    }

    /// The environment's runtime, its proxy started on its kept port the first time.
    async fn runtime(
        &self,
        project: &slipway_store::Project,
        environment: &str,
        fixed: Option<u16>,
    ) -> Result<Arc<Runtime>> {
        let mut all = self.inner.runtimes.lock().await;
        if let Some(rt) = all.get(&(project.id.0, environment.to_string())) {
            return Ok(rt.clone());
        }
        let record = self.store().environment(project.id, environment).await?;
        // A port the pipeline names wins over one chosen before.
        let wanted = fixed
            .or(record.port.and_then(|p| u16::try_from(p).ok()))
            .unwrap_or(0);
        let stop = self.inner.stop.child_token();
        let proxy = Proxy::start(SocketAddr::new(self.inner.config.bind, wanted), stop.clone())
            .await
            .map_err(|e| DeployError::Invalid(format!(
                "cannot give environment {environment} its URL on port {wanted}: {e}; choose another with `port:` in the environment"
            )))?;
        let port = self
            .store()
            .claim_environment_port(
                project.id,
                environment,
                i64::from(proxy.addr.port()),
                fixed.is_some(),
            )
            .await?;
        if port != i64::from(proxy.addr.port()) {
            return Err(DeployError::Invalid(format!(
                "environment {environment} keeps port {port}, but its proxy got {}",
                proxy.addr.port()
            )));
        }
        let rt = Arc::new(Runtime {
            name: environment.to_string(),
            proxy,
            stop,
            live: Mutex::default(),
            rollout: Arc::default(),
        });
        all.insert((project.id.0, environment.to_string()), rt.clone());
        tokio::spawn(self.clone().monitor(rt.clone(), project.id));
        Ok(rt)
    }

    /// Stops everything a project runs (before it is removed): its proxies,
    /// processes, containers and services.
    pub async fn forget_project(&self, project: &slipway_store::Project) {
        let gone: Vec<Arc<Runtime>> = {
            let mut all = self.inner.runtimes.lock().await;
            let keys: Vec<_> = all
                .keys()
                .filter(|(p, _)| *p == project.id.0)
                .cloned()
                .collect();
            keys.iter().filter_map(|k| all.remove(k)).collect()
        };
        for rt in gone {
            let _busy = rt.rollout.lock().await;
            rt.stop.cancel();
            let live = rt.set_live(Live::Nothing);
            if let (Live::Swarm(name), Ok(d)) = (&live, self.docker().await) {
                let _ = d.delete_service(name).await;
            }
            self.stop_version(live).await;
        }
        if let Ok(d) = self.docker().await {
            docker::remove_project(&d, &project.name).await;
        }
    }

    /// The background loop: recover, then deliver releases, expire decisions
    /// and start rollouts whenever woken (and every second regardless).
    pub async fn run(self) {
        if let Err(e) = self.recover().await {
            tracing::error!("deployments could not be recovered after the restart: {e}");
        }
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!("deployments: {e}");
            }
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = self.inner.engine.runs_finished.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.inner.stop.cancelled() => break,
            }
        }
        self.shutdown().await;
    }

    async fn tick(&self) -> Result<()> {
        self.deliver_runs().await?;
        self.expire_decisions().await?;
        self.start_queued().await
    }

    /// Stops `local` processes (containers and services keep running for the next start).
    async fn shutdown(&self) {
        let runtimes: Vec<_> = self.inner.runtimes.lock().await.values().cloned().collect();
        for rt in runtimes {
            if let Live::Local(instance) = rt.set_live(Live::Nothing) {
                instance.stop().await;
            }
        }
    }

    /// Keeps an environment's health up to date: a crashed process, a dead
    /// container or failing checks make it unhealthy until they pass again.
    async fn monitor(self, rt: Arc<Runtime>, project: ProjectId) {
        let client = verify::client();
        let mut last: Option<(String, Option<String>)> = None;
        loop {
            // A local process that exits or restarts is looked at at once.
            let changed = async {
                match rt.live() {
                    Live::Local(i) => i.changed.notified().await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = changed => {}
                _ = rt.stop.cancelled() => return,
            }
            // A rollout says for itself how the environment is.
            let Ok(_quiet) = rt.rollout.try_lock() else {
                last = None;
                continue;
            };
            let now = self.health_now(&rt, project, &client).await;
            if last.as_ref() != Some(&now) {
                self.health_changed(project, &rt.name, &now, last.as_ref())
                    .await;
                last = Some(now);
            }
        }
    }

    /// Records a change of health, and in the audit log when it turns (so a
    /// crash that was over in a moment is still on record).
    async fn health_changed(
        &self,
        project: ProjectId,
        environment: &str,
        now: &(String, Option<String>),
        before: Option<&(String, Option<String>)>,
    ) {
        let _ = self
            .store()
            .set_health(project, environment, &now.0, now.1.as_deref())
            .await;
        if before.is_some_and(|b| b.0 != now.0) {
            let detail = now
                .1
                .clone()
                .unwrap_or_else(|| format!("{environment} is {}", now.0));
            let _ = self
                .store()
                .audit(
                    project,
                    "slipway",
                    &now.0,
                    &format!("environment {environment}"),
                    &detail,
                )
                .await;
        }
    }

    async fn health_now(
        &self,
        rt: &Runtime,
        project: ProjectId,
        client: &reqwest::Client,
    ) -> (String, Option<String>) {
        let down = match rt.live() {
            Live::Nothing => return ("none".into(), None),
            Live::Local(i) => i.down(),
            Live::Container(c) => match self.docker().await {
                Ok(d) => docker::down(&d, &c.id).await,
                Err(e) => Some(e.to_string()),
            },
            Live::Swarm(name) => match self.docker().await {
                Ok(d) => match docker::healthy_tasks(&d, &name, None).await {
                    Ok(addrs) if addrs.is_empty() => {
                        Some("no task of the service is running and healthy".into())
                    }
                    Ok(addrs) => {
                        let now: Vec<_> =
                            rt.proxy.route.backends().iter().map(|b| b.addr).collect();
                        if now != addrs {
                            rt.proxy
                                .route
                                .switch(addrs.into_iter().map(Backend::new).collect());
                        }
                        None
                    }
                    Err(e) => Some(e),
                },
                Err(e) => Some(e.to_string()),
            },
        };
        if let Some(why) = down {
            return ("unhealthy".into(), Some(why));
        }
        let Some((check, sandbox)) = self.health_check_of(project, &rt.name).await else {
            return ("healthy".into(), None);
        };
        for b in rt.proxy.route.backends() {
            if let Err(e) = verify::probe(client, b.addr, &check, &sandbox).await {
                return ("unhealthy".into(), Some(e));
            }
        }
        ("healthy".into(), None)
    }

    /// The health check of what an environment runs now, and where its command runs.
    async fn health_check_of(
        &self,
        project: ProjectId,
        environment: &str,
    ) -> Option<(slipway_spec::HealthCheck, sandbox::ReleaseSandbox)> {
        let record = self.store().environment(project, environment).await.ok()?;
        let current = self.store().deployment(record.current?).await.ok()?;
        let release = self.store().release(current.release_id).await.ok()?;
        let pipeline = self.inner.engine.pipeline(release.run_id).await.ok()??;
        let check = pipeline.environment(environment)?.health.check.clone();
        Some((check, self.release_sandbox(project, environment, &release)))
    }
}
