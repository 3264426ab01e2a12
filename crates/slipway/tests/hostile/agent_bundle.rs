//! An agent token holding any job of a run asks for the project's bundle
//! over and over, in parallel, and never reads the answer: each request
//! was a whole `git bundle create` held in the server's memory. Now one
//! bundle is made at a time per project, streamed as git writes it; the
//! others wait a bounded time, then get 503 with Retry-After; and an agent
//! that goes away frees the project for the next.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;

use super::agent_times::claim_any;
use super::support::{agent_token, curl};
use crate::common::server::{Remote, ServerProcess, git};
use crate::common::service::succeeded;

/// `POST /api/v1/agent/runs/1/bundle` asking for everything, as raw HTTP.
fn raw_request(server: &ServerProcess, agent: &str) -> String {
    let host = server.url.trim_start_matches("http://");
    let body = r#"{"have":[]}"#;
    format!(
        "POST /api/v1/agent/runs/1/bundle HTTP/1.1\r\nHost: {host}\r\n\
         Authorization: Bearer {agent}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn bundles_are_streamed_one_at_a_time_per_project() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(
        tmp.path(),
        "jobs:\n  build:\n    steps:\n      - run: echo hi\n",
    );
    // 24 MB nothing compresses: more than the pipes and sockets between
    // git and an agent that reads nothing hold.
    let status = Command::new("sh")
        .args(["-ec", "head -c 24000000 /dev/urandom > noise.bin"])
        .current_dir(&remote.work)
        .status()
        .expect("sh");
    assert!(status.success());
    git(&remote.work, &["add", "noise.bin"]);
    git(
        &remote.work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "noise",
        ],
    );
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    server.add_project(&remote, &[]);
    let agent = agent_token(&server, "greedy-agent");
    succeeded(&server.cli(&["trigger", "demo"]));
    claim_any(&server, &agent);

    // The first request's answer begins (its headers come once git wrote
    // the bundle's header), and is then never read.
    let host = server.url.trim_start_matches("http://");
    let mut held = TcpStream::connect(host).expect("connect");
    held.write_all(raw_request(&server, &agent).as_bytes())
        .expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        held.read_exact(&mut byte).expect("the answer begins");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        !head.contains("content-length"),
        "a bundle is streamed: {head}"
    );

    // A second request meanwhile waits its turn, then is told to come back.
    let auth = format!("Authorization: Bearer {agent}");
    let url = format!("{}/api/v1/agent/runs/1/bundle", server.url);
    let ask = |out: &str| {
        curl(&[
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"have":[]}"#,
            "-D",
            out,
            &url,
        ])
    };
    let headers = tmp.path().join("busy.headers");
    let (code, body) = ask(&headers.to_string_lossy());
    eprintln!("concurrent-bundle: {code} {body}");
    assert_eq!(code, 503, "{body}");
    let headers = std::fs::read_to_string(&headers)
        .expect("headers")
        .to_lowercase();
    assert!(headers.contains("retry-after: 10"), "{headers}");

    // The greedy agent goes: its git is killed, and the next agent is served.
    drop(held);
    let file = tmp.path().join("whole.bundle");
    let out = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-d", r#"{"have":[]}"#, "-o"])
        .arg(&file)
        .arg(&url)
        .output()
        .expect("curl");
    assert!(out.status.success(), "{out:?}");
    let verified = Command::new("git")
        .args(["bundle", "list-heads"])
        .arg(&file)
        .current_dir(&remote.bare)
        .output()
        .expect("git");
    assert!(verified.status.success(), "{verified:?}");
    assert!(std::fs::metadata(&file).expect("bundle").len() > 24_000_000);
}
