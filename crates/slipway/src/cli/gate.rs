//! `slipway gate`: the quality gate evaluated on this machine, with the same
//! code a run uses: reports found by glob, new code from `git diff`, the
//! gate's conditions (a file, or the default gate), a readable report or JSON.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;
use slipway_quality::issues::Issue;
use slipway_quality::measures::{Inputs, is_new_issue};
use slipway_quality::{
    Coverage, DEFAULT_GATE, Measures, RepoFiles, TestCounts, TestReport, Verdict, evaluate,
    parse_condition, uncovered_new_lines,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JUnit XML reports (a glob relative to the directory; repeatable).
    #[arg(long, value_name = "GLOB")]
    junit: Vec<String>,
    /// LCOV or Cobertura coverage reports (a glob; repeatable).
    #[arg(long, value_name = "GLOB")]
    coverage: Vec<String>,
    /// SARIF, cargo/clippy JSON or Code Climate issue reports (a glob; repeatable).
    #[arg(long, value_name = "GLOB")]
    issues: Vec<String>,
    /// The reference's issue reports: issues whose fingerprint is there are not new.
    #[arg(long, value_name = "GLOB")]
    reference_issues: Vec<String>,
    /// New code is what changed since this revision (commits and uncommitted changes).
    #[arg(long, value_name = "REF", default_value = "HEAD~1")]
    base: String,
    /// Conditions, one per line (`new_coverage >= 80`), relative to the directory; default: the default gate.
    #[arg(long, value_name = "FILE")]
    gate: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// The repository directory.
    #[arg(short = 'C', long = "dir", default_value = ".")]
    dir: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    // Like the report globs, a relative gate file is found in the directory.
    let gate_file = args
        .gate
        .as_ref()
        .map(|g| (args.dir.join(g), g.display().to_string()));
    let conditions = conditions(gate_file.as_ref().map(|(p, n)| (p.as_path(), n.as_str())))?;
    // git (file list and diff) runs while the reports are read.
    let (git, reports) = std::thread::scope(|scope| {
        let git = scope.spawn(|| repository_state(&args.dir, &args.base));
        let reports = read_tests(&args.dir, &args.junit)
            .and_then(|tests| Ok((tests, parse_coverage(&args.dir, &args.coverage)?)));
        (git.join(), reports)
    });
    let (repo_files, diff) = git.map_err(|_| anyhow::anyhow!("the git thread panicked"))??;
    let (tests, raw_coverage) = reports?;
    // Reading every source file is only worth it when debt is looked at.
    let debt_wanted = !args.issues.is_empty()
        || conditions
            .iter()
            .any(|c| matches!(c.metric.as_str(), "debt_ratio" | "rating" | "lines_of_code"));
    let lines_of_code = if debt_wanted {
        lines_of_code(&args.dir, &repo_files)
    } else {
        0
    };
    let repo = RepoFiles::new(repo_files);
    let new_code = slipway_quality::diff::parse(&diff)?;
    let (coverage, mut unmatched) = resolve_coverage(&args.dir, raw_coverage, &repo);
    let issues = read_issues(&args.dir, &args.issues, &repo, &mut unmatched)?;
    let reference: Option<HashSet<String>> = if args.reference_issues.is_empty() {
        None
    } else {
        let mut ignored = Vec::new();
        let known = read_issues(&args.dir, &args.reference_issues, &repo, &mut ignored)?;
        Some(known.into_iter().map(|i| i.fingerprint).collect())
    };
    unmatched.sort();
    unmatched.dedup();
    let measures = Measures::compute(Inputs {
        tests: &tests.counts,
        coverage: &coverage,
        new_code: &new_code,
        issues: &issues,
        reference: reference.as_ref(),
        lines_of_code,
    });
    let verdicts = evaluate(&conditions, &measures);
    let passed = verdicts.iter().all(|v| v.passed);
    let uncovered = uncovered_new_lines(&coverage, &new_code);
    if args.json {
        let out = json!({
            "status": if passed { "passed" } else { "failed" },
            "conditions": verdicts,
            "measures": measures,
            "uncovered_new_lines": uncovered,
            "unmatched_files": unmatched,
            "failed_tests": tests.failures,
            "new_issues": issues.iter().filter(|i| is_new_issue(i, &new_code, reference.as_ref())).collect::<Vec<_>>(),
        });
        println!("{out:#}");
    } else {
        print!(
            "{}",
            render(passed, &verdicts, &measures, &tests, &uncovered, &unmatched)
        );
    }
    // A million lines of coverage take a while to free; the process ends anyway.
    std::mem::forget(coverage);
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The gate's conditions from `file` (its path, and its name for messages).
fn conditions(file: Option<(&Path, &str)>) -> anyhow::Result<Vec<slipway_quality::Condition>> {
    let (text, name) = match file {
        Some((path, name)) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
            name,
        ),
        None => (DEFAULT_GATE.join("\n"), "default gate"),
    };
    let mut conditions = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match parse_condition(line) {
            Ok(c) => conditions.push(c),
            Err(e) => bail!("{name}:{}: {e}", n + 1),
        }
    }
    Ok(conditions)
}

