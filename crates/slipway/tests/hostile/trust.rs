//! Attacks on trust: only reviewed code becomes a release (a trigger naming a
//! commit from another branch, a replayed webhook), agents act only on the jobs
//! they hold, approvals count people (two tokens of one person, a forged
//! author, the requester approving), and an unsigned webhook reveals nothing.

use std::process::Command;
use std::time::Duration;

use super::support::{SERVED, agent_token, audit, curl, live_commit};
use crate::common::files_under;
use crate::common::server::{Remote, ServerProcess, commit_as, git, github_push_body};
use crate::common::service::{cli_as, environment, refused, status, succeeded, token};

/// A request with curl; returns (status, body).
fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[String],
    body: Option<&[u8]>,
) -> (u16, String) {
    let mut args = vec!["-X".to_string(), method.to_string()];
    if let Some(token) = token {
        args.extend(["-H".into(), format!("Authorization: Bearer {token}")]);
    }
    for h in headers {
        args.extend(["-H".into(), h.clone()]);
    }
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    if let Some(body) = body {
        std::fs::write(file.path(), body).expect("write body");
        args.extend([
            "--data-binary".into(),
            format!("@{}", file.path().display()),
        ]);
    }
    args.push(url.to_string());
    curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn json_body(value: &serde_json::Value) -> (Vec<String>, Vec<u8>) {
    (
        vec!["Content-Type: application/json".into()],
        value.to_string().into_bytes(),
    )
}

/// A GitHub push delivery of `commit` on main for project `project`,
/// signed with `secret` when given.
fn push_delivery(
    server: &ServerProcess,
    project: &str,
    secret: Option<&str>,
    delivery: &str,
    commit: &str,
) -> (u16, String) {
    server.github_push(project, secret, delivery, &github_push_body(commit))
}

fn runs(server: &ServerProcess, project: &str) -> Vec<serde_json::Value> {
    server
        .json(&["runs", project])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_trigger_of_a_commit_not_on_the_branch_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), SERVED);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let developer = token(&server, "mallory", "developer", "mallory@example.com");
    git(&remote.work, &["checkout", "-q", "-b", "evil"]);
    let evil = remote.commit("index.html", "unreviewed", "not merged anywhere");
    git(&remote.work, &["push", "-q", "origin", "evil"]);

    let url = format!("{}/api/v1/projects/demo/trigger", server.url);
    let (headers, body) = json_body(&serde_json::json!({ "branch": "main", "commit": evil }));
    let (code, answer) = send("POST", &url, Some(&developer), &headers, Some(&body));
    assert!(
        (400..500).contains(&code),
        "a commit only on `evil` was built as main: {code} {answer}"
    );
    assert!(
        answer.contains(&evil[..12]) && answer.contains("main"),
        "the refusal names the commit and the branch: {answer}"
    );
    assert!(runs(&server, "demo").is_empty(), "a run was made");

    // The same commit on its own branch, and main's own head, still build.
    let (headers, body) = json_body(&serde_json::json!({ "branch": "evil", "commit": evil }));
    let (code, answer) = send("POST", &url, Some(&developer), &headers, Some(&body));
    assert_eq!(code, 201, "{answer}");
    let (headers, body) = json_body(&serde_json::json!({ "branch": "main" }));
    let (code, answer) = send("POST", &url, Some(&developer), &headers, Some(&body));
    assert_eq!(code, 201, "{answer}");
}

