//! Deployments end to end on the example service: a commit on `dev` becomes a
//! release live in `dev` (local target), is merged into `main`, whose release
//! goes to `staging` (docker) and, after two approvals that refuse the
//! author, to `prod` (swarm); a release whose health check fails is rolled
//! back by itself while the old version keeps serving; `slipway status` is
//! checked against the database.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{ServerProcess, git};
use common::service::{
    DockerCleanup, Load, ServiceRepo, TARGET, build_job, cli_as, environment, get, refused,
    require_swarm, status, succeeded, token,
};

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
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &[
            common::service::SHARED_TARGET_FLAG,
            &common::service::shared_target(),
        ],
    );
    for (name, policy) in [("ci", "ci"), ("release", "release")] {
        succeeded(&server.cli(&["repo", "add", name, "--policy", policy]));
    }
    succeeded(&server.cli(&[
        "project",
        "add",
        PROJECT,
        "--git",
        repo.bare.to_str().expect("utf8"),
        "--branch",
        "dev",
        "--branch",
        "main",
    ]));
    let alice = token(&server, "alice", "developer", "alice@example.com");
    let bob = token(&server, "bob", "developer", "bob@example.com");
    let carol = token(&server, "carol", "admin", "carol@example.com");

    // Alice's commit on dev: build, release, deployed to dev by itself.
    git(&repo.work, &["checkout", "-q", "-b", "dev"]);
    repo.write("CHANGELOG", "greet with Hi in dev\n");
    repo.commit("Alice", "alice@example.com", "greet with Hi");
    git(&repo.work, &["push", "-q", "origin", "dev"]);
    succeeded(&server.cli(&["trigger", PROJECT, "--branch", "dev", "--wait"]));
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
    refused(
        &cli_as(&server, &alice, &["approve", &id, "-m", "ship it"]),
        "`alice` wrote commit",
    );
    succeeded(&cli_as(
        &server,
        &bob,
        &["approve", &id, "-m", "checked the staging URL"],
    ));
    let again = cli_as(&server, &bob, &["approve", &id]);
    assert!(!again.status.success(), "one decision per person");
    assert_eq!(
        environment(&status(&server, PROJECT), "prod")["latest"]["state"],
        "awaiting_approval"
    );
    succeeded(&cli_as(
        &server,
        &carol,
        &["approve", &id, "-m", "release window open"],
    ));

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
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &[
            common::service::SHARED_TARGET_FLAG,
            &common::service::shared_target(),
        ],
    );
    succeeded(&server.cli(&[
        "project",
        "add",
        "rollback",
        "--git",
        repo.bare.to_str().expect("utf8"),
    ]));
    succeeded(&server.cli(&["trigger", "rollback", "--branch", "main", "--wait"]));
    server.wait_until("dev is healthy", Duration::from_secs(60), || {
        environment(&status(&server, "rollback"), "dev")["health"] == "healthy"
    });
    let url = environment(&status(&server, "rollback"), "dev")["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(get(&url).as_deref(), Some("Hello from hello-service 1\n"));

    // Load on the URL for the whole second deployment: every answer must be release 1.
    let load = Load::start(&url, "Hello from hello-service 1\n");
    repo.write(".slipway.yml", &pipeline("/not-there"));
    repo.commit(
        "Bob",
        "bob@example.com",
        "a release whose health check fails",
    );
    git(&repo.work, &["push", "-q", "origin", "main"]);
    succeeded(&server.cli(&["trigger", "rollback", "--branch", "main", "--wait"]));
    server.wait_until("release 2 is rolled back", Duration::from_secs(60), || {
        environment(&status(&server, "rollback"), "dev")["latest"]["state"] == "rolled_back"
    });
    load.finish();
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

    // A rollback with nothing to go back to says so.
    refused(
        &server.cli(&["rollback", "-p", "rollback", "dev"]),
        "no other release",
    );

    // Removing the project stops what its environments run.
    succeeded(&server.cli(&["project", "remove", "rollback"]));
    assert_eq!(
        get(&url),
        None,
        "the environment's URL is gone with its project"
    );
    let left = std::fs::read_dir(server.data_dir.join("deploy"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|p| {
            std::fs::read_dir(p.path().join("dev"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|f| f.path().extension().is_some_and(|e| e == "pid"))
        .count();
    assert_eq!(left, 0, "no process of the project is left");
}

#[test]
fn a_swarm_update_failing_its_health_check_is_rolled_back_by_the_engine() {
    require_swarm();
    const PROJECT: &str = "swarm-back";
    let _cleanup = DockerCleanup(PROJECT);
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = |health: &str| {
        build_job(&format!(
            r#"  image:
    needs: [build]
    image_build:
      context: .
      dockerfile: Dockerfile
      tags: ["{PROJECT}:{{{{ run.number }}}}"]
      push: ci/{PROJECT}
environments:
  live:
    branch: main
    target: {{ swarm: {{ port: 8080 }} }}
    health: {{ http: {health}, timeout: 20s }}
"#
        ))
    };
    let repo = ServiceRepo::new(tmp.path(), &pipeline("/healthz"));
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &[
            common::service::SHARED_TARGET_FLAG,
            &common::service::shared_target(),
        ],
    );
    succeeded(&server.cli(&["repo", "add", "ci"]));
    succeeded(&server.cli(&[
        "project",
        "add",
        PROJECT,
        "--git",
        repo.bare.to_str().expect("utf8"),
    ]));
    succeeded(&server.cli(&["trigger", PROJECT, "--branch", "main", "--wait"]));
    server.wait_until("live serves release 1", Duration::from_secs(120), || {
        environment(&status(&server, PROJECT), "live")["live"]["release"] == "1"
    });
    let url = environment(&status(&server, PROJECT), "live")["url"]
        .as_str()
        .expect("url")
        .to_string();
    repo.write(".slipway.yml", &pipeline("/not-there"));
    repo.commit(
        "Bob",
        "bob@example.com",
        "an image whose health check fails",
    );
    git(&repo.work, &["push", "-q", "origin", "main"]);
    succeeded(&server.cli(&["trigger", PROJECT, "--branch", "main", "--wait"]));
    server.wait_until("release 2 is rolled back", Duration::from_secs(180), || {
        let now = status(&server, PROJECT);
        let latest = &environment(&now, "live")["latest"];
        assert_ne!(latest["state"], "failed", "{latest}");
        latest["state"] == "rolled_back"
    });
    // Afterwards the old release serves again. (During the failed update a
    // one-node swarm may stop the old task before the new one is judged, so
    // unlike `local` and `docker`, requests can fail meanwhile.)
    assert_eq!(get(&url).as_deref(), Some("Hello from hello-service 1\n"));
    let now = status(&server, PROJECT);
    let live = environment(&now, "live");
    assert_eq!(live["live"]["release"], "1");
    let reason = live["latest"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("the engine rolled the service back"),
        "{reason}"
    );
    let label = format!("label=slipway.project={PROJECT}");
    let service = Command::new("docker")
        .args(["service", "ls", "-q", "--filter", &label])
        .output()
        .expect("docker service ls");
    let service = String::from_utf8_lossy(&service.stdout).trim().to_string();
    let release = Command::new("docker")
        .args([
            "service",
            "inspect",
            &service,
            "--format",
            "{{index .Spec.Labels \"slipway.release\"}}",
        ])
        .output()
        .expect("docker service inspect");
    assert_eq!(String::from_utf8_lossy(&release.stdout).trim(), "1");
}
