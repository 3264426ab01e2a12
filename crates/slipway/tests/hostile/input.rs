//! Attacks: hostile input. Sizes are checked before anything is read, nothing
//! refused is stored, long steps run, names are restricted, bad paths are 404
//! or 400 (never 500), and the login is neither forgeable from another site
//! nor answered with a cookie a plain-HTTP hop could carry.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::peak_rss_kib;
use crate::common::server::{PASSWORD, Remote, ServerProcess, commit_file};
use crate::common::service::succeeded;
use crate::common::{Repo, text};

const PIPELINE: &str = "jobs:\n  build:\n    steps:\n      - run: echo built\n";

/// `curl ARGS`: the status, the response headers and the body.
fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    let (rest, code) = all.rsplit_once('\n').expect("a status line");
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (
        code.trim().parse().unwrap_or(0),
        headers.to_string(),
        body.to_string(),
    )
}

/// Adds a UI user with [`PASSWORD`].
fn add_user(server: &ServerProcess, name: &str) {
    succeeded(&server.add_user(name, "developer", "u@example.com"));
}

/// POSTs the login form with extra curl arguments; returns what curl returned.
fn post_login(server: &ServerProcess, name: &str, extra: &[&str]) -> (u16, String, String) {
    let url = format!("{}/ui/login", server.url);
    let form = format!("name={name}&password={PASSWORD}&next=/ui");
    let mut args = vec!["-d", form.as_str()];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

fn session_cookie(headers: &str) -> Option<String> {
    headers
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: slipway_session=")
        })
        .map(str::to_string)
}