#[test]
fn a_replayed_webhook_builds_nothing_and_deploys_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), SERVED);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    let secret = server.add_project(&remote, &[]);
    let old = remote.head();
    let (code, answer) = push_delivery(&server, "demo", Some(&secret), "d-1", &old);
    assert_eq!(code, 202, "{answer}");
    server.wait_until("dev runs the first commit", Duration::from_secs(60), || {
        live_commit(&server, "dev") == old
    });
    let new = remote.commit("README", "newer", "newer code");
    remote.push();
    let (code, answer) = push_delivery(&server, "demo", Some(&secret), "d-2", &new);
    assert_eq!(code, 202, "{answer}");
    server.wait_until("dev runs the newer commit", Duration::from_secs(60), || {
        live_commit(&server, "dev") == new
    });

    // The captured first delivery, sent again under a new delivery id.
    let (code, answer) = push_delivery(&server, "demo", Some(&secret), "d-replay", &old);
    let made = runs(&server, "demo").len();
    assert_eq!(
        made, 2,
        "the replay made a run of the old commit ({code} {answer})"
    );
    assert!(code < 300, "a replay is answered calmly: {code} {answer}");

    // A person may build the old commit again (it is on main), but the
    // automatic deployment does not take dev back to it.
    succeeded(&server.cli(&[
        "trigger", "demo", "--branch", "main", "--commit", &old, "--wait",
    ]));
    server.wait_until(
        "the deployer looked at the rebuilt release",
        Duration::from_secs(30),
        || audit(&server).contains("older than"),
    );
    assert_eq!(
        live_commit(&server, "dev"),
        new,
        "dev went back to the old commit"
    );
}

/// A tar archive holding one file.
fn tar_of(dir: &std::path::Path, name: &str, content: &str) -> Vec<u8> {
    let src = dir.join("tar-src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join(name), content).expect("write");
    let out = Command::new("tar")
        .arg("-cf")
        .arg("-")
        .arg("-C")
        .arg(&src)
        .arg(name)
        .output()
        .expect("tar");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn an_agent_cannot_write_what_a_job_it_does_not_hold_produced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline =
        "jobs:\n  build:\n    steps:\n      - echo honest > app.txt\n    artifacts: [app.txt]\n";
    let remote = Remote::new(tmp.path(), pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    let agent = agent_token(&server, "rogue");
    let job_id = server.run_status("demo/1")["jobs"][0]["id"]
        .as_i64()
        .expect("job id");
    let api = format!("{}/api/v1/agent", server.url);

    let poison = tar_of(tmp.path(), "app.txt", "poisoned");
    let (code, answer) = send(
        "PUT",
        &format!("{api}/runs/1/artifacts/build"),
        Some(&agent),
        &[],
        Some(&poison),
    );
    assert!(
        (400..500).contains(&code),
        "artifacts of a job the agent does not hold were taken: {code} {answer}"
    );
    let (code, answer) = send(
        "PUT",
        &format!("{api}/jobs/{job_id}/caches/poisoned-key"),
        Some(&agent),
        &[],
        Some(&poison),
    );
    assert!(
        (400..500).contains(&code),
        "a cache entry from an agent not holding the job was taken: {code} {answer}"
    );
    let (headers, body) = json_body(&serde_json::json!({ "seq": 99, "lines": ["forged line"] }));
    let (code, answer) = send(
        "POST",
        &format!("{api}/jobs/{job_id}/log"),
        Some(&agent),
        &headers,
        Some(&body),
    );
    assert!(
        (400..500).contains(&code),
        "log lines for a job the agent does not hold were taken: {code} {answer}"
    );
    let forged_gate = serde_json::json!({
        "worker": "rogue", "status": "succeeded", "exit_code": 0,
        "pushed": [{ "reference": "127.0.0.1:1/ci/demo:evil", "digest": format!("sha256:{}", "e".repeat(64)) }],
    });
    let (headers, body) = json_body(&forged_gate);
    let (code, answer) = send(
        "POST",
        &format!("{api}/jobs/{job_id}/finish"),
        Some(&agent),
        &headers,
        Some(&body),
    );
    assert!(
        (400..500).contains(&code),
        "results for a job the agent does not hold were taken: {code} {answer}"
    );

    // Nothing the agent sent reached the run, and a rerun ships the honest artifact.
    let run = server.run_status("demo/1");
    assert!(!run.to_string().contains("evil"), "{run}");
    let log = succeeded(&server.cli(&["logs", "demo/1"]));
    assert!(!log.contains("forged line"), "{log}");
    assert!(
        !server.data_dir.join("cache/1/poisoned-key").exists()
            && !server.data_dir.join("caches/1/poisoned-key").exists()
    );
    succeeded(&server.cli(&["rerun", "demo/1", "--failed"]));
    let admin = server.token.clone();
    let (code, tar) = send(
        "GET",
        &format!("{api}/runs/1/artifacts/build"),
        Some(&admin),
        &[],
        None,
    );
    assert!(
        code != 200 || !tar.contains("poisoned"),
        "the artifacts changed after the job succeeded"
    );
    let kept = server.data_dir.join("artifacts");
    let poisoned = walk_contains(&kept, "poisoned");
    assert!(
        !poisoned,
        "a run's artifacts hold what the rogue agent sent"
    );
}

fn walk_contains(dir: &std::path::Path, needle: &str) -> bool {
    files_under(dir)
        .iter()
        .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(needle)))
}

