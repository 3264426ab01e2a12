//! Attacks on "approvals count people" (issue 12, round 2): one human with
//! two users of one email approving twice, the person who triggered or
//! pushed a release approving its automatic deployment, and a job's registry
//! token living on into the job's next attempt.

use std::process::{Command, Output};
use std::time::Duration;

use super::support::{admin_post, agent_post, claim, image_job_queued, start_upload};
use crate::common::server::{Remote, ServerProcess, commit_as, github_push_body};
use crate::common::service::{cli_as, environment, refused, status, succeeded, token};

/// `slipway user add NAME --email EMAIL`, a developer.
fn add_user(server: &ServerProcess, name: &str, email: &str) -> Output {
    server.add_user(name, "developer", email)
}

/// `POST /api/v1/tokens` as the admin; returns (status, answer).
fn create_token(server: &ServerProcess, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let (code, text) = admin_post(server, "tokens", &body.to_string());
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[test]
fn one_email_is_one_person() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    // `token create alice-laptop --email` makes the person alice-laptop...
    let (code, laptop) = create_token(
        &server,
        &serde_json::json!({"name": "alice-laptop", "role": "developer", "email": "alice@example.com"}),
    );
    assert_eq!(code, 201, "{laptop}");
    // ...so a user `alice` with that email (in another case) would be a second person.
    let second = add_user(&server, "alice", "Alice@Example.com");
    eprintln!(
        "user add alice with alice-laptop's email: {} {}",
        second.status,
        String::from_utf8_lossy(&second.stderr).trim()
    );
    refused(&second, "alice-laptop");
    // Another token with the email, in any case, belongs to the same person.
    let (code, phone) = create_token(
        &server,
        &serde_json::json!({"name": "alice-phone", "role": "developer", "email": "ALICE@example.com"}),
    );
    assert_eq!(code, 201, "{phone}");
    assert_eq!(phone["user"], laptop["user"], "two people for one email");
    // A token of another person cannot carry her email either.
    succeeded(&add_user(&server, "bob", "bob@example.com"));
    let (code, answer) = create_token(
        &server,
        &serde_json::json!({"name": "bob-ci", "role": "developer", "user": "bob", "email": "alice@example.com"}),
    );
    eprintln!("token of bob with alice's email: {code} {answer}");
    assert_eq!(code, 400, "{answer}");
}

/// A project whose `staging` takes every release of main by itself, once one
/// developer approves.
const AUTO_APPROVED: &str = r#"jobs:
  page:
    steps:
      - echo ok > index.html
    artifacts: [index.html]
environments:
  staging:
    branch: main
    target: { local: { command: python3 -m http.server $PORT --bind 127.0.0.1 } }
    health: { http: /index.html }
    approval: { required: REQUIRED, role: developer }
"#;

fn auto_approved(tmp: &std::path::Path, required: u32) -> (Remote, ServerProcess, String) {
    let remote = Remote::new(
        tmp,
        &AUTO_APPROVED.replace("REQUIRED", &required.to_string()),
    );
    let server = ServerProcess::start(&tmp.join("data"), &["--workers", "1"]);
    let secret = server.add_project(&remote, &[]);
    (remote, server, secret)
}

/// The deployment to staging once it (of release `version`, when given)
/// waits for approval.
fn waiting_for(server: &ServerProcess, version: Option<&str>) -> serde_json::Value {
    let what = match version {
        Some(version) => format!("staging's deployment of release {version} waits for approval"),
        None => "staging's deployment waits for approval".to_string(),
    };
    let mut latest = serde_json::Value::Null;
    server.wait_until(&what, Duration::from_secs(60), || {
        latest = environment(&status(server, "demo"), "staging")["latest"].clone();
        version.is_none_or(|version| latest["release"] == version)
            && latest["state"] == "awaiting_approval"
    });
    latest
}

/// `approve ID` as `token`, which must be refused naming `reason`; `who`
/// says on stderr who tried.
fn approval_refused(
    server: &ServerProcess,
    token: &str,
    id: &str,
    note: &str,
    who: &str,
    reason: &str,
) {
    let out = cli_as(server, token, &["approve", id, "-m", note]);
    eprintln!(
        "{who} approves: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    refused(&out, reason);
}

/// Two users with one email, as a database from before emails were unique
/// may hold them: the second one's approval is the same human's.
#[test]
fn an_approval_by_an_earlier_approvers_email_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_remote, server, _) = auto_approved(tmp.path(), 2);
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    let id = waiting_for(&server, None)["id"].to_string();
    let laptop = token(&server, "carol-laptop", "developer", "carol@example.com");
    // What `user add carol --email CAROL@…` made before emails were unique.
    let db = server.data_dir.join("slipway.db");
    let inserted = Command::new("sqlite3")
        .arg(&db)
        .arg(".timeout 5000")
        .arg("INSERT INTO users (name, password_hash, role, email, groups_json, created_at) VALUES ('carol', '!', 'developer', 'CAROL@example.com', '[]', 0)")
        .output()
        .expect("sqlite3");
    assert!(inserted.status.success(), "{inserted:?}");
    let (code, ci) = create_token(
        &server,
        &serde_json::json!({"name": "carol-ci", "role": "developer", "user": "carol"}),
    );
    assert_eq!(code, 201, "{ci}");
    let ci = ci["token"].as_str().expect("token").to_string();

    succeeded(&cli_as(&server, &laptop, &["approve", &id, "-m", "ok"]));
    let second = cli_as(&server, &ci, &["approve", &id, "-m", "ok again"]);
    let state = environment(&status(&server, "demo"), "staging")["latest"]["state"].clone();
    eprintln!(
        "second approval by the same email: {} {} -> {state}",
        second.status,
        String::from_utf8_lossy(&second.stderr).trim()
    );
    refused(&second, "carol@example.com");
    assert_eq!(state, "awaiting_approval", "one email made two approvals");
}

