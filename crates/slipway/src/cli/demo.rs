//! `slipway demo`: the whole flow on one machine with nothing else installed.
//! Starts a server on embedded defaults, registers the example service (its
//! sources are in this binary) with a pipeline that tests, builds, releases
//! and deploys it to a `dev` environment on the `local` target, runs it, and
//! prints the URL once `dev` is healthy. No Docker needed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use slipway_server::{Server, ServerConfig};
use tokio_util::sync::CancellationToken;

const PROJECT: &str = "hello-service";

/// The example service, as it is in `examples/hello-service`.
const SOURCES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../../examples/hello-service/Cargo.toml"),
    ),
    (
        "Cargo.lock",
        include_str!("../../../../examples/hello-service/Cargo.lock"),
    ),
    (
        "src/main.rs",
        include_str!("../../../../examples/hello-service/src/main.rs"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../../examples/hello-service/src/lib.rs"),
    ),
    (".gitignore", "/target\n"),
];

/// Host steps only, so it runs where there is no Docker engine.
const PIPELINE: &str = r#"# The demo pipeline: test, build, release, deploy to dev on this machine.
jobs:
  test:
    steps:
      - name: unit tests
        run: cargo test --locked
    cache:
      key: test-{{ hash "Cargo.lock" }}
      paths: [target]
  build:
    needs: [test]
    steps:
      - name: release binary
        run: cargo build --locked --release
    cache:
      key: build-{{ hash "Cargo.lock" }}
      paths: [target]
    artifacts: [target/release/hello-service]
release:
  version: "0.{{ run.number }}"
environments:
  dev:
    branch: main
    target:
      local:
        command: ./target/release/hello-service
    config:
      GREETING: Hello
    health:
      http: /healthz
      timeout: 30s
"#;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the demo keeps its server data and the example's repository.
    #[arg(long, env = "SLIPWAY_DEMO_DIR")]
    data_dir: Option<PathBuf>,
    /// Where the demo server listens.
    #[arg(long, default_value = "127.0.0.1:8420")]
    listen: SocketAddr,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = match args.data_dir {
        Some(d) => d,
        None => default_dir()?,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(demo(dir, args.listen))
}

fn default_dir() -> anyhow::Result<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set; give --data-dir")?;
    Ok(cache.join("slipway").join("demo"))
}

async fn demo(dir: PathBuf, listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let remote = example_repository(&dir)?;
    let mut config = config(&dir, listen);
    config.sandbox = super::server::host_job_sandbox(
        &[config.data_dir.clone()],
        &[],
        false,
        "(not in the demo)",
    )
    .await?;
    let server = Server::build(config).await?;
    let state = server.state().clone();
    let addr = server.local_addr().context("the server has no address")?;
    println!("listening on http://{addr}");
    println!(
        "  CLI: export SLIPWAY_URL=http://{addr} SLIPWAY_TOKEN=$(cat {})",
        dir.join("server/admin.token").display()
    );
    let stop = CancellationToken::new();
    tokio::spawn(super::server::stop_on_signal(stop.clone()));
    let serving = tokio::spawn(server.run(stop.clone()));
    let password = ui_user(&dir, addr).await?;
    println!("  UI: http://{addr}/ui/login  user {UI_USER}  password {password}");

    let store = &state.engine.store;
    let project = match store.project(PROJECT).await? {
        Some(p) => p,
        None => {
            store
                .add_project(PROJECT, &remote.to_string_lossy(), &["main".into()], None)
                .await?
        }
    };
    let run = state
        .engine
        .trigger(
            &project,
            slipway_engine::Target::Branch("main".into()),
            "demo",
        )
        .await?;
    let outcome = follow(&state, &project, &run).await;
    match outcome {
        Ok(url) => {
            println!("dev is live: {url}");
            println!(
                "  `slipway status {PROJECT}` shows the chain from release to commit; Ctrl-C stops the demo"
            );
        }
        Err(e) => {
            eprintln!("slipway demo: {e}");
            stop.cancel();
        }
    }
    serving.await.context("the server task failed")??;
    Ok(ExitCode::SUCCESS)
}

/// Who the demo lets into the web UI.
const UI_USER: &str = "demo";

