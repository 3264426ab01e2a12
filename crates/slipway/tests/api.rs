//! The API's edges: every route refuses a missing token and too weak a role,
//! errors are JSON, secrets are sealed and masked, health checks, OpenAPI, and
//! a graceful stop on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::server::{Remote, ServerProcess};
use slipway_server::ROUTES;

/// `curl` a path; returns (status, body).
fn curl(server: &ServerProcess, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "--max-time",
        "10",
    ]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    if matches!(method, "POST" | "PUT") {
        cmd.args(["-H", "Content-Type: application/json", "--data", "{}"]);
    }
    let out = cmd
        .arg(format!("{}{path}", server.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("status");
    (code.parse().expect("code"), body.to_string())
}

fn token(server: &ServerProcess, role: &str) -> String {
    let out = server.cli(&["token", "create", &format!("{role}-token"), "--role", role]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn every_route_refuses_a_missing_token_and_too_weak_a_role() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    let viewer = token(&server, "viewer");
    let developer = token(&server, "developer");
    for (method, path, role, _) in ROUTES {
        let path = format!(
            "/api/v1{}",
            path.replace("{project}", "demo")
                .replace("{number}", "1")
                .replace("{job}", "1")
                .replace("{run}", "1")
                .replace("{name}", "X")
                .replace("{env}", "dev")
                .replace("{version}", "1")
                .replace("{id}", "1")
                .replace("{digest}", "sha256:00")
        );
        let method = method.to_uppercase();
        let (status, body) = curl(&server, &method, &path, None);
        assert_eq!(status, 401, "{method} {path} without a token: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(error["error"]["code"], "unauthorized");
        let weaker: &[&str] = match *role {
            "admin" => &[&viewer, &developer],
            "agent" => &[&viewer, &developer],
            "developer" => &[&viewer],
            _ => &[],
        };
        for weak in weaker {
            let (status, body) = curl(&server, &method, &path, Some(weak));
            assert_eq!(status, 403, "{method} {path} with too weak a role: {body}");
            assert!(body.contains(&format!("needs the {role} role")), "{body}");
        }
    }
    // An agent's token runs jobs and reads nothing else.
    let agent = token(&server, "agent");
    let (status, body) = curl(&server, "GET", "/api/v1/projects", Some(&agent));
    assert_eq!(status, 403, "{body}");
    let (status, _) = curl(
        &server,
        "GET",
        "/api/v1/projects",
        Some("slw_not-a-real-token-000000000000000000000000"),
    );
    assert_eq!(status, 401);
}

#[test]
fn health_openapi_and_unknown_routes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    assert_eq!(curl(&server, "GET", "/healthz", None), (200, "ok".into()));
    assert_eq!(curl(&server, "GET", "/readyz", None), (200, "ready".into()));
    let (status, body) = curl(&server, "GET", "/api/v1/openapi.json", Some(&server.token));
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["paths"]["/projects/{project}/trigger"]["post"]["x-slipway-role"],
        "developer"
    );
    let (status, body) = curl(&server, "GET", "/api/v1/nope", Some(&server.token));
    assert_eq!(status, 404, "{body}");
    // A malformed body is a JSON error that says what is missing.
    let (status, body) = curl(&server, "POST", "/api/v1/projects", Some(&server.token));
    assert_eq!(status, 400, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(error["error"]["code"], "bad_request");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("missing field `name`"),
        "{body}"
    );
}

#[test]
fn secrets_are_sealed_listed_by_name_and_masked_in_logs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let value = "hunter2-sealed-value";
    let remote = Remote::new(
        tmp.path(),
        "jobs:\n  use:\n    secrets: [API_KEY]\n    steps:\n      - run: echo \"key=$API_KEY\"\n",
    );
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    server.set_secret("demo", "API_KEY", value);
    let listed = server.json(&["secret", "list", "demo"]);
    assert_eq!(listed[0]["name"], "API_KEY", "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let out = server.cli(&["trigger", "demo", "--wait"]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("key=***") && !shown.contains(value),
        "{shown}"
    );
    // Neither the database nor anything else in the data directory holds the value in clear.
    let grep = Command::new("grep")
        .args(["-r", "-l", value])
        .arg(&server.data_dir)
        .output()
        .expect("grep");
    assert!(
        grep.stdout.is_empty(),
        "found in {}",
        String::from_utf8_lossy(&grep.stdout)
    );
}

