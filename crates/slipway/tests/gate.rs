//! `slipway gate` on a real git repository: new-code coverage equals
//! diff-cover's figure for line-only reports, branch data follows
//! SonarQube's formula, failing conditions fail with the uncovered lines
//! named, and zero tests is a failure.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::server::{commit_file as commit, git};

/// A repository whose last commit changes line 3 and adds lines 8 to 12 of app.py.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    let base: Vec<String> = (1..=10).map(|n| format!("line_{n} = {n}")).collect();
    commit(dir.path(), "app.py", &(base.join("\n") + "\n"), "base");
    let mut changed = base.clone();
    changed[2] = "line_3 = 'changed'".into();
    for n in 0..5 {
        changed.insert(7 + n, format!("added_{n} = {n}"));
    }
    commit(dir.path(), "app.py", &(changed.join("\n") + "\n"), "change");
    dir
}

fn gate(dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("gate")
        .args([
            "-C",
            dir.to_str().expect("utf8"),
            "--base",
            "HEAD~1",
            "--json",
        ])
        .args(args)
        .output()
        .expect("slipway gate");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON ({e}): {}", common::text(&out)));
    (out, json)
}

const JUNIT_ONE_PASS: &str = r#"<testsuite name="t"><testcase name="ok"/></testsuite>"#;

#[test]
fn new_coverage_matches_diff_cover_on_line_only_reports() {
    let dir = repository();
    // Lines 3, 8..12 are new; of the executable new lines (3, 8, 9, 10, 12), 9 and 12 never ran.
    let mut lcov = String::from("SF:app.py\n");
    for line in 1..=15 {
        let hits = if [9, 12, 5].contains(&line) { 0 } else { 1 };
        if line != 11 {
            lcov.push_str(&format!("DA:{line},{hits}\n"));
        }
    }
    lcov.push_str("end_of_record\n");
    std::fs::write(dir.path().join("coverage.lcov"), lcov).expect("lcov");
    std::fs::write(dir.path().join("junit.xml"), JUNIT_ONE_PASS).expect("junit");

    let (out, ours) = gate(
        dir.path(),
        &["--coverage", "coverage.lcov", "--junit", "junit.xml"],
    );
    let measures = &ours["measures"];
    assert_eq!(measures["new_lines_to_cover"], 5);
    assert_eq!(measures["new_uncovered_lines"], 2);
    let new_coverage = measures["new_coverage"].as_f64().expect("value");
    assert_eq!(new_coverage, 60.0);
    assert_eq!(
        ours["uncovered_new_lines"]["app.py"],
        serde_json::json!(["9", "12"])
    );
    assert_eq!(ours["status"], "failed", "60 % is under the default 80 %");
    assert_eq!(out.status.code(), Some(1));

    let theirs = diff_cover(dir.path(), "HEAD~1");
    let lines = theirs["total_num_lines"].as_f64().expect("lines");
    let violations = theirs["total_num_violations"].as_f64().expect("violations");
    assert_eq!((lines, violations), (5.0, 2.0), "the same lines: {theirs}");
    assert_eq!(new_coverage, 100.0 * (lines - violations) / lines);
    // diff-cover truncates its percentage; the measure does not.
    assert_eq!(
        theirs["total_percent_covered"].as_f64(),
        Some(new_coverage.floor())
    );
}

#[test]
fn branch_data_follows_sonarqubes_formula_and_names_the_gaps() {
    let dir = repository();
    // New executable lines 3, 8, 9 (8 has 2 of 4 conditions covered; 9 never ran, 2 conditions).
    let lcov = "SF:app.py\nDA:1,1\nDA:3,1\nDA:8,1\nBRDA:8,0,0,1\nBRDA:8,0,1,0\nBRDA:8,0,2,-\nBRDA:8,0,3,5\nDA:9,0\nBRDA:9,0,0,0\nBRDA:9,0,1,0\nend_of_record\n";
    std::fs::write(dir.path().join("coverage.lcov"), lcov).expect("lcov");
    std::fs::write(dir.path().join("junit.xml"), JUNIT_ONE_PASS).expect("junit");
    std::fs::write(
        dir.path().join("gate.txt"),
        "new_coverage >= 40\ntests_failed == 0 # comment\n",
    )
    .expect("gate");
    let (out, ours) = gate(
        dir.path(),
        &[
            "--coverage",
            "*.lcov",
            "--junit",
            "junit.xml",
            "--gate",
            "gate.txt",
        ],
    );
    // Lines to cover 3, conditions 6; uncovered: line 9, conditions 8.1, 8.2, 9.0, 9.1.
    // (3 + 6 - 1 - 4) / (3 + 6) = 4/9.
    let value = ours["measures"]["new_coverage"].as_f64().expect("value");
    assert!((value - 400.0 / 9.0).abs() < 1e-9, "{value}");
    assert_eq!(ours["status"], "passed");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        ours["uncovered_new_lines"]["app.py"],
        serde_json::json!(["8-9"])
    );
}

