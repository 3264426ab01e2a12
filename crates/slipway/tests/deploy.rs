//! Deployments end to end on the example service: a commit on `dev` becomes a
//! release live in `dev` (local target), is merged into `main`, whose release
//! goes to `staging` (docker) and, after two approvals that refuse the
//! author, to `prod` (swarm); a release whose health check fails is rolled
//! back by itself while the old version keeps serving; `slipway status` is
//! checked against the database.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::server::{ServerProcess, git};

const TARGET: &str = "target/x86_64-unknown-linux-gnu/release/hello-service";

/// The example service's sources with `pipeline` as its `.slipway.yml`, on
/// `main` in a bare remote, with `work` a clone to commit from.
struct ServiceRepo {
    bare: PathBuf,
    work: PathBuf,
}

impl ServiceRepo {
    fn new(root: &Path, pipeline: &str) -> ServiceRepo {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-service");
        let bare = root.join("remote.git");
        let work = root.join("work");
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
        std::fs::write(work.join(".slipway.yml"), pipeline).expect("pipeline");
        git(
            root,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                bare.to_str().expect("utf8"),
            ],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", bare.to_str().expect("utf8")],
        );
        let repo = ServiceRepo { bare, work };
        repo.commit("Maintainer", "maintainer@example.com", "the service");
        git(&repo.work, &["push", "-q", "origin", "main"]);
        repo
    }

    fn commit(&self, author: &str, email: &str, message: &str) {
        git(&self.work, &["add", "-A"]);
        let name = format!("user.name={author}");
        let mail = format!("user.email={email}");
        git(
            &self.work,
            &["-c", &name, "-c", &mail, "commit", "-qm", message],
        );
    }

    fn write(&self, path: &str, content: &str) {
        std::fs::write(self.work.join(path), content).expect("write");
    }
}

/// Builds the static binary once per machine: every test's pipeline shares
/// one cargo target directory, so later builds are incremental no-ops.
fn build_job(extra_jobs: &str) -> String {
    let shared = std::env::temp_dir().join("slipway-test-hello-target");
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
        shared = shared.display()
    )
}

