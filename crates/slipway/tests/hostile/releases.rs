//! Attacks: releases (issue 12, round 2). Only protected branches make
//! releases, whatever a branch's own pipeline file declares, so no secret of
//! theirs reaches an unreviewed deployment; protected jobs never restore what
//! other branches' jobs cached; a rerun builds only what its branch still
//! holds and automatic deployments only move forward; an agent's upload for a
//! job it does not hold is refused before the server reads its body.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::support::{SERVED, admin_post, agent_token, audit, live_commit, log_of, peak_rss_kib};
use crate::common::server::{AgentProcess, Remote, ServerProcess, commit_file, git};
use crate::common::service::{status, succeeded};

fn releases(server: &ServerProcess) -> Vec<serde_json::Value> {
    server
        .json(&["releases", "-p", "demo"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Pushes a new branch `name` off the current commit holding `pipeline`.
fn push_branch(remote: &Remote, name: &str, pipeline: &str) -> String {
    git(&remote.work, &["checkout", "-q", "-b", name]);
    std::fs::write(remote.work.join("BRANCH"), name).expect("write");
    let commit = remote.commit(".slipway.yml", pipeline, &format!("{name}'s own pipeline"));
    git(&remote.work, &["push", "-q", "origin", name]);
    git(&remote.work, &["checkout", "-q", "main"]);
    commit
}

#[test]
fn a_branch_declaring_its_own_auto_environment_gets_no_release_and_no_secret() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), SERVED);
    let data = tmp.path().join("data");
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    server.add_project(&remote, &[]);
    server.set_secret("demo", "DB_PASSWORD", "hunter2-protected-only");
    let loot = tmp.path().join("loot");
    // What a developer pushes on `evil`: an environment of its own that takes
    // the branch at once, whose command reads the admin token and the
    // protected secret it lists.
    let evil = format!(
        r#"jobs:
  page:
    steps:
      - echo evil > index.html
    artifacts: [index.html]
environments:
  pwn:
    branch: evil
    deploy: auto
    secrets: [DB_PASSWORD]
    target:
      local:
        command: sh -c 'cat {token} > {loot}.token; echo "$DB_PASSWORD" > {loot}.secret; exec python3 -m http.server $PORT --bind 127.0.0.1'
    health: {{ http: /index.html }}
"#,
        token = data.join("admin.token").display(),
        loot = loot.display(),
    );
    push_branch(&remote, "evil", &evil);

    succeeded(&server.cli(&["trigger", "demo", "--branch", "evil", "--wait"]));
    server.wait_until(
        "the deployer looked at evil's run",
        Duration::from_secs(30),
        || audit(&server).contains("release-refused") || !releases(&server).is_empty(),
    );
    let made = releases(&server);
    let log = audit(&server);
    println!("releases: {made:?}");
    println!("audit: {log}");
    assert!(
        made.is_empty(),
        "a run of the unprotected branch `evil` became a release: {made:?}"
    );
    assert!(
        log.contains("not protected"),
        "the audit log says why evil made no release: {log}"
    );
    let envs = status(&server, "demo").to_string();
    assert!(!envs.contains("pwn"), "evil's environment exists: {envs}");
    // A person cannot deploy it by hand either: there is nothing to deploy.
    let by_hand = server.cli(&["deploy", "-p", "demo", "pwn", "1"]);
    assert!(!by_hand.status.success(), "evil was deployed by hand");
    for stolen in ["token", "secret"] {
        let file = tmp.path().join(format!("loot.{stolen}"));
        assert!(
            !file.exists(),
            "evil's deployment ran and took the {stolen}: {:?}",
            std::fs::read_to_string(&file)
        );
    }
    // main, the protected branch, still makes its release and deploys it.
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    let main_head = remote.commit("README", "main", "main moves on");
    remote.push();
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    server.wait_until("dev runs main", Duration::from_secs(60), || {
        live_commit(&server, "dev") == main_head
    });
}

/// A job whose cache (`target/`) and home are poisoned by the branch that ran
/// first, and that says what it found.
const CACHED: &str = r#"jobs:
  build:
    steps:
      - |
        if [ -f target/poison ]; then echo "restored cache from $(cat target/poison)"; fi
        if [ -f "$HOME/poison" ]; then echo "home written by $(cat "$HOME/poison")"; fi
        mkdir -p target
        echo "$SLIPWAY_BRANCH" > target/poison
        echo "$SLIPWAY_BRANCH" > "$HOME/poison"
    cache:
      key: target-same-for-all
      paths: [target]