#[test]
fn zero_tests_fail_the_default_gate_and_a_bad_condition_says_where() {
    let dir = repository();
    std::fs::write(dir.path().join("empty.xml"), "<testsuites/>").expect("junit");
    let (out, ours) = gate(dir.path(), &["--junit", "empty.xml"]);
    assert_eq!(out.status.code(), Some(1));
    let first = &ours["conditions"][0];
    assert_eq!(
        (first["condition"].as_str(), first["passed"].as_bool()),
        (Some("tests_run >= 1"), Some(false))
    );

    // No coverage report read: coverage on new code is not "nothing to cover".
    let coverage = &ours["conditions"][3];
    assert_eq!(
        (coverage["condition"].as_str(), coverage["passed"].as_bool()),
        (Some("new_coverage >= 80"), Some(false))
    );
    // A report that was never written, or a gate that checks nothing, is an error.
    let refused = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(["gate", "-C", dir.path().to_str().expect("utf8")])
            .args(args)
            .output()
            .expect("slipway gate");
        assert!(!out.status.success());
        common::text(&out)
    };
    assert!(refused(&["--junit", "missing/*.xml"]).contains("no report matches `missing/*.xml`"));
    std::fs::write(dir.path().join("empty-gate.txt"), "# nothing\n").expect("gate");
    assert!(
        refused(&["--junit", "empty.xml", "--gate", "empty-gate.txt"]).contains("has no condition")
    );

    std::fs::write(dir.path().join("gate.txt"), "\nnew_coverge >= 80\n").expect("gate");
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "gate",
            "-C",
            dir.path().to_str().expect("utf8"),
            "--gate",
            "gate.txt",
        ])
        .output()
        .expect("slipway gate");
    assert!(!out.status.success());
    let text = common::text(&out);
    assert!(
        text.contains("gate.txt:2: `new_coverge` in `new_coverge >= 80` is not a measure"),
        "{text}"
    );
}

#[test]
fn new_issues_are_those_on_new_lines_the_reference_does_not_have() {
    let dir = repository();
    let issue = |line: u32, fingerprint: &str, severity: &str| {
        format!(
            r#"{{"check_name":"E1","description":"d","severity":"{severity}","fingerprint":"{fingerprint}","location":{{"path":"app.py","lines":{{"begin":{line}}}}}}}"#
        )
    };
    // Line 9 is new, line 1 is old; one minor issue on new code does not break the gate.
    let issues = format!(
        "[{},{},{}]",
        issue(9, "aaa", "major"),
        issue(1, "bbb", "critical"),
        issue(10, "ccc", "minor")
    );
    std::fs::write(dir.path().join("issues.json"), issues).expect("issues");
    std::fs::write(
        dir.path().join("reference.json"),
        format!("[{}]", issue(5, "aaa", "major")),
    )
    .expect("reference");
    std::fs::write(dir.path().join("junit.xml"), JUNIT_ONE_PASS).expect("junit");
    std::fs::write(
        dir.path().join("gate.txt"),
        "new_issues{severity>=major} == 0\nrating <= A\n",
    )
    .expect("gate");

    let (out, ours) = gate(
        dir.path(),
        &[
            "--issues",
            "issues.json",
            "--junit",
            "junit.xml",
            "--gate",
            "gate.txt",
        ],
    );
    assert_eq!(ours["measures"]["issues"], 3);
    assert_eq!(ours["measures"]["new_issues"], 2);
    assert_eq!(ours["measures"]["new_issues_by_severity"]["major"], 1);
    assert_eq!(ours["status"], "failed", "a major issue on new code");
    assert_eq!(out.status.code(), Some(1));
    // debt: 10 + 20 + 2 minutes over 30 min × 15 lines of code = 7.1 % → B.
    assert_eq!(ours["measures"]["debt_minutes"], 32);
    assert_eq!(ours["measures"]["rating"], 2);
    // What an issue costs is the pipeline's (or the flag's) to say.
    let (_, costly) = gate(
        dir.path(),
        &[
            "--issues",
            "issues.json",
            "--junit",
            "junit.xml",
            "--gate",
            "gate.txt",
            "--debt-minutes",
            "major=30,minor=0",
        ],
    );
    assert_eq!(costly["measures"]["debt_minutes"], 50);

    // The reference already had the major one (it moved): only the minor one is new.
    let (out, ours) = gate(
        dir.path(),
        &[
            "--issues",
            "issues.json",
            "--reference-issues",
            "reference.json",
            "--junit",
            "junit.xml",
            "--gate",
            "gate.txt",
        ],
    );
    assert_eq!(ours["measures"]["new_issues"], 1);
    assert_eq!(ours["conditions"][0]["passed"], true);
    assert_eq!(ours["conditions"][1]["passed"], false, "B is not A");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn leniency_for_small_changes_only_when_asked() {
    let dir = repository();
    let mut lcov = String::from("SF:app.py\n");
    for line in 1..=12 {
        lcov.push_str(&format!(
            "DA:{line},{}\n",
            u8::from(![9, 12].contains(&line))
        ));
    }
    lcov.push_str("end_of_record\n");
    std::fs::write(dir.path().join("coverage.lcov"), lcov).expect("lcov");
    std::fs::write(dir.path().join("junit.xml"), JUNIT_ONE_PASS).expect("junit");
    let args = ["--coverage", "coverage.lcov", "--junit", "junit.xml"];
    let (_, strict) = gate(dir.path(), &args);
    assert_eq!(strict["status"], "failed", "no leniency by default");
    let (out, lenient) = gate(
        dir.path(),
        &[&args[..], &["--lenient-below", "20"]].concat(),
    );
    assert_eq!(lenient["status"], "passed");
    assert_eq!(out.status.code(), Some(0));
    let note = lenient["conditions"][3]["note"]
        .as_str()
        .unwrap_or_default();
    assert!(
        note.starts_with("small change: 6 new lines to cover"),
        "{note}"
    );
    let (_, bigger) = gate(dir.path(), &[&args[..], &["--lenient-below", "6"]].concat());
    assert_eq!(bigger["status"], "failed", "6 lines are not fewer than 6");
}

/// `slipway gate` with these arguments only (no `--base` of its own).
fn gate_with(dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["gate", "-C", dir.to_str().expect("utf8"), "--json"])
        .args(args)
        .output()
        .expect("slipway gate");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON ({e}): {}", common::text(&out)));
    (out, json)
}

