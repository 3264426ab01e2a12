//! New code from a project's first run on: a run with no green run to
//! compare with measures the change it brings (its push's before..after, or
//! its commit against its first parent), never every line; only a root
//! commit measures everything, and each run's gate says what it measured.
//! Real pytest and coverage.py on a server.

mod common;

use std::time::Duration;

use common::server::{Remote, ServerProcess};

fn python() -> String {
    std::env::var("SLIPWAY_TEST_PYTHON").expect(
        "SLIPWAY_TEST_PYTHON is not set: run scripts/test, which installs pytest and coverage.py",
    )
}

/// Tests and line coverage of `calc.py` only, under the default gate.
fn pipeline(python: &str) -> String {
    format!(
        "jobs:\n  test:\n    steps:\n      - run: {python} -m coverage run --include=calc.py -m pytest -q --junitxml=junit.xml\n      - run: {python} -m coverage lcov -o coverage.lcov\n    reports:\n      junit: junit.xml\n      coverage: coverage.lcov\n"
    )
}

/// `calc.py` with these functions, each `return`ing one expression: two
/// lines to cover apiece.
fn calc(functions: &[&str]) -> String {
    functions
        .iter()
        .map(|f| format!("def {f}(a, b):\n    return a {} b\n", operator(f)))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn operator(function: &str) -> &'static str {
    match function {
        "add" => "+",
        "sub" => "-",
        "mul" => "*",
        "mod" => "%",
        "pow" => "**",
        _ => "//",
    }
}

/// Tests that call these functions.
fn tests_of(functions: &[&str]) -> String {
    let mut text = format!("from calc import {}\n", functions.join(", "));
    for f in functions {
        text.push_str(&format!(
            "\n\ndef test_{f}():\n    assert {f}(7, 2) is not None\n"
        ));
    }
    text
}

/// Five functions, one tested: 6 of 10 lines covered (60 %).
const FUNCTIONS: [&str; 5] = ["add", "sub", "mul", "mod", "pow"];

fn finished(server: &ServerProcess, run: &str) -> serde_json::Value {
    server.wait_until(run, Duration::from_secs(120), || {
        matches!(
            server.run_status(run)["run"]["state"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        )
    });
    server.run_status(run)
}

#[test]
fn a_first_run_at_60_percent_that_adds_a_covered_function_passes_the_default_gate() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), &pipeline(&python));
    remote.commit("calc.py", &calc(&FUNCTIONS), "five functions");
    let parent = remote.commit("test_calc.py", &tests_of(&["add"]), "a test of add");
    let mut six = FUNCTIONS.to_vec();
    six.push("floordiv");
    std::fs::write(remote.work.join("calc.py"), calc(&six)).expect("calc");
    remote.commit(
        "test_calc.py",
        &tests_of(&["add", "floordiv"]),
        "floordiv, tested",
    );
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);

    let out = server.cli(&["trigger", "demo", "--wait"]);
    let status = server.run_status("demo/1");
    assert!(out.status.success(), "the first run passes: {status:#}");
    let gate = &status["gates"][0]["report"];
    assert_eq!(gate["status"], "passed", "{gate:#}");
    let measures = &gate["measures"];
    // Overall coverage is reported, not gated: 8 of 12 lines.
    let overall = measures["coverage"].as_f64().expect("overall coverage");
    assert!((overall - 200.0 / 3.0).abs() < 1e-9, "{overall}");
    assert_eq!(
        (
            measures["new_lines_to_cover"].as_u64(),
            measures["new_coverage"].as_f64()
        ),
        (Some(2), Some(100.0)),
        "only the function the commit added: {gate:#}"
    );
    assert_eq!(gate["new_code"]["commit"].as_str(), Some(parent.as_str()));
    assert_eq!(gate["new_code"]["why"], "first parent, no green run before");
    let log = common::text(&server.cli(&["logs", "demo/1"]));
    let said = format!("since {} (first parent, no green run before)", &parent[..7]);
    assert!(log.contains(&said), "the log says what was measured: {log}");
}

#[test]
fn with_no_green_run_each_push_measures_what_it_brought() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), &pipeline(&python));
    remote.commit("calc.py", &calc(&FUNCTIONS), "five functions");
    let before = remote.commit("test_calc.py", &tests_of(&["add"]), "a test of add");
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    let secret = server.add_project(&remote, &[]);
    let push = |delivery: &str, before: &str, after: &str| {
        let body = serde_json::json!({
            "ref": "refs/heads/main", "before": before, "after": after, "deleted": false,
            "repository": { "clone_url": "ignored" }, "commits": [], "head_commit": { "id": after }
        });
        let (code, answer) = server.github_push("demo", Some(&secret), delivery, &body);
        assert_eq!(code, 202, "{answer}");
    };

    // One push of two commits: an untested function, then a README. Its first
    // parent alone (the README) has nothing to cover; the push brought both.
    let mut six = FUNCTIONS.to_vec();
    six.push("floordiv");
    std::fs::write(remote.work.join("calc.py"), calc(&six)).expect("calc");
    remote.commit("calc.py", &calc(&six), "floordiv, untested");
    let after = remote.commit("README", "calc\n", "a README");
    remote.push();
    push("d-1", &before, &after);
    let status = finished(&server, "demo/1");
    assert_eq!(status["run"]["state"], "failed", "{status:#}");
    let gate = &status["gates"][0]["report"];
    assert_eq!(gate["new_code"]["commit"].as_str(), Some(before.as_str()));
    assert_eq!(
        gate["new_code"]["why"],
        "the push's previous head, no green run before"
    );
    assert_eq!(
        gate["uncovered_new_lines"]["calc.py"],
        serde_json::json!(["22"]),
        "the body never ran (the def line runs on import)"
    );

    // The failed run is no reference, yet the next push is measured on its
    // own change: a tested function passes though floordiv is still untested.
    let mut seven = six.clone();
    seven.push("other");
    std::fs::write(
        remote.work.join("test_calc.py"),
        tests_of(&["add", "other"]),
    )
    .expect("tests");
    let next = remote.commit("calc.py", &calc(&seven), "other, tested");
    remote.push();
    push("d-2", &after, &next);
    let status = finished(&server, "demo/2");
    let gate = &status["gates"][0]["report"];
    assert_eq!(status["run"]["state"], "succeeded", "{gate:#}");
    assert_eq!(gate["new_code"]["commit"].as_str(), Some(after.as_str()));
    assert_eq!(gate["measures"]["new_lines_to_cover"], 2, "{gate:#}");
}

#[test]
fn a_root_commit_measures_every_line_and_says_so() {
    let pipeline = "gate:\n  - tests_failed == 0\njobs:\n  test:\n    steps:\n      - run: printf '<testsuite name=\"t\"><testcase name=\"ok\"/></testsuite>' > junit.xml\n    reports:\n      junit: junit.xml\n";
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    let status = server.run_status("demo/1");
    assert!(out.status.success(), "{status:#}");
    let gate = &status["gates"][0]["report"];
    assert_eq!(
        gate["new_code"]["commit"],
        serde_json::Value::Null,
        "{gate:#}"
    );
    assert_eq!(
        gate["new_code"]["why"],
        "a root commit: nothing to compare with"
    );
    let lines = pipeline.lines().count();
    assert_eq!(gate["new_code"]["lines"], lines);
    let log = common::text(&server.cli(&["logs", "demo/1"]));
    assert!(
        log.contains(&format!(
            "new code: {lines} lines, every line (a root commit: nothing to compare with)"
        )),
        "{log}"
    );
}
