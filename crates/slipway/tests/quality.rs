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

/// A test step as `pytest --junitxml` behaves when a test fails: it writes its
/// reports (one failing test, full coverage of `calc.py`), then exits 1.
const FAILING_TESTS: &str = "jobs:\n  test:\n    steps:\n      - run: printf '%s' \"$JUNIT\" > junit.xml && printf 'SF:calc.py\\nDA:1,1\\nDA:2,1\\nend_of_record\\n' > coverage.lcov && exit 1\n        env:\n          JUNIT: '<testsuite name=\"calc\" tests=\"2\" failures=\"1\"><testcase classname=\"test_calc\" name=\"test_add\"/><testcase classname=\"test_calc\" name=\"test_divide\"><failure message=\"assert 3.0 == 2\">AssertionError</failure></testcase></testsuite>'\n    reports:\n      junit: junit.xml\n      coverage: coverage.lcov\n";

const CALC: &str = "def add(a, b):\n    return a + b\n";

/// What a run with a failed step shows of its gate, wherever it is shown.
fn assert_failed_step_keeps_its_gate(job: &serde_json::Value, gate: &serde_json::Value) {
    assert_eq!(
        job["state"].as_str().or(job["status"].as_str()),
        Some("failed"),
        "{job:#}"
    );
    let reason = job["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("exited with code 1"),
        "the step's failure stays the reason: {reason}"
    );
    assert_eq!(gate["status"], "failed", "{gate:#}");
    assert_eq!(gate["measures"]["tests_failed"], 1, "{gate:#}");
    assert_eq!(gate["failed_tests"][0]["name"], "test_calc::test_divide");
    assert_eq!(gate["failed_tests"][0]["message"], "assert 3.0 == 2");
    // Measured and shown, though a failed job's coverage never passes a gate.
    assert_eq!(gate["measures"]["coverage"], 100.0, "{gate:#}");
}

fn assert_log_names_the_failure(log: &str) {
    assert!(
        log.contains("quality gate FAILED")
            && log.contains("test_calc::test_divide (failed): assert 3.0 == 2")
            && log.contains("tests: 2 run, 1 passed, 1 failed"),
        "{log}"
    );
}

#[test]
fn a_failing_test_step_still_reports_its_tests_and_gate_on_a_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), FAILING_TESTS);
    remote.commit("calc.py", CALC, "add");
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    assert!(
        !out.status.success(),
        "the run fails: {}",
        common::text(&out)
    );
    let status = server.run_status("demo/1");
    assert_failed_step_keeps_its_gate(&status["jobs"][0], &status["gates"][0]["report"]);
    assert_eq!(status["gates"][0]["status"], "failed");
    assert_log_names_the_failure(&common::text(&server.cli(&["logs", "demo/1"])));
}

#[test]
fn a_failing_test_step_still_reports_its_tests_and_gate_in_slipway_run() {
    let repo = common::Repo::new(FAILING_TESTS, &[("calc.py", CALC)]);
    let out = repo.slipway(&["run"]);
    assert!(
        !out.status.success(),
        "the run fails: {}",
        common::text(&out)
    );
    let summary = repo.summary(1);
    let job = common::job(&summary, "test");
    assert_failed_step_keeps_its_gate(job, &job["gate"]);
    assert_log_names_the_failure(&repo.recorded());
}

/// Reports that pass every condition do not pass the gate of a job whose step failed.
#[test]
fn a_failed_step_never_makes_a_green_gate() {
    let pipeline = "jobs:\n  test:\n    steps:\n      - run: printf '<testsuite name=\"t\"><testcase name=\"ok\"/></testsuite>' > junit.xml && printf 'SF:calc.py\\nDA:1,1\\nDA:2,1\\nend_of_record\\n' > coverage.lcov\n      - run: exit 3\n    reports:\n      junit: junit.xml\n      coverage: coverage.lcov\n";
    let repo = common::Repo::new(pipeline, &[("calc.py", CALC)]);
    let out = repo.slipway(&["run"]);
    assert!(!out.status.success(), "{}", common::text(&out));
    let summary = repo.summary(1);
    let job = common::job(&summary, "test");
    assert!(
        job["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("exited with code 3"),
        "{job:#}"
    );
    let gate = &job["gate"];
    assert_eq!(
        gate["measures"]["coverage"], 100.0,
        "coverage is shown: {gate:#}"
    );
    assert_eq!(gate["measures"]["tests_failed"], 0);
    assert_eq!(gate["status"], "failed", "{gate:#}");
}

/// A job stopped by its timeout still shows what its tests had reported.
#[test]
fn a_timed_out_job_still_reports_its_tests() {
    let pipeline = "jobs:\n  test:\n    timeout: 1s\n    steps:\n      - run: printf '<testsuite name=\"t\"><testcase name=\"slow\"><failure message=\"too slow\"/></testcase></testsuite>' > junit.xml && sleep 30\n    reports:\n      junit: junit.xml\n";
    let repo = common::Repo::new(pipeline, &[]);
    let started = std::time::Instant::now();
    let out = repo.slipway(&["run"]);
    assert!(!out.status.success(), "{}", common::text(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the timeout stopped it"
    );
    let summary = repo.summary(1);
    let job = common::job(&summary, "test");
    assert_eq!(job["reason"], "timed out after 1s", "{job:#}");
    let gate = &job["gate"];
    assert_eq!(gate["measures"]["tests_failed"], 1, "{gate:#}");
    assert_eq!(gate["failed_tests"][0]["message"], "too slow");
    assert_eq!(gate["failed_step"], "the job timed out");
}
