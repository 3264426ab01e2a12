//! A job's services get no more than its steps: a service that asks for the
//! Docker socket, host paths or privileges is refused before anything runs,
//! one from an image another project built is refused at run time, and the
//! services that do run have no mounts, no raw sockets, no new privileges and
//! ports published on loopback only.

use std::process::Command;
use std::time::Duration;

use super::common::server::{Remote, ServerProcess};
use super::common::{BUSYBOX, Repo, require_docker, text};
use super::support::{log_of, wait_for_end};

#[test]
fn a_service_asking_for_the_docker_socket_host_paths_or_privileges_is_refused() {
    let repo = Repo::new(
        "jobs:\n  attack:\n    steps: [\"true\"]\n    services:\n      \
         sock:\n        image: slipway/busybox:latest\n        \
         volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n      \
         root:\n        image: slipway/busybox:latest\n        privileged: true\n        \
         cap_add: [SYS_ADMIN]\n      \
         host:\n        image: slipway/busybox:latest\n        mounts: [\"/:/host\"]\n        \
         network_mode: host\n",
        &[],
    );
    let out = repo.slipway(&["validate"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    for (key, at) in [
        ("sock.volumes", ":7:"),
        ("root.privileged", ":10:"),
        ("root.cap_add", ":11:"),
        ("host.mounts", ":14:"),
        ("host.network_mode", ":15:"),
    ] {
        let line = all
            .lines()
            .find(|l| l.contains(&format!("services.{key}`: a service cannot have")))
            .unwrap_or_else(|| panic!("no refusal of {key}: {all}"));
        assert!(
            line.contains(at),
            "{key} should be placed at line {at}: {line}"
        );
    }
    assert!(all.contains("no Docker socket"), "{all}");
    // `slipway run` refuses the same file before it starts anything.
    let out = repo.slipway(&["run"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("a service cannot have"),
        "{}",
        text(&out)
    );
}

/// A local image labelled as built by project `other`.
fn image_of_other_project(tag: &str) {
    let script = format!(
        "id=$(docker create {BUSYBOX}) && \
         docker commit --change 'LABEL slipway.project=other slipway.protected=true' \"$id\" {tag} >/dev/null; \
         rc=$?; docker rm \"$id\" >/dev/null; exit $rc"
    );
    let ok = Command::new("bash")
        .args(["-c", &script])
        .status()
        .expect("bash")
        .success();
    assert!(ok, "could not make {tag}");
}

#[test]
fn a_service_from_an_image_another_project_built_is_refused() {
    require_docker();
    let tag = "other/hostile-service-db:latest";
    image_of_other_project(tag);
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = format!(
        "jobs:\n  it:\n    services:\n      db:\n        image: {tag}\n        \
         command: [sleep, \"600\"]\n    steps: [\"echo steps-ran\"]\n"
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo"]);
    assert!(out.status.success(), "{}", text(&out));
    let state = wait_for_end(&server, "demo/1", Duration::from_secs(60));
    assert_eq!(state, "failed");
    let status = server.run_status("demo/1");
    let reason = status["jobs"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("service `db`")
            && reason.contains(&format!(
                "cannot use image `{tag}`: a job of project `other` built it"
            )),
        "{status}"
    );
    assert!(!log_of(&server, "demo/1").contains("steps-ran"));
    let ran = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("ancestor={tag}")])
        .output()
        .expect("docker ps");
    assert!(
        ran.stdout.is_empty(),
        "a container of the foreign image was made"
    );
}

#[test]
fn a_running_service_has_no_mounts_raw_sockets_or_public_ports() {
    require_docker();
    let repo = Repo::new(
        &format!(
            "jobs:\n  probe:\n    services:\n      web:\n        image: {BUSYBOX}\n        \
             command: [httpd, -f, -p, \"8080\"]\n        ports: [8080]\n    \
             steps: [\"echo service-up && sleep 600\"]\n"
        ),
        &[],
    );
    let mut child = super::common::slipway_cmd(repo.path())
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.stdout.take().expect("stdout"),
    ));
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("service-up")),
        "the job never started"
    );
    let filter = format!("label=slipway.source={}", repo.path().display());
    let id = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &filter,
            "--filter",
            "label=slipway.service=web",
        ])
        .output()
        .expect("docker ps");
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    let inspect = Command::new("docker")
        .args(["inspect", &id])
        .output()
        .expect("docker inspect");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let _: Vec<String> = lines.map_while(Result::ok).collect();
    let _ = child.wait();
    let inspected: serde_json::Value =
        serde_json::from_slice(&inspect.stdout).expect("inspect JSON");
    let c = &inspected[0];
    assert_eq!(c["Mounts"], serde_json::json!([]), "{c}");
    assert_eq!(c["HostConfig"]["Privileged"], false);
    assert_eq!(c["HostConfig"]["CapDrop"], serde_json::json!(["ALL"]));
    let caps = c["HostConfig"]["CapAdd"].to_string();
    assert!(
        !caps.contains("NET_RAW") && !caps.contains("SYS_ADMIN"),
        "{caps}"
    );
    assert!(
        c["HostConfig"]["SecurityOpt"]
            .to_string()
            .contains("no-new-privileges")
    );
    for binding in c["HostConfig"]["PortBindings"]["8080/tcp"]
        .as_array()
        .expect("bound")
    {
        assert_eq!(binding["HostIp"], "127.0.0.1", "{binding}");
    }
}

