//! `slipway server`: options from flags, `SLIPWAY_*` variables or a TOML file
//! (in that order of precedence), then the server until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use slipway_server::{Server, ServerConfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1:8420].
    #[arg(long, env = "SLIPWAY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where the database (SQLite), the key, mirrors, logs and artifacts live [default: ./slipway-data].
    #[arg(long, env = "SLIPWAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// postgres://USER:PASSWORD@HOST/DB to share one database between servers [default: SQLite in the data directory].
    #[arg(long, env = "SLIPWAY_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// In-process workers; 0 leaves all jobs to agents [default: number of cores].
    #[arg(long, env = "SLIPWAY_WORKERS")]
    workers: Option<usize>,
    /// Seconds running steps may go on after SIGTERM before they are canceled [default: 30].
    #[arg(long, env = "SLIPWAY_GRACE_SECONDS")]
    grace_seconds: Option<u64>,
    /// Seconds a job's claim holds without a heartbeat before it is re-queued [default: 30].
    #[arg(long, env = "SLIPWAY_LEASE_SECONDS")]
    lease_seconds: Option<u64>,
    /// At most this many jobs run at once over all workers and agents [default: no limit].
    #[arg(long, env = "SLIPWAY_MAX_RUNNING_JOBS")]
    max_running_jobs: Option<i64>,
    /// HOST:PORT under which the Docker engines of jobs reach this server's registry [default: the listen address].
    #[arg(long, env = "SLIPWAY_REGISTRY_HOST")]
    registry_host: Option<String>,
    /// Do not run environments here: with several servers on one database,
    /// one of them hosts the environments (their proxies and processes).
    #[arg(long, env = "SLIPWAY_NO_DEPLOYMENTS")]
    no_deployments: bool,
    /// A reverse proxy (address or CIDR range, comma-separated or repeated)
    /// whose `X-Forwarded-Proto: https` is believed: session cookies are then
    /// `Secure`. The header from any other peer is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "SLIPWAY_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<slipway_server::forwarded::Cidr>,
    /// Run host steps of in-process workers, and what releases run here
    /// (`local` targets, health commands, smoke tests), unconfined when this
    /// kernel cannot sandbox them (no Landlock ABI 6): any pipeline then has
    /// this server's powers (its keys, tokens and database). Without it such
    /// a server refuses to start with workers or deployments.
    #[arg(long, env = "SLIPWAY_UNSAFE_HOST_JOBS")]
    unsafe_host_jobs: bool,
    /// A directory every host step may write besides its own (a shared
    /// scratch directory), comma-separated; never one holding the data directory.
    #[arg(long, env = "SLIPWAY_JOB_WRITABLE", value_delimiter = ',')]
    job_writable: Vec<PathBuf>,
    /// A TOML file with any of the options above (keys as the flags, with `_`).
    #[arg(long, env = "SLIPWAY_CONFIG")]
    config: Option<PathBuf>,
}

/// The same options, read from the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    workers: Option<usize>,
    grace_seconds: Option<u64>,
    lease_seconds: Option<u64>,
    max_running_jobs: Option<i64>,
    registry_host: Option<String>,
    /// Artifact repositories (`[[repository]]` tables), added or updated at every start.
    #[serde(default)]
    repository: Vec<slipway_registry::RepoSpec>,
    /// Minutes between retention and garbage collection runs [default: 60].
    gc_every_minutes: Option<u64>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => FileConfig::default(),
    };
    let mut config = ServerConfig {
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8420))),
        data_dir: args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("slipway-data")),
        database_url: args.database_url.or(file.database_url),
        workers: args
            .workers
            .or(file.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
        labels: Vec::new(),
        secret_key: std::env::var("SLIPWAY_SECRET_KEY").ok(),
        grace: Duration::from_secs(args.grace_seconds.or(file.grace_seconds).unwrap_or(30)),
        reap_every: Duration::from_secs(1),
        max_running_jobs: args.max_running_jobs.or(file.max_running_jobs),
        lease: Duration::from_secs(
            args.lease_seconds
                .or(file.lease_seconds)
                .unwrap_or(30)
                .max(1),
        ),
        gc_every: Duration::from_secs(60 * file.gc_every_minutes.unwrap_or(60).max(1)),
        repositories: file.repository,
        registry_host: args.registry_host.or(file.registry_host),
        deployments: !args.no_deployments,
        sandbox: None,
        trusted_proxies: trusted_proxies(args.trusted_proxies, &file.trusted_proxies)?,
    };
    super::init_tracing();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    // What a release runs on this host comes from its pipeline file as much
    // as a job's steps do: confined the same way.
    if config.workers > 0 || config.deployments {
        let mut protected = vec![config.data_dir.clone()];
        protected.extend(args.config.clone());
        config.sandbox = runtime.block_on(host_job_sandbox(
            &protected,
            &args.job_writable,
            args.unsafe_host_jobs,
            "--unsafe-host-jobs",
        ))?;
    }
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// The flag's list, or else the file's.
fn trusted_proxies(
    flag: Vec<slipway_server::forwarded::Cidr>,
    file: &[String],
) -> anyhow::Result<Vec<slipway_server::forwarded::Cidr>> {
    if !flag.is_empty() {
        return Ok(flag);
    }
    file.iter()
        .map(|c| {
            c.parse()
                .map_err(|e: String| anyhow::anyhow!("trusted_proxies: {e}"))
        })
        .collect()
}

/// The sandbox host steps run in, keeping them out of `protected` (the data
/// directory first). Where the kernel cannot confine them, an error that says
/// so, unless the admin passed `unsafe_flag`: then `None` and a warning.
pub async fn host_job_sandbox(
    protected: &[PathBuf],
    shared: &[PathBuf],
    unsafe_ok: bool,
    unsafe_flag: &str,
) -> anyhow::Result<Option<slipway_runner::Sandbox>> {
    let absolute = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| p.canonicalize().or_else(|_| std::path::absolute(p)))
            .collect::<std::io::Result<Vec<_>>>()
    };
    // What is protected but not there yet is the data (or work) directory of
    // a first start: made now, so that the rules and the log name its real path.
    for path in protected.iter().filter(|p| !p.exists()) {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    let (paths, shared) = (absolute(protected)?, absolute(shared)?);
    let launcher = std::env::current_exe().context("cannot find this program to sandbox jobs")?;
    match slipway_runner::Sandbox::new(launcher, &paths, &shared).await {
        Ok(sandbox) => {
            tracing::info!("{}", sandbox.describe());
            Ok(Some(sandbox))
        }
        Err(e) if unsafe_ok => {
            tracing::warn!(
                "{e}; host steps run UNCONFINED ({unsafe_flag}): any pipeline has this process's powers"
            );
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!(
            "{e}. Host steps cannot be confined here, and would have this process's powers \
             (its keys, tokens and data). Run on a kernel with Landlock ABI 6, leave host jobs to \
             agents on such hosts (`--workers 0`), or accept the risk with {unsafe_flag}"
        )),
    }
}

fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let server = Server::build(config).await?;
    if let Some(token) = &server.first_admin_token {
        println!("first start: admin token {token}");
        println!(
            "  (shown once; also written to {}, mode 0600)",
            data_dir.join("admin.token").display()
        );
    }
    // Tests and scripts wait for this line: the port is bound.
    let addr = server.local_addr().context("the server has no address")?;
    println!("listening on http://{addr}");
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    server.run(stop).await?;
    Ok(())
}

/// SIGTERM or Ctrl-C: stop taking work, finish what runs (grace period), exit.
pub async fn stop_on_signal(stop: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping: no new work is claimed; running jobs get the grace period");
    stop.cancel();
}
