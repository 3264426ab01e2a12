//! Quality gates in runs: a server runs pytest and coverage.py (real tools)
//! in a job with `reports:`; a change that adds untested code fails its run
//! on the gate with a readable report, and passes once tests cover it.

mod common;

use common::server::{Remote, ServerProcess};

fn python() -> String {
    std::env::var("SLIPWAY_TEST_PYTHON").expect(
        "SLIPWAY_TEST_PYTHON is not set: run scripts/test, which installs pytest and coverage.py",
    )
}

fn pipeline(python: &str) -> String {
    format!(
        "jobs:\n  test:\n    steps:\n      - run: {python} -m coverage run --branch -m pytest -q --junitxml=junit.xml\n      - run: {python} -m coverage lcov -o coverage.lcov\n    reports:\n      junit: junit.xml\n      coverage: coverage.lcov\n"
    )
}

#[test]
fn a_run_fails_on_its_gate_until_tests_cover_the_new_code() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), &pipeline(&python));
    remote.commit("calc.py", "def add(a, b):\n    return a + b\n", "add");
    remote.commit(
        "test_calc.py",
        "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
        "test add",
    );
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let run = |n: u32| {
        let out = server.cli(&["trigger", "demo", "--wait"]);
        (
            out.status.success(),
            server.run_status(&format!("demo/{n}")),
        )
    };

    let (ok, status) = run(1);
    assert!(ok, "the first run passes its gate: {status:#}");
    assert_eq!(status["gates"][0]["status"], "passed");

    // Untested code: the gate fails the run and says where.
    remote.commit(
        "calc.py",
        "def add(a, b):\n    return a + b\n\n\ndef divide(a, b):\n    if b == 0:\n        raise ValueError(\"b\")\n    return a / b\n",
        "divide",
    );
    remote.push();
    let (ok, status) = run(2);
    assert!(!ok, "the run fails on its gate");
    let job = &status["jobs"][0];
    assert_eq!(job["state"], "failed");
    let reason = job["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("quality gate failed: new_coverage >= 80"),
        "{reason}"
    );
    let gate = &status["gates"][0]["report"];
    assert_eq!(gate["status"], "failed");
    assert_eq!(
        gate["uncovered_new_lines"]["calc.py"],
        serde_json::json!(["6-8"])
    );
    let log = common::text(&server.cli(&["logs", "demo/2"]));
    assert!(
        log.contains("quality gate FAILED") && log.contains("calc.py:6-8"),
        "{log}"
    );

    // Tests for the new code: measured against the last green run, it passes.
    remote.commit(
        "test_calc.py",
        "import pytest\n\nfrom calc import add, divide\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\ndef test_divide():\n    assert divide(6, 3) == 2\n    with pytest.raises(ValueError):\n        divide(1, 0)\n",
        "test divide",
    );
    remote.push();
    let (ok, status) = run(3);
    assert!(ok, "covered: {status:#}");
    let measures = &status["gates"][0]["report"]["measures"];
    assert_eq!(measures["new_coverage"], 100.0);
    assert_eq!(measures["tests_total"], 2);
    // What the next run's new issues are judged against.
    assert!(status["gates"][0]["report"]["issue_fingerprints"].is_array());

    // The history, newest first.
    let history = server.json_api("/api/v1/projects/demo/quality?branch=main");
    let statuses: Vec<&str> = history
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|g| g["status"].as_str())
        .collect();
    assert_eq!(statuses, ["passed", "failed", "passed"]);
}
