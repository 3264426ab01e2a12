//! The example service as a project on a real server: its repository, a
//! pipeline that builds it, and reading environments back from `slipway status`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::server::{Remote, ServerProcess, commit_as, git};

pub const TARGET: &str = "target/x86_64-unknown-linux-gnu/release/hello-service";

/// The example service's sources with `pipeline` as its `.slipway.yml`, on
/// `main` in a bare remote, with `work` a clone to commit from.
pub struct ServiceRepo {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl ServiceRepo {
    /// The pipeline first (as `Remote` makes it), then the example's sources.
    pub fn new(root: &Path, pipeline: &str) -> ServiceRepo {
        let Remote { bare, work } = Remote::new(root, pipeline);
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-service");
        std::fs::create_dir_all(work.join("src")).expect("mkdir");
        for file in [
            "Cargo.toml",
            "Cargo.lock",
            "Dockerfile",
            "src/main.rs",
            "src/lib.rs",
        ] {
            std::fs::copy(example.join(file), work.join(file)).expect("copy the example");
        }
        let repo = ServiceRepo { bare, work };
        repo.commit("Maintainer", "maintainer@example.com", "the service");
        git(&repo.work, &["push", "-q", "origin", "main"]);
        repo
    }

    pub fn commit(&self, author: &str, email: &str, message: &str) {
        commit_as(&self.work, (author, email), message, &[]);
    }

    pub fn write(&self, path: &str, content: &str) {
        std::fs::write(self.work.join(path), content).expect("write");
    }
}

/// The cargo target directory every test build of the example shares.
/// Sandboxed jobs write only their own directories: a server running these
/// builds is started with [`SHARED_TARGET_FLAG`] and this path.
pub fn shared_target() -> String {
    let dir = std::env::temp_dir().join("slipway-test-hello-target");
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir.display().to_string()
}

pub const SHARED_TARGET_FLAG: &str = "--job-writable";

/// Builds the static binary once per machine: every test's pipeline shares
/// one cargo target directory, so later builds are incremental no-ops.
pub fn build_job(extra_jobs: &str) -> String {
    let shared = shared_target();
    format!(
        r#"jobs:
  build:
    env:
      CARGO_TARGET_DIR: {shared}
      RUSTFLAGS: -C target-feature=+crt-static
    steps:
      - cargo build --release --locked --target x86_64-unknown-linux-gnu
      - mkdir -p $(dirname {TARGET}) && cp $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/hello-service {TARGET}
    artifacts: [{TARGET}]
{extra_jobs}"#,
        shared = shared
    )
}

pub fn token(server: &ServerProcess, name: &str, role: &str, email: &str) -> String {
    let out = server.cli(&["token", "create", name, "--role", role, "--email", email]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `slipway ARGS` as another token.
pub fn cli_as(server: &ServerProcess, token: &str, args: &[&str]) -> std::process::Output {
    server
        .cli_cmd(args)
        .env("SLIPWAY_TOKEN", token)
        .output()
        .expect("slipway runs")
}

pub fn status(server: &ServerProcess, project: &str) -> serde_json::Value {
    server.json(&["status", project])
}

/// An environment in `slipway status`; null until the first release names it
/// (so a wait can start before the deployer has seen the run).
pub fn environment<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    static NOT_YET: serde_json::Value = serde_json::Value::Null;
    status["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .find(|e| e["environment"] == name)
        .unwrap_or(&NOT_YET)
}

pub fn get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Removes what a test deployed to the Docker engine, even when it fails.
pub struct DockerCleanup(pub &'static str);

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        let filter = format!("label=slipway.project={}", self.0);
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker service ls -q --filter {filter} | xargs -r docker service rm >/dev/null; \
                     docker ps -aq --filter {filter} | xargs -r docker rm -f >/dev/null"
                ),
            ])
            .status();
    }
}

pub fn require_swarm() {
    super::require_docker();
    let out = Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .expect("docker info");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "active",
        "the swarm target needs a swarm: scripts/test runs `docker swarm init --advertise-addr 127.0.0.1`"
    );
}

/// The command succeeded; its stdout.
pub fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The command failed and said `why`.
pub fn refused(out: &std::process::Output, why: &str) {
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains(why),
        "expected a refusal saying `{why}`: {said}"
    );
}

/// Requests in a loop on a URL, each expected to get `expected`.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl Load {
    pub fn start(url: &str, expected: &str) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, url, expected) = (stop.clone(), url.to_string(), expected.to_string());
        let thread = std::thread::spawn(move || {
            let (mut served, mut wrong) = (0, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let out = Command::new("curl")
                    .args(["-s", "--max-time", "5", "-w", " (HTTP %{http_code})", &url])
                    .output()
                    .expect("curl");
                let body = String::from_utf8_lossy(&out.stdout).to_string();
                if body == format!("{expected} (HTTP 200)") {
                    served += 1;
                } else {
                    wrong.push(format!("{body} {}", out.status));
                }
            }
            (served, wrong)
        });
        Load { stop, thread }
    }

    /// Stops; every request got the expected answer, and there were some.
    pub fn finish(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (served, wrong) = self.thread.join().expect("load thread");
        assert!(
            wrong.is_empty(),
            "requests that did not get the expected answer: {wrong:?}"
        );
        assert!(served > 10, "the load ran ({served} requests)");
    }
}