/// Files under `dir` matching any of `globs`, walking only below each glob's literal prefix.
fn matching(dir: &Path, globs: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for pattern in globs {
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .with_context(|| format!("`{pattern}` is not a valid glob"))?
            .compile_matcher();
        let literal: Vec<&str> = pattern
            .split('/')
            .take_while(|part| !part.contains(['*', '?', '[', '{']))
            .collect();
        let start = dir.join(literal.join("/"));
        for entry in walkdir::WalkDir::new(&start)
            .into_iter()
            .filter_map(Result::ok)
        {
            let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
            if entry.file_type().is_file() && matcher.is_match(rel) {
                found.push(entry.path().to_path_buf());
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn open(path: &Path) -> anyhow::Result<std::io::BufReader<std::fs::File>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(std::io::BufReader::with_capacity(256 * 1024, file))
}

fn read_tests(dir: &Path, globs: &[String]) -> anyhow::Result<TestReport> {
    let mut all = TestReport::default();
    for path in matching(dir, globs)? {
        let report = slipway_quality::junit::parse(open(&path)?)
            .with_context(|| format!("{}", path.display()))?;
        all.counts.add(&report.counts);
        all.failures.extend(report.failures);
    }
    Ok(all)
}

/// The work tree's files and its diff against `base`.
fn repository_state(dir: &Path, base: &str) -> anyhow::Result<(Vec<String>, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let tree = slipway_git::WorkTree::discover(dir)
            .await?
            .with_context(|| format!("{} is not inside a git work tree", dir.display()))?;
        let files: Vec<String> = tree
            .files()
            .await?
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let diff = tree
            .diff_since(base)
            .await
            .with_context(|| format!("cannot diff against `{base}`; pass --base REF"))?;
        anyhow::Ok((files, diff))
    })
}

/// Each coverage report with its Cobertura source roots, paths as written.
fn parse_coverage(dir: &Path, globs: &[String]) -> anyhow::Result<Vec<(Coverage, Vec<String>)>> {
    matching(dir, globs)?
        .into_iter()
        .map(|path| {
            slipway_quality::coverage::parse(open(&path)?)
                .with_context(|| format!("{}", path.display()))
        })
        .collect()
}

/// Coverage with repository paths; report paths that name no file of the
/// repository are listed, not silently dropped.
fn resolve_coverage(
    dir: &Path,
    reports: Vec<(Coverage, Vec<String>)>,
    repo: &RepoFiles,
) -> (Coverage, Vec<String>) {
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut resolved = Coverage::default();
    let mut unmatched = Vec::new();
    for (coverage, sources) in reports {
        for (file, lines) in coverage.files {
            match repo.resolve(&file, &root, &sources) {
                Some(rel) => resolved.add_file(rel, lines),
                None => unmatched.push(file),
            }
        }
    }
    (resolved, unmatched)
}

/// Issues with repository paths; those in files outside it go to `unmatched`.
fn read_issues(
    dir: &Path,
    globs: &[String],
    repo: &RepoFiles,
    unmatched: &mut Vec<String>,
) -> anyhow::Result<Vec<Issue>> {
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut all = Vec::new();
    for path in matching(dir, globs)? {
        let issues = slipway_quality::issues::parse(open(&path)?)
            .with_context(|| format!("{}", path.display()))?;
        for mut issue in issues {
            match repo.resolve(&issue.file, &root, &[]) {
                Some(rel) => {
                    issue.file = rel;
                    all.push(issue);
                }
                None => unmatched.push(issue.file),
            }
        }
    }
    Ok(all)
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
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .map(|text| text.lines().filter(|l| !l.trim().is_empty()).count() as u64)
        .sum()
}

fn render(
    passed: bool,
    verdicts: &[Verdict],
    m: &Measures,
    tests: &TestReport,
    uncovered: &BTreeMap<String, Vec<String>>,
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
        total,
        passed: ok,
        failed,
        errored,
        skipped,
        flaky,
        ..
    } = tests.counts;
    out.push_str(&format!(
        "tests: {total} run, {ok} passed, {failed} failed, {errored} errored, {skipped} skipped, {flaky} flaky\n"
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
    if !uncovered.is_empty() {
        out.push_str("uncovered new lines:\n");
        for (file, ranges) in uncovered {
            for range in ranges {
                out.push_str(&format!("  {file}:{range}\n"));
            }
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