#[test]
fn the_person_who_triggered_a_release_cannot_approve_its_automatic_deployment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_remote, server, _) = auto_approved(tmp.path(), 1);
    let paul = token(&server, "paul", "developer", "paul@example.com");
    succeeded(&cli_as(
        &server,
        &paul,
        &["trigger", "demo", "--branch", "main", "--wait"],
    ));
    let latest = waiting_for(&server, None);
    eprintln!(
        "requested by {}, excluded {}",
        latest["requested_by"], latest["pending"]["excluded"]
    );
    assert_eq!(latest["requested_by"], "paul", "{latest}");
    let excluded = latest["pending"]["excluded"].to_string();
    assert!(
        excluded.contains("paul (started run 1)") && !excluded.contains("\"run 1"),
        "{excluded}"
    );
    let id = latest["id"].to_string();
    approval_refused(
        &server,
        &paul,
        &id,
        "mine, fine",
        "the triggering person",
        "started run 1",
    );
    // Somebody else may.
    let quinn = token(&server, "quinn", "developer", "quinn@example.com");
    succeeded(&cli_as(&server, &quinn, &["approve", &id, "-m", "ok"]));
}

/// A GitHub push delivery of `commit` on main, pushed by `pusher`, signed.
fn push_by(
    server: &ServerProcess,
    secret: &str,
    commit: &str,
    pusher: (&str, &str),
) -> (u16, String) {
    let mut body = github_push_body(commit);
    body["pusher"] = serde_json::json!({ "name": pusher.0, "email": pusher.1 });
    body["sender"] = serde_json::json!({ "login": pusher.0 });
    server.github_push("demo", Some(secret), "people-1", &body)
}

/// Wendy (with her email as `email`) pushes a commit Victor wrote, and the
/// push is delivered; returns her token.
fn wendy_pushes_victors_commit(
    remote: &Remote,
    server: &ServerProcess,
    secret: &str,
    email: &str,
) -> String {
    std::fs::write(remote.work.join("change.txt"), "x").expect("write");
    commit_as(
        &remote.work,
        ("Victor", "victor@example.com"),
        "a change",
        &[],
    );
    remote.push();
    let commit = remote.head();
    let wendy = token(server, "wendy", "developer", "wendy@example.com");
    let (code, answer) = push_by(server, secret, &commit, ("wendy", email));
    assert_eq!(code, 202, "{answer}");
    wendy
}

#[test]
fn the_person_who_pushed_cannot_approve_the_automatic_deployment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (remote, server, secret) = auto_approved(tmp.path(), 1);
    // Wendy pushes a commit someone else wrote (authorship proves nothing).
    let wendy = wendy_pushes_victors_commit(&remote, &server, &secret, "Wendy@Example.com");
    let latest = waiting_for(&server, None);
    eprintln!(
        "requested by {}, excluded {}",
        latest["requested_by"], latest["pending"]["excluded"]
    );
    assert!(
        latest["requested_by"].to_string().contains("wendy"),
        "{latest}"
    );
    let id = latest["id"].to_string();
    approval_refused(&server, &wendy, &id, "lgtm", "the pusher", "pushed");
}

/// A job's registry token is its attempt's: once the job was given back and
/// claimed again, the first attempt's token opens nothing.
#[test]
fn a_first_attempts_registry_token_is_refused_during_the_next_attempt() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, agent) = image_job_queued(tmp.path());
    let upload = |password: &str| start_upload(&server, password, "ci/demo");
    let (job, first) = claim(&server, &agent);
    assert_eq!(upload(&first).0, 202, "the first attempt's own token");
    let (code, body) = agent_post(
        &server,
        &agent,
        &format!("jobs/{job}/release"),
        r#"{"worker":"fake","reason":"given back by the test"}"#,
    );
    assert!((200..300).contains(&code), "release: {code} {body}");
    let (again, second) = claim(&server, &agent);
    assert_eq!(again, job, "the same job, its second attempt");
    let (old, body) = upload(&first);
    let (new, _) = upload(&second);
    eprintln!("during attempt 2: attempt 1's token {old} {body}, attempt 2's token {new}");
    assert_eq!(new, 202, "the second attempt's own token");
    assert_eq!(
        old, 401,
        "the first attempt's token works in the second: {body}"
    );
}

#[test]
fn the_pusher_cannot_approve_after_someone_else_reruns_or_triggers_the_commit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (remote, server, secret) = auto_approved(tmp.path(), 1);
    let wendy = wendy_pushes_victors_commit(&remote, &server, &secret, "wendy@example.com");
    waiting_for(&server, Some("1"));

    // Someone else runs Wendy's commit again: the run that makes the release
    // is theirs, the code is still what Wendy pushed.
    for (again, version) in [
        (&["rerun", "demo/1"][..], "2"),
        (&["trigger", "demo", "--branch", "main"][..], "3"),
    ] {
        succeeded(&server.cli(again));
        let latest = waiting_for(&server, Some(version));
        let id = latest["id"].to_string();
        println!("{again:?}: excluded {}", latest["pending"]["excluded"]);
        let who = format!("the pusher of release {version}");
        approval_refused(&server, &wendy, &id, "lgtm", &who, "pushed the commit run");
        assert!(
            latest["pending"]["excluded"]
                .to_string()
                .contains("pushed run 1"),
            "{latest}"
        );
    }
}