/// A project whose `prod` takes a person's request and waits for approvals;
/// the remote's last commit is authored as Dave but committed by Mallory.
const APPROVED: &str = r#"jobs:
  page:
    steps:
      - echo ok > index.html
    artifacts: [index.html]
environments:
  prod:
    branch: main
    deploy: manual
    target: { local: { command: python3 -m http.server $PORT --bind 127.0.0.1 } }
    health: { http: /index.html }
    approval: { required: 2, role: developer }
"#;

/// A server with release 1 of project `demo` made, and a deployment of it to
/// prod asked for by the developer `requester` (the admin without one);
/// returns the server, the deployment's id and the requester's token.
fn awaiting_approval(
    tmp: &std::path::Path,
    requester: Option<&str>,
) -> (ServerProcess, String, String) {
    let remote = Remote::new(tmp, APPROVED);
    std::fs::write(remote.work.join("feature.txt"), "mine").expect("write");
    commit_as(
        &remote.work,
        ("Mallory", "mallory@example.com"),
        "Dave's change, honest",
        &["--author", "Dave <dave@example.com>"],
    );
    remote.push();
    let server = ServerProcess::start(&tmp.join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    server.wait_until("release 1", Duration::from_secs(30), || {
        server
            .json(&["releases", "-p", "demo"])
            .to_string()
            .contains("\"version\":\"1\"")
    });
    let requester = match requester {
        Some(name) => token(&server, name, "developer", &format!("{name}@example.com")),
        None => server.token.clone(),
    };
    let asked = cli_as(&server, &requester, &["deploy", "-p", "demo", "prod", "1"]);
    succeeded(&asked);
    let id = environment(&status(&server, "demo"), "prod")["latest"]["id"].to_string();
    assert_eq!(
        environment(&status(&server, "demo"), "prod")["latest"]["state"],
        "awaiting_approval"
    );
    (server, id, requester)
}

#[test]
fn two_tokens_of_one_person_count_as_one_approval() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, id, _) = awaiting_approval(tmp.path(), None);
    let laptop = token(&server, "carol-laptop", "developer", "carol@example.com");
    let ci = token(&server, "carol-ci", "developer", "carol@example.com");
    succeeded(&cli_as(&server, &laptop, &["approve", &id, "-m", "ok"]));
    let second = cli_as(&server, &ci, &["approve", &id, "-m", "ok again"]);
    let state = environment(&status(&server, "demo"), "prod")["latest"]["state"].clone();
    assert_eq!(
        state,
        "awaiting_approval",
        "one person's two tokens made two approvals: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(!second.status.success(), "the second approval was taken");
}

#[test]
fn a_forged_author_does_not_let_the_real_committer_approve() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, id, _) = awaiting_approval(tmp.path(), None);
    let mallory = token(&server, "mallory", "developer", "mallory@example.com");
    let out = cli_as(&server, &mallory, &["approve", &id, "-m", "lgtm"]);
    refused(&out, "committed");
}

#[test]
fn the_person_who_asked_for_a_deployment_cannot_approve_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, id, erin) = awaiting_approval(tmp.path(), Some("erin"));
    let out = cli_as(&server, &erin, &["approve", &id, "-m", "mine, looks fine"]);
    refused(&out, "asked for");
}

#[test]
fn an_unsigned_webhook_answers_alike_for_a_project_that_exists_and_one_that_does_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), SERVED);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    server.add_project(&remote, &[]);
    let commit = remote.head();
    for secret in [None, Some("a guess")] {
        let known = push_delivery(&server, "demo", secret, "d-1", &commit);
        let unknown = push_delivery(&server, "no-such-project", secret, "d-1", &commit);
        assert_eq!(known.0, 401, "{known:?}");
        assert_eq!(
            known, unknown,
            "the answer tells whether the project exists (signed with {secret:?})"
        );
    }
}
