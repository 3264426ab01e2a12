//! JUnit XML test reports, read as a stream: `testsuites` or a bare
//! `testsuite` root, suites nested at any depth, several `failure`/`error`
//! elements per test, `skipped`, Surefire's `flakyFailure`/`flakyError`
//! (passed on a rerun) and `rerunFailure`/`rerunError`, and the dialects of
//! pytest (xunit1 and xunit2), cargo-nextest and jest-junit. Only `testcase`
//! elements are counted: suite attributes disagree between tools.

use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};
use serde::Serialize;

use crate::{ParseError, xml_attr as attr};

/// Counts over every test case read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TestCounts {
    pub total: u64,
    pub passed: u64,
    pub failed: u64,
    pub errored: u64,
    pub skipped: u64,
    /// Passed only after failing first (a rerun): counted in `passed` too.
    pub flaky: u64,
    /// Sum of the cases' `time`, in milliseconds.
    pub duration_ms: u64,
}

impl TestCounts {
    /// Tests that ran: every case but the skipped ones. What "run" means in
    /// the `tests_run` measure, the gate's summary, the API and the UI.
    pub fn run(&self) -> u64 {
        self.total.saturating_sub(self.skipped)
    }

    pub fn add(&mut self, other: &TestCounts) {
        self.total += other.total;
        self.passed += other.passed;
        self.failed += other.failed;
        self.errored += other.errored;
        self.skipped += other.skipped;
        self.flaky += other.flaky;
        self.duration_ms = self.duration_ms.saturating_add(other.duration_ms);
    }
}

/// A test that did not pass, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedTest {
    /// `classname` (or the enclosing suite's name) and `name`.
    pub name: String,
    /// `failed` or `errored`.
    pub outcome: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TestReport {
    pub counts: TestCounts,
    /// The first failures, at most [`MAX_FAILURES`] of them.
    pub failures: Vec<FailedTest>,
}

/// How many failed tests a report lists by name.
pub const MAX_FAILURES: usize = 100;

/// What one `testcase` turned out to be.
#[derive(Debug, Default)]
struct Case {
    name: String,
    duration_ms: u64,
    failure: Option<String>,
    error: Option<String>,
    skipped: bool,
    flaky: bool,
}

