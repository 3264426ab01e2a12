//! The measures a gate looks at, computed from parsed reports and new code.

use std::collections::BTreeMap;

use serde::Serialize;

use std::collections::HashSet;

use crate::coverage::Coverage;
use crate::diff::NewCode;
use crate::issues::{Issue, Severity};
use crate::junit::TestCounts;

/// Every measure, by the name gates use.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measures {
    pub tests_total: u64,
    /// Tests that ran: total less skipped.
    pub tests_run: u64,
    pub tests_passed: u64,
    pub tests_failed: u64,
    pub tests_errored: u64,
    pub tests_skipped: u64,
    pub tests_flaky: u64,
    /// Overall coverage in percent (`None`: no coverage report, or nothing to cover).
    pub coverage: Option<f64>,
    pub lines_to_cover: u64,
    pub uncovered_lines: u64,
    pub conditions_to_cover: u64,
    pub uncovered_conditions: u64,
    pub new_coverage: Option<f64>,
    pub new_lines_to_cover: u64,
    pub new_uncovered_lines: u64,
    pub new_conditions_to_cover: u64,
    pub new_uncovered_conditions: u64,
    /// Lines the diff adds or changes, executable or not.
    pub new_lines: u64,
    /// Files coverage was read for (0: no coverage report, or none of its files is in the repository).
    pub coverage_files: u64,
    pub issues: u64,
    /// Issues on new lines whose fingerprint the reference does not have.
    pub new_issues: u64,
    /// Issues by severity, info to blocker.
    pub issues_by_severity: BySeverity,
    pub new_issues_by_severity: BySeverity,
    /// Remediation minutes of every issue.
    pub debt_minutes: u64,
    /// Debt over the cost of writing the code (30 minutes a line), in percent.
    pub debt_ratio: Option<f64>,
    /// Maintainability from the debt ratio: 1 (A) to 5 (E) on the 5/10/20/50 % grid.
    pub rating: Option<u8>,
    /// Non-blank lines of the repository's source files.
    pub lines_of_code: u64,
}

/// Counts by severity, serialized as a map (`{"major": 2, …}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BySeverity(pub [u64; 5]);

impl BySeverity {
    fn of<'a>(issues: impl Iterator<Item = &'a Issue>) -> BySeverity {
        let mut counts = [0; 5];
        for issue in issues {
            counts[issue.severity as usize] += 1;
        }
        BySeverity(counts)
    }

    /// How many have a severity `op` `than` (`>=`, `>`, `==`, `<=`, `<`, `!=`).
    pub fn count(&self, op: crate::gate::Op, than: Severity) -> u64 {
        Severity::ALL
            .iter()
            .zip(self.0)
            .filter(|(s, _)| op.holds(**s as u8 as f64, than as u8 as f64))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Serialize for BySeverity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(5))?;
        for (severity, n) in Severity::ALL.iter().zip(self.0) {
            map.serialize_entry(severity.as_str(), &n)?;
        }
        map.end()
    }
}

/// The inputs measures are computed from, with paths already repository-relative.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub tests: &'a TestCounts,
    pub coverage: &'a Coverage,
    pub new_code: &'a NewCode,
    pub issues: &'a [Issue],
    /// Fingerprints of the reference's issues; without them every issue on new code is new.
    pub reference: Option<&'a HashSet<String>>,
    pub lines_of_code: u64,
    /// Remediation minutes per issue by severity, info to blocker.
    pub debt_minutes: [u64; 5],
}