/// A branch behind `main`: it added lines 11 to 13 of app.py, and `main`
/// rewrote lines 2 to 4 after the branch left it. HEAD is the branch.
fn branch_behind_main() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    git(path, &["init", "-q", "-b", "main"]);
    let base: Vec<String> = (1..=10).map(|n| format!("line_{n} = {n}")).collect();
    commit(path, "app.py", &(base.join("\n") + "\n"), "base");
    let fork = head(path);
    git(path, &["checkout", "-q", "-b", "feature"]);
    let mut added = base.clone();
    added.extend((11..=13).map(|n| format!("added_{n} = {n}")));
    commit(path, "app.py", &(added.join("\n") + "\n"), "add lines");
    git(path, &["checkout", "-q", "main"]);
    let mut rewritten = base;
    for line in &mut rewritten[1..4] {
        *line = format!("{line}  # rewritten on main");
    }
    commit(path, "app.py", &(rewritten.join("\n") + "\n"), "rewrite");
    git(path, &["checkout", "-q", "feature"]);
    // Lines 2, 3 and 12 never ran.
    let mut lcov = String::from("SF:app.py\n");
    for line in 1..=13 {
        let hits = u8::from(![2, 3, 12].contains(&line));
        lcov.push_str(&format!("DA:{line},{hits}\n"));
    }
    lcov.push_str("end_of_record\n");
    std::fs::write(path.join("coverage.lcov"), lcov).expect("lcov");
    std::fs::write(path.join("junit.xml"), JUNIT_ONE_PASS).expect("junit");
    (dir, fork)
}

fn head(dir: &Path) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn base_measures_from_the_merge_base_as_diff_cover_does_and_base_exact_from_the_tip() {
    let (dir, fork) = branch_behind_main();
    let reports = ["--coverage", "coverage.lcov", "--junit", "junit.xml"];
    let (_, merged) = gate_with(dir.path(), &[&reports[..], &["--base", "main"]].concat());
    let measures = &merged["measures"];
    assert_eq!(
        (
            measures["new_lines_to_cover"].as_u64(),
            measures["new_uncovered_lines"].as_u64()
        ),
        (Some(3), Some(1)),
        "main's later rewrite of lines 2-4 is not the branch's: {merged:#}"
    );
    assert_eq!(
        merged["uncovered_new_lines"]["app.py"],
        serde_json::json!(["12"])
    );
    assert_eq!(merged["new_code"]["commit"].as_str(), Some(fork.as_str()));
    assert_eq!(merged["new_code"]["why"], "merge-base of main and HEAD");

    // diff-cover compares with the merge-base too: the same lines.
    let theirs = diff_cover(dir.path(), "main");
    assert_eq!(
        (
            theirs["total_num_lines"].as_u64(),
            theirs["total_num_violations"].as_u64()
        ),
        (Some(3), Some(1)),
        "{theirs}"
    );

    // The tip itself: what main rewrote since counts as changed.
    let (_, exact) = gate_with(
        dir.path(),
        &[&reports[..], &["--base-exact", "main"]].concat(),
    );
    assert_eq!(exact["measures"]["new_lines_to_cover"], 6, "{exact:#}");
    assert_eq!(
        exact["uncovered_new_lines"]["app.py"],
        serde_json::json!(["2-3", "12"])
    );

    // The readable report says what it measured from.
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "gate",
            "-C",
            dir.path().to_str().expect("utf8"),
            "--base",
            "main",
        ])
        .args(reports)
        .output()
        .expect("slipway gate");
    let text = common::text(&out);
    let short = &fork[..7];
    assert!(
        text.contains(&format!(
            "new code: 3 lines since {short} (merge-base of main and HEAD)"
        )),
        "{text}"
    );
    // Both at once is a mistake, and a revision that is not there says so.
    let both = gate_with_status(dir.path(), &["--base", "main", "--base-exact", "main"]);
    assert!(both.contains("cannot be used with"), "{both}");
    let missing = gate_with_status(
        dir.path(),
        &["--base", "origin/nope", "--junit", "junit.xml"],
    );
    assert!(
        missing.contains("`origin/nope` and HEAD have no merge-base"),
        "{missing}"
    );
}

