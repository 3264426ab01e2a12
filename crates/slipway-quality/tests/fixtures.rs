//! Reports written by real tools (see fixtures/PROVENANCE.md for how each was
//! made) parse to the counts the tools themselves report.

use std::path::Path;

use slipway_quality::coverage;
use slipway_quality::junit::{self, TestCounts};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn open(path: &str) -> std::io::BufReader<std::fs::File> {
    let file = std::fs::File::open(Path::new(FIXTURES).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    std::io::BufReader::new(file)
}

/// (total, passed, failed, errored, skipped, flaky)
fn counts(path: &str) -> (u64, u64, u64, u64, u64, u64) {
    let TestCounts {
        total,
        passed,
        failed,
        errored,
        skipped,
        flaky,
        ..
    } = junit::parse(open(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .counts;
    (total, passed, failed, errored, skipped, flaky)
}

#[test]
fn junit_from_pytest_jest_nextest_and_surefire() {
    // pytest counts xfail as skipped, as we do.
    assert_eq!(counts("pytest/junit-xunit2.xml"), (10, 6, 1, 1, 2, 0));
    assert_eq!(counts("pytest/junit-xunit1.xml"), (10, 6, 1, 1, 2, 0));
    // jest-junit writes `test.todo` as a test case with no outcome, which reads
    // as a pass (its own `tests` attributes leave todos out, inconsistently).
    assert_eq!(counts("jest/junit.xml"), (10, 8, 1, 0, 1, 0));
    // nextest leaves ignored tests out of JUnit.
    assert_eq!(counts("nextest/junit.xml"), (3, 1, 2, 0, 0, 0));
    // Surefire with reruns: passed on a rerun is passed and flaky; its suite
    // attributes count every rerun (tests="15") and are not what we read.
    assert_eq!(counts("surefire/TEST-qf.RerunTest.xml"), (7, 4, 1, 1, 1, 3));
}

/// (lines to cover, covered lines, conditions, covered conditions) over every file.
fn coverage_totals(path: &str) -> (u64, u64, u64, u64) {
    let (c, _) = coverage::parse(open(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let t = c.totals();
    (
        t.lines_to_cover,
        t.lines_to_cover - t.uncovered_lines,
        t.conditions_to_cover,
        t.conditions_to_cover - t.uncovered_conditions,
    )
}

#[test]
fn coverage_from_coverage_py_jest_and_llvm_cov() {
    // coverage.py with --branch: Cobertura and LCOV agree.
    assert_eq!(coverage_totals("pytest/cobertura.xml"), (34, 22, 18, 8));
    assert_eq!(coverage_totals("pytest/coverage.lcov"), (34, 22, 18, 8));
    // jest (istanbul): method lines are not counted twice.
    assert_eq!(
        coverage_totals("jest/cobertura-coverage.xml"),
        (18, 16, 14, 7)
    );
    assert_eq!(coverage_totals("jest/lcov.info"), (18, 16, 14, 7));
    // llvm-cov: the file's own LF/LH say 23 and 15.
    assert_eq!(coverage_totals("llvm-cov/lcov.info"), (23, 15, 0, 0));
}

#[test]
fn cobertura_sources_come_back_for_path_resolution() {
    let (c, sources) = coverage::parse(open("pytest/cobertura.xml")).expect("parses");
    assert!(!sources.is_empty(), "coverage.py names its source root");
    assert!(
        c.files.keys().all(|f| !f.starts_with('/')),
        "{:?}",
        c.files.keys()
    );
}

/// (issues, by severity from info to blocker)
fn issue_counts(path: &str) -> (usize, [usize; 5]) {
    use slipway_quality::issues::{self, Severity};
    let list = issues::parse(open(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let by = Severity::ALL.map(|s| list.iter().filter(|i| i.severity == s).count());
    (list.len(), by)
}

#[test]
fn issues_from_ruff_eslint_and_clippy() {
    // SARIF levels: error → critical, warning → major.
    assert_eq!(
        issue_counts("sarif/ruff/ruff.sarif"),
        (10, [0, 0, 0, 10, 0])
    );
    assert_eq!(
        issue_counts("sarif/eslint/eslint.sarif"),
        (10, [0, 0, 5, 5, 0])
    );
    // Code Climate says its severities itself.
    assert_eq!(
        issue_counts("codeclimate/ruff/ruff-gitlab.json"),
        (10, [0, 0, 10, 0, 0])
    );
    assert_eq!(
        issue_counts("codeclimate/eslint/eslint-codeclimate.json"),
        (10, [0, 5, 5, 0, 0])
    );
    // clippy reported each diagnostic for the lib and its test build: once each here.
    assert_eq!(issue_counts("clippy/clippy.jsonl"), (2, [0, 0, 1, 1, 0]));
}

#[test]
fn sarif_paths_through_artifact_indexes() {
    let list = slipway_quality::issues::parse(open("sarif/eslint/eslint.sarif")).expect("parses");
    assert!(
        list.iter().all(|i| i.file.ends_with("src/orders.js")),
        "{:?}",
        list[0]
    );
    let rules: std::collections::BTreeSet<&str> = list.iter().map(|i| i.rule.as_str()).collect();
    assert!(
        rules.contains("eqeqeq") && rules.contains("no-debugger"),
        "{rules:?}"
    );
}
