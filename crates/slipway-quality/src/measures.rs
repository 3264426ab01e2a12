//! The measures a gate looks at, computed from parsed reports and new code.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::coverage::Coverage;
use crate::diff::NewCode;
use crate::junit::TestCounts;

/// Every measure, by the name gates use.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measures {
    pub tests_total: u64,
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
}

impl Measures {
    /// The names conditions may use.
    pub const NAMES: &'static [&'static str] = &[
        "tests_total",
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
    ];

    /// `coverage` is resolved to repository paths; `tests` may be absent (no report).
    pub fn compute(tests: &TestCounts, coverage: &Coverage, new: &NewCode) -> Measures {
        let all = coverage.totals(|_, _| true);
        let fresh = coverage.totals(|file, line| new.contains(file, line));
        Measures {
            tests_total: tests.total,
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
        }
    }

    /// A measure by name; `None` when it has no value.
    pub fn get(&self, name: &str) -> Option<f64> {
        let count = |n: u64| Some(n as f64);
        match name {
            "tests_total" => count(self.tests_total),
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
            _ => None,
        }
    }
}

/// New lines not covered, per file, as `a-b` ranges (`a` alone for one line).
pub fn uncovered_new_lines(coverage: &Coverage, new: &NewCode) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (file, lines) in &coverage.files {
        let missed: Vec<u32> = lines
            .iter()
            .filter(|(line, data)| {
                new.contains(file, **line) && (data.hits == 0 || data.uncovered_branches() > 0)
            })
            .map(|(line, _)| *line)
            .collect();
        if !missed.is_empty() {
            out.insert(file.clone(), ranges(&missed));
        }
    }
    out
}

fn ranges(lines: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = lines.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
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
    fn ranges_collapse_runs() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), ["1-3", "7", "9-10"]);
    }
}
