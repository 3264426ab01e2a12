//! The gate over a directory of reports: what `slipway gate` and a job of a
//! run both do. Reading reports is split from evaluating them so a caller can
//! run git meanwhile.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::diff::NewCodeBase;
use crate::issues::Issue;
use crate::measures::{Inputs, LineGap, is_new_issue, new_line_gaps};
use crate::{
    Condition, Coverage, DEFAULT_GATE, Measures, RepoFiles, TestCounts, TestReport, Verdict,
    evaluate, parse_condition, uncovered_new_lines,
};

/// Something the gate could not read: which file, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GateError(pub String);

type Result<T, E = GateError> = std::result::Result<T, E>;

trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| GateError(format!("{}: {e}", what())))
    }
}

/// Where the reports are: globs relative to the directory.
#[derive(Debug, Clone, Default)]
pub struct Globs {
    pub junit: Vec<String>,
    pub coverage: Vec<String>,
    pub issues: Vec<String>,
    /// The reference's issues: fingerprints found there are not new.
    pub reference_issues: Vec<String>,
}

/// How a gate judges: its conditions, leniency for small changes, and what
/// an issue costs.
#[derive(Debug, Clone)]
pub struct GateConfig {
    pub conditions: Vec<Condition>,
    /// Coverage conditions on new code pass when it has fewer lines to cover.
    pub lenient_below: Option<u64>,
    /// Remediation minutes per issue, by severity from info to blocker.
    pub debt_minutes: [u64; 5],
    /// Fingerprints of the reference's issues (a run gets them from its
    /// reference run's gate); issues with one of these are not new.
    pub reference_fingerprints: Option<HashSet<String>>,
    /// What the new code was measured from, for the report to say.
    pub new_code_base: Option<NewCodeBase>,
}

impl Default for GateConfig {
    fn default() -> GateConfig {
        GateConfig {
            conditions: default_conditions(),
            lenient_below: None,
            debt_minutes: crate::issues::DEFAULT_DEBT_MINUTES,
            reference_fingerprints: None,
            new_code_base: None,
        }
    }
}

/// `minor=3,major=15`: remediation minutes by severity over the defaults.
pub fn debt_minutes_from(text: &str) -> Result<[u64; 5]> {
    let mut minutes = crate::issues::DEFAULT_DEBT_MINUTES;
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| GateError(format!("`{pair}` is not SEVERITY=MINUTES")))?;
        let severity = crate::issues::Severity::parse(name.trim()).ok_or_else(|| {
            GateError(format!(
                "`{name}` is not a severity; use info, minor, major, critical or blocker"
            ))
        })?;
        minutes[severity as usize] = value
            .trim()
            .parse()
            .map_err(|_| GateError(format!("`{value}` in `{pair}` is not a number of minutes")))?;
    }
    Ok(minutes)
}

/// Reports read, paths still as the tools wrote them.
#[derive(Debug)]
pub struct Reports {
    tests: TestReport,
    coverage: Vec<(Coverage, Vec<String>)>,
    issues: Vec<Issue>,
    reference_issues: Option<Vec<Issue>>,
}

impl Reports {
    pub fn read(dir: &Path, globs: &Globs) -> Result<Reports> {
        Ok(Reports {
            tests: read_tests(dir, &globs.junit)?,
            coverage: parse_coverage(dir, &globs.coverage)?,
            issues: read_issues(dir, &globs.issues)?,
            reference_issues: if globs.reference_issues.is_empty() {
                None
            } else {
                Some(read_issues(dir, &globs.reference_issues)?)
            },
        })
    }