#[test]
fn sigterm_lets_the_running_job_finish_then_exits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gate = tmp.path().join("gate");
    // The step marks its start outside its workspace, in a directory it may write.
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).expect("mkdir");
    let started = marks.join("started");
    let pipeline = format!(
        "jobs:\n  slow:\n    steps:\n      - run: |\n          touch {1}\n          while [ ! -f {0} ]; do sleep 0.05; done\n          echo finished\n",
        gate.display(),
        started.display()
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(
        &data,
        &[
            "--workers",
            "1",
            "--grace-seconds",
            "20",
            "--job-writable",
            marks.to_str().expect("utf8"),
        ],
    );
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    server.wait_until("the job to start", Duration::from_secs(30), || {
        started.exists()
    });
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    std::fs::write(&gate, "").expect("gate");
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "server exit: {status}");
    // Restarted on the same data: the job finished before the server stopped.
    let server = ServerProcess::start(&data, &["--workers", "0"]);
    let detail = server.run_status("demo/1");
    assert_eq!(detail["jobs"][0]["state"], "succeeded", "{detail}");
}

#[test]
fn sigterm_with_a_log_follower_still_stops_and_requeues_the_job() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).expect("mkdir");
    let started = marks.join("started");
    let pipeline = format!(
        "jobs:\n  endless:\n    steps:\n      - run: touch {} && sleep 600\n",
        started.display()
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(
        &data,
        &[
            "--workers",
            "1",
            "--grace-seconds",
            "1",
            "--job-writable",
            marks.to_str().expect("utf8"),
        ],
    );
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    server.wait_until("the job to start", Duration::from_secs(30), || {
        started.exists()
    });
    let mut follower = server
        .cli_cmd(&["logs", "-f", "demo/1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    // Connected once it prints the step's first log line.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        follower.stdout.take().expect("stdout"),
    ));
    assert!(
        lines
            .next()
            .is_some_and(|l| l.is_ok_and(|l| l.contains("step 1/1")))
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).expect("pid"));
    let asked = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "server exit: {status}");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "stopping took {:?}",
        asked.elapsed()
    );
    let _ = follower.wait();
    // The step outlived the grace period: it was canceled and the job given back.
    let server = ServerProcess::start(&data, &["--workers", "0"]);
    let job = &server.run_status("demo/1")["jobs"][0];
    assert_eq!(job["state"], "queued", "{job}");
    assert_eq!(job["reason"], "re-queued: its worker shut down");
}

#[test]
fn an_artifact_archive_holding_a_link_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    let agent = token(&server, "agent");
    // Artifacts are taken only for a job the agent token holds: claim one.
    let remote = Remote::new(tmp.path(), "jobs:\n  build:\n    steps: [true]\n");
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    let claimed = Command::new("curl")
        .args(["-sf", "-X", "POST", "-H"])
        .arg(format!("Authorization: Bearer {agent}"))
        .args(["-H", "Content-Type: application/json"])
        .args(["--data", r#"{"worker":"evil","wait_ms":5000}"#])
        .arg(format!("{}/api/v1/agent/claim", server.url))
        .output()
        .expect("curl");
    let claimed: serde_json::Value =
        serde_json::from_slice(&claimed.stdout).expect("a claimed job");
    assert_eq!(claimed["run_id"], 1, "{claimed}");
    let work = tmp.path().join("evil");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::os::unix::fs::symlink(server.data_dir.join("admin.token"), work.join("token"))
        .expect("symlink");
    let archive = tmp.path().join("evil.tar");
    let ok = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&work)
        .arg("token")
        .status()
        .expect("tar")
        .success();
    assert!(ok);
    let url = format!("{}/api/v1/agent/runs/1/artifacts/build", server.url);
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            "PUT",
            "-H",
            &format!("Authorization: Bearer {agent}"),
        ])
        .arg("--data-binary")
        .arg(format!("@{}", archive.display()))
        .arg(&url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.ends_with("\n400"), "{text}");
    assert!(text.contains("is a link"), "{text}");
    let (_, body) = curl(
        &server,
        "GET",
        "/api/v1/agent/runs/1/artifacts/build",
        Some(&agent),
    );
    assert!(
        !body.contains(&server.token),
        "the admin token leaked through an artifact"
    );
}

#[test]
fn a_job_whose_secret_is_not_set_fails_and_says_how_to_set_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(
        tmp.path(),
        "jobs:\n  use:\n    secrets: [DEPLOY_KEY]\n    steps: [true]\n",
    );
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    let reason = server.run_status("demo/1")["jobs"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("secret `DEPLOY_KEY` is not set for project `demo`"),
        "{reason}"
    );
    assert!(
        reason.contains("slipway secret set demo DEPLOY_KEY"),
        "{reason}"
    );
}
