//! Remote agents and recovery: work spreads over agents, a killed agent's job
//! completes elsewhere, and a server killed with SIGKILL resumes its runs.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::server::{AgentProcess, Remote, ServerProcess};

/// A pipeline whose job `slow` writes `started` into `dir`, then waits for a
/// `go` file there before it finishes (so tests can act while it runs).
fn gated_pipeline(dir: &Path) -> String {
    format!(
        "jobs:\n  slow:\n    steps:\n      - run: |\n          echo on $HOSTNAME > {0}/started-$$\n          while [ ! -f {0}/go ]; do sleep 0.05; done\n          echo finished\n  after:\n    needs: [slow]\n    steps: [echo after]\n",
        dir.display()
    )
}

/// The shell pids that wrote `started-PID` marks.
fn started_pids(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_prefix("started-")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn started(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("started-"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn twenty_jobs_spread_over_two_agents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let jobs: String = (0..20)
        .map(|i| format!("  job{i}:\n    steps: [\"sleep 0.2\"]\n"))
        .collect();
    let remote = Remote::new(tmp.path(), &format!("jobs:\n{jobs}"));
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    server.add_project(&remote, &[]);
    let _a = AgentProcess::start(&server, "a1", &tmp.path().join("agent1"));
    let _b = AgentProcess::start(&server, "a2", &tmp.path().join("agent2"));
    let out = server.cli(&["trigger", "demo", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = server.run_status("demo/1");
    let workers: Vec<String> = status["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["worker"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(workers.len(), 20);
    let distinct: HashSet<&String> = workers.iter().collect();
    assert_eq!(distinct.len(), 2, "all jobs went to {distinct:?}");
}

#[test]
fn a_killed_agents_job_completes_on_another() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).expect("mkdir");
    let remote = Remote::new(tmp.path(), &gated_pipeline(&marks));
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &["--workers", "0", "--lease-seconds", "2"],
    );
    server.add_project(&remote, &[]);
    // The steps write their marks outside their workspace: let them.
    let writable = ["--job-writable", marks.to_str().expect("utf8")];
    let mut first =
        AgentProcess::start_with(&server, "doomed", &tmp.path().join("agent1"), &writable);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    server.wait_until(
        "the job to start on the first agent",
        Duration::from_secs(30),
        || started(&marks) == 1,
    );
    first.kill9();
    std::fs::write(marks.join("go"), "").expect("gate");
    let _second =
        AgentProcess::start_with(&server, "survivor", &tmp.path().join("agent2"), &writable);
    let out = server.cli(&["logs", "-f", "demo/1"]);
    assert!(out.status.success());
    let status = server.run_status("demo/1");
    assert_eq!(status["run"]["state"], "succeeded", "{status}");
    let slow = &status["jobs"][0];
    assert_eq!(slow["worker"], "agent:survivor");
    assert_eq!(slow["attempt"], 2);
    assert_eq!(started(&marks), 2, "the job ran once on each agent");
    // The second try's lines are stored beside the first's, not dropped as duplicates.
    let log = String::from_utf8_lossy(&server.cli(&["logs", "demo/1", "slow"]).stdout).to_string();
    assert!(log.contains("slow │ finished"), "{log}");
}

#[test]
fn a_server_killed_mid_run_finishes_the_run_after_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).expect("mkdir");
    let remote = Remote::new(tmp.path(), &gated_pipeline(&marks));
    let data = tmp.path().join("data");
    // The same flags after the restart: the marks stay writable.
    let flags = [
        "--workers",
        "1",
        "--lease-seconds",
        "2",
        "--job-writable",
        marks.to_str().expect("utf8"),
    ];
    let mut server = ServerProcess::start(&data, &flags);
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    server.wait_until("the job to start", Duration::from_secs(30), || {
        started(&marks) == 1
    });
    server.kill9();
    // The killed server's step is still waiting at the gate; the restart must kill it.
    let orphan = started_pids(&marks);
    assert_eq!(orphan.len(), 1);
    assert!(
        Path::new(&format!("/proc/{}", orphan[0])).exists(),
        "the step should outlive a SIGKILLed server"
    );
    let server = ServerProcess::start(&data, &flags);
    server.wait_until(
        "the orphaned step to be killed",
        Duration::from_secs(10),
        || !Path::new(&format!("/proc/{}", orphan[0])).exists(),
    );
    std::fs::write(marks.join("go"), "").expect("gate");
    let out = server.cli(&["logs", "-f", "demo/1"]);
    assert!(out.status.success());
    let status = server.run_status("demo/1");
    assert_eq!(status["run"]["state"], "succeeded", "{status}");
    let transitions = status["transitions"].as_array().expect("transitions");
    assert!(
        transitions
            .iter()
            .all(|t| t["to"] != "queued" || t["from"].is_null()),
        "the run itself never went back"
    );
    let slow = &status["jobs"][0];
    assert_eq!(slow["attempt"], 2, "{slow}");
    // Nothing is left running anywhere.
    assert!(
        status["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .all(|j| j["state"] == "succeeded")
    );
}

/// Containers whose `slipway.source` label is this directory.
fn containers_for(source: &Path) -> usize {
    let filter = format!("label=slipway.source={}", source.display());
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &filter])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_restarted_server_removes_the_containers_its_killed_predecessor_left() {
    common::require_docker();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = format!(
        "jobs:\n  stuck:\n    image: {}\n    steps: [\"sleep 600\"]\n",
        common::BUSYBOX
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(&data, &["--workers", "1", "--lease-seconds", "2"]);
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    let source = server
        .data_dir
        .canonicalize()
        .expect("data dir")
        .join("repos/1.git");
    server.wait_until("the job's container", Duration::from_secs(30), || {
        containers_for(&source) == 1
    });
    server.kill9();
    assert_eq!(
        containers_for(&source),
        1,
        "a SIGKILLed server cannot remove its container"
    );
    let server = ServerProcess::start(&data, &["--workers", "0"]);
    server.wait_until(
        "the orphaned container to go",
        Duration::from_secs(30),
        || containers_for(&source) == 0,
    );
}

#[test]
fn agents_share_cache_entries_through_the_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = "jobs:\n  deps:\n    cache:\n      key: deps-v1\n      paths: [deps]\n    steps:\n      - run: if [ -f deps/ok ]; then echo cache-hit; else mkdir -p deps && touch deps/ok && echo filled; fi\n";
    let remote = Remote::new(tmp.path(), pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    server.add_project(&remote, &[]);
    let mut first = AgentProcess::start(&server, "first", &tmp.path().join("agent1"));
    assert!(server.cli(&["trigger", "demo", "--wait"]).status.success());
    first.kill9();
    // A second agent, with an empty disk, gets the entry the first one saved.
    let _second = AgentProcess::start(&server, "second", &tmp.path().join("agent2"));
    let out = server.cli(&["trigger", "demo", "--wait"]);
    let log = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("deps │ cache-hit"), "{log}");
    assert!(log.contains("cache: restored `deps-v1`"), "{log}");
}
