//! `slipway run`: validate, then run the pipeline here, showing live output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use slipway_runner::{JobStatus, LocalRun, RunSummary};
use slipway_spec::{JobName, MatrixCell};
use tokio_util::sync::CancellationToken;

use super::PipelineFile;
use crate::cli::progress::Display;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    file: PipelineFile,
    /// Run only this job and the jobs it needs (repeatable).
    #[arg(long = "job", value_name = "NAME")]
    jobs: Vec<String>,
    /// Run at most N jobs at once [default: number of cores].
    #[arg(
        short = 'j',
        long = "parallel",
        env = "SLIPWAY_PARALLEL",
        value_name = "N"
    )]
    parallel: Option<usize>,
    /// A secret for jobs that list it under `secrets:` (repeatable).
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    secrets: Vec<String>,
    /// Read secrets from a file of NAME=VALUE lines.
    #[arg(long = "secret-file", env = "SLIPWAY_SECRET_FILE", value_name = "FILE")]
    secret_file: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = args.file.path();
    let pipeline = match super::validate::load(&path)? {
        Ok(p) => p,
        Err(report) => {
            eprint!("{report}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let jobs = args
        .jobs
        .iter()
        .map(|j| JobName::parse(j).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cells = matrix_cells(&pipeline);
    let run = LocalRun {
        dir: args.file.dir.clone(),
        pipeline,
        jobs,
        parallel: args.parallel.unwrap_or_else(default_parallelism),
        secrets: secrets(&args.secrets, args.secret_file.as_deref())?,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let summary = runtime.block_on(execute(run))?;
    Ok(report(&summary, &cells))
}

/// The matrix combination each job of the pipeline is, by job name.
fn matrix_cells(pipeline: &slipway_spec::Pipeline) -> BTreeMap<String, MatrixCell> {
    pipeline
        .jobs
        .iter()
        .filter_map(|j| Some((j.name.to_string(), j.matrix.clone()?)))
        .collect()
}

/// The first column of the table: a job's name, or for a combination of a
/// matrix its values, indented under a line with the matrix's job name.
fn job_rows<'a>(
    summary: &'a RunSummary,
    cells: &BTreeMap<String, MatrixCell>,
) -> Vec<(String, Option<&'a slipway_runner::JobReport>)> {
    let mut rows = Vec::new();
    let mut group: Option<&JobName> = None;
    for job in &summary.jobs {
        let Some(cell) = cells.get(&job.name) else {
            group = None;
            rows.push((job.name.clone(), Some(job)));
            continue;
        };
        if group != Some(&cell.job) {
            group = Some(&cell.job);
            rows.push((cell.job.to_string(), None));
        }
        let values: Vec<String> = cell
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rows.push((format!("  [{}]", values.join(", ")), Some(job)));
    }
    rows
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

async fn execute(run: LocalRun) -> anyhow::Result<RunSummary> {
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "interrupted: stopping jobs and removing their containers… (Ctrl-C again to quit at once)"
            );
            on_interrupt.cancel();
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    let names: Vec<String> = run
        .pipeline
        .jobs
        .iter()
        .map(|j| j.name.to_string())
        .collect();
    let (events, receiver) = tokio::sync::mpsc::channel(1024);
    let display = tokio::spawn(Display::new(&names).show(receiver));
    let summary = run
        .execute(events, cancel)
        .await
        .map_err(anyhow::Error::msg);
    let _ = display.await;
    summary
}

/// NAME=VALUE pairs from the command line and the secret file; the command line wins.
fn secrets(
    pairs: &[String],
    file: Option<&std::path::Path>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut secrets = BTreeMap::new();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read secret file {}", file.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                bail!("{}:{}: expected NAME=VALUE", file.display(), i + 1);
            };
            secrets.insert(name.trim().to_string(), value.to_string());
        }
    }
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!(
                "--secret takes NAME=VALUE, got `{}`",
                pair.split('=').next().unwrap_or_default()
            );
        };
        secrets.insert(name.to_string(), value.to_string());
    }
    Ok(secrets)
}

/// Prints the table of jobs and says how the run ended.
fn report(summary: &RunSummary, cells: &BTreeMap<String, MatrixCell>) -> ExitCode {
    let rows = job_rows(summary, cells);
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    println!();
    println!(
        "{:<width$}  {:<10}  {:>9}  NOTE",
        "JOB", "STATUS", "DURATION"
    );
    for (label, job) in &rows {
        let Some(job) = job else {
            println!("{label}");
            continue;
        };
        let mut status = job.status.as_str().to_string();
        if job.status == JobStatus::Failed && job.allow_failure {
            status = "failed (allowed)".into();
        }
        let duration = format!("{:.1}s", job.duration_ms as f64 / 1000.0);
        let note = job.reason.as_deref().unwrap_or_default();
        println!("{label:<width$}  {status:<10}  {duration:>9}  {note}");
    }
    println!("\nlogs and summary: {}", summary.run_dir.display());
    match summary.status {
        JobStatus::Succeeded => {
            println!("run {} succeeded", summary.run);
            ExitCode::SUCCESS
        }
        JobStatus::Canceled => {
            println!("run {} canceled", summary.run);
            ExitCode::from(130)
        }
        _ => {
            let failed: Vec<String> = summary
                .failed_jobs()
                .iter()
                .map(|j| {
                    cells
                        .get(&j.name)
                        .map_or_else(|| j.name.clone(), MatrixCell::title)
                })
                .collect();
            println!("run {} failed: {}", summary.run, failed.join(", "));
            ExitCode::FAILURE
        }
    }
}
