//! What the attacks share: a page a release serves, curl with its status,
//! the `PROBE` lines an attack prints, an agent's side of a claimed job, and
//! waiting for a run to end.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::server::{Remote, ServerProcess, commit_file};
use crate::common::service::{environment, status, succeeded};

/// One job that writes its commit into the page a Python file server serves
/// in `dev`, which takes every release of main.
pub const SERVED: &str = r#"jobs:
  page:
    steps:
      - echo "$SLIPWAY_COMMIT" > index.html
    artifacts: [index.html]
environments:
  dev:
    branch: main
    target: { local: { command: python3 -m http.server $PORT --bind 127.0.0.1 } }
    health: { http: /index.html }
"#;

/// `POST /api/v1/PATH` of JSON `body` with the admin's token.
pub fn admin_post(server: &ServerProcess, path: &str, body: &str) -> (u16, String) {
    curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {}", server.token),
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &format!("{}/api/v1/{path}", server.url),
    ])
}

/// `curl ARGS`; returns (status, body), status 0 when there was none.
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `PROBE` lines of some text, as (name, result); printed for the record.
/// Each attack ends with `PROBE done`, so one cut short fails here.
pub fn probes(text: &str) -> Vec<(String, String)> {
    let found: Vec<(String, String)> = text
        .lines()
        // A step's own text is echoed before it runs: only its output counts.
        .filter(|l| !l.contains("▸ step"))
        .filter_map(|l| l.split_once("PROBE ").map(|(_, rest)| rest))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            Some((
                words.next()?.to_string(),
                words.next().unwrap_or("").to_string(),
            ))
        })
        .collect();
    for (name, result) in &found {
        eprintln!("{name}: {result}");
    }
    assert!(
        found.iter().any(|(name, _)| name == "done"),
        "the attack did not run to its end:\n{text}"
    );
    found
}

/// No probe of an attack got through: each printed `refused`, none `LEAKED`.
pub fn assert_all_refused(found: &[(String, String)]) {
    let leaked: Vec<&String> = found
        .iter()
        .filter(|(_, result)| result == "LEAKED")
        .map(|(name, _)| name)
        .collect();
    assert!(leaked.is_empty(), "the job reached: {leaked:?}");
}

/// What `slipway logs RUN` prints, whether or not it succeeds.
pub fn log_of(server: &ServerProcess, run: &str) -> String {
    String::from_utf8_lossy(&server.cli(&["logs", run]).stdout).to_string()
}

/// Waits (bounded) until `run` ended; returns its state.
pub fn wait_for_end(server: &ServerProcess, run: &str, limit: Duration) -> String {
    let mut state = String::new();
    server.wait_until(&format!("run {run} to end"), limit, || {
        let out = server.cli(&["run-status", run, "--json"]);
        state = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["run"]["state"].as_str().map(str::to_string))
            .unwrap_or_default();
        matches!(state.as_str(), "succeeded" | "failed" | "canceled")
    });
    state
}

/// The audit log of project `demo`, as text.
pub fn audit(server: &ServerProcess) -> String {
    server.json(&["audit", "-p", "demo"]).to_string()
}

/// The commit `env` of project `demo` runs (empty before it runs one).
pub fn live_commit(server: &ServerProcess, env: &str) -> String {
    environment(&status(server, "demo"), env)["live"]["commit"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A new token with the agent role.
pub fn agent_token(server: &ServerProcess, name: &str) -> String {
    succeeded(&server.cli(&["token", "create", name, "--role", "agent"]))
        .trim()
        .to_string()
}

/// `POST /api/v1/agent/PATH` of JSON `body` with an agent's token.
pub fn agent_post(server: &ServerProcess, agent: &str, path: &str, body: &str) -> (u16, String) {
    curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {agent}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &format!("{}/api/v1/agent/{path}", server.url),
    ])
}

/// Claims the one queued job as an agent would; returns its id and registry password.
pub fn claim(server: &ServerProcess, agent: &str) -> (i64, String) {
    let (code, claimed) = agent_post(
        server,
        agent,
        "claim",
        r#"{"worker":"fake","labels":["docker"],"wait_ms":10000}"#,
    );
    assert_eq!(code, 200, "claim: {claimed}");
    let claimed: serde_json::Value = serde_json::from_str(&claimed).expect("JSON");
    (
        claimed["job_id"].as_i64().expect("job id"),
        claimed["registry"]["password"]
            .as_str()
            .expect("a job token")
            .to_string(),
    )
}

/// A server without workers whose project `demo` has one queued job that
/// builds and pushes the image `ci/demo`; returns it and an agent's token.
pub fn image_job_queued(tmp: &Path) -> (ServerProcess, String) {
    let pipeline = "jobs:\n  image:\n    steps:\n      - run: echo built > app.txt\n    image_build:\n      push: ci/demo\n";
    let remote = Remote::new(tmp, pipeline);
    commit_file(
        &remote.work,
        "Dockerfile",
        "FROM scratch\nCOPY app.txt /\n",
        "image",
    );
    remote.push();
    let server = ServerProcess::start(&tmp.join("data"), &["--workers", "0"]);
    succeeded(&server.cli(&["repo", "add", "ci", "--kind", "oci"]));
    server.add_project(&remote, &[]);
    let agent = agent_token(&server, "fake-agent");
    succeeded(&server.cli(&["trigger", "demo"]));
    (server, agent)
}

/// `POST /v2/IMAGE/blobs/uploads/` with a job's registry password.
pub fn start_upload(server: &ServerProcess, password: &str, image: &str) -> (u16, String) {
    curl(&[
        "-X",
        "POST",
        "-u",
        &format!("slipway-job:{password}"),
        &format!("{}/v2/{image}/blobs/uploads/", server.url),
    ])
}

/// Peak resident memory (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// `slipway-LABEL-NANOS`: a name no other test run uses.
pub fn unique_tag(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("slipway-{label}-{nanos}")
}