    /// The verdict: `files` are the repository's (for paths), `diff` is
    /// `git diff -U0 -M` from the reference, `dir` holds the sources (for lines of code).
    pub fn evaluate(
        self,
        dir: &Path,
        files: Vec<String>,
        diff: &str,
        gate: &GateConfig,
    ) -> Result<Outcome> {
        let conditions = &gate.conditions[..];
        // Reading every source file is only worth it when debt is looked at.
        let debt_wanted = !self.issues.is_empty()
            || conditions
                .iter()
                .any(|c| matches!(c.metric.as_str(), "debt_ratio" | "rating" | "lines_of_code"));
        let lines_of_code = if debt_wanted {
            lines_of_code(dir, &files)
        } else {
            0
        };
        let repo = RepoFiles::new(files);
        let new_code = crate::diff::parse(diff).map_err(|e| GateError(e.to_string()))?;
        let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let (coverage, mut unmatched) = resolve_coverage(&root, self.coverage, &repo);
        let issues = resolve_issues(&root, self.issues, &repo, &mut unmatched);
        let reference: Option<HashSet<String>> = match self.reference_issues {
            Some(known) => {
                let mut ignored = Vec::new();
                Some(
                    resolve_issues(&root, known, &repo, &mut ignored)
                        .into_iter()
                        .map(|i| i.fingerprint)
                        .collect(),
                )
            }
            None => gate.reference_fingerprints.clone(),
        };
        let mut fingerprints: Vec<String> = issues.iter().map(|i| i.fingerprint.clone()).collect();
        fingerprints.sort_unstable();
        fingerprints.dedup();
        unmatched.sort();
        unmatched.dedup();
        let measures = Measures::compute(Inputs {
            tests: &self.tests.counts,
            coverage: &coverage,
            new_code: &new_code,
            issues: &issues,
            reference: reference.as_ref(),
            lines_of_code,
            debt_minutes: gate.debt_minutes,
        });
        let verdicts = evaluate(conditions, &measures, gate.lenient_below);
        let new_issues = issues
            .into_iter()
            .filter(|i| is_new_issue(i, &new_code, reference.as_ref()))
            .collect();
        let outcome = Outcome {
            passed: verdicts.iter().all(|v| v.passed),
            uncovered_new_lines: uncovered_new_lines(&coverage, &new_code),
            new_line_gaps: new_line_gaps(&coverage, &new_code),
            new_code_base: gate.new_code_base.clone(),
            verdicts,
            measures,
            tests: self.tests,
            unmatched_files: unmatched,
            new_issues,
            issue_fingerprints: fingerprints,
        };
        Ok(outcome)
    }
}

/// A gate's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub passed: bool,
    pub verdicts: Vec<Verdict>,
    pub measures: Measures,
    pub tests: TestReport,
    /// Ranges of new lines not fully covered (never run or partly), per file.
    pub uncovered_new_lines: BTreeMap<String, Vec<String>>,
    /// The same lines one by one, partly covered ones marked with their branches.
    pub new_line_gaps: BTreeMap<String, Vec<LineGap>>,
    /// What the new code was measured from.
    pub new_code_base: Option<NewCodeBase>,
    pub unmatched_files: Vec<String>,
    pub new_issues: Vec<Issue>,
    /// Every issue's fingerprint: what the next run's new issues are judged against.
    pub issue_fingerprints: Vec<String>,
}

impl Outcome {
    /// The JSON `slipway gate --json` prints and runs store.
    pub fn to_json(&self) -> Value {
        json!({
            "status": if self.passed { "passed" } else { "failed" },
            "conditions": self.verdicts,
            "measures": self.measures,
            "uncovered_new_lines": self.uncovered_new_lines,
            "uncovered_new_lines_detail": self.new_line_gaps,
            "new_code": self.new_code_json(),
            "unmatched_files": self.unmatched_files,
            "failed_tests": self.tests.failures,
            "new_issues": self.new_issues,
            "issue_fingerprints": self.issue_fingerprints,
        })
    }

    /// What was measured as new code: the base, why it, and how many lines
    /// (`null` when the caller did not say).
    fn new_code_json(&self) -> Value {
        match &self.new_code_base {
            Some(base) => json!({
                "commit": base.commit,
                "why": base.why,
                "lines": self.measures.new_lines,
                "summary": base.describe(self.measures.new_lines),
            }),
            None => Value::Null,
        }
    }

    /// The readable report.
    pub fn render(&self) -> String {
        let mut out = render(
            self.passed,
            &self.verdicts,
            &self.measures,
            &self.tests,
            &self.new_line_gaps,
            &self.unmatched_files,
        );
        if let Some(base) = &self.new_code_base {
            out.push_str(&format!(
                "new code: {}\n",
                base.describe(self.measures.new_lines)
            ));
        }
        out
    }

    /// The failed conditions in one line, for a job's reason.
    pub fn summary(&self) -> String {
        let failed: Vec<String> = self
            .verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| match v.value {
                Some(x) => format!("{} (is {})", v.condition, format_number(x)),
                None => v.condition.clone(),
            })
            .collect();
        format!("quality gate failed: {}", failed.join(", "))
    }
}

