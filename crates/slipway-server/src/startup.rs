//! Building and running the server: open the store, load the key, make the
//! first admin token, start workers and loops, serve until told to stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use slipway_engine::{Engine, Paths, Worker, WorkerConfig};
use slipway_secrets::{Role, SecretKey, Token, write_private_file};
use slipway_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// Everything `slipway server` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; SQLite in the data directory when absent.
    pub database_url: Option<String>,
    /// In-process workers (0: only remote agents run jobs).
    pub workers: usize,
    /// Labels of the in-process workers (`docker` is added when Docker answers).
    pub labels: Vec<String>,
    pub secret_key: Option<String>,
    /// How long running steps may go on after SIGTERM before they are canceled.
    pub grace: Duration,
    /// How often expired leases are looked for.
    pub reap_every: Duration,
    /// How long a job's claim holds without a heartbeat.
    pub lease: Duration,
    /// At most this many jobs run at once over all workers and agents.
    pub max_running_jobs: Option<i64>,
    /// Artifact repositories from the config file, added or updated at start.
    pub repositories: Vec<slipway_registry::RepoSpec>,
    /// How often retention and garbage collection run on their own.
    pub gc_every: Duration,
    /// `HOST:PORT` under which job engines reach the registry [default: the listen address].
    pub registry_host: Option<String>,
    /// Whether this server hosts environments (makes releases, runs rollouts).
    pub deployments: bool,
    /// Where in-process workers confine host steps, and deployments what a
    /// release runs on this host; `None` runs them unconfined (only when
    /// the admin asked, see `--unsafe-host-jobs`).
    pub sandbox: Option<slipway_runner::Sandbox>,
    /// Reverse proxies whose `X-Forwarded-Proto: https` makes session cookies `Secure`.
    pub trusted_proxies: Vec<crate::forwarded::Cidr>,
}

/// A bound, ready server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    config: ServerConfig,
    /// Printed once, at the first start: the admin token.
    pub first_admin_token: Option<String>,
}

