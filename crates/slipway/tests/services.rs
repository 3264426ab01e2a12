//! `services:` — containers beside a job, through `slipway run`: a real
//! PostgreSQL (slipway/postgres, built from the host's installation) reached
//! from host and container steps, readiness, and removal however the job ends.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{Remote, ServerProcess};
use common::{BUSYBOX, Repo, containers_of, job, networks_of, require_docker, run_until, text};

const POSTGRES: &str = "slipway/postgres:latest";

/// The service image of these tests, built from the host's PostgreSQL when missing.
fn require_postgres_image() {
    require_docker();
    common::run_setup(
        "source \"$LIB/postgres.sh\" && ensure_postgres >/dev/null && source \"$LIB/docker.sh\" && ensure_postgres_image",
        &format!("the service tests need {POSTGRES}"),
    );
}

fn assert_nothing_left(repo: &Repo) {
    assert_eq!(containers_of(repo), Vec::<String>::new(), "containers left");
    assert_eq!(networks_of(repo), Vec::<String>::new(), "networks left");
}

fn postgres_service(ready: &str) -> String {
    format!(
        "    services:\n      db:\n        image: {POSTGRES}\n        \
         env: {{ POSTGRES_PASSWORD: test, POSTGRES_DB: app }}\n        ports: [5432]\n{ready}"
    )
}

/// Two jobs, each with its own PostgreSQL service named `db`: one runs SQL
/// from a host step (127.0.0.1 and the published port), one from a container
/// step (`db:5432`, with the same image for psql).
fn sql_pipeline() -> String {
    let psql = r#"PGPASSWORD=test psql -h "$DB_HOST" -p "$DB_PORT" -U postgres -d app -Atc"#;
    format!(
        "jobs:\n  host-sql:\n{}    steps:\n      - run: |\n          \
         {psql} \"create table t (n int); insert into t values (40), (2)\"\n          \
         {psql} \"select 'host sum ' || sum(n) || ' via ' || '$DB_HOST' from t\"\n  \
         container-sql:\n    image: {POSTGRES}\n{}    steps:\n      - run: |\n          \
         test \"$DB_HOST:$DB_PORT:$DB_PORT_5432\" = db:5432:5432\n          \
         PGPASSWORD=test psql -h db -p 5432 -U postgres -d app -Atc \"select 'container ' || current_database() || ' ' || 6 * 7\"\n",
        postgres_service("        ready: { run: \"pg_isready -h 127.0.0.1 -U postgres\" }\n"),
        postgres_service(""),
    )
}

#[test]
fn host_and_container_steps_run_sql_against_a_postgresql_service() {
    require_postgres_image();
    let pipeline = sql_pipeline();
    let repo = Repo::new(&pipeline, &[]);
    let out = repo.slipway(&["run"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // Two jobs with a service of the same name ran at the same time, each
    // reaching its own PostgreSQL (the container job's has no table `t`).
    assert!(all.contains("host sum 42 via 127.0.0.1"), "{all}");
    assert!(all.contains("container app 42"), "{all}");
    assert!(
        all.contains("service `db` (slipway/postgres:latest) ready after"),
        "{all}"
    );
    assert_nothing_left(&repo);
}

#[test]
fn a_server_worker_runs_sql_against_a_service_from_sandboxed_host_steps_and_containers() {
    require_postgres_image();
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), &sql_pipeline());
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "2"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut status = serde_json::Value::Null;
    server.wait_until("run demo/1 to end", Duration::from_secs(120), || {
        status = server.run_status("demo/1");
        matches!(
            status["run"]["state"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        )
    });
    let logs = text(&server.cli(&["logs", "demo/1"]));
    assert_eq!(status["run"]["state"], "succeeded", "{status}\n{logs}");
    assert!(logs.contains("host sum 42 via 127.0.0.1"), "{logs}");
    assert!(logs.contains("container app 42"), "{logs}");
    let left = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            "label=slipway.project=demo",
            "--filter",
            "label=slipway.service",
        ])
        .output()
        .expect("docker ps");
    assert!(left.stdout.is_empty(), "services left behind");
}