impl Measures {
    /// The names conditions may use.
    pub const NAMES: &'static [&'static str] = &[
        "tests_total",
        "tests_run",
        "tests_passed",
        "tests_failed",
        "tests_errored",
        "tests_skipped",
        "tests_flaky",
        "coverage",
        "lines_to_cover",
        "uncovered_lines",
        "conditions_to_cover",
        "uncovered_conditions",
        "new_coverage",
        "new_lines_to_cover",
        "new_uncovered_lines",
        "new_conditions_to_cover",
        "new_uncovered_conditions",
        "new_lines",
        "coverage_files",
        "issues",
        "new_issues",
        "debt_minutes",
        "debt_ratio",
        "rating",
        "lines_of_code",
    ];

    pub fn compute(inputs: Inputs<'_>) -> Measures {
        let Inputs {
            tests,
            coverage,
            new_code: new,
            issues,
            reference,
            lines_of_code,
            debt_minutes: minutes,
        } = inputs;
        let all = coverage.totals();
        let fresh = coverage.new_code_totals(new);
        let is_new = |i: &&Issue| is_new_issue(i, new, reference);
        let debt_minutes: u64 = issues.iter().fold(0u64, |sum, i| {
            sum.saturating_add(minutes[i.severity as usize])
        });
        let debt_ratio = (lines_of_code > 0)
            .then(|| debt_minutes as f64 * 100.0 / (30.0 * lines_of_code as f64));
        Measures {
            tests_total: tests.total,
            tests_run: tests.run(),
            tests_passed: tests.passed,
            tests_failed: tests.failed,
            tests_errored: tests.errored,
            tests_skipped: tests.skipped,
            tests_flaky: tests.flaky,
            coverage: all.percent(),
            lines_to_cover: all.lines_to_cover,
            uncovered_lines: all.uncovered_lines,
            conditions_to_cover: all.conditions_to_cover,
            uncovered_conditions: all.uncovered_conditions,
            new_coverage: fresh.percent(),
            new_lines_to_cover: fresh.lines_to_cover,
            new_uncovered_lines: fresh.uncovered_lines,
            new_conditions_to_cover: fresh.conditions_to_cover,
            new_uncovered_conditions: fresh.uncovered_conditions,
            new_lines: new.line_count() as u64,
            coverage_files: coverage.files.len() as u64,
            issues: issues.len() as u64,
            new_issues: issues.iter().filter(is_new).count() as u64,
            issues_by_severity: BySeverity::of(issues.iter()),
            new_issues_by_severity: BySeverity::of(issues.iter().filter(is_new)),
            debt_minutes,
            debt_ratio,
            rating: debt_ratio.map(rating),
            lines_of_code,
        }
    }

    /// A measure by name; `None` when it has no value.
    pub fn get(&self, name: &str) -> Option<f64> {
        let count = |n: u64| Some(n as f64);
        match name {
            "tests_total" => count(self.tests_total),
            "tests_run" => count(self.tests_run),
            "tests_passed" => count(self.tests_passed),
            "tests_failed" => count(self.tests_failed),
            "tests_errored" => count(self.tests_errored),
            "tests_skipped" => count(self.tests_skipped),
            "tests_flaky" => count(self.tests_flaky),
            "coverage" => self.coverage,
            "lines_to_cover" => count(self.lines_to_cover),
            "uncovered_lines" => count(self.uncovered_lines),
            "conditions_to_cover" => count(self.conditions_to_cover),
            "uncovered_conditions" => count(self.uncovered_conditions),
            "new_coverage" => self.new_coverage,
            "new_lines_to_cover" => count(self.new_lines_to_cover),
            "new_uncovered_lines" => count(self.new_uncovered_lines),
            "new_conditions_to_cover" => count(self.new_conditions_to_cover),
            "new_uncovered_conditions" => count(self.new_uncovered_conditions),
            "new_lines" => count(self.new_lines),
            "coverage_files" => count(self.coverage_files),
            "issues" => count(self.issues),
            "new_issues" => count(self.new_issues),
            "debt_minutes" => count(self.debt_minutes),
            "debt_ratio" => self.debt_ratio,
            "rating" => self.rating.map(f64::from),
            "lines_of_code" => count(self.lines_of_code),
            _ => None,
        }
    }
}

/// An issue on a new line whose fingerprint the reference does not have
/// (without a reference, every issue on new code).
pub fn is_new_issue(issue: &Issue, new: &NewCode, reference: Option<&HashSet<String>>) -> bool {
    issue.line.is_some_and(|l| new.contains(&issue.file, l))
        && reference.is_none_or(|r| !r.contains(&issue.fingerprint))
}

/// The maintainability rating of a debt ratio: A (1) up to 5 %, B to 10 %,
/// C to 20 %, D to 50 %, E (5) above.
pub fn rating(debt_ratio: f64) -> u8 {
    match debt_ratio {
        r if r <= 5.0 => 1,
        r if r <= 10.0 => 2,
        r if r <= 20.0 => 3,
        r if r <= 50.0 => 4,
        _ => 5,
    }
}

/// New lines not covered, per file, as `a-b` ranges (`a` alone for one line).
pub fn uncovered_new_lines(coverage: &Coverage, new: &NewCode) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (file, new_lines) in &new.files {
        let Some(lines) = coverage.files.get(file) else {
            continue;
        };
        let missed: Vec<u32> = new_lines
            .iter()
            .copied()
            .filter(|l| {
                lines
                    .get(*l)
                    .is_some_and(|d| d.hits == 0 || d.uncovered_branches() > 0)
            })
            .collect();
        if !missed.is_empty() {
            out.insert(file.clone(), ranges(&missed));
        }
    }
    out
}

/// A new line not fully covered: never run, or run without taking every
/// branch (`partly`; LCOV `BRDA`, Cobertura `condition-coverage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineGap {
    pub line: u32,
    /// It ran, but some of its branches were never taken.
    pub partly: bool,
    /// Branches taken of those the line has (`1/2`), when the report has branch data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branches: Option<String>,
}

/// New lines not fully covered, per file, one by one, partly covered ones marked.
pub fn new_line_gaps(coverage: &Coverage, new: &NewCode) -> BTreeMap<String, Vec<LineGap>> {
    let mut out = BTreeMap::new();
    for (file, new_lines) in &new.files {
        let Some(lines) = coverage.files.get(file) else {
            continue;
        };
        let gaps: Vec<LineGap> = new_lines
            .iter()
            .filter_map(|l| Some((*l, lines.get(*l)?)))
            .filter(|(_, d)| d.hits == 0 || d.uncovered_branches() > 0)
            .map(|(line, d)| {
                let total = d.branches.len() as u64;
                LineGap {
                    line,
                    partly: d.hits > 0,
                    branches: (total > 0)
                        .then(|| format!("{}/{total}", total - d.uncovered_branches())),
                }
            })
            .collect();
        if !gaps.is_empty() {
            out.insert(file.clone(), gaps);
        }
    }
    out
}

pub(crate) fn ranges(lines: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = lines.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while end < u32::MAX && iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_on_the_grid() {
        assert_eq!(
            [0.0, 5.0, 5.1, 10.0, 20.0, 50.0, 50.1].map(rating),
            [1, 1, 2, 2, 3, 4, 5]
        );
    }

    #[test]
    fn ranges_collapse_runs() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), ["1-3", "7", "9-10"]);
    }
}
