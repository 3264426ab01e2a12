//! `slipway init` on fixture projects of each kind it knows (Rust, Python,
//! Node, Java, written for these tests): the file it writes passes
//! `slipway validate`, an existing file is never overwritten, and where the
//! toolchain is on this machine the written pipeline runs green on a server.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::server::{Remote, ServerProcess};

const KINDS: &[&str] = &["rust", "python", "node", "java"];

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/init")
        .join(kind)
}

/// Copies a fixture's files into `to` (created).
fn copy_fixture(kind: &str, to: &Path) {
    for file in common::files_under(&fixture(kind)) {
        let relative = file.strip_prefix(fixture(kind)).expect("under the fixture");
        let dest = to.join(relative);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&file, &dest).expect("copy");
    }
}

fn slipway(dir: &Path, args: &[&str]) -> std::process::Output {
    common::slipway_cmd(dir)
        .args(args)
        .output()
        .expect("slipway runs")
}

/// What `slipway init` wrote for a fresh copy of the fixture.
fn init_file(kind: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_fixture(kind, dir.path());
    let out = slipway(dir.path(), &["init"]);
    assert!(out.status.success(), "init {kind}: {}", common::text(&out));
    std::fs::read_to_string(dir.path().join(".slipway.yml")).expect("init wrote .slipway.yml")
}

#[test]
fn init_writes_a_pipeline_validate_accepts_for_each_kind() {
    let expected: &[(&str, &[&str])] = &[
        (
            "rust",
            &[
                "cargo nextest run --locked",
                "target/release/greeter",
                "~/.cargo/registry",
            ],
        ),
        (
            "python",
            &[
                "pip install -e '.[test]'",
                "--junitxml=junit.xml",
                "coverage.lcov",
                "bin/tally",
            ],
        ),
        (
            "node",
            &[
                "mocha-junit-reporter",
                "c8 --reporter=lcov",
                "npm run start",
                "~/.npm",
            ],
        ),
        (
            "java",
            &[
                "mvn -B verify",
                "target/surefire-reports/TEST-*.xml",
                "~/.m2/repository",
            ],
        ),
    ];
    for (kind, needles) in expected {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_fixture(kind, dir.path());
        let out = slipway(dir.path(), &["init"]);
        assert!(out.status.success(), "init {kind}: {}", common::text(&out));
        let written = std::fs::read_to_string(dir.path().join(".slipway.yml")).expect("written");
        for needle in *needles {
            assert!(
                written.contains(needle),
                "{kind}: no `{needle}` in\n{written}"
            );
        }
        assert!(
            written.contains("gate:") && written.contains("release:"),
            "{written}"
        );
        let validate = slipway(dir.path(), &["validate"]);
        assert!(
            validate.status.success(),
            "validate refuses init's {kind} file: {}\n{written}",
            common::text(&validate)
        );
        assert!(
            common::text(&validate).contains("environments dev"),
            "{kind}: {}",
            common::text(&validate)
        );
    }
}

#[test]
fn init_never_overwrites_a_pipeline_file_and_says_how_to_see_its_own() {
    for kind in KINDS {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_fixture(kind, dir.path());
        let mine = "jobs:\n  mine:\n    steps: [make]\n";
        std::fs::write(dir.path().join(".slipway.yml"), mine).expect("write");
        let out = slipway(dir.path(), &["init"]);
        assert_eq!(out.status.code(), Some(1), "{kind}: {}", common::text(&out));
        let text = common::text(&out);
        assert!(
            text.contains(".slipway.yml exists already") && text.contains("slipway init --stdout"),
            "{text}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".slipway.yml")).expect("read"),
            mine
        );
        let printed = slipway(dir.path(), &["init", "--stdout"]);
        assert!(printed.status.success(), "{}", common::text(&printed));
        assert_eq!(String::from_utf8_lossy(&printed.stdout), init_file(kind));
    }
}

#[test]
fn init_in_a_directory_it_cannot_read_says_what_it_knows() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("Makefile"), "all:\n").expect("write");
    let out = slipway(dir.path(), &["init"]);
    assert_eq!(out.status.code(), Some(1));
    let text = common::text(&out);
    assert!(
        text.contains("holds no Cargo.toml") && text.contains("Rust, Python, Node and Java"),
        "{text}"
    );
    assert!(!dir.path().join(".slipway.yml").exists());

    std::fs::write(dir.path().join("package.json"), "{ \"name\": ").expect("write");
    let text = common::text(&slipway(dir.path(), &["init"]));
    assert!(text.contains("package.json is not valid JSON"), "{text}");
}

/// The fixture with init's file, pushed to a remote and run by a server
/// (one worker); returns the run's status.
fn run_on_server(kind: &str) -> serde_json::Value {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), &init_file(kind));
    copy_fixture(kind, &remote.work);
    common::server::commit_as(&remote.work, ("Dev", "dev@example.com"), "the project", &[]);
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &["--branch", "main"]);
    let started = Instant::now();
    let out = server.cli(&["trigger", "demo", "--branch", "main", "--wait"]);
    let status = server.run_status("demo/1");
    eprintln!("{kind}: server run took {:.1?}", started.elapsed());
    let log = common::text(&server.cli(&["logs", "demo/1"]));
    assert!(
        out.status.success(),
        "{kind}'s run failed: {status:#}\n{log}"
    );
    for gate in status["gates"].as_array().expect("gates") {
        assert_eq!(gate["status"], "passed", "{kind}: {gate:#}");
    }
    // A green run's release is made after the run is stored as finished.
    server.wait_until("a release was made", Duration::from_secs(30), || {
        common::text(&server.cli(&["releases", "-p", "demo"])).contains(".1")
    });
    status
}

#[test]
fn rust_fixture_runs_green_on_a_server() {
    let status = run_on_server("rust");
    let gate = &status["gates"][0]["report"];
    assert_eq!(gate["measures"]["tests_run"], 2, "{gate:#}");
}

#[test]
fn python_fixture_runs_green_on_a_server() {
    let status = run_on_server("python");
    let gate = &status["gates"][0]["report"];
    assert_eq!(gate["measures"]["tests_run"], 2, "{gate:#}");
}

#[test]
fn node_fixture_runs_green_on_a_server() {
    let status = run_on_server("node");
    let gate = &status["gates"][0]["report"];
    assert_eq!(gate["measures"]["tests_run"], 2, "{gate:#}");
}
