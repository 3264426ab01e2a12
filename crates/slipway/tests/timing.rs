//! Seeing where time goes on a server: `slipway logs --timestamps` gives
//! every line its time, in order and within the run; `run-status` (text and
//! JSON) gives each step its start, end and duration, agreeing with the
//! job's; the run page shows step durations on a timeline, each log line's
//! time on hover, and the metrics page's chart has axes with units and
//! values on hover.

mod common;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::server::{PASSWORD, Remote, ServerProcess};
use common::service::succeeded;

/// Two steps whose lengths the test can tell apart: the first takes at
/// least 400 ms between its two lines, the second at least 200 ms.
const PIPELINE: &str = r#"jobs:
  work:
    steps:
      - echo first-line; sleep 0.4; echo second-line
      - sleep 0.2; echo third-line
"#;

fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
        .try_into()
        .expect("fits")
}

#[test]
fn log_lines_and_steps_say_when_they_happened() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), PIPELINE);
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    server.add_project(&remote, &[]);
    succeeded(&server.cli(&["trigger", "demo", "--branch", "main", "--wait"]));
    let status = server.run_status("demo/1");
    let job = &status["jobs"][0];
    let job_times = (
        job["started_at"].as_i64().expect("started"),
        job["finished_at"].as_i64().expect("finished"),
    );
    assert_eq!(job["duration_ms"].as_i64(), Some(job_times.1 - job_times.0));
    let timed = lines_are_timed_within(&server, job_times);
    let steps = steps_are_timed_within(job, job_times);
    text_status_gives_durations(&server);
    let first = steps[0]["duration_ms"].as_i64().expect("ms");
    pages_show_the_times(&server, tmp.path(), first, &timed);
}

/// Every line of `logs --timestamps` has a time, in order, within the job's
/// `(start, end)`; returns that log.
fn lines_are_timed_within(server: &ServerProcess, (job_start, job_end): (i64, i64)) -> String {
    let plain = succeeded(&server.cli(&["logs", "demo/1"]));
    let timed = succeeded(&server.cli(&["logs", "demo/1", "--timestamps"]));
    assert_eq!(plain.lines().count(), timed.lines().count());
    let mut times = Vec::new();
    for (plain, timed) in plain.lines().zip(timed.lines()) {
        let (stamp, rest) = timed.split_once(' ').expect("a time, then the line");
        assert_eq!(rest, plain, "the line itself is unchanged");
        assert_eq!(stamp.len(), 24, "RFC 3339 with milliseconds: {stamp}");
        assert!(stamp.ends_with('Z'), "UTC: {stamp}");
        let at = millis(humantime::parse_rfc3339(stamp).expect("RFC 3339"));
        assert!(
            (job_start..=job_end).contains(&at),
            "{timed} is outside the job's {job_start}..={job_end}"
        );
        times.push((at, rest.to_string()));
    }
    assert!(times.windows(2).all(|w| w[0].0 <= w[1].0), "{timed}");
    let at = |text: &str| {
        times
            .iter()
            .find(|(_, l)| l == &format!("work │ {text}"))
            .unwrap_or_else(|| panic!("no `{text}` in {timed}"))
            .0
    };
    assert!(at("second-line") - at("first-line") >= 400, "{timed}");

    timed
}

/// Steps: start, end and duration agree with each other and the job's.
fn steps_are_timed_within(
    job: &serde_json::Value,
    (job_start, job_end): (i64, i64),
) -> &Vec<serde_json::Value> {
    let steps = job["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{job:#}");
    let mut previous_end = job_start;
    for (i, step) in steps.iter().enumerate() {
        let start = step["started_at"].as_i64().expect("started_at");
        let end = step["finished_at"].as_i64().expect("finished_at");
        assert_eq!(step["index"].as_i64(), Some(i as i64));
        assert_eq!(step["duration_ms"].as_i64(), Some(end - start));
        assert_eq!(step["exit_code"].as_i64(), Some(0));
        // A step starts once the one before it ended (to the millisecond
        // the two clocks are read apart) and ends within the job.
        assert!(start + 5 >= previous_end && end <= job_end, "{job:#}");
        previous_end = end;
    }
    assert!(steps[0]["duration_ms"].as_i64() >= Some(400), "{job:#}");
    assert!(steps[1]["duration_ms"].as_i64() >= Some(200), "{job:#}");
    assert!(
        steps[1]["title"]
            .as_str()
            .is_some_and(|t| t.contains("sleep 0.2"))
    );

    steps
}

/// The text form: the job's duration and a line per step with its own.
fn text_status_gives_durations(server: &ServerProcess) {
    let text = String::from_utf8_lossy(&server.cli(&["run-status", "demo/1"]).stdout).to_string();
    let step_line = text
        .lines()
        .find(|l| l.contains("1. echo first-line"))
        .unwrap_or_else(|| panic!("no step line in:\n{text}"));
    assert!(
        step_line.trim_end().ends_with('s'),
        "a duration: {step_line}"
    );
    let job_line = text.lines().find(|l| l.contains("work")).expect("job line");
    assert!(
        job_line.contains("succeeded") && job_line.trim_end().ends_with('s'),
        "{job_line}"
    );
}

/// The run page: a timeline of the steps with their durations, and each
/// line's time on hover; the metrics page's chart has axes and values.
/// `first` is step 1's duration (ms), `timed` the log with times.
fn pages_show_the_times(server: &ServerProcess, tmp: &std::path::Path, first: i64, timed: &str) {
    let jar = tmp.join("cookies");
    log_in(server, &jar);
    let page = get(&jar, &format!("{}/ui/projects/demo/runs/1", server.url));
    assert!(page.contains("class=\"chart steps\""), "{page}");
    assert!(page.contains("seconds since the job's first step started"));
    let shown = format!("{}.{}s", first / 1000, first % 1000 / 100);
    assert!(
        page.contains(&format!(
            "<title>1. echo first-line; sleep 0.4; echo second-line: {shown}"
        )),
        "step 1 took {shown}: {page}"
    );
    let stamp = timed
        .lines()
        .find(|l| l.ends_with("work │ second-line"))
        .and_then(|l| l.split(' ').next())
        .expect("a time");
    assert!(
        page.contains(&format!("<div title=\"{stamp}\">second-line</div>")),
        "{page}"
    );
    let metrics = get(
        &jar,
        &format!("{}/ui/projects/demo/metrics?environment=dev", server.url),
    );
    assert!(metrics.contains("class=\"chart bars\""), "{metrics}");
    assert!(metrics.contains(">seconds</text>") && metrics.contains(">job, percentile</text>"));
    assert!(metrics.contains("<title>work p50: "), "{metrics}");
    assert!(metrics.contains(" s</title>") && metrics.contains("class=\"tick\""));
}

fn log_in(server: &ServerProcess, jar: &std::path::Path) {
    succeeded(&server.add_user("tess", "viewer", "tess@example.com"));
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-c"])
        .arg(jar)
        .args(["-d", &format!("name=tess&password={PASSWORD}&next=/ui")])
        .arg(format!("{}/ui/login", server.url))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "303", "logged in");
}

fn get(jar: &std::path::Path, url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sf", "-b"])
        .arg(jar)
        .arg(url)
        .output()
        .expect("curl");
    assert!(out.status.success(), "GET {url}");
    String::from_utf8_lossy(&out.stdout).to_string()
}
