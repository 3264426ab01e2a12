//! `slipway gate`: the quality gate evaluated on this machine, with the same
//! code a run uses: reports found by glob, new code from `git diff`, the
//! gate's conditions (a file, or the default gate), a readable report or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use slipway_quality::evaluate::{
    GateConfig, Globs, Reports, conditions_from_text, debt_minutes_from, default_conditions,
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
    /// Skip coverage conditions on new code when it has fewer lines to cover than this.
    #[arg(long, value_name = "LINES")]
    lenient_below: Option<u64>,
    /// Remediation minutes per issue over the defaults (info=0,minor=2,major=10,critical=20,blocker=30).
    #[arg(long, value_name = "SEVERITY=MINUTES,…")]
    debt_minutes: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// The repository directory.
    #[arg(short = 'C', long = "dir", default_value = ".")]
    dir: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    // Like the report globs, a relative gate file is found in the directory.
    let conditions = match &args.gate {
        Some(file) => {
            let text = std::fs::read_to_string(args.dir.join(file))
                .with_context(|| format!("cannot read {}", file.display()))?;
            conditions_from_text(&text, &file.display().to_string())?
        }
        None => default_conditions(),
    };
    let globs = Globs {
        junit: args.junit.clone(),
        coverage: args.coverage.clone(),
        issues: args.issues.clone(),
        reference_issues: args.reference_issues.clone(),
    };
    // git (file list and diff) runs while the reports are read.
    let (git, reports) = std::thread::scope(|scope| {
        let git = scope.spawn(|| repository_state(&args.dir, &args.base));
        let reports = Reports::read(&args.dir, &globs);
        (git.join(), reports)
    });
    let (files, diff) = git.map_err(|_| anyhow::anyhow!("the git thread panicked"))??;
    let config = GateConfig {
        conditions,
        lenient_below: args.lenient_below,
        debt_minutes: match &args.debt_minutes {
            Some(text) => debt_minutes_from(text)?,
            None => slipway_quality::issues::DEFAULT_DEBT_MINUTES,
        },
        reference_fingerprints: None,
    };
    let outcome = reports?.evaluate(&args.dir, files, &diff, &config)?;
    if args.json {
        println!("{:#}", outcome.to_json());
    } else {
        print!("{}", outcome.render());
    }
    Ok(if outcome.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
