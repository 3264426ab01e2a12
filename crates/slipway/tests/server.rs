//! The server end to end: real git pushes, signed webhooks sent with curl,
//! polling, and logs followed live with the CLI.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::server::{GitHttpAuth, Remote, ServerProcess, github_push_body};

const PIPELINE: &str = "jobs:\n  build:\n    steps:\n      - run: echo built $SLIPWAY_COMMIT\n  test:\n    needs: [build]\n    steps: [echo tested]\n";

/// A GitHub push delivery of `commit` on main sent with curl; returns (HTTP status, body).
fn github_push(
    server: &ServerProcess,
    secret: Option<&str>,
    delivery: &str,
    commit: &str,
) -> (u16, String) {
    server.github_push("demo", secret, delivery, &github_push_body(commit))
}

fn runs(server: &ServerProcess) -> Vec<serde_json::Value> {
    server
        .json(&["runs", "demo"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_signed_webhook_starts_a_run_and_an_unsigned_one_does_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), PIPELINE);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "2"]);
    let secret = server.add_project(&remote, &[]);
    let commit = remote.commit("README", "hello", "docs");
    remote.push();

    let (status, body) = github_push(&server, None, "d-unsigned", &commit);
    assert_eq!(status, 401, "{body}");
    let (status, body) = github_push(&server, Some("not-the-secret"), "d-forged", &commit);
    assert_eq!(status, 401, "{body}");
    assert!(runs(&server).is_empty(), "a refused delivery created a run");

    let (status, body) = github_push(&server, Some(&secret), "d-1", &commit);
    assert_eq!(status, 202, "{body}");
    let (status, body) = github_push(&server, Some(&secret), "d-1", &commit);
    assert_eq!(
        (status, body.contains("\"duplicate\":true")),
        (200, true),
        "{body}"
    );
    assert_eq!(runs(&server).len(), 1, "a redelivery created a second run");

    // Follow the run to its end, then check it ran that commit.
    let out = server.cli(&["logs", "-f", "demo/1"]);
    let logs = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(logs.contains(&format!("build │ built {commit}")), "{logs}");
    let status = server.run_status("demo/1");
    assert_eq!(status["run"]["state"], "succeeded", "{status}");
    assert_eq!(status["run"]["commit"], commit.as_str());
    assert_eq!(status["run"]["trigger"], "webhook");
}

#[test]
fn polling_picks_up_a_pushed_commit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), PIPELINE);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &["--poll", "1s"]);
    // The first poll builds the current head; a push makes a second run.
    server.wait_until("the first polled run", Duration::from_secs(30), || {
        runs(&server).len() == 1
    });
    let commit = remote.commit("file.txt", "v2", "change");
    remote.push();
    server.wait_until(
        "a run for the pushed commit",
        Duration::from_secs(30),
        || runs(&server).iter().any(|r| r["commit"] == commit.as_str()),
    );
    let run = runs(&server)
        .into_iter()
        .find(|r| r["commit"] == commit.as_str())
        .expect("run");
    assert_eq!(run["trigger"], "poll");
    let out = server.cli(&["logs", "-f", &format!("demo/{}", run["number"])]);
    assert!(out.status.success());
    assert_eq!(
        server.run_status(&format!("demo/{}", run["number"]))["run"]["state"],
        "succeeded"
    );
}

#[test]
fn logs_follow_prints_a_line_while_its_job_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gate = tmp.path().join("gate");
    let pipeline = format!(
        "jobs:\n  slow:\n    steps:\n      - run: |\n          echo first-line\n          while [ ! -f {0} ]; do sleep 0.05; done\n          echo last-line\n",
        gate.display()
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    let mut follow = server
        .cli_cmd(&["logs", "-f", "demo/1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let first = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("first-line"));
    assert!(first.is_some(), "logs -f never printed the first line");
    // The job is still blocked on the gate: the line arrived live.
    assert_eq!(server.run_status("demo/1")["jobs"][0]["state"], "running");
    std::fs::write(&gate, "open").expect("open the gate");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("last-line")), "{rest:?}");
    assert!(follow.wait().expect("wait").success());
    assert_eq!(server.run_status("demo/1")["run"]["state"], "succeeded");
}

#[test]
fn an_invalid_pipeline_fails_the_run_with_the_validator_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(
        tmp.path(),
        "jobs:\n  build:\n    neds: []\n    steps: [true]\n",
    );
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    let reason = server.run_status("demo/1")["run"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains(".slipway.yml:3:5: error: unknown key `neds`"),
        "{reason}"
    );
}