/// Reads a JUnit report.
pub fn parse(input: impl BufRead) -> Result<TestReport, ParseError> {
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut report = TestReport::default();
    let mut suites: Vec<Suite> = Vec::new();
    let mut case: Option<Case> = None;
    let mut saw_root = false;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| ParseError::at("JUnit XML", reader.buffer_position(), e))?;
        match event {
            Event::Start(e) if e.local_name().as_ref() == b"testsuite" => {
                saw_root = true;
                suites.push(Suite::open(&e, report.counts.total));
            }
            Event::Empty(e) if e.local_name().as_ref() == b"testsuite" => {
                saw_root = true;
                Suite::open(&e, report.counts.total).close(&mut report);
            }
            Event::Empty(e) | Event::Start(e) if e.local_name().as_ref() == b"testsuites" => {
                saw_root = true;
            }
            Event::Start(e) if e.local_name().as_ref() == b"testcase" => {
                case = Some(new_case(&e, &suites));
            }
            Event::Empty(e) if e.local_name().as_ref() == b"testcase" => {
                finish(&mut report, new_case(&e, &suites));
            }
            Event::Start(e) | Event::Empty(e) if case.is_some() => {
                if let Some(c) = case.as_mut() {
                    mark(c, &e);
                }
            }
            Event::End(e) if e.local_name().as_ref() == b"testcase" => {
                if let Some(c) = case.take() {
                    finish(&mut report, c);
                }
            }
            Event::End(e) if e.local_name().as_ref() == b"testsuite" => {
                if let Some(suite) = suites.pop() {
                    suite.close(&mut report);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_root {
        return Err(ParseError::new(
            "JUnit XML",
            "no <testsuites> or <testsuite> element: is this a JUnit report?",
        ));
    }
    Ok(report)
}

/// A suite being read: its name, how many cases came before it, and how
/// many errors and failures it says it had.
struct Suite {
    name: String,
    cases_before: u64,
    declared_problems: u64,
}

impl Suite {
    fn open(e: &BytesStart<'_>, cases_before: u64) -> Suite {
        let count = |key: &[u8]| {
            attr(e, key)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Suite {
            name: attr(e, b"name").unwrap_or_default(),
            cases_before,
            declared_problems: count(b"errors").saturating_add(count(b"failures")),
        }
    }

    /// A suite that reports problems but holds no test case (a test file
    /// that failed to load, as jest-junit writes it) counts as one error:
    /// it must not read as zero failures.
    fn close(self, report: &mut TestReport) {
        if self.declared_problems > 0 && report.counts.total == self.cases_before {
            let message = format!(
                "the suite reports {} errors or failures but no test case ran",
                self.declared_problems
            );
            finish(
                report,
                Case {
                    name: self.name,
                    error: Some(message),
                    ..Case::default()
                },
            );
        }
    }
}

fn new_case(e: &BytesStart<'_>, suites: &[Suite]) -> Case {
    let name = attr(e, b"name").unwrap_or_default();
    let class = attr(e, b"classname")
        .filter(|c| !c.is_empty())
        .or_else(|| suites.last().map(|s| s.name.clone()))
        .unwrap_or_default();
    Case {
        name: if class.is_empty() {
            name
        } else {
            format!("{class}::{name}")
        },
        duration_ms: attr(e, b"time").map_or(0, |t| seconds_to_ms(&t)),
        ..Case::default()
    }
}

/// A child of `testcase` that says how it went.
fn mark(case: &mut Case, e: &BytesStart<'_>) {
    let message = || {
        attr(e, b"message")
            .or_else(|| attr(e, b"type"))
            .unwrap_or_default()
    };
    match e.local_name().as_ref() {
        b"failure" | b"rerunFailure" => {
            case.failure.get_or_insert_with(message);
        }
        b"error" | b"rerunError" => {
            case.error.get_or_insert_with(message);
        }
        b"skipped" => case.skipped = true,
        b"flakyFailure" | b"flakyError" => case.flaky = true,
        _ => {}
    }
}

fn finish(report: &mut TestReport, case: Case) {
    let counts = &mut report.counts;
    counts.total += 1;
    counts.duration_ms = counts.duration_ms.saturating_add(case.duration_ms);
    let outcome = if let Some(message) = case.error {
        counts.errored += 1;
        Some(("errored", message))
    } else if let Some(message) = case.failure {
        counts.failed += 1;
        Some(("failed", message))
    } else if case.skipped {
        counts.skipped += 1;
        None
    } else {
        counts.passed += 1;
        counts.flaky += u64::from(case.flaky);
        None
    };
    if let Some((outcome, message)) = outcome.filter(|_| report.failures.len() < MAX_FAILURES) {
        report.failures.push(FailedTest {
            name: case.name,
            outcome,
            message: message.lines().next().unwrap_or("").to_string(),
        });
    }
}

/// Seconds as tools write them: `1.5`, `1,234.5`, `0,5`, `12s`, ``, `NaN`.
pub fn seconds_to_ms(text: &str) -> u64 {
    let mut t = text.trim().trim_end_matches('s').to_string();
    if t.contains(',') {
        // A comma with a dot is a thousands separator; alone, a decimal one.
        t = if t.contains('.') {
            t.replace(',', "")
        } else {
            t.replace(',', ".")
        };
    }
    match t.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => (s * 1000.0).round() as u64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(xml: &str) -> TestCounts {
        parse(xml.as_bytes()).expect("parses").counts
    }

    #[test]
    fn counts_cases_in_nested_suites_with_every_outcome() {
        let xml = r#"<?xml version="1.0"?>
<testsuites tests="999">
  <testsuite name="outer">
    <testsuite name="inner">
      <testcase name="ok" time="1,234.5"/>
      <testcase name="bad" classname="m"><failure message="boom"><![CDATA[trace <here>]]></failure><failure/></testcase>
      <testcase name="broken"><error message="exc"/><failure message="also"/></testcase>
      <testcase name="later"><skipped/></testcase>
      <testcase name="wobbly"><flakyFailure message="once"/><system-out>x</system-out></testcase>
      <testcase name="gone"><rerunFailure message="1"/><rerunFailure message="2"/><failure message="3"/></testcase>
    </testsuite>
    <testsuite name="empty"/>
  </testsuite>
</testsuites>"#;
        let report = parse(xml.as_bytes()).expect("parses");
        assert_eq!(
            report.counts,
            TestCounts {
                total: 6,
                passed: 2,
                failed: 2,
                errored: 1,
                skipped: 1,
                flaky: 1,
                duration_ms: 1_234_500,
            }
        );
        assert_eq!(report.failures[0].name, "m::bad");
        assert_eq!(report.failures[0].message, "boom");
        assert_eq!(report.failures[1].outcome, "errored");
    }

    #[test]
    fn a_suite_that_failed_to_load_is_an_error() {
        let xml = r#"<testsuites><testsuite name="broken.test.js" tests="0" errors="1"/><testsuite name="ok" tests="1"><testcase name="a"/></testsuite></testsuites>"#;
        let report = parse(xml.as_bytes()).expect("parses");
        assert_eq!(
            (
                report.counts.total,
                report.counts.errored,
                report.counts.passed
            ),
            (2, 1, 1)
        );
        assert_eq!(report.failures[0].name, "broken.test.js");
        // Problems its cases account for are not counted twice.
        let counted =
            r#"<testsuite name="s" errors="1"><testcase name="x"><error/></testcase></testsuite>"#;
        assert_eq!(counts(counted).errored, 1);
    }

    #[test]
    fn a_bare_testsuite_root_and_odd_times() {
        let xml = r#"<testsuite name="s" tests="2"><testcase name="a" time=""/><testcase name="b" time="NaN"/></testsuite>"#;
        assert_eq!(counts(xml).total, 2);
        assert_eq!(seconds_to_ms("0,5"), 500);
        assert_eq!(seconds_to_ms("2s"), 2000);
        assert_eq!(seconds_to_ms("-1"), 0);
    }

    #[test]
    fn what_is_not_junit_says_so() {
        assert!(parse(&b"<html><body/></html>"[..]).is_err());
        assert!(parse(&b"<testsuite><testcase></testsuite>"[..]).is_err());
    }
}