#[test]
fn a_failed_job_removes_its_services() {
    require_docker();
    let repo = Repo::new(
        &format!(
            "jobs:\n  fails:\n    services:\n      web:\n        image: {BUSYBOX}\n        \
             command: [httpd, -f, -p, \"8080\"]\n        ports: [8080]\n    steps:\n      \
             - run: 'echo \"web at $WEB_HOST:$WEB_PORT\" && exit 3'\n"
        ),
        &[],
    );
    let out = repo.slipway(&["run"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("web at 127.0.0.1:"), "{}", text(&out));
    assert_eq!(job(&repo.summary(1), "fails")["status"], "failed");
    assert_nothing_left(&repo);
}

#[test]
fn a_service_that_never_gets_ready_fails_the_job_within_its_timeout() {
    require_docker();
    let repo = Repo::new(
        &format!(
            "jobs:\n  waits:\n    services:\n      deaf:\n        image: {BUSYBOX}\n        \
             command: [sh, -c, \"echo deaf-service-started; sleep 600\"]\n        \
             ready: {{ port: 9, timeout: 2s }}\n    steps: [\"echo never-runs\"]\n"
        ),
        &[],
    );
    let started = Instant::now();
    let out = repo.slipway(&["run"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let reason = job(&repo.summary(1), "waits")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("service `deaf` (slipway/busybox:latest) was not ready within 2s"),
        "{reason}"
    );
    assert!(reason.contains("port 9"), "{reason}");
    assert!(
        reason.contains("deaf-service-started"),
        "the last log lines: {reason}"
    );
    assert!(!all.contains("never-runs\n"), "{all}");
    assert_nothing_left(&repo);
}

#[test]
fn a_service_that_exits_fails_the_job_with_its_logs() {
    require_docker();
    let repo = Repo::new(
        &format!(
            "jobs:\n  crashes:\n    services:\n      db:\n        image: {BUSYBOX}\n        \
             command: [sh, -c, \"echo missing-config-file >&2; exit 4\"]\n        \
             ready: {{ run: 'false', timeout: 60s }}\n    steps: [\"true\"]\n"
        ),
        &[],
    );
    let started = Instant::now();
    let out = repo.slipway(&["run"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it waited for the timeout"
    );
    let reason = job(&repo.summary(1), "crashes")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("service `db`") && reason.contains("exited with code 4"),
        "{reason}"
    );
    assert!(reason.contains("missing-config-file"), "{reason}");
    assert_nothing_left(&repo);
}

#[test]
fn a_job_timeout_removes_its_services() {
    require_docker();
    let repo = Repo::new(
        &format!(
            "jobs:\n  slow:\n    timeout: 3s\n    image: {BUSYBOX}\n    services:\n      web:\n        \
             image: {BUSYBOX}\n        command: [httpd, -f, -p, \"80\"]\n        ready: {{ port: 80 }}\n    \
             steps: [\"wget -S --spider http://web/ 2>&1 | grep HTTP/; sleep 600\"]\n"
        ),
        &[],
    );
    let out = repo.slipway(&["run"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("404 Not Found"),
        "web was not reached by name: {}",
        text(&out)
    );
    let summary = repo.summary(1);
    let slow = job(&summary, "slow");
    assert!(
        slow["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "{slow}"
    );
    assert_nothing_left(&repo);
}

fn long_service_job() -> String {
    format!(
        "jobs:\n  long:\n    services:\n      web:\n        image: {BUSYBOX}\n        \
         command: [httpd, -f, -p, \"8080\"]\n        ports: [8080]\n    \
         steps: [\"echo steps-running && sleep 600\"]\n  \
         sweep:\n    image: {BUSYBOX}\n    steps: [\"true\"]\n"
    )
}

#[test]
fn ctrl_c_removes_the_services() {
    require_docker();
    let repo = Repo::new(&long_service_job(), &[]);
    let (mut child, rest) = run_until(&repo, &["run", "--job", "long"], "steps-running");
    assert_eq!(containers_of(&repo).len(), 1, "the service runs");
    assert_eq!(networks_of(&repo).len(), 1);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let _: Vec<String> = rest.map_while(Result::ok).collect();
    assert_eq!(child.wait().expect("wait").code(), Some(130));
    assert_eq!(job(&repo.summary(1), "long")["status"], "canceled");
    assert_nothing_left(&repo);
}

#[test]
fn services_of_a_killed_slipway_are_swept_by_the_next_run() {
    require_docker();
    let repo = Repo::new(&long_service_job(), &[]);
    let (mut child, _) = run_until(&repo, &["run", "--job", "long"], "steps-running");
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert_eq!(
        containers_of(&repo).len(),
        1,
        "a kill -9 leaves the service"
    );
    assert_eq!(networks_of(&repo).len(), 1);
    // Any run that talks to Docker sweeps what dead Slipways left.
    let out = repo.slipway(&["run", "--job", "sweep"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_nothing_left(&repo);
}

/// The workspaces of job `job` under a server's work root.
fn workspaces_of(data: &std::path::Path, job: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data.join("work"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{job}-"))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_restarted_server_removes_the_workspace_of_a_container_job_its_killed_predecessor_left() {
    require_docker();
    let tmp = tempfile::tempdir().expect("tempdir");
    // All steps in a container: no host step ever writes a process-group record.
    let pipeline = format!(
        "jobs:\n  boxed:\n    image: {BUSYBOX}\n    services:\n      web:\n        \
         image: {BUSYBOX}\n        command: [httpd, -f, -p, \"8080\"]\n        ports: [8080]\n    \
         steps: [\"echo boxed-step-running; sleep 600\"]\n"
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(&data, &["--workers", "1"]);
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    server.wait_until("the container step to run", Duration::from_secs(60), || {
        text(&server.cli(&["logs", "demo/1"])).contains("boxed-step-running")
    });
    let left = workspaces_of(&data, "boxed");
    assert_eq!(left.len(), 1, "{left:?}");
    server.kill9();
    assert!(
        left[0].is_dir(),
        "a SIGKILLed server cannot remove its workspace"
    );
    // No workers: nothing re-runs the job and makes a workspace of its own.
    let server = ServerProcess::start(&data, &["--workers", "0"]);
    server.wait_until(
        "the orphaned workspace to go",
        Duration::from_secs(30),
        || !left[0].exists(),
    );
    let records = std::fs::read_dir(data.join("work/.process-groups"))
        .map(|e| e.count())
        .unwrap_or(0);
    assert_eq!(records, 0, "the sweep removes the records too");
}

/// `Config.Labels` and `Config.Entrypoint` of a local image, as JSON.
fn image_config(image: &str) -> String {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}} {{json .Config.Entrypoint}}",
            image,
        ])
        .output()
        .expect("docker image inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_postgres_image_is_rebuilt_when_the_hosts_postgresql_changed() {
    require_postgres_image();
    // A stand-in for an image built before the host's PostgreSQL was upgraded.
    let image = "slipway-test/postgres-stale:latest";
    let script = format!(
        "id=$(docker create {BUSYBOX}) && \
         docker commit --change 'LABEL slipway.postgres-version=9.6.0_old' \"$id\" {image} >/dev/null; \
         rc=$?; docker rm \"$id\" >/dev/null; exit $rc"
    );
    let made = Command::new("bash").args(["-c", &script]).status();
    assert!(made.expect("bash").success(), "could not make {image}");
    assert!(image_config(image).contains("9.6.0_old"));
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lib");
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "source '{}/docker.sh' && ensure_postgres_image",
                lib.display()
            ),
        ])
        .env("SLIPWAY_POSTGRES_IMAGE", image)
        .output()
        .expect("bash");
    let rebuilt = image_config(image);
    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("built from PostgreSQL 9.6.0_old; rebuilding it"),
        "{}",
        text(&out)
    );
    let installed = Command::new("bash")
        .args([
            "-c",
            "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres -V",
        ])
        .output()
        .expect("postgres -V");
    let number = String::from_utf8_lossy(&installed.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    assert!(
        rebuilt.contains(&format!("\"slipway.postgres-version\":\"{number}_")),
        "{rebuilt} (installed: {number})"
    );
    assert!(rebuilt.contains("slipway-postgres"), "{rebuilt}");
}