"#;

/// Runs `feature`, then `main`; returns main's log.
fn main_after_feature(server: &ServerProcess, remote: &Remote) -> String {
    push_branch(remote, "feature", CACHED);
    succeeded(&server.cli(&["trigger", "demo", "--branch", "feature", "--wait"]));
    let feature = succeeded(&server.cli(&["logs", "demo/1"]));
    println!("feature's log:\n{feature}");
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    let main = succeeded(&server.cli(&["logs", "demo/2"]));
    println!("main's log:\n{main}");
    main
}

fn assert_not_poisoned(main: &str) {
    assert!(
        !main.contains("restored cache from feature"),
        "main restored the cache a feature-branch job saved: {main}"
    );
    assert!(
        !main.contains("home written by feature"),
        "main's job ran with a home a feature-branch job wrote: {main}"
    );
}

#[test]
fn a_feature_branch_cache_is_not_restored_in_a_main_job() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), CACHED);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    assert_not_poisoned(&main_after_feature(&server, &remote));
    // The feature branch still gets its own cache back.
    succeeded(&server.cli(&["trigger", "demo", "--branch", "feature", "--wait"]));
    let again = succeeded(&server.cli(&["logs", "demo/3"]));
    assert!(
        again.contains("restored cache from feature") && again.contains("home written by feature"),
        "{again}"
    );
}

#[test]
fn a_feature_branch_cache_is_not_restored_in_a_main_job_on_an_agent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), CACHED);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    server.add_project(&remote, &[]);
    let _agent = AgentProcess::start(&server, "agent-1", &tmp.path().join("agent"));
    let main = main_after_feature(&server, &remote);
    assert_not_poisoned(&main);
}

#[test]
fn a_rerun_of_a_commit_no_longer_on_its_branch_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), "jobs:\n  build:\n    steps: [\"true\"]\n");
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let removed = remote.commit("backdoor", "pushed by mistake", "a commit main will lose");
    remote.push();
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    // The commit is taken off main by a force-push.
    git(&remote.work, &["reset", "-q", "--hard", "HEAD~1"]);
    git(&remote.work, &["push", "-q", "--force", "origin", "main"]);

    let out = server.cli(&["rerun", "demo/1"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    println!("rerun: {:?} {said}", out.status.code());
    assert!(
        !out.status.success(),
        "a commit no longer on main was built again as main"
    );
    assert!(
        said.contains(&removed[..12]) && said.contains("not on branch `main`"),
        "the refusal names the commit and the branch: {said}"
    );
    let runs = server.json(&["runs", "demo"]);
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
}

#[test]
fn an_automatic_deploy_of_a_sideways_commit_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), SERVED);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let live = remote.commit("README", "live", "what dev runs");
    remote.push();
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    server.wait_until("dev runs the first commit", Duration::from_secs(60), || {
        live_commit(&server, "dev") == live
    });
    // main is force-pushed to a sibling: neither older nor newer than `live`.
    git(&remote.work, &["reset", "-q", "--hard", "HEAD~1"]);
    commit_file(
        &remote.work,
        "README",
        "beside",
        "a line beside what dev runs",
    );
    git(&remote.work, &["push", "-q", "--force", "origin", "main"]);
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    server.wait_until(
        "the deployer looked at release 2",
        Duration::from_secs(60),
        || audit(&server).contains("auto-deploy-refused") || live_commit(&server, "dev") != live,
    );
    let log = audit(&server);
    println!("audit: {log}");
    assert_eq!(
        live_commit(&server, "dev"),
        live,
        "dev moved sideways by itself"
    );
    assert!(log.contains("only moves forward"), "{log}");
    assert_eq!(
        releases(&server).len(),
        2,
        "the sideways commit is still a release a person may deploy"
    );
}