fn token(server: &ServerProcess, name: &str, role: &str, email: &str) -> String {
    let out = server.cli(&["token", "create", name, "--role", role, "--email", email]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `slipway ARGS` as another token.
fn cli_as(server: &ServerProcess, token: &str, args: &[&str]) -> std::process::Output {
    server
        .cli_cmd(args)
        .env("SLIPWAY_TOKEN", token)
        .output()
        .expect("slipway runs")
}

fn status(server: &ServerProcess, project: &str) -> serde_json::Value {
    server.json(&["status", project])
}

fn environment<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .find(|e| e["environment"] == name)
        .unwrap_or_else(|| panic!("no environment {name} in {status}"))
}

fn get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Removes what a test deployed to the Docker engine, even when it fails.
struct DockerCleanup(&'static str);

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

fn require_swarm() {
    common::require_docker();
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

#[test]
fn a_commit_on_dev_goes_through_every_environment_to_prod() {
    require_swarm();
    const PROJECT: &str = "e2e-hello";
    let _cleanup = DockerCleanup(PROJECT);
    let tmp = tempfile::tempdir().expect("tempdir");
    let image_job = format!(
        r#"  image:
    needs: [build]
    branches: [main]
    image_build:
      context: .
      dockerfile: Dockerfile
      tags: ["{PROJECT}:{{{{ run.number }}}}"]
      push: ci/{PROJECT}
release:
  version: "1.{{{{ run.number }}}}"
environments:
  dev:
    branch: dev
    target: {{ local: {{ command: ./{TARGET} }} }}
    config: {{ GREETING: Hi }}
    health: {{ http: /healthz, timeout: 30s }}
    smoke: ["curl -sf $SLIPWAY_ENV_URL/ | grep -q Hi"]
    promote:
      merge: {{ into: main, mode: ff }}
  staging:
    branch: main
    target: {{ docker: {{ image: {PROJECT}, port: 8080 }} }}
    health: {{ http: /healthz, timeout: 60s }}
    smoke: ["curl -sf $SLIPWAY_ENV_URL/healthz"]
    promote: {{ to: prod }}
  prod:
    from: staging
    production: true
    target: {{ swarm: {{ image: {PROJECT}, port: 8080, replicas: 2 }} }}
    health: {{ http: /healthz, timeout: 90s }}
    approval: {{ required: 2, role: developer }}
"#
    );
    let repo = ServiceRepo::new(tmp.path(), &build_job(&image_job));
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    for (name, policy) in [("ci", "ci"), ("release", "release")] {
        let out = server.cli(&["repo", "add", name, "--policy", policy]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = server.cli(&[
        "project",
        "add",
        PROJECT,
        "--git",
        repo.bare.to_str().expect("utf8"),
        "--branch",
        "dev",
        "--branch",
        "main",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alice = token(&server, "alice", "developer", "alice@example.com");
    let bob = token(&server, "bob", "developer", "bob@example.com");
    let carol = token(&server, "carol", "admin", "carol@example.com");

    // Alice's commit on dev: build, release, deployed to dev by itself.
    git(&repo.work, &["checkout", "-q", "-b", "dev"]);
    repo.write("CHANGELOG", "greet with Hi in dev\n");
    repo.commit("Alice", "alice@example.com", "greet with Hi");
    git(&repo.work, &["push", "-q", "origin", "dev"]);
    let out = server.cli(&["trigger", PROJECT, "--branch", "dev", "--wait"]);
    assert!(
        out.status.success(),
        "the dev run fails: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.wait_until("dev is healthy", Duration::from_secs(60), || {
        environment(&status(&server, PROJECT), "dev")["health"] == "healthy"
    });
    let now = status(&server, PROJECT);
    let dev = environment(&now, "dev");
    let dev_url = dev["url"].as_str().expect("dev url").to_string();
    let dev_version = dev["live"]["release"]
        .as_str()
        .expect("release")
        .to_string();
    assert_eq!(
        get(&dev_url).as_deref(),
        Some(format!("Hi from hello-service {dev_version}\n").as_str())
    );

    // The healthy dev deployment fast-forwarded main, whose run releases to staging (docker).
    server.wait_until("staging is live", Duration::from_secs(240), || {
        !environment(&status(&server, PROJECT), "staging")["live"].is_null()
    });
    let main_head = String::from_utf8_lossy(
        &Command::new("git")
            .args(["rev-parse", "main"])
            .current_dir(&repo.bare)
            .output()
            .expect("git")
            .stdout,
    )
    .trim()
    .to_string();
    let now = status(&server, PROJECT);
    let staging = environment(&now, "staging");
    assert_eq!(
        staging["live"]["commit"],
        main_head.as_str(),
        "staging runs main's head: {staging}"
    );
    assert_eq!(staging["live"]["branch"], "main");
    let version = staging["live"]["release"]
        .as_str()
        .expect("version")
        .to_string();
    let staging_url = staging["url"].as_str().expect("url").to_string();
    assert_eq!(
        get(&staging_url).as_deref(),
        Some(format!("Hello from hello-service {version}\n").as_str())
    );
    let digest = staging["live"]["images"][0]["digest"]
        .as_str()
        .expect("an image digest")
        .to_string();

    // The container leads back to its release, run and commit.
    let labels = Command::new("docker")
        .args([
            "ps",
            "--filter",
            &format!("label=slipway.project={PROJECT}"),
            "--filter",
            "label=slipway.environment=staging",
            "--format",
            "{{json .Labels}}",
        ])
        .output()
        .expect("docker ps");
    let labels = String::from_utf8_lossy(&labels.stdout);
    assert!(
        labels.contains(&format!("slipway.release={version}")),
        "{labels}"
    );
    assert!(
        labels.contains(&format!("slipway.commit={main_head}")),
        "{labels}"
    );
    assert!(
        labels.contains(&format!("slipway.run={}", staging["live"]["run_id"])),
        "{labels}"
    );

    // prod waits for two approvals; Alice wrote a commit of the release and is refused.
    server.wait_until("prod waits for approval", Duration::from_secs(60), || {
        environment(&status(&server, PROJECT), "prod")["latest"]["state"] == "awaiting_approval"
    });
    let now = status(&server, PROJECT);
    let pending = &environment(&now, "prod")["latest"];
    assert_eq!(pending["pending"]["required"], 2);
    assert!(
        pending["pending"]["excluded"]
            .to_string()
            .contains("alice@example.com"),
        "{pending}"
    );
    let id = pending["id"].to_string();
    let refused = cli_as(&server, &alice, &["approve", &id, "-m", "ship it"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("four-eyes") && said.contains("alice"),
        "{said}"
    );
    let out = cli_as(
        &server,
        &bob,
        &["approve", &id, "-m", "checked the staging URL"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = cli_as(&server, &bob, &["approve", &id]);
    assert!(!again.status.success(), "one decision per person");
    assert_eq!(
        environment(&status(&server, PROJECT), "prod")["latest"]["state"],
        "awaiting_approval"
    );
    let out = cli_as(
        &server,
        &carol,
        &["approve", &id, "-m", "release window open"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // prod (swarm) serves the same release, from the release repository.
    server.wait_until("prod is live", Duration::from_secs(180), || {
        let now = status(&server, PROJECT);
        let prod = environment(&now, "prod");
        assert_ne!(prod["latest"]["state"], "failed", "{prod}");
        assert_ne!(prod["latest"]["state"], "rolled_back", "{prod}");
        !prod["live"].is_null()
    });
    let now = status(&server, PROJECT);
    let prod = environment(&now, "prod");
    assert_eq!(prod["live"]["release"], version.as_str());
    let prod_url = prod["url"].as_str().expect("url");
    assert_eq!(
        get(prod_url).as_deref(),
        Some(format!("Hello from hello-service {version}\n").as_str())
    );
    let replicas = Command::new("docker")
        .args([
            "service",
            "ls",
            "--filter",
            "label=slipway.environment=prod",
            "--filter",
            &format!("label=slipway.project={PROJECT}"),
            "--format",
            "{{.Replicas}}",
        ])
        .output()
        .expect("docker service ls");
    assert_eq!(String::from_utf8_lossy(&replicas.stdout).trim(), "2/2");
    let skopeo = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("carol:{carol}"),
            "--format",
            "{{.Digest}}",
        ])
        .arg(format!(
            "docker://{}/release/{PROJECT}:{version}",
            server.url.trim_start_matches("http://")
        ))
        .output()
        .expect("skopeo");
    assert_eq!(
        String::from_utf8_lossy(&skopeo.stdout).trim(),
        digest,
        "{}",
        String::from_utf8_lossy(&skopeo.stderr)
    );

    // The image digest leads back to the release and where it runs.
    let trace = server.json(&["trace", &digest]);
    let traced = &trace["releases"][0];
    assert_eq!(traced["release"], version.as_str());
    assert_eq!(traced["commit"], main_head.as_str());
    assert_eq!(
        traced["environments"],
        serde_json::json!(["staging", "prod"])
    );

    // Every decision is in the audit log.
    let audit = server.json(&["audit", "-p", PROJECT]).to_string();
    for needle in [
        "\"actor\":\"bob\"",
        "\"actor\":\"carol\"",
        "\"action\":\"merge\"",
        "\"action\":\"promote-images\"",
    ] {
        assert!(audit.contains(needle), "{needle} in {audit}");
    }

    check_status_against_database(&server, PROJECT);
}

/// Every field `slipway status` shows comes from the database's records.
fn check_status_against_database(server: &ServerProcess, project: &str) {
    let shown = status(server, project);
    let url = format!("sqlite://{}", server.data_dir.join("slipway.db").display());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = slipway_store::Store::open(&url)
            .await
            .expect("open the database");
        let p = store
            .project(project)
            .await
            .expect("project")
            .expect("exists");
        let envs = store.environments(p.id).await.expect("environments");
        assert_eq!(
            envs.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            shown["environments"]
                .as_array()
                .expect("list")
                .iter()
                .map(|e| e["environment"].as_str().unwrap_or_default())
                .collect::<Vec<_>>()
        );
        for env in envs {
            let view = environment(&shown, &env.name);
            assert_eq!(view["health"], env.health.as_str());
            let current = env.current.expect("every environment runs something");
            let d = store.deployment(current).await.expect("deployment");
            let r = store.release(d.release_id).await.expect("release");
            let run = store.run(r.run_id).await.expect("run");
            let live = &view["live"];
            assert_eq!(live["deployment"], d.id);
            assert_eq!(live["release"], r.version.as_str());
            assert_eq!(live["commit"], r.commit.as_str());
            assert_eq!(live["commit"], run.commit.as_str());
            assert_eq!(live["run"], run.number);
            assert_eq!(live["author"], r.author.as_str());
            assert_eq!(live["message"], r.message.as_str());
            assert_eq!(live["deployed_by"], d.requested_by.as_str());
            assert_eq!(live["deployed_at"], serde_json::json!(d.finished_at));
            assert_eq!(live["images"], serde_json::json!(r.images));
            assert_eq!(d.state, slipway_store::DeployState::Succeeded);
        }
    });
}

#[test]
fn a_release_failing_its_health_check_rolls_back_while_the_old_one_serves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = |health: &str| {
        build_job(&format!(
            r#"environments:
  dev:
    branch: main
    target: {{ local: {{ command: ./{TARGET} }} }}
    health: {{ http: {health}, timeout: 3s }}
"#
        ))
    };
    let repo = ServiceRepo::new(tmp.path(), &pipeline("/healthz"));
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    let out = server.cli(&[
        "project",
        "add",
        "rollback",
        "--git",
        repo.bare.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&["trigger", "rollback", "--branch", "main", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.wait_until("dev is healthy", Duration::from_secs(60), || {
        environment(&status(&server, "rollback"), "dev")["health"] == "healthy"
    });
    let url = environment(&status(&server, "rollback"), "dev")["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(get(&url).as_deref(), Some("Hello from hello-service 1\n"));

    // Load on the URL for the whole second deployment: every answer must be release 1.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, wrong) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let load = {
        let (stop, served, wrong, url) = (stop.clone(), served.clone(), wrong.clone(), url.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match get(&url) {
                    Some(body) if body == "Hello from hello-service 1\n" => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    other => wrong.lock().expect("lock").push(format!("{other:?}")),
                }
            }
        })
    };
    repo.write(".slipway.yml", &pipeline("/not-there"));
    repo.commit(
        "Bob",
        "bob@example.com",
        "a release whose health check fails",
    );
    git(&repo.work, &["push", "-q", "origin", "main"]);
    let out = server.cli(&["trigger", "rollback", "--branch", "main", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.wait_until("release 2 is rolled back", Duration::from_secs(60), || {
        environment(&status(&server, "rollback"), "dev")["latest"]["state"] == "rolled_back"
    });
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    let wrong = wrong.lock().expect("lock");
    assert!(
        wrong.is_empty(),
        "requests that did not get release 1: {wrong:?}"
    );
    assert!(served.load(Ordering::Relaxed) > 10, "the load ran");
    let now = status(&server, "rollback");
    let dev = environment(&now, "dev");
    assert_eq!(dev["live"]["release"], "1");
    assert_eq!(dev["latest"]["release"], "2");
    let reason = dev["latest"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("health check")
            && reason.contains("/not-there")
            && reason.contains("previous release kept serving"),
        "{reason}"
    );
    assert_eq!(get(&url).as_deref(), Some("Hello from hello-service 1\n"));

    // One-click rollback with nothing to go back to says so; a redeploy of release 1 is a no-op in effect.
    let out = server.cli(&["rollback", "-p", "rollback", "dev"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no other release"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn decision_points_take_the_right_people_expire_and_crashed_versions_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = format!("{{ local: {{ command: ./{TARGET} }} }}");
    let pipeline = build_job(&format!(
        r#"environments:
  dev:
    branch: main
    target: {local}
    health: {{ http: /healthz }}
  prod:
    from: dev
    target: {local}
    health: {{ http: /healthz }}
    approval: {{ group: release-managers }}
  qa:
    from: dev
    target: {local}
    approval: {{ expires: 1s }}
"#
    ));
    let repo = ServiceRepo::new(tmp.path(), &pipeline);
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(&data, &[]);
    let out = server.cli(&[
        "project",
        "add",
        "gates",
        "--git",
        repo.bare.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bob = token(&server, "bob", "developer", "bob@example.com");
    let out = server.cli(&[
        "token",
        "create",
        "dave",
        "--role",
        "viewer",
        "--email",
        "dave@example.com",
        "--group",
        "release-managers",
    ]);
    let dave = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = server.cli(&["trigger", "gates", "--branch", "main", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.wait_until("dev is healthy", Duration::from_secs(60), || {
        environment(&status(&server, "gates"), "dev")["health"] == "healthy"
    });

    // prod: only the group decides; a rejection needs a reason.
    let promote = |server: &ServerProcess| {
        let out = server.cli(&[
            "promote-release",
            "-p",
            "gates",
            "--from",
            "dev",
            "--to",
            "prod",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            text.contains("awaiting_approval") && text.contains("group release-managers"),
            "{text}"
        );
        environment(&status(server, "gates"), "prod")["latest"]["id"].to_string()
    };
    let id = promote(&server);
    let out = cli_as(&server, &bob, &["approve", &id]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs group release-managers"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli_as(&server, &dave, &["reject", &id, "-m", ""]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a comment"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli_as(
        &server,
        &dave,
        &["reject", &id, "-m", "not during the audit"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prod = environment(&status(&server, "gates"), "prod").clone();
    assert_eq!(prod["latest"]["state"], "rejected");
    assert!(prod["live"].is_null());
    let id = promote(&server);
    let out = cli_as(&server, &dave, &["approve", &id, "-m", "audit done"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_until("prod is live", Duration::from_secs(30), || {
        !environment(&status(&server, "gates"), "prod")["live"].is_null()
    });

    // qa: a decision point expires.
    let out = server.cli(&[
        "promote-release",
        "-p",
        "gates",
        "--from",
        "dev",
        "--to",
        "qa",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let qa_id = environment(&status(&server, "gates"), "qa")["latest"]["id"].to_string();
    server.wait_until("qa's decision expires", Duration::from_secs(10), || {
        environment(&status(&server, "gates"), "qa")["latest"]["state"] == "expired"
    });
    let out = cli_as(&server, &bob, &["approve", &qa_id]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not waiting for approval"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = server.json(&["audit", "-p", "gates"]).to_string();
    for needle in [
        "\"action\":\"reject\"",
        "not during the audit",
        "\"action\":\"approve\"",
        "\"action\":\"expire\"",
    ] {
        assert!(audit.contains(needle), "{needle} in {audit}");
    }

    // A crashed version is restarted; the environment shows unhealthy meanwhile.
    let url = environment(&status(&server, "gates"), "dev")["url"]
        .as_str()
        .expect("url")
        .to_string();
    let pid = std::fs::read_dir(data.join("deploy"))
        .expect("deploy dir")
        .flatten()
        .flat_map(|p| {
            std::fs::read_dir(p.path().join("dev"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .find(|f| f.path().extension().is_some_and(|e| e == "pid"))
        .map(|f| std::fs::read_to_string(f.path()).expect("pid"))
        .expect("a pid file for dev");
    let pid: i32 = pid.trim().parse().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    // The restart comes within 100 ms, quicker than a status poll: the audit
    // log keeps the turn to unhealthy and back.
    server.wait_until(
        "dev is restarted and healthy",
        Duration::from_secs(20),
        || {
            let audit = server.json(&["audit", "-p", "gates"]);
            let turns: Vec<_> = audit
                .as_array()
                .expect("entries")
                .iter()
                .rev()
                .filter(|e| e["subject"] == "environment dev")
                .map(|e| format!("{} {}", e["action"], e["detail"]))
                .collect();
            turns.len() >= 2
                && turns[0].contains("unhealthy")
                && turns[0].contains("exited")
                && turns[1].starts_with("\"healthy\"")
        },
    );
    assert_eq!(
        environment(&status(&server, "gates"), "dev")["health"],
        "healthy"
    );
    assert_eq!(get(&url).as_deref(), Some("Hello from hello-service 1\n"));

    // A server killed outright brings every environment back on its URL.
    server.kill9();
    let server = ServerProcess::start(&data, &[]);
    server.wait_until("dev answers again", Duration::from_secs(30), || {
        get(&url).is_some()
    });
    assert_eq!(get(&url).as_deref(), Some("Hello from hello-service 1\n"));
    let prod_url = environment(&status(&server, "gates"), "prod")["url"]
        .as_str()
        .expect("url")
        .to_string();
    server.wait_until("prod answers again", Duration::from_secs(30), || {
        get(&prod_url).is_some()
    });
}
