//! `slipway gate`: the quality gate evaluated on this machine, with the same
//! code a run uses: reports found by glob, new code from `git diff`, the
//! gate's conditions (a file, or the default gate), a readable report or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use slipway_quality::diff::NewCodeBase;
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
    /// New code is what changed since the merge-base of this revision and HEAD
    /// (commits and uncommitted changes), as a run measured against a branch does;
    /// default: HEAD~1.
    #[arg(long, value_name = "REV", conflicts_with = "base_exact")]
    base: Option<String>,
    /// New code is what changed since this very revision, even when it moved on
    /// after HEAD's branch left it (lines it rewrote later then count).
    #[arg(long, value_name = "REV")]
    base_exact: Option<String>,
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
        let git = scope.spawn(|| repository_state(&args.dir, &Base::of(args)));
        let reports = Reports::read(&args.dir, &globs);
        (git.join(), reports)
    });
    let (files, diff, base) = git.map_err(|_| anyhow::anyhow!("the git thread panicked"))??;
    let config = GateConfig {
        conditions,
        lenient_below: args.lenient_below,
        debt_minutes: match &args.debt_minutes {
            Some(text) => debt_minutes_from(text)?,
            None => slipway_quality::issues::DEFAULT_DEBT_MINUTES,
        },
        reference_fingerprints: None,
        new_code_base: Some(base),
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

/// What new code is compared with, as the user named it.
enum Base {
    /// The merge-base of this revision and HEAD.
    MergeBase(String),
    /// This revision itself.
    Exact(String),
}

impl Base {
    fn of(args: &Args) -> Base {
        match (&args.base, &args.base_exact) {
            (_, Some(exact)) => Base::Exact(exact.clone()),
            (Some(rev), None) => Base::MergeBase(rev.clone()),
            (None, None) => Base::MergeBase("HEAD~1".into()),
        }
    }

    /// The commit to diff against, and what it is for the report.
    async fn resolve(&self, tree: &slipway_git::WorkTree) -> anyhow::Result<NewCodeBase> {
        Ok(match self {
            Base::MergeBase(rev) => {
                let commit = tree.merge_base_with_head(rev).await.with_context(|| {
                    format!(
                        "`{rev}` and HEAD have no merge-base: pass --base with a revision HEAD's history \
                         shares (e.g. origin/main after `git fetch`), or --base-exact REV"
                    )
                })?;
                NewCodeBase::since(commit, format!("merge-base of {rev} and HEAD"))
            }
            Base::Exact(rev) => {
                let commit = tree.resolve(rev).await.with_context(|| {
                    format!("`{rev}` names no commit here: pass --base-exact with a branch, tag or commit")
                })?;
                NewCodeBase::since(
                    commit,
                    format!("{rev} exactly, with what it changed since HEAD's branch left it"),
                )
            }
        })
    }
}

/// The work tree's files, its diff against the base, and what the base is.
fn repository_state(dir: &Path, base: &Base) -> anyhow::Result<(Vec<String>, String, NewCodeBase)> {
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
        let base = base.resolve(&tree).await?;
        let commit = base.commit.as_deref().unwrap_or_default();
        let diff = tree.diff_since(commit).await.with_context(|| {
            format!(
                "cannot diff against {commit} ({}); pass --base REV",
                base.why
            )
        })?;
        anyhow::Ok((files, diff, base))
    })
}
