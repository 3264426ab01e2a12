//! `slipway demo`, the README's quick start: one command from nothing to the
//! example service live in `dev`, without Docker, and a printed login that
//! lets a person into the web UI in a real browser.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::browser::{browser, chromedriver, log_in_as, shot, wait_for_text};

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
    // The same login in Chromium lands on the dashboard, which leads to the demo's project.
    let (_driver, driver_url) = chromedriver();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let c = browser(&driver_url, &tmp.path().join("chrome")).await;
        c.goto(address).await.expect("the printed address opens");
        log_in_as(&c, name, password).await;
        wait_for_text(&c, "h1", "Dashboard", Duration::from_secs(10)).await;
        let base = address.trim_end_matches("/ui/login");
        c.goto(&format!("{base}/ui/projects/hello-service"))
            .await
            .expect("the project page");
        wait_for_text(&c, "h1", "hello-service", Duration::from_secs(10)).await;
        shot(&c, "demo-project").await;
        // Where the demo's time went, and its delivery metrics, photographed to be looked at.
        for (page, path) in [("demo-run", "runs/1"), ("demo-metrics", "metrics")] {
            c.goto(&format!("{base}/ui/projects/hello-service/{path}"))
                .await
                .expect(page);
            wait_for_text(&c, "h1", "hello-service", Duration::from_secs(10)).await;
            shot(&c, page).await;
        }
        c.close().await.expect("close");
    });
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