#[test]
fn a_fixed_host_port_on_a_server_job_is_refused_at_job_start() {
    require_docker();
    let tmp = tempfile::tempdir().expect("tempdir");
    // Started first, this job's service would be sent the connections (and
    // passwords) of every other job on the host that uses port 15432.
    let pipeline = format!(
        "jobs:\n  squat:\n    services:\n      db:\n        image: {BUSYBOX}\n        \
         command: [httpd, -f, -p, \"5432\"]\n        ports: [\"15432:5432\"]\n    \
         steps: [\"echo steps-ran\"]\n"
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    assert_eq!(
        wait_for_end(&server, "demo/1", Duration::from_secs(60)),
        "failed"
    );
    let status = server.run_status("demo/1");
    let reason = status["jobs"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("service `db` asks for the fixed host port 15432")
            && reason.contains("write `ports: [5432]`"),
        "{status}"
    );
    assert!(!log_of(&server, "demo/1").contains("steps-ran"));
    let ran = Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=slipway.project=demo"])
        .output()
        .expect("docker ps");
    assert!(ran.stdout.is_empty(), "a service container was made");
}

#[test]
fn privileged_host_ports_and_fixed_ports_in_a_matrix_are_refused_at_validate() {
    let repo = Repo::new(
        "jobs:\n  web:\n    steps: [\"true\"]\n    services:\n      \
         http:\n        image: slipway/busybox:latest\n        ports: [\"80:8080\"]\n  \
         cells:\n    matrix: { n: [\"1\", \"2\"] }\n    steps: [\"true\"]\n    services:\n      \
         db:\n        image: slipway/busybox:latest\n        ports: [\"15432:5432\"]\n",
        &[],
    );
    let out = repo.slipway(&["validate"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("`jobs.web.services.http.ports`: host port 80 is below 1024"),
        "{all}"
    );
    assert!(
        all.contains("`jobs.cells.services.db.ports`: a matrix job cannot fix host port 15432"),
        "{all}"
    );
}

#[test]
fn a_container_jobs_service_publishes_no_port_on_the_host() {
    require_docker();
    let repo = Repo::new(
        &format!(
            "jobs:\n  boxed:\n    image: {BUSYBOX}\n    services:\n      web:\n        \
             image: {BUSYBOX}\n        command: [httpd, -f, -p, \"8080\"]\n        ports: [8080]\n    \
             steps: [\"echo \\\"web at $WEB_HOST:$WEB_PORT\\\" && sleep 600\"]\n"
        ),
        &[],
    );
    let mut child = super::common::slipway_cmd(repo.path())
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.stdout.take().expect("stdout"),
    ));
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("web at web:8080")),
        "the job never started, or its steps were not told `web:8080`"
    );
    let filter = format!("label=slipway.source={}", repo.path().display());
    let id = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &filter,
            "--filter",
            "label=slipway.service=web",
        ])
        .output()
        .expect("docker ps");
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    assert!(!id.is_empty(), "the service was not running");
    let ports = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .HostConfig.PortBindings}} {{json .NetworkSettings.Ports}}",
            &id,
        ])
        .output()
        .expect("docker inspect");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let _: Vec<String> = lines.map_while(Result::ok).collect();
    let _ = child.wait();
    let ports = String::from_utf8_lossy(&ports.stdout).trim().to_string();
    assert!(ports.starts_with('{'), "docker inspect: {ports}");
    assert!(
        !ports.contains("HostPort") && !ports.contains("127.0.0.1"),
        "published: {ports}"
    );
}
