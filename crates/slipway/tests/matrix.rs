//! `matrix:` end to end: one job per combination, each with its own
//! variables, grouped in the CLI and the UI, and a job needing the matrix
//! waiting for every combination — on a server and through `slipway run`.

mod common;

use std::process::Command;

use common::server::{PASSWORD, Remote, ServerProcess};
use common::{Repo, text};

/// A 2×2 matrix and a job needing it. Each combination prints its values,
/// and a file named by them, so logs and workspaces can be told apart.
const TWO_BY_TWO: &str = r#"jobs:
  test:
    matrix:
      PYTHON: ["3.11", "3.12"]
      DB: [sqlite, postgres]
    steps:
      - echo "combination PYTHON=$PYTHON DB=$DB job=$SLIPWAY_JOB"
  report:
    needs: [test]
    steps:
      - echo reported
"#;

const COMBINATIONS: [(&str, &str); 4] = [
    ("3.11", "sqlite"),
    ("3.11", "postgres"),
    ("3.12", "sqlite"),
    ("3.12", "postgres"),
];

fn lines_of(server: &ServerProcess, job_id: &serde_json::Value) -> String {
    let page = server.json_api(&format!("/api/v1/jobs/{job_id}/log?from=0&limit=5000"));
    let lines: Vec<&str> = page["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    lines.join("\n")
}

#[test]
fn a_2x2_matrix_runs_four_jobs_on_a_server_and_the_job_needing_it_waits_for_all() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), TWO_BY_TWO);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "2"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));

    let status = server.run_status("demo/1");
    assert_eq!(status["run"]["state"], "succeeded", "{status}");
    let jobs = status["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 5, "four combinations and report: {status}");
    let combos: Vec<&serde_json::Value> = jobs.iter().filter(|j| !j["matrix"].is_null()).collect();
    assert_eq!(combos.len(), 4, "{status}");
    for (python, db) in COMBINATIONS {
        let job = combos
            .iter()
            .find(|j| {
                j["matrix"]["values"]["PYTHON"] == python && j["matrix"]["values"]["DB"] == db
            })
            .unwrap_or_else(|| panic!("no combination {python}/{db} in {status}"));
        assert_eq!(job["matrix"]["job"], "test");
        assert_eq!(
            job["matrix"]["title"],
            format!("test [PYTHON={python}, DB={db}]")
        );
        let name = job["name"].as_str().expect("name");
        assert_eq!(name, format!("test.{python}-{db}"));
        let log = lines_of(&server, &job["id"]);
        assert!(
            log.contains(&format!("combination PYTHON={python} DB={db} job={name}")),
            "{name}'s log has its own values: {log}"
        );
        for (other_python, other_db) in COMBINATIONS.iter().filter(|c| **c != (python, db)) {
            assert!(
                !log.contains(&format!("PYTHON={other_python} DB={other_db} ")),
                "{name}'s log has another combination's values: {log}"
            );
        }
    }
    // The job needing the matrix started only once every combination had finished.
    let report = jobs.iter().find(|j| j["name"] == "report").expect("report");
    let report_start = report["started_at"].as_i64().expect("report started");
    for job in &combos {
        let finished = job["finished_at"].as_i64().expect("finished");
        assert!(
            finished <= report_start,
            "report started at {report_start}, before {} finished at {finished}",
            job["name"]
        );
    }
    assert_eq!(
        report["needs"].as_array().map(Vec::len),
        Some(4),
        "{report}"
    );
    assert!(lines_of(&server, &report["id"]).contains("reported"));

    // run-status groups the combinations under the job's name.
    let out = server.cli(&["run-status", "demo/1"]);
    let shown = text(&out);
    let group = shown
        .find("\n  test\n")
        .unwrap_or_else(|| panic!("a group line: {shown}"));
    for (python, db) in COMBINATIONS {
        let row = shown
            .find(&format!("    [PYTHON={python}, DB={db}]"))
            .unwrap_or_else(|| panic!("{python}/{db} under the group: {shown}"));
        assert!(row > group, "{shown}");
    }

    the_run_page_groups_the_combinations(&server, tmp.path());
}

/// The run page, as a signed-in viewer gets it, shows the matrix as one
/// group with its combinations' states, and one node for it in the graph.
fn the_run_page_groups_the_combinations(server: &ServerProcess, tmp: &std::path::Path) {
    let added = server.add_user("vera", "viewer", "vera@example.com");
    assert!(added.status.success(), "{}", text(&added));
    let jar = tmp.join("cookies");
    let login = curl(
        &jar,
        &[
            "-d",
            &format!("name=vera&password={PASSWORD}&next=/ui"),
            &format!("{}/ui/login", server.url),
        ],
    );
    assert!(login.starts_with("303"), "{login}");
    let page = curl(&jar, &[&format!("{}/ui/projects/demo/runs/1", server.url)]);
    assert!(page.starts_with("200"), "{page}");
    let group = page
        .find("<h3 class=\"matrix\" id=\"matrix-test\">test <span class=\"badge succeeded\">succeeded</span> <small>4 combinations: 4 succeeded</small></h3>")
        .unwrap_or_else(|| panic!("the group's line: {page}"));
    for (python, db) in COMBINATIONS {
        let title = page
            .find(&format!(
                "<summary>test [PYTHON={python}, DB={db}] <span class=\"badge succeeded\">"
            ))
            .unwrap_or_else(|| panic!("{python}/{db} on the page"));
        assert!(title > group, "combinations come under their group");
    }
    // The graph has one node for the matrix, none per combination.
    assert!(page.contains("id=\"job-test\""), "{page}");
    assert!(!page.contains("id=\"job-test.3.11-sqlite\""), "{page}");
    assert!(page.contains("id=\"job-report\""), "{page}");
}