/// Sends a PUT of `size` bytes with `token`, `sent` bytes of it before
/// looking for the answer; returns the status line (empty if none came
/// within `wait`) and how long it took.
fn put_big(
    server: &ServerProcess,
    path: &str,
    token: &str,
    size: usize,
    sent: usize,
    wait: Duration,
) -> (String, Duration) {
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut conn = TcpStream::connect(&addr).expect("connect");
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-tar\r\nContent-Length: {size}\r\n\r\n"
    );
    let started = Instant::now();
    conn.write_all(head.as_bytes()).expect("head");
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < sent {
        // The server may close the connection as soon as it answered.
        if conn.write_all(&chunk).is_err() {
            break;
        }
        written += chunk.len();
    }
    conn.set_read_timeout(Some(wait)).expect("timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    (line, started.elapsed())
}

#[test]
fn an_agent_upload_for_a_job_it_does_not_hold_is_refused_before_its_body_is_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), "jobs:\n  build:\n    steps: [\"true\"]\n");
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    let rogue = agent_token(&server, "rogue");
    let rogue = rogue.as_str();
    const BIG: usize = 200 << 20;
    for path in [
        "/api/v1/agent/runs/1/artifacts/build",
        "/api/v1/agent/jobs/1/caches/some-key",
    ] {
        // Only the first MiB is sent: the answer must not wait for the rest.
        let (line, took) = put_big(&server, path, rogue, BIG, 1 << 20, Duration::from_secs(10));
        println!("{path}, 1 MiB of 200 sent: {line:?} after {took:?}");
        assert!(
            line.contains(" 403 "),
            "the server waited for the body of an agent holding no job: {line:?} after {took:?}"
        );
        // All 200 MB sent: the server's peak memory does not grow by it.
        let before = peak_rss_kib(server.child.id());
        let (line, took) = put_big(&server, path, rogue, BIG, BIG, Duration::from_secs(30));
        let grew = peak_rss_kib(server.child.id()).saturating_sub(before);
        println!("{path}, 200 MB sent: {line:?} after {took:?}, peak RSS +{grew} KiB");
        assert!(
            grew < 64 << 10,
            "the server took in the body before refusing it: peak RSS +{grew} KiB"
        );
    }
}

/// `docker ARGS`; whether it succeeded and what it printed.
fn docker(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The image id a local tag names (empty when there is none).
fn image_id(tag: &str) -> String {
    match docker(&["image", "inspect", "-f", "{{.Id}}", tag]) {
        (true, id) => id.trim().to_string(),
        (false, _) => String::new(),
    }
}

/// One job per attack on local images: replacing a base image an admin
/// imported, running another project's image, building `FROM` it.
fn image_attacks(base: &str, other: &str, own: &str) -> String {
    format!(
        r#"jobs:
  overwrite:
    image_build:
      dockerfile: Dockerfile.mine
      tags: ["{base}"]
  use_other:
    image: {other}
    steps: ["echo ran-$(echo other)-image"]
  from_other:
    image_build:
      dockerfile: Dockerfile.other
      tags: ["{own}"]
"#
    )
}

#[test]
fn a_job_cannot_replace_or_use_another_projects_local_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = format!("{}:latest", super::support::unique_tag("base"));
    let other_project = super::support::unique_tag("other");
    let other = format!("{other_project}:1");
    let own = format!("demo/{}:1", super::support::unique_tag("own"));
    // What an admin imported: no Slipway labels.
    assert!(docker(&["tag", "slipway/busybox:latest", &base]).0);
    let base_before = image_id(&base);

    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    let other_remote = Remote::new(
        &tmp.path().join("other"),
        &format!("jobs:\n  image:\n    image_build:\n      tags: [\"{other}\"]\n"),
    );
    commit_file(
        &other_remote.work,
        "Dockerfile",
        &format!("FROM {base}\nRUN echo other > /made-by\n"),
        "image",
    );
    other_remote.push();
    let bare = other_remote.bare.to_str().expect("utf8");
    succeeded(&server.cli(&["project", "add", &other_project, "--git", bare]));
    succeeded(&server.cli(&["trigger", &other_project, "--wait"]));
    assert!(
        !image_id(&other).is_empty(),
        "the other project built its own image"
    );

    let remote = Remote::new(
        &tmp.path().join("demo"),
        &image_attacks(&base, &other, &own),
    );
    commit_file(
        &remote.work,
        "Dockerfile.mine",
        &format!("FROM {base}\nRUN echo pwned > /made-by\n"),
        "mine",
    );
    commit_file(
        &remote.work,
        "Dockerfile.other",
        &format!("ARG FROM_IMAGE={other}\nFROM ${{FROM_IMAGE}}\n"),
        "from",
    );
    remote.push();
    server.add_project(&remote, &[]);
    let _ = server.cli(&["trigger", "demo", "--wait"]);
    let log = log_of(&server, "demo/1");
    let jobs = server.run_status("demo/1")["jobs"].clone();
    println!("jobs: {jobs}\nlog: {log}");

    let replaced = image_id(&base) != base_before;
    let ran_other = log
        .lines()
        .any(|l| l.trim_end().ends_with("ran-other-image"));
    let built_from_other = !image_id(&own).is_empty();
    for tag in [&base, &other, &own] {
        let _ = docker(&["rmi", "-f", tag]);
    }
    assert!(
        !replaced,
        "project demo replaced the imported base image {base}"
    );
    assert!(
        !ran_other,
        "project demo ran project {other_project}'s image"
    );
    assert!(
        !built_from_other,
        "project demo built FROM project {other_project}'s image"
    );
    assert!(log.contains("tags images only under its own name"), "{log}");
    assert!(
        log.contains(&format!("a job of project `{other_project}` built it")),
        "{log}"
    );
}

