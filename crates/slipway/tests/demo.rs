//! `slipway demo`, the README's quick start: one command from nothing to the
//! example service live in `dev`, without Docker.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_demo_brings_the_example_to_a_healthy_dev_without_docker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        // No Docker engine: the demo must not need one.
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("slipway demo starts");
    let stdout = demo.stdout.take().expect("stdout");
    let mut said = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    let mut login = None;
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            said.push(line.clone());
            if let Some(ui) = line.trim().strip_prefix("UI: ") {
                login = Some(
                    ui.split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                );
            }
            line.strip_prefix("dev is live: ").map(str::to_string)
        })
        .unwrap_or_else(|| panic!("the demo never said dev is live: {said:?}"));
    // The printed name and password let a person into the UI.
    let login = login.unwrap_or_else(|| panic!("the demo printed no UI login: {said:?}"));
    let words: Vec<&str> = login.iter().map(String::as_str).collect();
    let [address, "user", name, "password", password] = words.as_slice() else {
        panic!("UI line: {login:?}");
    };
    let session = Command::new("curl")
        .args(["-s", "--max-time", "5", "-o", "/dev/null", "-D", "-"])
        .args(["--data-urlencode", &format!("name={name}")])
        .args(["--data-urlencode", &format!("password={password}")])
        .arg(address)
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&session.stdout).to_lowercase();
    assert!(
        headers.contains("set-cookie: slipway_session="),
        "{headers}"
    );
    // Keep reading, so the demo never writes into a closed pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let answer = Command::new("curl")
        .args(["-sf", "--max-time", "5", &url])
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&answer.stdout),
        "Hello from hello-service 0.1\n"
    );
    // Ctrl-C (SIGTERM here) stops the server and the service it runs.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(demo.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    assert!(demo.wait().expect("wait").success());
    let gone = Command::new("curl")
        .args(["-sf", "--max-time", "2", &url])
        .status()
        .expect("curl");
    assert!(!gone.success(), "the service stopped with the demo");
}