/// Bytes of the SQLite database and its write-ahead log.
fn database_bytes(data: &Path) -> u64 {
    ["slipway.db", "slipway.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn a_huge_pipeline_file_is_refused_before_it_is_read_and_nothing_of_it_is_stored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), PIPELINE);
    // 100 MB: a valid pipeline followed by comment lines.
    let mut huge = String::with_capacity(100 << 20);
    huge.push_str(PIPELINE);
    let line = format!("# {}\n", "x".repeat(1021));
    while huge.len() < 100 << 20 {
        huge.push_str(&line);
    }
    commit_file(&remote.work, ".slipway.yml", &huge, "a huge pipeline");
    drop(huge);
    remote.push();
    let data = tmp.path().join("data");
    let server = ServerProcess::start(&data, &[]);
    server.add_project(&remote, &["--branch", "main"]);
    let (rss_before, db_before) = (peak_rss_kib(server.child.id()), database_bytes(&data));

    let triggers: Vec<_> = (0..4)
        .map(|_| {
            server
                .cli_cmd(&["trigger", "demo", "--branch", "main"])
                .stdout(Stdio::null())
                .spawn()
                .expect("trigger")
        })
        .collect();
    for mut t in triggers {
        t.wait().expect("trigger ends");
    }
    server.wait_until("4 failed runs", Duration::from_secs(60), || {
        let runs = server.json(&["runs", "demo"]);
        runs.as_array()
            .is_some_and(|r| r.len() == 4 && r.iter().all(|run| run["state"] == "failed"))
    });
    let status = server.run_status("demo/1");
    let reason = status["run"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let grown_kib = peak_rss_kib(server.child.id()).saturating_sub(rss_before);
    let db_grown = database_bytes(&data).saturating_sub(db_before);
    eprintln!("peak RSS grew {grown_kib} KiB, database grew {db_grown} bytes; reason: {reason}");
    assert!(reason.contains("1 MiB"), "the run says why: {status}");
    assert!(grown_kib < 16 * 1024, "peak RSS grew {grown_kib} KiB");
    assert!(db_grown < 1 << 20, "the database grew {db_grown} bytes");
}

#[test]
fn a_megabyte_run_step_runs() {
    let body: String = (0..9_500)
        .map(|i| format!("          : {i:05} {}\n", "y".repeat(88)))
        .collect();
    let pipeline =
        format!("jobs:\n  long:\n    steps:\n      - run: |\n{body}          echo long-step-ran\n");
    assert!(pipeline.len() > 1_000_000 && pipeline.len() < 1 << 20);
    let repo = Repo::new(&pipeline, &[]);
    let out = repo.slipway(&["run"]);
    let all = text(&out);
    let tail: String = all
        .chars()
        .rev()
        .take(2000)
        .collect::<String>()
        .chars()
        .rev()
        .collect();
    assert!(out.status.success(), "{tail}");
    assert!(all.contains("long-step-ran"), "{tail}");
}

#[test]
fn dot_names_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    let auth = format!("Authorization: Bearer {}", server.token);
    let url = format!("{}/api/v1/projects", server.url);
    for name in [".", "..", "-x", ".hidden"] {
        let body = format!(r#"{{"name":"{name}","git":"/nowhere"}}"#);
        let (status, _, answer) = curl(&[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            &url,
        ]);
        eprintln!("project `{name}`: {status} {answer}");
        assert_eq!(status, 400, "project `{name}`: {answer}");
        assert!(answer.contains("project name"), "{answer}");
    }
}

/// A server with one project, one run and a logged-in developer; returns the cookie jar.
fn server_with_a_run(tmp: &Path) -> (ServerProcess, std::path::PathBuf) {
    let remote = Remote::new(tmp, PIPELINE);
    let server = ServerProcess::start(&tmp.join("data"), &[]);
    server.add_project(&remote, &["--branch", "main"]);
    let out = server.cli(&["trigger", "demo", "--branch", "main", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    add_user(&server, "dev");
    let jar = tmp.join("cookies");
    let jar_s = jar.to_str().expect("utf8");
    let (status, headers, _) = post_login(&server, "dev", &["-c", jar_s]);
    assert_eq!(status, 303, "{headers}");
    (server, jar)
}

#[test]
fn unknown_or_malformed_ids_are_404_or_400_never_500() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, jar) = server_with_a_run(tmp.path());
    let jar = jar.to_str().expect("utf8");
    let auth = format!("Authorization: Bearer {}", server.token);
    let pages = [
        "/ui/projects/demo/runs/999",
        "/ui/projects/demo/runs/-1",
        "/ui/projects/demo/runs/abc",
        "/ui/projects/demo/runs/99999999999999999999999",
        "/ui/projects/nope/runs/1",
        "/ui/jobs/999999/log",
        "/ui/jobs/abc/log",
        "/ui/runs/999999/stream",
        "/ui/projects/demo/releases/9.9.9",
        "/ui/projects/demo/releases/..",
        "/ui/projects/demo/environments/nope",
        "/ui/projects/demo/metrics?window=abc",
        "/api/v1/projects/demo/runs/999",
        "/api/v1/projects/demo/runs/abc",
        "/api/v1/jobs/999999/log",
        "/api/v1/projects/demo/releases/9.9.9",
    ];
    let mut seen = Vec::new();
    for page in pages {
        let url = format!("{}{page}", server.url);
        let (status, _, body) = curl(&["-b", jar, "-H", &auth, "-m", "5", &url]);
        seen.push(format!("{page} → {status}"));
        assert!(
            matches!(status, 400 | 404),
            "{page} answered {status}: {body}\n{seen:?}"
        );
    }
    eprintln!("{seen:#?}");
    // The known run is a page.
    let (status, _, _) = curl(&[
        "-b",
        jar,
        &format!("{}/ui/projects/demo/runs/1", server.url),
    ]);
    assert_eq!(status, 200);
}

#[test]
fn a_line_break_in_next_is_never_a_header() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    add_user(&server, "dev");
    let evil = "/ui%0d%0aSet-Cookie:%20evil=1";
    let (status, headers, body) = curl(&[&format!("{}/ui/login?next={evil}", server.url)]);
    eprintln!("login form: {status}");
    assert!(matches!(status, 200 | 400), "{status} {headers} {body}");
    let url = format!("{}/ui/login", server.url);
    let form = format!("name=dev&password={PASSWORD}&next={evil}");
    let (status, headers, body) = curl(&["-d", &form, &url]);
    eprintln!("login post: {status}\n{headers}");
    assert!(matches!(status, 303 | 400), "{status} {headers} {body}");
    assert!(
        !headers.to_ascii_lowercase().contains("evil=1"),
        "{headers}"
    );
    if status == 303 {
        assert!(
            headers.contains("location: /ui\r\n") || headers.contains("location: /ui\n"),
            "{headers}"
        );
    }
}

#[test]
fn a_cross_site_login_post_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    add_user(&server, "dev");
    let (status, headers, body) = post_login(
        &server,
        "dev",
        &[
            "-H",
            "Origin: https://evil.example",
            "-H",
            "Sec-Fetch-Site: cross-site",
        ],
    );
    eprintln!("cross-site: {status}");
    assert_eq!(status, 403, "{headers}{body}");
    assert!(session_cookie(&headers).is_none(), "{headers}");
    assert!(body.contains("another site"), "{body}");
    // An Origin of another host without Fetch Metadata is refused too.
    let (status, _, _) = post_login(&server, "dev", &["-H", "Origin: http://evil.example"]);
    assert_eq!(status, 403);
    // The same form from the server's own pages, and from clients without
    // browser headers, logs in.
    let origin = format!("Origin: {}", server.url);
    let (status, _, _) = post_login(
        &server,
        "dev",
        &["-H", &origin, "-H", "Sec-Fetch-Site: same-origin"],
    );
    assert_eq!(status, 303);
    assert_eq!(post_login(&server, "dev", &[]).0, 303);
}

#[test]
fn the_cookie_is_secure_only_through_a_trusted_proxy_that_says_https() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let https = ["-H", "X-Forwarded-Proto: https"];
    let trusting =
        ServerProcess::start(&tmp.path().join("a"), &["--trusted-proxy", "127.0.0.1/32"]);
    add_user(&trusting, "dev");
    let (status, headers, _) = post_login(&trusting, "dev", &https);
    assert_eq!(status, 303);
    let cookie = session_cookie(&headers).expect("a cookie");
    eprintln!("trusted proxy, https: {cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let (_, headers, _) = post_login(&trusting, "dev", &[]);
    let cookie = session_cookie(&headers).expect("a cookie");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    // Anyone can send the header; from a peer not listed it means nothing.
    let untrusting =
        ServerProcess::start(&tmp.path().join("b"), &["--trusted-proxy", "10.0.0.0/8"]);
    add_user(&untrusting, "dev");
    let (_, headers, _) = post_login(&untrusting, "dev", &https);
    let cookie = session_cookie(&headers).expect("a cookie");
    eprintln!("untrusted peer, https header: {cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}