/// `trigger demo --branch BRANCH --wait` of a job that needs the protected
/// secret `DEPLOY_KEY`: whether the job got it.
fn got_protected_secret(server: &ServerProcess, branch: &str) -> bool {
    let out = server.cli(&["trigger", "demo", "--branch", branch, "--wait"]);
    println!(
        "trigger {branch}: {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

#[test]
fn a_default_branch_the_remote_left_protects_no_longer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = "jobs:\n  deploy:\n    secrets: [DEPLOY_KEY]\n    steps:\n      - run: test -n \"$DEPLOY_KEY\"\n";
    let remote = Remote::new(tmp.path(), pipeline);
    git(&remote.work, &["push", "-q", "origin", "main:trunk"]);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    // No --branch: the remote's default branch is the protected one.
    server.add_project(&remote, &[]);
    server.set_secret("demo", "DEPLOY_KEY", "the-key-7");
    assert!(
        got_protected_secret(&server, "main"),
        "the default branch gets it"
    );

    // The remote's admin makes `trunk` the default; `main` is now anyone's scratch branch.
    git(&remote.bare, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    assert!(
        !got_protected_secret(&server, "main"),
        "main still counted as the default branch after the remote moved to trunk"
    );
    assert!(
        got_protected_secret(&server, "trunk"),
        "the new default gets it"
    );

    // A default naming a branch that does not exist protects nothing.
    git(&remote.bare, &["symbolic-ref", "HEAD", "refs/heads/gone"]);
    assert!(
        !got_protected_secret(&server, "trunk"),
        "a stale default kept its protection"
    );
}

#[test]
fn branch_names_git_would_read_as_revisions_or_options_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), "jobs:\n  build:\n    steps: [\"true\"]\n");
    remote.commit("README", "two", "a second commit");
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    server.add_project(&remote, &[]);
    for branch in ["main~1", "main^", "main@{1}", "-x", "a..b", "main:x"] {
        let body = serde_json::json!({ "branch": branch }).to_string();
        let (code, said) = admin_post(&server, "projects/demo/trigger", &body);
        println!("trigger {branch:?}: {code} {said}");
        // 422 like every trigger the engine refuses (no such branch, commit not on it).
        assert_eq!(code, 422, "branch {branch:?} made a run: {said}");
        assert!(said.contains("not a valid branch name"), "{said}");
    }
    let runs = server.json(&["runs", "demo"]);
    assert_eq!(runs.as_array().map(Vec::len), Some(0), "{runs}");

    let git_url = remote.bare.to_str().expect("utf8");
    for pattern in ["a..b", "-x", "main@{1}"] {
        let body = serde_json::json!({ "name": "other", "git": git_url, "branches": [pattern] });
        let (code, said) = admin_post(&server, "projects", &body.to_string());
        println!("project add --branch {pattern:?}: {code} {said}");
        assert_eq!(code, 400, "pattern {pattern:?} accepted: {said}");
    }
    let (code, said) = admin_post(
        &server,
        "projects",
        &serde_json::json!({ "name": "other", "git": git_url, "branches": ["release/*"] })
            .to_string(),
    );
    assert_eq!(
        code, 201,
        "a glob pattern is still a valid branch pattern: {said}"
    );
}