/// `curl` with a cookie jar: the status code, a newline, then the body.
fn curl(jar: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-b"])
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = body.rsplit_once('\n').expect("a status code");
    format!("{code}\n{body}")
}

/// The times of a `slipway run` summary's job (RFC 3339 with milliseconds,
/// so they compare as text).
fn times<'a>(summary: &'a serde_json::Value, name: &str) -> (&'a str, &'a str) {
    let job = common::job(summary, name);
    (
        job["started_at"].as_str().expect("started"),
        job["finished_at"].as_str().expect("finished"),
    )
}

#[test]
fn slipway_run_runs_each_combination_with_exclude_and_include_before_the_job_needing_it() {
    let pipeline = r#"jobs:
  test:
    matrix:
      PYTHON: ["3.11", "3.12"]
      DB: [sqlite, postgres]
      exclude: [ { PYTHON: "3.11", DB: postgres } ]
      include: [ { PYTHON: "3.13", DB: sqlite } ]
    steps:
      - echo "combination PYTHON=$PYTHON DB=$DB"
  report:
    needs: [test]
    steps: [ "echo reported" ]
"#;
    let repo = Repo::new(pipeline, &[]);
    let out = repo.slipway(&["run", "-j", "4"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let summary = repo.summary(1);
    let ran = [
        ("3.11", "sqlite"),
        ("3.12", "sqlite"),
        ("3.12", "postgres"),
        ("3.13", "sqlite"),
    ];
    let report_start = times(&summary, "report").0;
    for (python, db) in ran {
        let name = format!("test.{python}-{db}");
        let log = std::fs::read_to_string(repo.run_dir(1).join(format!("{name}.log")))
            .unwrap_or_else(|e| panic!("{name}'s log: {e}"));
        assert!(
            log.contains(&format!("combination PYTHON={python} DB={db}")),
            "{name}: {log}"
        );
        let finished = times(&summary, &name).1;
        assert!(
            finished <= report_start,
            "{name} finished {finished}, report started {report_start}"
        );
        assert!(
            shown.contains(&format!("\n  [PYTHON={python}, DB={db}] ")),
            "{shown}"
        );
    }
    let names: Vec<&str> = summary["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(
        names.len(),
        5,
        "the excluded combination did not run: {names:?}"
    );
    assert!(!names.contains(&"test.3.11-postgres"), "{names:?}");
    assert!(
        shown.contains("\ntest\n"),
        "the table has the group's line: {shown}"
    );

    // `--job test` names the whole matrix.
    let out = repo.slipway(&["run", "--job", "test"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(repo.summary(2)["jobs"].as_array().map(Vec::len), Some(4));
}

#[test]
fn a_failing_combination_fails_the_run_and_the_job_needing_it_does_not_run() {
    let pipeline = r#"jobs:
  test:
    matrix:
      DB: [sqlite, postgres]
    steps:
      - test "$DB" != postgres
  report:
    needs: [test]
    steps: [ "echo reported" ]
"#;
    let repo = Repo::new(pipeline, &[]);
    // One job at a time: a failure cancels jobs still running, and sqlite
    // (first in the matrix) must have ended before postgres fails.
    let out = repo.slipway(&["run", "-j", "1"]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    let summary = repo.summary(1);
    assert_eq!(summary["status"], "failed", "{summary}");
    assert_eq!(common::job(&summary, "test.sqlite")["status"], "succeeded");
    assert_eq!(common::job(&summary, "test.postgres")["status"], "failed");
    let report = common::job(&summary, "report");
    assert_eq!(report["status"], "skipped", "{report}");
    assert!(report["started_at"].is_null(), "{report}");
    assert!(
        shown.contains("failed: test [DB=postgres]"),
        "the failed combination by its values: {shown}"
    );
}

#[test]
fn validate_points_at_a_bad_matrix() {
    let pipeline = "jobs:\n  test:\n    matrix:\n      PY: [\"3.11\"]\n      exclude: [ { PI: \"3.11\" } ]\n    steps: [ \"true\" ]\n";
    let repo = Repo::new(pipeline, &[]);
    let out = repo.slipway(&["validate"]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains(".slipway.yml:5:18: error: `jobs.test.matrix.exclude` names `PI`, which is not a variable of the matrix"),
        "{shown}"
    );
    assert!(shown.contains("did you mean `PY`?"), "{shown}");
}
