//! Runs on a server: trigger (and follow), list, status, logs, cancel.

use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::client::{Client, Connection};
use super::remote::{parse_run, status_line};
use super::timing;

#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    project: String,
    /// Build this branch's head [default: main].
    #[arg(long)]
    branch: Option<String>,
    /// Build this exact commit, which must be on the branch.
    #[arg(long)]
    commit: Option<String>,
    /// Follow the run's logs and exit 0 only if it succeeds.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// PROJECT/NUMBER
    run: String,
    /// Only this job.
    job: Option<String>,
    /// Keep following until the run ends.
    #[arg(short, long)]
    follow: bool,
    /// Show each line's time (RFC 3339, UTC, milliseconds) before it.
    #[arg(short, long)]
    timestamps: bool,
}

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(f)
}

pub fn trigger(conn: &Connection, args: TriggerArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    block_on(async move {
        let body = json!({ "branch": args.branch, "commit": args.commit });
        let run = client
            .post(&format!("/projects/{}/trigger", args.project), &body)
            .await?;
        println!("{}", status_line(&run));
        if !args.wait {
            return Ok(ExitCode::SUCCESS);
        }
        let number = run["number"].as_i64().unwrap_or_default();
        follow(&client, &args.project, number, Shown::default(), true).await?;
        finished(&client, &args.project, number).await
    })
}

pub fn list(conn: &Connection, project: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    block_on(async move {
        let runs = client.get(&format!("/projects/{project}/runs")).await?;
        if as_json {
            println!("{runs:#}");
        } else {
            for run in runs.as_array().into_iter().flatten() {
                println!("{}", status_line(run));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn status(conn: &Connection, run: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    let (project, number) = parse_run(run)?;
    block_on(async move {
        let detail = client
            .get(&format!("/projects/{project}/runs/{number}"))
            .await?;
        if as_json {
            println!("{detail:#}");
            return Ok(outcome(&detail["run"]));
        }
        println!("{}", status_line(&detail["run"]));
        if let Some(reason) = detail["run"]["reason"].as_str() {
            println!("{reason}");
        }
        let mut group = None;
        for job in detail["jobs"].as_array().into_iter().flatten() {
            let (header, label) = super::remote::job_label(job, &mut group);
            if let Some(header) = header {
                println!("  {header}");
            }
            let why = job["reason"]
                .as_str()
                .map(|r| format!("  {r}"))
                .unwrap_or_default();
            println!(
                "  {:<24} {:<10} {:>9}{why}",
                label,
                job["state"].as_str().unwrap_or_default(),
                timing::job_duration(job)
            );
            for step in timing::step_lines(job) {
                println!("{step}");
            }
        }
        Ok(outcome(&detail["run"]))
    })
}

/// `run-status`'s exit code, so scripts need not parse its output: 1 for a
/// failed run, 2 for a canceled one, 0 otherwise (succeeded or still going).
fn outcome(run: &Value) -> ExitCode {
    match run["state"].as_str() {
        Some("failed") => ExitCode::from(1),
        Some("canceled") => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    }
}

pub fn cancel(conn: &Connection, run: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    let (project, number) = parse_run(run)?;
    block_on(async move {
        let run = client
            .post(
                &format!("/projects/{project}/runs/{number}/cancel"),
                &json!({}),
            )
            .await?;
        println!("{}", status_line(&run));
        Ok(ExitCode::SUCCESS)
    })
}

pub fn rerun(
    conn: &Connection,
    run: &str,
    failed_only: bool,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    let (project, number) = parse_run(run)?;
    block_on(async move {
        let path = format!("/projects/{project}/runs/{number}/rerun");
        let new = client
            .post(&path, &json!({ "failed_only": failed_only }))
            .await?;
        println!("{}", status_line(&new));
        if !wait {
            return Ok(ExitCode::SUCCESS);
        }
        let number = new["number"].as_i64().unwrap_or_default();
        follow(&client, &project, number, Shown::default(), true).await?;
        finished(&client, &project, number).await
    })
}

pub fn logs(conn: &Connection, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    let (project, number) = parse_run(&args.run)?;
    block_on(async move {
        let shown = Shown {
            job: args.job.as_deref(),
            timestamps: args.timestamps,
        };
        if args.follow {
            follow(&client, &project, number, shown, false).await?;
        } else {
            print_stored(&client, &project, number, shown).await?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Which lines `logs` shows, and how.
#[derive(Debug, Clone, Copy, Default)]
struct Shown<'a> {
    /// Only this job's.
    job: Option<&'a str>,
    /// Each with its time first.
    timestamps: bool,
}

impl Shown<'_> {
    fn line(&self, job: &str, line: &str, at: &Value) -> String {
        if self.timestamps {
            format!("{} {job} │ {line}", timing::line_time(at))
        } else {
            format!("{job} │ {line}")
        }
    }
}

/// Prints log lines as they are stored until the run (or job) ends; with a
/// spinner on a terminal when `progress` is asked for.
async fn follow(
    client: &Client,
    project: &str,
    number: i64,
    shown: Shown<'_>,
    progress: bool,
) -> anyhow::Result<()> {
    let mut path = format!("/projects/{project}/runs/{number}/log");
    if let Some(job) = shown.job {
        path.push_str(&format!("?job={job}"));
    }
    let bar = (progress && console::Term::stderr().is_term()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar.set_message(format!("{project} run {number}"));
        bar
    });
    client
        .follow(&path, |event, data| {
            if event != "line" {
                return event != "end";
            }
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            let line = shown.line(
                v["job"].as_str().unwrap_or_default(),
                v["line"].as_str().unwrap_or_default(),
                &v["at"],
            );
            match &bar {
                Some(bar) => bar.suspend(|| println!("{line}")),
                None => println!("{line}"),
            }
            true
        })
        .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

async fn print_stored(
    client: &Client,
    project: &str,
    number: i64,
    shown: Shown<'_>,
) -> anyhow::Result<()> {
    let detail = client
        .get(&format!("/projects/{project}/runs/{number}"))
        .await?;
    for job in detail["jobs"].as_array().into_iter().flatten() {
        let name = job["name"].as_str().unwrap_or_default();
        if shown.job.is_some_and(|o| o != name) {
            continue;
        }
        let mut from = 0;
        loop {
            let page = client
                .get(&format!("/jobs/{}/log?from={from}&limit=5000", job["id"]))
                .await?;
            let lines = page["lines"].as_array().cloned().unwrap_or_default();
            for (i, line) in lines.iter().enumerate() {
                let text = line.as_str().unwrap_or_default();
                println!("{}", shown.line(name, text, &page["times"][i]));
            }
            if lines.is_empty() {
                break;
            }
            from = page["next_line"].as_i64().unwrap_or(from);
        }
    }
    Ok(())
}

/// The run's outcome as an exit code, with its reason when it failed.
async fn finished(client: &Client, project: &str, number: i64) -> anyhow::Result<ExitCode> {
    let detail = client
        .get(&format!("/projects/{project}/runs/{number}"))
        .await?;
    let run = &detail["run"];
    println!("{}", status_line(run));
    if run["state"] == "succeeded" {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(reason) = run["reason"].as_str() {
        eprintln!("{reason}");
    }
    Ok(ExitCode::FAILURE)
}