#[test]
fn cancel_and_rerun_only_the_failed_jobs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let flag = tmp.path().join("fixed");
    let gate = tmp.path().join("gate");
    let pipeline = format!(
        "jobs:\n  build:\n    steps:\n      - run: echo built > out.txt\n    artifacts: [out.txt]\n  flaky:\n    needs: [build]\n    steps:\n      - run: test -f {0} && grep built out.txt\n  hang:\n    steps:\n      - run: while [ ! -f {1} ]; do sleep 0.05; done\n",
        flag.display(),
        gate.display()
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "2"]);
    server.add_project(&remote, &[]);
    // Run 1: flaky fails; hang blocks until the run is canceled.
    assert!(server.cli(&["trigger", "demo"]).status.success());
    server.wait_until("flaky to fail", Duration::from_secs(30), || {
        server.run_status("demo/1")["jobs"][1]["state"] == "failed"
    });
    let out = server.cli(&["cancel", "demo/1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = server.run_status("demo/1");
    assert_eq!(
        status["run"]["state"], "failed",
        "a failed job decides: {status}"
    );
    // Scripts read the outcome from the exit code: 1 for a failed run.
    assert_eq!(server.cli(&["run-status", "demo/1"]).status.code(), Some(1));
    assert_eq!(status["jobs"][2]["state"], "canceled");
    assert_eq!(status["jobs"][2]["reason"], "canceled by admin");
    std::fs::write(&gate, "").expect("gate");
    // Run 2 keeps build (and its artifact) and runs only the others again.
    std::fs::write(&flag, "").expect("fix");
    let out = server.cli(&["rerun", "demo/1", "--failed", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let status = server.run_status("demo/2");
    assert_eq!(status["run"]["state"], "succeeded", "{status}");
    assert_eq!(status["jobs"][0]["reason"], "kept from run 1");
    assert_eq!(status["jobs"][0]["attempt"], 0, "build did not run again");
    assert_eq!(status["run"]["trigger"], "rerun of 1");
}

#[test]
fn a_private_remote_is_fetched_with_credentials_from_project_secrets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    Remote::new(tmp.path(), PIPELINE);
    let http = GitHttpAuth::start(tmp.path(), "ci-bot", "s3cret-token");
    let url = format!("http://127.0.0.1:{}/remote.git", http.port);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    assert!(
        server
            .cli(&["project", "add", "demo", "--git", &url])
            .status
            .success()
    );

    let out = server.cli(&["trigger", "demo"]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        error.contains("set the project secrets GIT_USERNAME and GIT_PASSWORD"),
        "{error}"
    );

    server.set_secret("demo", "GIT_USERNAME", "ci-bot");
    server.set_secret("demo", "GIT_PASSWORD", "s3cret-token");
    let out = server.cli(&["trigger", "demo", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The password reached git only through its environment: not the mirror's config.
    let config =
        std::fs::read_to_string(server.data_dir.join("repos/1.git/config")).expect("mirror config");
    assert!(!config.contains("s3cret-token"), "{config}");
}

#[test]
fn a_run_whose_jobs_are_all_filtered_out_succeeds_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(
        tmp.path(),
        "jobs:\n  release:\n    branches: [release/*]\n    steps: [true]\n",
    );
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let status = server.run_status("demo/1");
    assert_eq!(status["run"]["state"], "succeeded");
    assert!(status["jobs"].as_array().expect("jobs").is_empty());
}

#[test]
fn run_status_exits_2_for_a_canceled_run_and_logs_end_quietly_into_a_closed_pipe() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gate = tmp.path().join("gate");
    // `loud` writes far more than a pipe holds (64 KiB), so the reader's
    // going away is certain to be seen by the writer.
    let pipeline = format!(
        "jobs:\n  loud:\n    steps:\n      - run: seq 1 30000\n  hang:\n    steps:\n      - run: while [ ! -f {} ]; do sleep 0.05; done\n",
        gate.display()
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "2"]);
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    server.wait_until("loud to finish", Duration::from_secs(30), || {
        server.run_status("demo/1")["jobs"][0]["state"] == "succeeded"
    });
    assert!(server.cli(&["cancel", "demo/1"]).status.success());
    std::fs::write(&gate, "").expect("gate");
    server.wait_until("the run to end", Duration::from_secs(30), || {
        server.run_status("demo/1")["run"]["state"] == "canceled"
    });
    assert_eq!(server.cli(&["run-status", "demo/1"]).status.code(), Some(2));
    assert_eq!(
        server
            .cli(&["run-status", "demo/1", "--json"])
            .status
            .code(),
        Some(2)
    );
    // `slipway logs | head`: once head has gone, slipway ends quietly.
    let piped = Command::new("sh")
        .args(["-c", "\"$0\" logs demo/1 | head -n 1"])
        .arg(env!("CARGO_BIN_EXE_slipway"))
        .env("SLIPWAY_URL", &server.url)
        .env("SLIPWAY_TOKEN", &server.token)
        .output()
        .expect("sh");
    let first = String::from_utf8_lossy(&piped.stdout);
    assert!(
        first.starts_with("loud │ ") && first.lines().count() == 1,
        "{first}"
    );
    let said = String::from_utf8_lossy(&piped.stderr);
    assert!(said.is_empty(), "slipway said into a closed pipe: {said}");
}

#[test]
fn an_empty_or_malformed_slipway_url_says_what_to_set() {
    for url in ["", "127.0.0.1:8420", "localhost"] {
        let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(["runs", "demo"])
            .env("SLIPWAY_URL", url)
            .env("SLIPWAY_TOKEN", "slw_x")
            .output()
            .expect("slipway runs");
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url:?}: {said}");
        assert!(said.contains("set SLIPWAY_URL"), "{url:?}: {said}");
        assert!(
            !said.contains("relative URL without a base"),
            "{url:?}: {said}"
        );
    }
}
