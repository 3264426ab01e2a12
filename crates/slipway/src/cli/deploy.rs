//! Client verbs for deployments: status with the trace chain, releases,
//! deploy / promote-release / rollback, approvals, the audit log, tracing an image.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::bail;
use serde_json::{Value, json};

use super::client::{Client, Connection};
use super::remote::block_on;

/// The project a command is about: named, or the server's only one.
#[derive(Debug, clap::Args)]
pub struct ProjectArg {
    /// The project [default: the server's only project].
    #[arg(short = 'p', long = "project", env = "SLIPWAY_PROJECT")]
    pub project: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum DeployCommand {
    /// For each environment: release, version, images, run, commit, author, message, deployed when and by whom, health.
    Status {
        #[command(flatten)]
        conn: Connection,
        /// The project [default: the server's only project].
        project: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A project's releases, newest first.
    Releases {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        project: ProjectArg,
        #[arg(long)]
        json: bool,
    },
    /// Deploy a release to an environment (through its decision point, if it has one).
    Deploy {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        project: ProjectArg,
        environment: String,
        version: String,
    },
    /// Deploy what one environment runs (live and healthy) to the next: the same release, never a rebuild.
    PromoteRelease {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        project: ProjectArg,
        /// The environment whose release goes on.
        #[arg(long)]
        from: String,
        /// The environment it goes to (it must take releases `from:` the first).
        #[arg(long)]
        to: String,
    },
    /// Go back to the previous release (or --to VERSION) through the same rollout and verification.
    Rollback {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        project: ProjectArg,
        environment: String,
        #[arg(long)]
        to: Option<String>,
    },
    /// An environment's deployments, newest first.
    Deployments {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        project: ProjectArg,
        environment: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a deployment waiting at a decision point.
    Approve {
        #[command(flatten)]
        conn: Connection,
        deployment: i64,
        #[arg(short = 'm', long = "comment", default_value = "")]
        comment: String,
    },
    /// Reject a deployment waiting at a decision point (a comment is required).
    Reject {
        #[command(flatten)]
        conn: Connection,
        deployment: i64,
        #[arg(short = 'm', long = "comment")]
        comment: String,
    },
    /// Who did what: decisions, deployments, promotions, rollbacks.
    Audit {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        project: ProjectArg,
        #[arg(long)]
        json: bool,
    },
    /// Delivery metrics of an environment: deployment frequency, lead time,
    /// change failure rate, time to restore, job durations and success, queue time.
    Metrics {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        project: ProjectArg,
        /// [default: the production environment, else the last one]
        #[arg(long)]
        environment: Option<String>,
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        json: bool,
    },
    /// From an image digest to its releases, runs, commits and environments.
    Trace {
        #[command(flatten)]
        conn: Connection,
        digest: String,
        #[arg(long)]
        json: bool,
    },
}

impl DeployCommand {
    fn conn(&self) -> &Connection {
        use DeployCommand::*;
        match self {
            Status { conn, .. }
            | Releases { conn, .. }
            | Deploy { conn, .. }
            | PromoteRelease { conn, .. }
            | Rollback { conn, .. }
            | Deployments { conn, .. }
            | Approve { conn, .. }
            | Reject { conn, .. }
            | Audit { conn, .. }
            | Metrics { conn, .. }
            | Trace { conn, .. } => conn,
        }
    }
}

pub fn run(cmd: DeployCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(cmd.conn())?;
    block_on(async move {
        match cmd {
            DeployCommand::Status { project, json, .. } => {
                let project = resolve(&client, project).await?;
                let out = client.get(&format!("/projects/{project}/status")).await?;
                print_or(json, &out, || print_status(&out));
            }
            DeployCommand::Releases { project, json, .. } => {
                let out = project_get(&client, project, "releases").await?;
                print_or(json, &out, || {
                    for r in out.as_array().into_iter().flatten() {
                        println!(
                            "{:<12} {}  run {:<5} {:<16} {}",
                            text(&r["version"]),
                            short(&r["commit"]),
                            r["run_id"],
                            text(&r["branch"]),
                            text(&r["message"])
                        );
                    }
                });
            }
            DeployCommand::Deploy {
                project,
                environment,
                version,
                ..
            } => {
                let body = json!({ "version": version });
                ask(&client, project, &environment, "deploy", body).await?;
            }
            DeployCommand::PromoteRelease {
                project, from, to, ..
            } => ask(&client, project, &to, "promote", json!({ "from": from })).await?,
            DeployCommand::Rollback {
                project,
                environment,
                to,
                ..
            } => {
                ask(
                    &client,
                    project,
                    &environment,
                    "rollback",
                    json!({ "to": to }),
                )
                .await?
            }
            DeployCommand::Deployments {
                project,
                environment,
                json,
                ..
            } => {
                let path = format!("environments/{environment}/deployments");
                let out = project_get(&client, project, &path).await?;
                print_or(json, &out, || {
                    for d in out.as_array().into_iter().flatten() {
                        print_deployment(d);
                    }
                });
            }
            DeployCommand::Approve {
                deployment,
                comment,
                ..
            } => decide(&client, deployment, "approve", &comment).await?,
            DeployCommand::Reject {
                deployment,
                comment,
                ..
            } => decide(&client, deployment, "reject", &comment).await?,
            DeployCommand::Audit { project, json, .. } => {
                let out = project_get(&client, project, "audit").await?;
                print_or(json, &out, || {
                    for e in out.as_array().into_iter().flatten() {
                        println!(
                            "{}  {:<14} {:<16} {}: {}",
                            when(&e["at"]),
                            text(&e["actor"]),
                            text(&e["action"]),
                            text(&e["subject"]),
                            text(&e["detail"])
                        );
                    }
                });
            }
            DeployCommand::Metrics {
                project,
                environment,
                days,
                json,
                ..
            } => {
                let mut path = format!("metrics?days={days}");
                if let Some(e) = environment {
                    path.push_str(&format!("&environment={e}"));
                }
                let out = project_get(&client, project, &path).await?;
                print_or(json, &out, || print_metrics(&out));
            }
            DeployCommand::Trace { digest, json, .. } => {
                let out = client.get(&format!("/trace/{digest}")).await?;
                print_or(json, &out, || {
                    for r in out["releases"].as_array().into_iter().flatten() {
                        println!(
                            "{} release {} ← run {} ← commit {} by {}: {}  [live in: {}]",
                            text(&r["project"]),
                            text(&r["release"]),
                            r["run"],
                            short(&r["commit"]),
                            text(&r["author"]),
                            text(&r["message"]),
                            r["environments"]
                                .as_array()
                                .map(|e| e.iter().map(text).collect::<Vec<_>>().join(", "))
                                .unwrap_or_default()
                        );
                    }
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `GET /projects/{project}/PATH` of the named project (or the only one).
async fn project_get(client: &Client, project: ProjectArg, path: &str) -> anyhow::Result<Value> {
    let project = resolve(client, project.project).await?;
    client.get(&format!("/projects/{project}/{path}")).await
}

/// Asks an environment for a deployment (`deploy`, `promote`, `rollback`) and shows it.
async fn ask(
    client: &Client,
    project: ProjectArg,
    environment: &str,
    action: &str,
    body: Value,
) -> anyhow::Result<()> {
    let project = resolve(client, project.project).await?;
    let path = format!("/projects/{project}/environments/{environment}/{action}");
    print_deployment(&client.post(&path, &body).await?);
    Ok(())
}

/// Approves or rejects a waiting deployment and shows where it now stands.
async fn decide(
    client: &Client,
    deployment: i64,
    decision: &str,
    comment: &str,
) -> anyhow::Result<()> {
    let path = format!("/deployments/{deployment}/{decision}");
    print_deployment(&client.post(&path, &json!({ "comment": comment })).await?);
    Ok(())
}

/// The named project, or the only one the server has.
async fn resolve(client: &Client, project: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = project {
        return Ok(p);
    }
    let all = client.get("/projects").await?;
    let names: Vec<String> = all
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| text(&p["name"]))
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("the server has no project yet; `slipway project add` adds one"),
        many => bail!(
            "the server has {} projects ({}); name one with --project",
            many.len(),
            many.join(", ")
        ),
    }
}

fn print_or(json: bool, value: &Value, human: impl FnOnce()) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        human();
    }
}

fn print_status(out: &Value) {
    println!("project {}", text(&out["project"]));
    for env in out["environments"].as_array().into_iter().flatten() {
        let health = match env["health_note"].as_str() {
            Some(note) => format!("{} ({note})", text(&env["health"])),
            None => text(&env["health"]),
        };
        println!(
            "\n{}  {}  {}",
            text(&env["environment"]),
            health,
            text(&env["url"])
        );
        let live = &env["live"];
        if live.is_null() {
            println!("  nothing deployed yet");
        } else {
            println!("  release  {}", text(&live["release"]));
            println!("  run      #{} on {}", live["run"], text(&live["branch"]));
            println!(
                "  commit   {} {}",
                text(&live["commit"]),
                text(&live["message"])
            );
            println!("  author   {}", text(&live["author"]));
            println!(
                "  deployed {} by {} (deployment {})",
                when(&live["deployed_at"]),
                text(&live["deployed_by"]),
                live["deployment"]
            );
            for image in live["images"].as_array().into_iter().flatten() {
                println!(
                    "  image    {}@{}",
                    text(&image["reference"]),
                    text(&image["digest"])
                );
            }
        }
        if !env["latest"].is_null() {
            print!("  latest   ");
            print_deployment(&env["latest"]);
        }
    }
}

fn print_metrics(m: &Value) {
    let secs = |v: &Value| {
        v.as_f64()
            .map(|s| humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string())
            .unwrap_or_else(|| "-".into())
    };
    println!("environment {}", text(&m["environment"]));
    let f = &m["deployment_frequency"];
    println!(
        "  deployment frequency  {} ({:.2} a day)",
        f["deployments"],
        f["per_day"].as_f64().unwrap_or_default()
    );
    println!(
        "  lead time             median {}, mean {}",
        secs(&m["lead_time_seconds"]["median"]),
        secs(&m["lead_time_seconds"]["mean"])
    );
    let c = &m["change_failure_rate"];
    let rate = c["rate"]
        .as_f64()
        .map(|r| format!("{:.0}%", r * 100.0))
        .unwrap_or_else(|| "-".into());
    println!(
        "  change failure rate   {rate} ({} of {})",
        c["failures"], c["deployments"]
    );
    println!(
        "  time to restore       median {}",
        secs(&m["time_to_restore_seconds"]["median"])
    );
    println!(
        "  queue time            p50 {}, p95 {}",
        secs(&m["queue_seconds"]["median"]),
        secs(&m["queue_seconds"]["p95"])
    );
    for j in m["jobs"].as_array().into_iter().flatten() {
        let ratio = j["success_ratio"]
            .as_f64()
            .map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "-".into());
        println!(
            "  job {:<16} {ratio} of {} succeeded, p50 {}, p95 {}",
            text(&j["name"]),
            j["ended"],
            secs(&j["duration_seconds"]["median"]),
            secs(&j["duration_seconds"]["p95"])
        );
    }
}

fn print_deployment(d: &Value) {
    println!(
        "deployment {} of release {} to {}: {}{}",
        d["id"],
        text(&d["release"]),
        text(&d["environment"]),
        text(&d["state"]),
        d["reason"]
            .as_str()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default()
    );
    let p = &d["pending"];
    if !p.is_null() {
        let who = text(&p["who"]);
        println!(
            "  waits for {} approvals ({} so far) from {who}; `slipway approve {}` decides",
            p["required"], p["approvals"], d["id"]
        );
        let excluded: Vec<String> = p["excluded"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        if !excluded.is_empty() {
            println!("  not by its authors (four-eyes): {}", excluded.join(", "));
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn short(v: &Value) -> String {
    text(v).chars().take(12).collect()
}

fn when(v: &Value) -> String {
    v.as_u64()
        .map(|ms| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        })
        .unwrap_or_else(|| "-".into())
}
