//! Attacks: secrets. A branch nobody reviewed cannot ask for a protected
//! secret, an encoded secret is still masked, and nobody else on the host can
//! read the data directory.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use crate::common::server::{Remote, ServerProcess, commit_file, git};
use crate::common::service::succeeded;
use crate::common::{Repo, text};

const KEY: &str = "the-deploy-key-7";

fn pipeline() -> String {
    format!(
        "jobs:\n  deploy:\n    secrets: [DEPLOY_KEY]\n    steps:\n      - run: test \"$DEPLOY_KEY\" = {KEY} && echo got the key\n"
    )
}

/// A remote whose `feature` branch is a developer's unreviewed push.
fn remote_with_feature(root: &Path) -> Remote {
    let remote = Remote::new(root, &pipeline());
    git(&remote.work, &["checkout", "-q", "-b", "feature"]);
    commit_file(&remote.work, "feature.txt", "mine", "feature work");
    git(&remote.work, &["push", "-q", "origin", "feature"]);
    remote
}

fn trigger(server: &ServerProcess, branch: &str) -> (bool, String) {
    let out = server.cli(&["trigger", "demo", "--branch", branch, "--wait"]);
    (out.status.success(), text(&out))
}

#[test]
fn a_feature_branch_job_does_not_get_a_protected_secret() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = remote_with_feature(tmp.path());
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    server.add_project(&remote, &["--branch", "main"]);
    server.set_secret("demo", "DEPLOY_KEY", KEY);

    let (ok, out) = trigger(&server, "feature");
    let status = server.run_status("demo/1").to_string();
    eprintln!("feature branch, default scope: ok={ok}\n{out}\n{status}");
    assert!(!ok, "the feature branch's job ran with the key:\n{out}");
    assert!(
        status.contains("DEPLOY_KEY") && status.contains("protected branches"),
        "the job says why: {status}"
    );
    let (ok, out) = trigger(&server, "main");
    assert!(ok, "a watched branch gets it: {out}");

    let listed = text(&server.cli(&["secret", "list", "demo"]));
    assert!(
        listed.contains("DEPLOY_KEY") && listed.contains("protected branches"),
        "{listed}"
    );

    // The admin widens it on purpose.
    succeeded(&server.cli_with_input(
        &["secret", "set", "demo", "DEPLOY_KEY", "--any-branch"],
        KEY,
    ));
    let (ok, out) = trigger(&server, "feature");
    assert!(ok, "widened to any branch: {out}");
    let listed = text(&server.cli(&["secret", "list", "demo"]));
    assert!(listed.contains("any branch"), "{listed}");

    // A secret kept to deployments reaches no job at all.
    succeeded(&server.cli_with_input(
        &[
            "secret",
            "set",
            "demo",
            "DEPLOY_KEY",
            "--no-jobs",
            "--environment",
            "prod",
        ],
        KEY,
    ));
    let (ok, _) = trigger(&server, "main");
    assert!(!ok, "a deployment-only secret reached a job");
}

const SECRET: &str = "Sup3r/s3cret+value?=&x~";

/// The middle two thirds of an encoding: what must never show.
fn core(encoded: &str) -> String {
    let n = encoded.len();
    encoded[n / 6..n - n / 6].to_string()
}

#[test]
fn base64_hex_and_url_encodings_of_a_secret_are_masked() {
    let repo = Repo::new(
        r#"
jobs:
  leak:
    secrets: [API_TOKEN]
    steps:
      - run: |
          printf %s "$API_TOKEN" | base64 -w0; echo
          printf %s "x$API_TOKEN" | base64 -w0; echo
          printf %s "xy$API_TOKEN" | base64 -w0; echo
          printf %s "$API_TOKEN" | base64 -w0 | tr '+/' '-_' | tr -d '='; echo
          printf %s "x$API_TOKEN" | base64 -w0 | tr '+/' '-_'; echo
          printf %s "$API_TOKEN" | od -An -tx1 | tr -d ' \n'; echo
          printf %s "$API_TOKEN" | od -An -tx1 | tr -d ' \n' | tr a-f A-F; echo
          python3 -c 'import os,urllib.parse;print(urllib.parse.quote(os.environ["API_TOKEN"],safe=""))'
          python3 -c 'import os,urllib.parse;print(urllib.parse.quote(os.environ["API_TOKEN"],safe="").lower())'
          echo "plain $API_TOKEN"
"#,
        &[],
    );
    let out = repo.slipway(&["run", "--secret", &format!("API_TOKEN={SECRET}")]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let std = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let percent: String = SECRET
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let forms = [
        ("base64", std.encode(SECRET)),
        ("base64 shifted 1", std.encode(format!("x{SECRET}"))),
        ("base64 shifted 2", std.encode(format!("xy{SECRET}"))),
        ("base64url", url.encode(SECRET)),
        ("base64url shifted 1", url.encode(format!("x{SECRET}"))),
        ("hex", hex::encode(SECRET)),
        ("HEX", hex::encode_upper(SECRET)),
        ("URL", percent.clone()),
        ("url", percent.to_lowercase()),
        ("plain", SECRET.to_string()),
    ];
    let log = std::fs::read_to_string(repo.run_dir(1).join("leak.log")).expect("log");
    eprintln!("{log}");
    let shown: Vec<&str> = forms
        .iter()
        .filter(|(_, e)| log.contains(&core(e)) || all.contains(&core(e)))
        .map(|(name, _)| *name)
        .collect();
    assert!(shown.is_empty(), "shown unmasked: {shown:?}\n{log}");
    assert!(log.matches("***").count() >= forms.len(), "{log}");
}

/// Every file and directory under `root` whose mode lets others than the owner in.
fn too_open(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut open = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            open.push((p.clone(), mode));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).expect("read_dir").flatten() {
                stack.push(e.path());
            }
        }
    }
    open
}

fn open_everything(root: &Path) {
    let ok = std::process::Command::new("chmod")
        .args(["-R", "go+rX"])
        .arg(root)
        .status()
        .expect("chmod")
        .success();
    assert!(ok);
}

#[test]
fn the_data_directory_is_private_and_an_old_one_is_tightened_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(
        tmp.path(),
        "jobs:\n  build:\n    steps:\n      - run: mkdir -p out && echo hi > out/a\n    artifacts: [out/]\n",
    );
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(&data, &[]);
    server.add_project(&remote, &["--branch", "main"]);
    let (ok, out) = trigger(&server, "main");
    assert!(ok, "{out}");
    server.set_secret("demo", "X", "y");
    let open = too_open(&data);
    eprintln!("open to others on a new data directory: {open:?}");
    assert!(open.is_empty(), "{open:#?}");

    // A data directory from before (or touched by hand) is closed at start.
    server.kill9();
    open_everything(&data);
    assert!(!too_open(&data).is_empty());
    let server = ServerProcess::start(&data, &[]);
    server.wait_until("the server answers", Duration::from_secs(10), || {
        server.cli(&["runs", "demo"]).status.success()
    });
    let open = too_open(&data);
    assert!(open.is_empty(), "after a restart: {open:#?}");
}