/// Conditions from text, one per line with `#` comments; `name` says where, in errors.
pub fn conditions_from_text(text: &str, name: &str) -> Result<Vec<Condition>> {
    let mut conditions: Vec<Condition> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        conditions
            .push(parse_condition(line).map_err(|e| GateError(format!("{name}:{}: {e}", n + 1)))?);
    }
    if conditions.is_empty() {
        return Err(GateError(format!(
            "{name} has no condition: a gate that checks nothing always passes"
        )));
    }
    Ok(conditions)
}

/// The default gate's conditions.
pub fn default_conditions() -> Vec<Condition> {
    DEFAULT_GATE
        .iter()
        .filter_map(|c| parse_condition(c).ok())
        .collect()
}

/// Files under `dir` matching any of `globs`, walking only below each glob's
/// literal prefix and never through a symbolic link out of it. A glob that
/// matches nothing is an error: a report that was not written is not a pass.
fn matching(dir: &Path, globs: &[String]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for pattern in globs {
        let pattern = pattern.trim_start_matches("./");
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .context(|| format!("`{pattern}` is not a valid glob"))?
            .compile_matcher();
        let literal: Vec<&str> = pattern
            .split('/')
            .take_while(|part| !part.contains(['*', '?', '[', '{']))
            .collect();
        let start = dir.join(literal.join("/"));
        refuse_links_in(dir, &literal, pattern)?;
        let before = found.len();
        let walk = walkdir::WalkDir::new(&start).follow_root_links(false);
        for entry in walk.into_iter().filter_map(std::result::Result::ok) {
            let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
            if entry.file_type().is_file() && matcher.is_match(rel) {
                found.push(entry.path().to_path_buf());
            }
        }
        if found.len() == before {
            return Err(GateError(format!(
                "no report matches `{pattern}`: did the step that writes it run?"
            )));
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// Refuses a glob whose literal prefix goes through a symbolic link: the
/// job made the link, and it may point at the server's own files.
fn refuse_links_in(dir: &Path, literal: &[&str], pattern: &str) -> Result<()> {
    let mut path = dir.to_path_buf();
    for part in literal {
        path.push(part);
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            let rel = path.strip_prefix(dir).unwrap_or(&path);
            return Err(GateError(format!(
                "report `{pattern}` goes through the symbolic link `{}`: reports are read only \
                 from files and directories inside the workspace; write the report there",
                rel.display()
            )));
        }
    }
    Ok(())
}

/// A report the job wrote below `dir`: never through a link (in any
/// component: a directory may have been swapped for one since the listing),
/// never a FIFO or a device.
fn open(dir: &Path, path: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    let file = crate::job_files::open_regular_beneath(dir, rel)
        .context(|| format!("cannot read report {}", path.display()))?;
    Ok(std::io::BufReader::with_capacity(256 * 1024, file))
}

fn read_tests(dir: &Path, globs: &[String]) -> Result<TestReport> {
    let mut all = TestReport::default();
    for path in matching(dir, globs)? {
        let report =
            crate::junit::parse(open(dir, &path)?).context(|| path.display().to_string())?;
        all.counts.add(&report.counts);
        all.failures.extend(report.failures);
    }
    Ok(all)
}

/// Each coverage report with its Cobertura source roots, paths as written.
fn parse_coverage(dir: &Path, globs: &[String]) -> Result<Vec<(Coverage, Vec<String>)>> {
    matching(dir, globs)?
        .into_iter()
        .map(|path| {
            crate::coverage::parse(open(dir, &path)?).context(|| path.display().to_string())
        })
        .collect()
}

/// Coverage with repository paths; report paths that name no file of the
/// repository are listed, not silently dropped.
fn resolve_coverage(
    root: &Path,
    reports: Vec<(Coverage, Vec<String>)>,
    repo: &RepoFiles,
) -> (Coverage, Vec<String>) {
    let mut resolved = Coverage::default();
    let mut unmatched = Vec::new();
    for (coverage, sources) in reports {
        for (file, lines) in coverage.files {
            match repo.resolve(&file, root, &sources) {
                Some(rel) => resolved.add_file(rel, lines),
                None => unmatched.push(file),
            }
        }
    }
    (resolved, unmatched)
}

fn read_issues(dir: &Path, globs: &[String]) -> Result<Vec<Issue>> {
    let mut all = Vec::new();
    for path in matching(dir, globs)? {
        all.extend(crate::issues::parse(open(dir, &path)?).context(|| path.display().to_string())?);
    }
    Ok(all)
}

/// Issues with repository paths; those in files outside it go to `unmatched`.
fn resolve_issues(
    root: &Path,
    issues: Vec<Issue>,
    repo: &RepoFiles,
    unmatched: &mut Vec<String>,
) -> Vec<Issue> {
    let mut kept = Vec::new();
    for mut issue in issues {
        match repo.resolve(&issue.file, root, &[]) {
            Some(rel) => {
                issue.relocate(rel);
                kept.push(issue);
            }
            None => unmatched.push(issue.file),
        }
    }
    kept
}

/// Non-blank lines of the repository's source files (the debt ratio's denominator).
fn lines_of_code(dir: &Path, files: &[String]) -> u64 {
    const SOURCE: &[&str] = &[
        "rs", "py", "js", "jsx", "ts", "tsx", "go", "java", "kt", "scala", "c", "h", "cc", "cpp",
        "hpp", "cs", "rb", "php", "swift", "m", "sh",
    ];
    files
        .iter()
        .filter(|f| {
            Path::new(f)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| SOURCE.contains(&e))
        })
        .filter_map(|f| {
            // The job may have put a FIFO or a link where a source file was.
            let file = crate::job_files::open_regular_beneath(dir, Path::new(f)).ok()?;
            std::io::read_to_string(file).ok()
        })
        .map(|text| text.lines().filter(|l| !l.trim().is_empty()).count() as u64)
        .sum()
}

fn render(
    passed: bool,
    verdicts: &[Verdict],
    m: &Measures,
    tests: &TestReport,
    gaps: &BTreeMap<String, Vec<LineGap>>,
    unmatched: &[String],
) -> String {
    let mut out = format!(
        "quality gate {}\n",
        if passed { "passed" } else { "FAILED" }
    );
    for v in verdicts {
        let value = v.value.map_or("-".to_string(), format_number);
        let note = v
            .note
            .as_deref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<4}  {:<32} value {value}{note}\n",
            if v.passed { "ok" } else { "FAIL" },
            v.condition
        ));
    }
    let TestCounts {
        passed: ok,
        failed,
        errored,
        skipped,
        flaky,
        ..
    } = tests.counts;
    // "run" as the `tests_run` measure counts: skipped tests did not run.
    let run = tests.counts.run();
    out.push_str(&format!(
        "tests: {run} run, {ok} passed, {failed} failed, {errored} errored, {flaky} flaky; {skipped} skipped\n"
    ));
    out.push_str(&format!(
        "coverage: {} overall ({} lines, {} conditions); new code: {} of {} lines and {} conditions to cover\n",
        percent(m.coverage),
        m.lines_to_cover,
        m.conditions_to_cover,
        percent(m.new_coverage),
        m.new_lines_to_cover,
        m.new_conditions_to_cover
    ));
    out.push_str(&format!(
        "issues: {} ({} new); debt {} min, ratio {}, rating {}\n",
        m.issues,
        m.new_issues,
        m.debt_minutes,
        percent(m.debt_ratio),
        m.rating
            .map_or("n/a".to_string(), |r| char::from(b'A' + r - 1).to_string()),
    ));
    if !gaps.is_empty() {
        out.push_str("uncovered new lines:\n");
        for (file, lines) in gaps {
            render_gaps(&mut out, file, lines);
        }
    }
    if !tests.failures.is_empty() {
        out.push_str("failed tests:\n");
        for f in &tests.failures {
            out.push_str(&format!("  {} ({}): {}\n", f.name, f.outcome, f.message));
        }
    }
    if !unmatched.is_empty() {
        out.push_str(&format!(
            "reports name files not in this repository (left out): {}\n",
            unmatched.join(", ")
        ));
    }
    out
}