impl Server {
    pub async fn build(mut config: ServerConfig) -> Result<Server> {
        config.data_dir = private_data_dir(&config.data_dir)?;
        let url = config.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", config.data_dir.join("slipway.db").display())
        });
        let store = Store::open(&url)
            .await
            .map_err(|e| format!("cannot open the database {}: {e}", redact(&url)))?;
        let (key, _origin) =
            SecretKey::from_env_or_file(config.secret_key.as_deref(), &config.data_dir)
                .map_err(|e| e.to_string())?;
        let first_admin_token = first_admin_token(&store, &config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let mut engine = Engine::new(store, Paths::new(&config.data_dir));
        engine.lease = config.lease;
        engine.max_running = config.max_running_jobs;
        let key = Arc::new(key);
        let registry_host = config
            .registry_host
            .clone()
            .or_else(|| listener.local_addr().ok().map(loopback_if_unspecified))
            .unwrap_or_default();
        engine.registry = registry_issuer(key.clone(), registry_host.clone());
        engine.secrets = secret_opener(key.clone());
        let registry = slipway_registry::Registry::new(
            engine.store.clone(),
            &config.data_dir.join("registry"),
        );
        add_repositories(&registry, &config.repositories).await?;
        // Metrics recorded from the first request on.
        crate::telemetry::handle();
        let shutdown = CancellationToken::new();
        let deployer = slipway_deploy::Deployer::new(
            engine.clone(),
            deploy_config(
                &listener,
                &registry_host,
                key.clone(),
                config.sandbox.clone(),
            )?,
            shutdown.clone(),
        );
        let state = AppState {
            engine,
            registry,
            key,
            deployer,
            shutdown,
        };
        Ok(Server {
            listener,
            state,
            config,
            first_admin_token,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The address actually bound (the port is chosen when asked for 0).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `stop` is cancelled, then stops claiming work, lets running
    /// jobs finish for the grace period and returns.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let Server {
            listener,
            state,
            config,
            ..
        } = self;
        let workers = start_workers(&state, &config).await;
        tokio::spawn(slipway_engine::run_poller(
            state.engine.clone(),
            state.shutdown.clone(),
        ));
        tokio::spawn(slipway_engine::run_reaper(
            state.engine.clone(),
            config.reap_every,
            state.shutdown.clone(),
        ));
        tokio::spawn(collect_garbage_every(
            state.registry.clone(),
            config.gc_every,
            state.shutdown.clone(),
        ));
        let deployments = config
            .deployments
            .then(|| tokio::spawn(state.deployer.clone().run()));
        let app = crate::api::router(state.clone()).layer(axum::Extension(
            crate::forwarded::TrustedProxies(config.trusted_proxies.clone()),
        ));
        let shutdown = state.shutdown.clone();
        // Stop claiming and end live streams at once: graceful shutdown waits
        // for open connections, and a follower's stream would otherwise hold it.
        tokio::spawn({
            let (stop, shutdown) = (stop.clone(), shutdown.clone());
            async move {
                stop.cancelled().await;
                shutdown.cancel();
            }
        });
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown({
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        let served = serve.await;
        shutdown.cancel();
        for w in workers {
            let _ = w.await;
        }
        // `local` environments stop with the server (containers and services stay).
        if let Some(deployments) = deployments {
            let _ = deployments.await;
        }
        state.engine.store.close().await;
        served.map_err(|e| StartError(format!("server error: {e}")))
    }
}

/// Creates the data directory and makes it private; returns its absolute
/// path (git and workers run in other directories).
fn private_data_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    // Nobody else on the host reads the database, keys, tokens, blobs,
    // mirrors, logs or workspaces: 0600 files and 0700 directories.
    let refused = slipway_secrets::make_private_tree(dir)
        .map_err(|e| format!("cannot make the data directory private: {e}"))?;
    if let Some(first) = refused.first() {
        tracing::warn!(
            "{} entries of the data directory stay readable by others (not ours to change), e.g. {}",
            refused.len(),
            first.display()
        );
    }
    Ok(dir
        .canonicalize()
        .map_err(|e| format!("cannot open {}: {e}", dir.display()))?)
}

/// What a job's engine pushes images with: a token for its own target, or
/// why it may not push there.
fn registry_issuer(key: Arc<SecretKey>, host: String) -> slipway_engine::RegistryIssuer {
    slipway_engine::RegistryIssuer(Some(Arc::new(move |project, target, subject| {
        let (password, refused) = match crate::registry::push_allowed(project, target) {
            Ok(()) => (crate::registry::job_token(&key, subject, target), None),
            Err(reason) => (String::new(), Some(reason)),
        };
        slipway_runner::RegistryAccess {
            host: host.clone(),
            username: "slipway-job".into(),
            password,
            refused,
        }
    })))
}

/// Opens project secrets for jobs and deployments, as [`AppState::open`] does.
fn secret_opener(key: Arc<SecretKey>) -> slipway_engine::SecretOpener {
    slipway_engine::SecretOpener(Arc::new(move |project, name, sealed| {
        crate::open_sealed(&key, project.id, name, sealed).and_then(|v| String::from_utf8(v).ok())
    }))
}

/// Adds or updates the artifact repositories of the config file.
async fn add_repositories(
    registry: &slipway_registry::Registry,
    specs: &[slipway_registry::RepoSpec],
) -> Result<()> {
    for spec in specs {
        let repo = spec
            .check()
            .map_err(|e| format!("repository `{}` in the config file: {e}", spec.name))?;
        registry
            .store
            .put_repository(&repo, true)
            .await
            .map_err(|e| format!("repository `{}` in the config file: {e}", spec.name))?;
    }
    Ok(())
}

/// Environment proxies listen on the server's address; pulls of release
/// images use short pull-only registry tokens.
fn deploy_config(
    listener: &TcpListener,
    registry_host: &str,
    key: Arc<slipway_secrets::SecretKey>,
    sandbox: Option<slipway_runner::Sandbox>,
) -> Result<slipway_deploy::DeployConfig> {
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let public = loopback_if_unspecified(addr);
    let public_host = public
        .rsplit_once(':')
        .map_or(public.as_str(), |(host, _)| host)
        .to_string();
    let host = registry_host.to_string();
    Ok(slipway_deploy::DeployConfig {
        bind: addr.ip(),
        public_host,
        pulls: slipway_deploy::PullIssuer(Arc::new(move |path| {
            (
                host.clone(),
                "slipway-deploy".into(),
                crate::registry::pull_token(&key, "deploy", path),
            )
        })),
        sandbox,
    })
}

/// `0.0.0.0:PORT` is where the server listens, not an address to connect to.
fn loopback_if_unspecified(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Retention and garbage collection on a schedule, with the default grace
/// window (anything touched in the last hour stays).
async fn collect_garbage_every(
    registry: slipway_registry::Registry,
    every: Duration,
    stop: CancellationToken,
) {
    let options = slipway_registry::GcOptions {
        grace: Duration::from_secs(3600),
        dry_run: false,
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match registry.collect_garbage(options).await {
            Ok(r) => tracing::info!(
                "registry gc: {} tags retired, {} blobs ({} bytes) freed",
                r.retired_tags.len(),
                r.blobs_freed,
                r.bytes_freed
            ),
            Err(e) => tracing::warn!("registry gc failed: {e}"),
        }
    }
}

/// At the very first start there is no token at all: make an admin one, write
/// it 0600 to the data directory, and hand it back to be printed once.
async fn first_admin_token(store: &Store, config: &ServerConfig) -> Result<Option<String>> {
    if store.token_count().await.map_err(|e| e.to_string())? > 0 {
        return Ok(None);
    }
    let (plain, hash) = Token::generate();
    store
        .add_token(hash.as_str(), "admin", Role::Admin.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let path = config.data_dir.join("admin.token");
    write_private_file(&path, format!("{plain}\n").as_bytes()).map_err(|e| e.to_string())?;
    Ok(Some(plain))
}

async fn start_workers(
    state: &AppState,
    config: &ServerConfig,
) -> Vec<tokio::task::JoinHandle<()>> {
    // Steps a killed predecessor left running: kill them before starting new ones.
    let reaped = slipway_runner::reap_orphans(&state.engine.paths.work());
    if reaped > 0 {
        tracing::warn!(
            "killed {reaped} process groups left by a previous server that did not stop cleanly"
        );
    }
    if config.workers > 0 {
        tracing::info!("{}", slipway_runner::describe_job_containment());
    }
    let docker = slipway_runner::Engine::connect().await.ok();
    if let Some(docker) = &docker {
        let removed = docker.reap_orphans().await;
        if removed > 0 {
            tracing::warn!(
                "removed {removed} job containers left by a process that did not stop cleanly"
            );
        }
    }
    if config.workers == 0 {
        return Vec::new();
    }
    let mut labels = config.labels.clone();
    if docker.is_some() && !labels.iter().any(|l| l == "docker") {
        labels.push("docker".into());
    }
    let dispatch = Arc::new(state.dispatch());
    let instance = format!("{}-{}", hostname(), std::process::id());
    (0..config.workers)
        .map(|i| {
            let worker = Worker::new(
                dispatch.clone(),
                WorkerConfig {
                    name: format!("local:{instance}:{i}"),
                    labels: labels.clone(),
                    work_root: state.engine.paths.work(),
                    grace: config.grace,
                    docker: docker.clone(),
                    sandbox: config.sandbox.clone(),
                },
            );
            tokio::spawn(worker.run(state.shutdown.clone()))
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

/// Why the server could not start or stopped: a message for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl From<String> for StartError {
    fn from(message: String) -> StartError {
        StartError(message)
    }
}

type Result<T> = std::result::Result<T, StartError>;
