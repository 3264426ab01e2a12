//! Client verbs: projects, secrets, tokens, triggers, runs and logs on a server.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, Connection};

#[derive(Debug, clap::Subcommand)]
pub enum ProjectCommand {
    /// Add a project; prints its webhook URL and secret (shown once).
    Add {
        name: String,
        /// The repository: a URL or a path the server can read.
        #[arg(long)]
        git: String,
        /// Branch patterns to build (repeatable; default: every branch).
        #[arg(long = "branch")]
        branches: Vec<String>,
        /// Poll the remote this often (`60s`, `5m`) when webhooks cannot reach the server.
        #[arg(long)]
        poll: Option<String>,
        /// Run at most N of the project's jobs at once.
        #[arg(long)]
        max_running: Option<i64>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Remove {
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Set a secret; the value is read from standard input. Without scope
    /// flags it reaches jobs on protected branches (the project's watched
    /// branches) and every environment's deployments.
    Set {
        project: String,
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Names and scopes; values are never shown.
    List {
        project: String,
        #[arg(long)]
        json: bool,
    },
    Rm {
        project: String,
        name: String,
    },
}

/// Which jobs and environments a secret reaches.
#[derive(Debug, clap::Args)]
pub struct ScopeArgs {
    /// Jobs on every branch get it, unreviewed ones too.
    #[arg(long, conflicts_with_all = ["protected_branches", "no_jobs"])]
    any_branch: bool,
    /// Only jobs on protected branches get it (the default).
    #[arg(long, conflicts_with = "no_jobs")]
    protected_branches: bool,
    /// No job gets it: only deployments (and their health and smoke commands).
    #[arg(long)]
    no_jobs: bool,
    /// Only deployments to this environment get it (repeat for several;
    /// without it, every environment).
    #[arg(long = "environment", value_name = "ENV")]
    environments: Vec<String>,
}

impl ScopeArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let jobs = if self.any_branch {
            "any"
        } else if self.no_jobs {
            "none"
        } else {
            "protected"
        };
        let mut query = vec![("jobs", jobs.to_string())];
        if !self.environments.is_empty() {
            query.push(("environments", self.environments.join(",")));
        }
        query
    }
}

/// A scope in words, for `secret list`.
fn describe(scope: &slipway_store::SecretScope) -> String {
    use slipway_store::JobScope;
    let jobs = match scope.jobs {
        JobScope::Any => "jobs on any branch",
        JobScope::Protected => "jobs on protected branches",
        JobScope::None => "no jobs",
    };
    let environments = match &scope.environments {
        None => "every environment".to_string(),
        Some(list) if list.is_empty() => "no environment".to_string(),
        Some(list) => format!("environments {}", list.join(", ")),
    };
    format!("{jobs}; {environments}")
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token (viewer, developer, admin or agent); prints it once.
    Create {
        name: String,
        #[arg(long, default_value = "developer")]
        role: String,
        /// The person the token belongs to (a user): approvals count people,
        /// whichever of their tokens they use.
        #[arg(long, conflicts_with = "email")]
        user: Option<String>,
        /// Without --user: the person with this email (in any letter case:
        /// one email is one person), made (without a password) when there is
        /// none. Four-eyes compares it with commit authors and committers.
        #[arg(long)]
        email: Option<String>,
        /// A group an approval rule can name (repeat for several).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a web UI user; the password is read from standard input.
    Add {
        name: String,
        #[arg(long, default_value = "developer")]
        role: String,
        /// Who they are at decision points (four-eyes compares it with commit
        /// authors). One email is one person: an email another user has is refused.
        #[arg(long)]
        email: Option<String>,
        /// A group an approval rule can name (repeat for several).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Change the user if it exists (password, role, email, groups).
        #[arg(long)]
        replace: bool,
    },
}

pub fn user(conn: &Connection, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    use std::io::Read as _;
    let client = Client::new(conn)?;
    let UserCommand::Add {
        name,
        role,
        email,
        groups,
        replace,
    } = cmd;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    block_on(async move {
        let out = client
            .post(
                "/users",
                &json!({ "name": name, "password": password, "role": role, "email": email, "groups": groups, "replace": replace }),
            )
            .await?;
        println!(
            "user {} ({})",
            out["name"].as_str().unwrap_or_default(),
            out["role"].as_str().unwrap_or_default()
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(f)
}

pub fn project(conn: &Connection, cmd: ProjectCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    block_on(async move {
        match cmd {
            ProjectCommand::Add {
                name,
                git,
                branches,
                poll,
                max_running,
            } => {
                let poll_seconds = poll.map(|p| humantime_secs(&p)).transpose()?;
                let body = json!({
                    "name": name, "git": git, "branches": branches,
                    "poll_seconds": poll_seconds, "max_running": max_running,
                });
                let out = client.post("/projects", &body).await?;
                println!("project {name} added");
                println!(
                    "webhook URL:    {}{}",
                    conn.url.trim_end_matches('/'),
                    out["webhook_url"].as_str().unwrap_or_default()
                );
                println!(
                    "webhook secret: {} (shown once)",
                    out["webhook_secret"].as_str().unwrap_or_default()
                );
            }
            ProjectCommand::List { json } => {
                let projects = client.get("/projects").await?;
                if json {
                    println!("{projects:#}");
                } else {
                    for p in projects.as_array().into_iter().flatten() {
                        println!(
                            "{:<20} {}",
                            p["name"].as_str().unwrap_or_default(),
                            p["git_url"].as_str().unwrap_or_default()
                        );
                    }
                }
            }
            ProjectCommand::Remove { name } => {
                client.delete(&format!("/projects/{name}")).await?;
                println!("project {name} removed");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn humantime_secs(text: &str) -> anyhow::Result<i64> {
    let secs = match text.parse::<u64>() {
        Ok(n) => n,
        Err(_) => parse_duration(text)?,
    };
    Ok(i64::try_from(secs)?)
}

fn parse_duration(text: &str) -> anyhow::Result<u64> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .with_context(|| format!("`{text}` is not a duration such as 60s or 5m"))?;
    Ok(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("`{text}` is not a duration such as 60s or 5m"),
    })
}

pub fn secret(conn: &Connection, cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    block_on(async move {
        match cmd {
            SecretCommand::Set {
                project,
                name,
                scope,
            } => {
                let mut value = String::new();
                std::io::stdin()
                    .read_to_string(&mut value)
                    .context("cannot read the secret from standard input")?;
                let req = client
                    .request(Method::PUT, &format!("/projects/{project}/secrets/{name}"))
                    .query(&scope.query())
                    .body(value);
                client.send(req).await?;
                println!("secret {name} set for {project}");
            }
            SecretCommand::List { project, json } => {
                let listed = client.get(&format!("/projects/{project}/secrets")).await?;
                if json {
                    println!("{listed}");
                } else {
                    let secrets: Vec<slipway_store::SecretEntry> =
                        serde_json::from_value(listed).context("the server's secret list")?;
                    for s in secrets {
                        println!("{:<24} {}", s.name, describe(&s.scope));
                    }
                }
            }
            SecretCommand::Rm { project, name } => {
                client
                    .delete(&format!("/projects/{project}/secrets/{name}"))
                    .await?;
                println!("secret {name} removed from {project}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn token(conn: &Connection, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    block_on(async move {
        let TokenCommand::Create {
            name,
            role,
            user,
            email,
            groups,
        } = cmd;
        let out = client
            .post(
                "/tokens",
                &json!({ "name": name, "role": role, "user": user, "email": email, "groups": groups }),
            )
            .await?;
        println!("{}", out["token"].as_str().unwrap_or_default());
        Ok(ExitCode::SUCCESS)
    })
}

/// `PROJECT/NUMBER` → the pieces.
pub fn parse_run(text: &str) -> anyhow::Result<(String, i64)> {
    let Some((project, number)) = text.rsplit_once('/') else {
        bail!("name a run as PROJECT/NUMBER, e.g. web/42");
    };
    let number = number
        .parse()
        .with_context(|| format!("`{number}` is not a run number"))?;
    Ok((project.to_string(), number))
}

pub fn status_line(run: &Value) -> String {
    format!(
        "run {} #{}  {}  {} {}",
        run["id"],
        run["number"],
        run["state"].as_str().unwrap_or_default(),
        run["branch"].as_str().unwrap_or_default(),
        run["commit"]
            .as_str()
            .map(|c| &c[..c.len().min(12)])
            .unwrap_or_default()
    )
}

/// How `run-status` names a job: its name, or for a combination of a matrix
/// its values (`  [PYTHON=3.11, DB=sqlite]`) under a line naming the matrix's
/// job, printed before its first combination (`group` remembers the last).
pub fn job_label(job: &Value, group: &mut Option<String>) -> (Option<String>, String) {
    let name = job["name"].as_str().unwrap_or_default().to_string();
    let matrix = &job["matrix"];
    let (Some(of), Some(title)) = (matrix["job"].as_str(), matrix["title"].as_str()) else {
        *group = None;
        return (None, name);
    };
    let values = title.strip_prefix(of).unwrap_or(title).trim_start();
    let header = (group.as_deref() != Some(of)).then(|| of.to_string());
    *group = Some(of.to_string());
    (header, format!("  {values}"))
}
