//! Gate conditions (`new_coverage >= 80`, `tests_failed == 0`) and their
//! verdict. No leniency is built in: a condition over a measure that has no
//! value fails, except coverage on new code when there is none to cover.

use serde::Serialize;

use crate::issues::Severity;
use crate::measures::Measures;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    pub(crate) fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Ge => value >= threshold,
            Op::Le => value <= threshold,
            Op::Gt => value > threshold,
            Op::Lt => value < threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }
}

/// One condition, as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub text: String,
    pub metric: String,
    /// `issues{severity>=major}`: only issues of these severities count.
    pub severity: Option<(Op, Severity)>,
    pub op: Op,
    pub threshold: f64,
}

/// The gate used when a pipeline names none: tests ran (skipped ones did not) and none failed,
/// coverage on new code at least 80 %.
pub const DEFAULT_GATE: &[&str] = &[
    "tests_run >= 1",
    "tests_failed == 0",
    "tests_errored == 0",
    "new_coverage >= 80",
    "new_issues{severity>=major} == 0",
];

const OPS: [(&str, Op); 6] = [
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("==", Op::Eq),
    ("!=", Op::Ne),
    (">", Op::Gt),
    ("<", Op::Lt),
];

/// The first comparison in `text`: (byte offset, symbol, op).
fn comparison(text: &str) -> Option<(usize, &'static str, Op)> {
    OPS.iter()
        .filter_map(|(s, op)| text.find(s).map(|at| (at, *s, *op)))
        .min_by_key(|(at, s, _)| (*at, usize::MAX - s.len()))
}

/// Parses `METRIC OP NUMBER`; the error says what is wrong and what is known.
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    let (head, filter) = match text.split_once('{') {
        Some((head, rest)) => {
            let (inner, after) = rest
                .split_once('}')
                .ok_or_else(|| format!("`{text}`: `{{` is never closed with `}}`"))?;
            (
                format!("{head}{after}"),
                Some(severity_filter(inner, text)?),
            )
        }
        None => (text.to_string(), None),
    };
    let (at, symbol, op) = comparison(&head).ok_or_else(|| {
        format!("`{text}` has no comparison: write METRIC >= NUMBER (or <=, >, <, ==, !=)")
    })?;
    let metric = head[..at].trim().to_string();
    if !Measures::NAMES.contains(&metric.as_str()) {
        return Err(format!(
            "`{metric}` in `{text}` is not a measure; known: {}",
            Measures::NAMES.join(", ")
        ));
    }
    if filter.is_some() && !matches!(metric.as_str(), "issues" | "new_issues") {
        return Err(format!(
            "`{text}`: only issues and new_issues take a {{severity…}} filter"
        ));
    }
    let number = head[at + symbol.len()..].trim().trim_end_matches('%');
    let threshold = match (metric.as_str(), number) {
        // Ratings may be written as letters.
        ("rating", l) if l.len() == 1 && ("A"..="E").contains(&l) => {
            f64::from(l.as_bytes()[0] - b'A' + 1)
        }
        _ => number
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| format!("`{number}` in `{text}` is not a number"))?,
    };
    Ok(Condition {
        text: text.trim().to_string(),
        metric,
        severity: filter,
        op,
        threshold,
    })
}

/// `severity>=major`
fn severity_filter(inner: &str, text: &str) -> Result<(Op, Severity), String> {
    let (at, symbol, op) = comparison(inner)
        .ok_or_else(|| format!("`{text}`: write the filter as {{severity>=major}}"))?;
    if inner[..at].trim() != "severity" {
        return Err(format!("`{text}`: only `severity` can be filtered on"));
    }
    let name = inner[at + symbol.len()..].trim();
    let severity = Severity::parse(name).ok_or_else(|| {
        format!(
            "`{name}` in `{text}` is not a severity; use info, minor, major, critical or blocker"
        )
    })?;
    Ok((op, severity))
}

/// A condition's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub condition: String,
    pub metric: String,
    pub op: Op,
    pub threshold: f64,
    pub value: Option<f64>,
    pub passed: bool,
    /// Why a condition without a value passed or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Coverage measures on new code, which leniency for small changes skips.
const NEW_COVERAGE: &[&str] = &[
    "new_coverage",
    "new_uncovered_lines",
    "new_uncovered_conditions",
];

/// Every condition's verdict. With `lenient_below`, coverage conditions on
/// new code pass when it has fewer lines to cover than that (asked for
/// explicitly; never the default).
pub fn evaluate(
    conditions: &[Condition],
    measures: &Measures,
    lenient_below: Option<u64>,
) -> Vec<Verdict> {
    let small = lenient_below.filter(|n| measures.new_lines_to_cover < *n);
    conditions
        .iter()
        .map(|c| {
            let value = match (c.severity, c.metric.as_str()) {
                (Some((op, than)), "issues") => {
                    Some(measures.issues_by_severity.count(op, than) as f64)
                }
                (Some((op, than)), _) => {
                    Some(measures.new_issues_by_severity.count(op, than) as f64)
                }
                (None, metric) => measures.get(metric),
            };
            let (passed, note) = match value {
                Some(_) if small.is_some() && NEW_COVERAGE.contains(&c.metric.as_str()) => (
                    true,
                    Some(format!(
                        "small change: {} new lines to cover, fewer than {}",
                        measures.new_lines_to_cover,
                        small.unwrap_or(0)
                    )),
                ),
                Some(v) => (c.op.holds(v, c.threshold), None),
                // Nothing new to cover passes, but only when coverage was read:
                // a missing report is not a covered change.
                None if c.metric.starts_with("new_")
                    && measures.new_lines_to_cover == 0
                    && (measures.coverage_files > 0 || measures.new_lines == 0) =>
                {
                    (true, Some("no new lines to cover".to_string()))
                }
                None => (
                    false,
                    Some(format!("no value for {}: was its report given?", c.metric)),
                ),
            };
            Verdict {
                condition: c.text.clone(),
                metric: c.metric.clone(),
                op: c.op,
                threshold: c.threshold,
                value,
                passed,
                note,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conditions_and_says_what_is_wrong() {
        let c = parse_condition("new_coverage >= 80%").expect("valid");
        assert_eq!(
            (c.metric.as_str(), c.op, c.threshold),
            ("new_coverage", Op::Ge, 80.0)
        );
        assert_eq!(
            parse_condition("tests_failed==0").expect("valid").op,
            Op::Eq
        );
        assert_eq!(parse_condition("coverage > 50").expect("valid").op, Op::Gt);
        assert!(
            parse_condition("coverge >= 1")
                .expect_err("unknown")
                .contains("not a measure")
        );
        assert!(
            parse_condition("coverage about 1")
                .expect_err("no op")
                .contains("no comparison")
        );
        assert!(
            parse_condition("coverage >= lots")
                .expect_err("nan")
                .contains("not a number")
        );
    }
}
