//! New code from a project's first run on. A run with no green run on its
//! branch measures from the newest green run in its history (any branch),
//! else from where its branch's first run started, else the change it
//! brings (its push's before..after, or its commit against its first
//! parent), never every line; only a root commit measures everything, and
//! each run's gate says what it measured. A later push never narrows it.
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

/// A signed GitHub push delivery of `branch` from `before` to `after`.
fn push_hook(
    server: &ServerProcess,
    secret: &str,
    delivery: &str,
    branch: &str,
    before: &str,
    after: &str,
) {
    let body = serde_json::json!({
        "ref": format!("refs/heads/{branch}"), "before": before, "after": after, "deleted": false,
        "repository": { "clone_url": "ignored" }, "commits": [], "head_commit": { "id": after }
    });
    let (code, answer) = server.github_push("demo", Some(secret), delivery, &body);
    assert_eq!(code, 202, "{answer}");
}

/// The split-push attack: push A brings an untested function and fails;
/// push B, a tested one on top, has no green run to compare with either,
/// yet it answers for everything since the branch's first run started, so
/// A's untested function still fails B's gate, until it is tested.
#[test]
fn with_no_green_run_a_later_push_still_answers_for_the_earlier_ones() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), &pipeline(&python));
    remote.commit("calc.py", &calc(&FUNCTIONS), "five functions");
    let before = remote.commit("test_calc.py", &tests_of(&["add"]), "a test of add");
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    let secret = server.add_project(&remote, &[]);

    // One push of two commits: an untested function, then a README. Its first
    // parent alone (the README) has nothing to cover; the push brought both.
    let mut six = FUNCTIONS.to_vec();
    six.push("floordiv");
    remote.commit("calc.py", &calc(&six), "floordiv, untested");
    let after = remote.commit("README", "calc\n", "a README");
    remote.push();
    push_hook(&server, &secret, "d-1", "main", &before, &after);
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

    // A tested function on top: measured from where run 1 started, not from
    // its own push's before, so floordiv is still new and still untested.
    let mut seven = six.clone();
    seven.push("other");
    std::fs::write(
        remote.work.join("test_calc.py"),
        tests_of(&["add", "other"]),
    )
    .expect("tests");
    let next = remote.commit("calc.py", &calc(&seven), "other, tested");
    remote.push();
    push_hook(&server, &secret, "d-2", "main", &after, &next);
    let status = finished(&server, "demo/2");
    let gate = &status["gates"][0]["report"];
    assert_eq!(status["run"]["state"], "failed", "{gate:#}");
    assert_eq!(
        gate["new_code"]["commit"].as_str(),
        Some(before.as_str()),
        "{gate:#}"
    );
    assert_eq!(
        gate["new_code"]["why"],
        "where run 1, the first of main, started; none green since"
    );
    assert_eq!(gate["measures"]["new_lines_to_cover"], 4, "{gate:#}");
    assert_eq!(
        gate["uncovered_new_lines"]["calc.py"],
        serde_json::json!(["22"])
    );

    // Testing floordiv makes the branch green again.
    let tested = remote.commit(
        "test_calc.py",
        &tests_of(&["add", "floordiv", "other"]),
        "floordiv tested",
    );
    remote.push();
    push_hook(&server, &secret, "d-3", "main", &next, &tested);
    let status = finished(&server, "demo/3");
    assert_eq!(status["run"]["state"], "succeeded", "{status:#}");
}

/// The same when the earlier push's run was canceled before it ran: a
/// canceled run is no reference, and the next push answers for it too.
#[test]
fn a_push_after_a_canceled_run_answers_for_that_run_too() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let remote = Remote::new(tmp.path(), &pipeline(&python));
    remote.commit("calc.py", &calc(&FUNCTIONS), "five functions");
    let before = remote.commit("test_calc.py", &tests_of(&["add"]), "a test of add");
    remote.push();
    // No workers: run 1 waits in the queue until it is canceled.
    let server = ServerProcess::start(&data, &["--workers", "0"]);
    let secret = server.add_project(&remote, &[]);
    let mut six = FUNCTIONS.to_vec();
    six.push("floordiv");
    let after = remote.commit("calc.py", &calc(&six), "floordiv, untested");
    remote.push();
    push_hook(&server, &secret, "d-1", "main", &before, &after);
    server.wait_until("run 1", Duration::from_secs(30), || {
        server
            .cli(&["run-status", "demo/1", "--json"])
            .status
            .code()
            == Some(0)
    });
    let out = server.cli(&["cancel", "demo/1"]);
    assert!(out.status.success(), "{}", common::text(&out));
    drop(server);

    let server = ServerProcess::start(&data, &["--workers", "1"]);
    let mut seven = six.clone();
    seven.push("other");
    std::fs::write(
        remote.work.join("test_calc.py"),
        tests_of(&["add", "other"]),
    )
    .expect("tests");
    let next = remote.commit("calc.py", &calc(&seven), "other, tested");
    remote.push();
    push_hook(&server, &secret, "d-2", "main", &after, &next);
    let status = finished(&server, "demo/2");
    let gate = &status["gates"][0]["report"];
    assert_eq!(status["run"]["state"], "failed", "{gate:#}");
    assert_eq!(
        gate["new_code"]["commit"].as_str(),
        Some(before.as_str()),
        "{gate:#}"
    );
    assert_eq!(
        gate["uncovered_new_lines"]["calc.py"],
        serde_json::json!(["22"])
    );
}

/// The new-branch attack: a branch cut from a green main, with untested
/// code in one commit and a tested one-liner on top, pushed as a new branch
/// (`before` all zeros): new code is everything since main's green commit,
/// not the last commit against its first parent.
#[test]
fn a_new_branch_answers_for_everything_since_its_green_ancestor() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), &pipeline(&python));
    remote.commit("calc.py", &calc(&["add"]), "add");
    let green = remote.commit("test_calc.py", &tests_of(&["add"]), "a test of add");
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    let secret = server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    assert!(out.status.success(), "{:#}", server.run_status("demo/1"));

    remote.commit("calc.py", &calc(&FUNCTIONS), "four untested functions");
    let mut six = FUNCTIONS.to_vec();
    six.push("floordiv");
    std::fs::write(remote.work.join("calc.py"), calc(&six)).expect("calc");
    let tip = remote.commit(
        "test_calc.py",
        &tests_of(&["add", "floordiv"]),
        "floordiv, tested",
    );
    common::server::git(
        &remote.work,
        &["push", "-q", "origin", "HEAD:refs/heads/release/1.2"],
    );
    push_hook(
        &server,
        &secret,
        "d-1",
        "release/1.2",
        &"0".repeat(40),
        &tip,
    );
    let status = finished(&server, "demo/2");
    let gate = &status["gates"][0]["report"];
    assert_eq!(status["run"]["state"], "failed", "{gate:#}");
    assert_eq!(status["run"]["branch"], "release/1.2", "{status:#}");
    assert_eq!(
        gate["new_code"]["commit"].as_str(),
        Some(green.as_str()),
        "{gate:#}"
    );
    assert_eq!(
        gate["new_code"]["why"],
        "newest green run in its history (run 1 of main), none on release/1.2 before"
    );
    assert_eq!(
        gate["uncovered_new_lines"]["calc.py"],
        serde_json::json!(["6", "10", "14", "18"]),
        "the four untested bodies count: {gate:#}"
    );
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