/// Makes (or, on a later demo, re-makes) the UI user with a fresh password,
/// through the API as an admin would, and returns the password to print.
async fn ui_user(dir: &Path, addr: SocketAddr) -> anyhow::Result<String> {
    let token_file = dir.join("server/admin.token");
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("cannot read the admin token {}", token_file.display()))?;
    let client = super::client::Client::new(&super::client::Connection {
        url: format!("http://{addr}"),
        token: Some(token.trim().to_string()),
    })?;
    let password = new_password()?;
    let user = serde_json::json!({
        "name": UI_USER,
        "password": password,
        "role": "admin",
        "replace": true,
    });
    client
        .post("/users", &user)
        .await
        .context("cannot create the demo's UI user")?;
    Ok(password)
}

/// 20 random hex digits from the kernel: no password is written in this binary.
fn new_password() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 10];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the demo's UI password")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Shows the run and the deployment as they go; the dev URL once it is healthy.
async fn follow(
    state: &slipway_server::AppState,
    project: &slipway_store::Project,
    run: &slipway_store::Run,
) -> anyhow::Result<String> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let store = &state.engine.store;
    let version = loop {
        let now = store.run(run.id).await?;
        let jobs = store.jobs_of(run.id).await?;
        let doing: Vec<String> = jobs
            .iter()
            .map(|j| format!("{} {}", j.name, j.state))
            .collect();
        bar.set_message(format!("run #{} on main: {}", now.number, doing.join(", ")));
        if now.state.is_final() {
            if now.state != slipway_store::State::Succeeded {
                bar.finish_and_clear();
                bail!(
                    "run #{} {}: {}; `slipway logs {PROJECT}/{}` shows why",
                    now.number,
                    now.state,
                    now.reason.unwrap_or_default(),
                    now.number
                );
            }
            break format!("0.{}", now.number);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    loop {
        let envs = state.deployer.status(project).await?;
        if let Some(dev) = envs.iter().find(|e| e.environment == "dev") {
            let live = dev.live.as_ref().map(|l| l.release.as_str());
            bar.set_message(format!(
                "release {version} to dev: {}",
                dev.latest
                    .as_ref()
                    .map_or(dev.health.as_str(), |d| d.deployment.state.as_str())
            ));
            if live == Some(version.as_str()) {
                bar.finish_and_clear();
                return dev.url.clone().context("dev has no URL");
            }
            if let Some(d) = dev
                .latest
                .as_ref()
                .filter(|d| d.deployment.state.is_final() && d.release == version)
            {
                bar.finish_and_clear();
                bail!(
                    "the deployment of {version} to dev {}: {}",
                    d.deployment.state,
                    d.deployment.reason.clone().unwrap_or_default()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A bare repository with the example and the demo pipeline (made once).
fn example_repository(dir: &Path) -> anyhow::Result<PathBuf> {
    let bare = dir.join("hello-service.git");
    if bare.join("HEAD").exists() {
        return Ok(bare);
    }
    let work = dir.join("hello-service");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("src"))?;
    for (path, text) in SOURCES {
        std::fs::write(work.join(path), text)?;
    }
    std::fs::write(work.join(".slipway.yml"), PIPELINE)?;
    let git = |args: &[&str], at: &Path| -> anyhow::Result<()> {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(at)
            .status()
            .context("git is needed for the demo")?
            .success();
        if !ok {
            bail!("git {} failed in {}", args.join(" "), at.display());
        }
        Ok(())
    };
    git(&["init", "-q", "-b", "main"], &work)?;
    git(&["add", "-A"], &work)?;
    git(
        &[
            "-c",
            "user.name=Slipway Demo",
            "-c",
            "user.email=demo@localhost",
            "commit",
            "-qm",
            "The example service",
        ],
        &work,
    )?;
    git(
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap_or("."),
            bare.to_str().unwrap_or("."),
        ],
        dir,
    )?;
    Ok(bare)
}

fn config(dir: &Path, listen: SocketAddr) -> ServerConfig {
    ServerConfig {
        listen,
        data_dir: dir.join("server"),
        database_url: None,
        workers: 2,
        labels: Vec::new(),
        secret_key: std::env::var("SLIPWAY_SECRET_KEY").ok(),
        grace: Duration::from_secs(10),
        reap_every: Duration::from_secs(1),
        lease: Duration::from_secs(30),
        max_running_jobs: None,
        repositories: Vec::new(),
        gc_every: Duration::from_secs(3600),
        registry_host: None,
        deployments: true,
        trusted_proxies: Vec::new(),
        sandbox: None,
    }
}