/// `  app.py:9-12` for lines never run, `  app.py:8 (partly: 2/4 branches)`
/// for lines run without taking every branch.
fn render_gaps(out: &mut String, file: &str, lines: &[LineGap]) {
    let mut never: Vec<u32> = Vec::new();
    let flush = |out: &mut String, never: &mut Vec<u32>| {
        for range in crate::measures::ranges(never) {
            out.push_str(&format!("  {file}:{range}\n"));
        }
        never.clear();
    };
    for gap in lines {
        if gap.partly {
            flush(out, &mut never);
            let branches = gap.branches.as_deref().unwrap_or("some");
            out.push_str(&format!(
                "  {file}:{} (partly: {branches} branches taken)\n",
                gap.line
            ));
        } else {
            never.push(gap.line);
        }
    }
    flush(out, &mut never);
}

fn percent(value: Option<f64>) -> String {
    value.map_or("n/a".to_string(), |v| format!("{v:.1}%"))
}

fn format_number(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_the_reference_had_are_not_new() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.py"), "x = 1\ny = 2\n").expect("source");
        std::fs::write(
            dir.path().join("issues.json"),
            r#"[{"check_name":"E1","description":"d","severity":"major","fingerprint":"f1","location":{"path":"a.py","lines":{"begin":2}}}]"#,
        )
        .expect("issues");
        let diff = "+++ b/a.py\n@@ -0,0 +1,2 @@\n+x = 1\n+y = 2\n";
        let globs = Globs {
            issues: vec!["issues.json".into()],
            ..Globs::default()
        };
        let judge = |known: Option<&[&str]>| {
            let config = GateConfig {
                reference_fingerprints: known.map(|k| k.iter().map(|f| f.to_string()).collect()),
                ..GateConfig::default()
            };
            Reports::read(dir.path(), &globs)
                .and_then(|r| r.evaluate(dir.path(), vec!["a.py".into()], diff, &config))
                .expect("evaluates")
        };
        let fresh = judge(None);
        assert_eq!(fresh.measures.new_issues, 1);
        assert_eq!(fresh.issue_fingerprints, ["f1"]);
        assert_eq!(judge(Some(&["f1"])).measures.new_issues, 0);
        assert_eq!(judge(Some(&["other"])).measures.new_issues, 1);
    }

    /// Skipped tests did not run: the measure, the report's text and its JSON agree.
    #[test]
    fn run_means_executed_and_partly_covered_lines_are_marked() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("junit.xml"),
            r#"<testsuite><testcase name="a"/><testcase name="b"><skipped/></testcase><testcase name="c"><skipped message="later"/></testcase></testsuite>"#,
        )
        .expect("junit");
        // Line 1 ran taking 1 of 2 branches, 2 never ran (2 branches), 3 ran whole, 4 never ran.
        std::fs::write(
            dir.path().join("c.lcov"),
            "SF:a.py\nDA:1,3\nBRDA:1,0,0,3\nBRDA:1,0,1,0\nDA:2,0\nBRDA:2,0,0,-\nBRDA:2,0,1,-\nDA:3,1\nDA:4,0\nend_of_record\n",
        )
        .expect("lcov");
        let diff = "+++ b/a.py\n@@ -0,0 +1,4 @@\n+a\n+b\n+c\n+d\n";
        let globs = Globs {
            junit: vec!["junit.xml".into()],
            coverage: vec!["c.lcov".into()],
            ..Globs::default()
        };
        let config = GateConfig {
            new_code_base: Some(NewCodeBase::since("abc1234def", "first parent")),
            ..GateConfig::default()
        };
        let outcome = Reports::read(dir.path(), &globs)
            .and_then(|r| r.evaluate(dir.path(), vec!["a.py".into()], diff, &config))
            .expect("evaluates");
        assert_eq!(
            (outcome.measures.tests_run, outcome.measures.tests_skipped),
            (1, 2)
        );
        let text = outcome.render();
        assert!(
            text.contains("tests: 1 run, 1 passed, 0 failed, 0 errored, 0 flaky; 2 skipped"),
            "{text}"
        );
        assert!(
            text.contains("  a.py:1 (partly: 1/2 branches taken)\n  a.py:2\n  a.py:4\n"),
            "{text}"
        );
        assert!(
            text.contains("new code: 4 lines since abc1234 (first parent)"),
            "{text}"
        );
        let json = outcome.to_json();
        assert_eq!(json["uncovered_new_lines"]["a.py"], json!(["1-2", "4"]));
        assert_eq!(
            json["uncovered_new_lines_detail"]["a.py"],
            json!([
                {"line": 1, "partly": true, "branches": "1/2"},
                {"line": 2, "partly": false, "branches": "0/2"},
                {"line": 4, "partly": false},
            ])
        );
        assert_eq!(json["new_code"]["commit"], "abc1234def");
        assert_eq!(json["new_code"]["lines"], 4);
    }

    #[test]
    fn a_base_says_what_was_measured() {
        assert_eq!(
            NewCodeBase::since("0123456789", "first parent").describe(1),
            "1 line since 0123456 (first parent)"
        );
        assert_eq!(
            NewCodeBase::everything("a root commit: nothing to compare with").describe(40),
            "40 lines, every line (a root commit: nothing to compare with)"
        );
    }
}
