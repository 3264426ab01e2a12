//! Registry auth as clients expect it (issue 12, "What must hold" 8): a
//! challenge names every scope the operation needs, a bearer token that lacks
//! one is told `error="insufficient_scope"`, and oras-py, which fetches one
//! token per repository at the first challenge, can push and pull.

use std::path::Path;
use std::process::Command;

use crate::common::server::ServerProcess;

/// A server with an `ci` OCI repository and no workers.
fn registry(tmp: &Path) -> ServerProcess {
    let server = ServerProcess::start(&tmp.join("data"), &["--workers", "0"]);
    let out = server.cli(&["repo", "add", "ci", "--kind", "oci"]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    server
}

/// What a client sees of one request: status, lowercased header names, body.
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

/// `curl -X METHOD URL` with an optional `Authorization` value and extra arguments.
pub fn curl(method: &str, url: &str, auth: Option<&str>, extra: &[&str]) -> Answer {
    let headers = tempfile::NamedTempFile::new().expect("headers file");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", method, "-D"])
        .arg(headers.path())
        .args(["-o", "-", "-w", "\n%{http_code}"]);
    if method == "HEAD" {
        cmd.arg("-I");
    }
    if let Some(auth) = auth {
        cmd.args(["-H", &format!("Authorization: {auth}")]);
    }
    let out = cmd.args(extra).arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Answer {
        status: status.trim().parse().unwrap_or(0),
        headers: std::fs::read_to_string(headers.path())
            .unwrap_or_default()
            .lines()
            .map(|l| match l.split_once(": ") {
                Some((name, value)) => format!("{}: {value}\n", name.to_lowercase()),
                None => format!("{l}\n"),
            })
            .collect(),
        body: body.to_string(),
    }
}

/// The admin's API token as `docker login` sends it.
pub fn basic(server: &ServerProcess) -> String {
    use base64::Engine as _;
    let pair = format!("tester:{}", server.token);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A bearer token from `/v2/token` for `scope`, traded for the admin's credentials.
fn bearer_for(server: &ServerProcess, scope: &str) -> String {
    let answer = curl(
        "GET",
        &format!("{}/v2/token?service=slipway&scope={scope}", server.url),
        Some(&basic(server)),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("token JSON");
    format!("Bearer {}", body["token"].as_str().expect("a token"))
}

#[test]
fn a_push_is_challenged_for_pull_and_push_and_a_mount_for_its_source_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = registry(tmp.path());
    let upload = curl(
        "POST",
        &format!("{}/v2/ci/app/blobs/uploads/", server.url),
        None,
        &[],
    );
    assert_eq!(upload.status, 401, "{}", upload.body);
    let challenge = upload.header("www-authenticate");
    assert!(
        challenge.contains(r#"scope="repository:ci/app:pull,push""#),
        "{challenge}"
    );
    let mount = curl(
        "POST",
        &format!(
            "{}/v2/ci/app/blobs/uploads/?mount=sha256:{}&from=ci/base",
            server.url,
            "0".repeat(64)
        ),
        None,
        &[],
    );
    assert_eq!(mount.status, 401, "{}", mount.body);
    let challenge = mount.header("www-authenticate");
    assert!(
        challenge.contains(r#"scope="repository:ci/app:pull,push repository:ci/base:pull""#),
        "{challenge}"
    );
    // The check before an upload is where one-token clients get their token.
    let probe = curl(
        "HEAD",
        &format!("{}/v2/ci/app/blobs/sha256:{}", server.url, "0".repeat(64)),
        None,
        &[],
    );
    assert_eq!(probe.status, 401);
    assert!(
        probe
            .header("www-authenticate")
            .contains(r#"scope="repository:ci/app:pull,push""#),
        "{}",
        probe.headers
    );
}

#[test]
fn a_pull_only_token_trying_to_push_is_told_insufficient_scope() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = registry(tmp.path());
    let uploads = format!("{}/v2/ci/app/blobs/uploads/", server.url);
    let pull_only = bearer_for(&server, "repository:ci/app:pull");
    let refused = curl("POST", &uploads, Some(&pull_only), &[]);
    assert_eq!(refused.status, 401, "{}", refused.body);
    let challenge = refused.header("www-authenticate");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"scope="repository:ci/app:pull,push""#),
        "{challenge}"
    );
    // The scope the answer names is the one that works.
    let push = bearer_for(&server, "repository:ci/app:pull,push");
    let started = curl("POST", &uploads, Some(&push), &[]);
    assert_eq!(started.status, 202, "{}", started.body);
}

/// oras-py from the test venv (scripts/lib/python.sh installs it).
fn oras_python() -> String {
    let python = std::env::var("SLIPWAY_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/slipway/test-venv/bin/python")
    });
    let found = Command::new(&python)
        .args(["-c", "import oras.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test drives oras-py from {python}: run scripts/test, which installs it"
    );
    python
}

/// Pushes or pulls with oras-py's defaults: token auth from a `login`.
const ORAS: &str = r#"
import sys
import oras.client
host, token, target, verb, path = sys.argv[1:6]
client = oras.client.OrasClient(hostname=host, insecure=True)
client.login(username="tester", password=token, hostname=host)
if verb == "push":
    response = client.push(files=[path], target=target)
    print("status", response.status_code)
else:
    print("pulled", client.pull(target=target, outdir=path))
"#;

#[test]
fn oras_py_pushes_and_pulls_with_its_default_token_auth() {
    let python = oras_python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = registry(tmp.path());
    let host = server.url.trim_start_matches("http://").to_string();
    let target = format!("{host}/ci/notes:v1");
    let work = tmp.path().join("push");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join("notes.txt"), "release notes\n").expect("write");
    let oras = |verb: &str, path: &str, dir: &Path| {
        Command::new(&python)
            .args(["-c", ORAS, &host, &server.token, &target, verb, path])
            .current_dir(dir)
            .output()
            .expect("python runs")
    };
    let pushed = oras("push", "notes.txt", &work);
    assert!(
        pushed.status.success(),
        "oras-py push: {}",
        crate::common::text(&pushed)
    );
    let back = tmp.path().join("pulled");
    std::fs::create_dir_all(&back).expect("mkdir");
    let pulled = oras("pull", back.to_str().expect("utf8"), &back);
    assert!(
        pulled.status.success(),
        "oras-py pull: {}",
        crate::common::text(&pulled)
    );
    assert_eq!(
        std::fs::read_to_string(back.join("notes.txt")).expect("pulled file"),
        "release notes\n"
    );
}