/// The output of a `slipway gate` that must fail to start.
fn gate_with_status(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["gate", "-C", dir.to_str().expect("utf8")])
        .args(args)
        .output()
        .expect("slipway gate");
    assert!(!out.status.success(), "{}", common::text(&out));
    common::text(&out)
}

#[test]
fn skipped_tests_did_not_run_in_the_measure_the_summary_and_the_json() {
    let dir = repository();
    std::fs::write(
        dir.path().join("junit.xml"),
        r#"<testsuites><testsuite name="calc"><testcase classname="t" name="a" time="0.1"/><testcase classname="t" name="b"><skipped message="needs a GPU"/></testcase><testcase classname="t" name="c"><skipped/></testcase></testsuite></testsuites>"#,
    )
    .expect("junit");
    std::fs::write(dir.path().join("gate.txt"), "tests_run >= 2\n").expect("gate");
    let (out, ours) = gate(dir.path(), &["--junit", "junit.xml", "--gate", "gate.txt"]);
    let measures = &ours["measures"];
    assert_eq!(
        (
            measures["tests_total"].as_u64(),
            measures["tests_run"].as_u64(),
            measures["tests_skipped"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
    assert_eq!(
        ours["conditions"][0]["value"], 1.0,
        "skipped tests did not run"
    );
    assert_eq!(out.status.code(), Some(1));
    let text = common::text(
        &Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args([
                "gate",
                "-C",
                dir.path().to_str().expect("utf8"),
                "--junit",
                "junit.xml",
            ])
            .output()
            .expect("slipway gate"),
    );
    assert!(
        text.contains("tests: 1 run, 1 passed, 0 failed, 0 errored, 0 flaky; 2 skipped"),
        "{text}"
    );
}

#[test]
fn partly_covered_new_lines_are_marked_in_the_json() {
    let dir = repository();
    // New line 8 ran taking 1 of its 2 branches; new line 9 never ran.
    let lcov =
        "SF:app.py\nDA:3,1\nDA:8,4\nBRDA:8,0,0,4\nBRDA:8,0,1,0\nDA:9,0\nDA:10,1\nend_of_record\n";
    std::fs::write(dir.path().join("coverage.lcov"), lcov).expect("lcov");
    std::fs::write(dir.path().join("junit.xml"), JUNIT_ONE_PASS).expect("junit");
    let (_, ours) = gate(
        dir.path(),
        &["--coverage", "coverage.lcov", "--junit", "junit.xml"],
    );
    assert_eq!(
        ours["uncovered_new_lines"]["app.py"],
        serde_json::json!(["8-9"])
    );
    assert_eq!(
        ours["uncovered_new_lines_detail"]["app.py"],
        serde_json::json!([
            {"line": 8, "partly": true, "branches": "1/2"},
            {"line": 9, "partly": false},
        ])
    );
}

/// diff-cover's JSON report on `coverage.lcov` in `dir`, against `branch`:
/// the independent reading the gate's new-code coverage is compared with.
fn diff_cover(dir: &Path, branch: &str) -> serde_json::Value {
    let diff_cover = std::env::var("SLIPWAY_DIFF_COVER").expect(
        "SLIPWAY_DIFF_COVER is not set: run scripts/test, which installs diff-cover from PyPI",
    );
    let report = dir.join("diff-cover.json");
    let status = Command::new(&diff_cover)
        .args(["coverage.lcov", "--compare-branch", branch, "--format"])
        .arg(format!("json:{}", report.display()))
        .current_dir(dir)
        .status()
        .expect("diff-cover runs");
    assert!(
        status.success(),
        "diff-cover against {branch} failed in {}",
        dir.display()
    );
    serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON")
}
