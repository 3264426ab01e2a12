//! Subcommands. Each module gets typed options from clap and does one thing.

mod agent;
mod agent_mirror;
mod client;
mod demo;
mod deploy;
mod gate;
mod init;
mod progress;
mod registry;
mod remote;
mod run;
mod runs;
mod sandbox;
mod secret_flags;
mod server;
mod timing;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use client::Connection;
pub use secret_flags::hide as hide_secret_flags;

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Continuous delivery in one program"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a pipeline file and report every problem with its line and column.
    Validate(validate::Args),
    /// Write a `.slipway.yml` for this repository (Rust, Python, Node, Java),
    /// explaining each choice; never overwrites one.
    Init(init::Args),
    /// Try Slipway: a server on embedded defaults with the example service
    /// built, released and deployed to a healthy `dev` (no Docker needed).
    Demo(demo::Args),
    /// Evaluate a quality gate here: test and coverage reports against the code changed since a revision.
    Gate(gate::Args),
    /// Run a pipeline on this machine: jobs on the host or in Docker containers.
    Run(run::Args),
    /// Serve the API, webhooks and live logs, and run jobs with in-process workers.
    Server(server::Args),
    /// Run jobs for a server from this host.
    Agent(agent::Args),
    /// Projects on a server.
    Project {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: remote::ProjectCommand,
    },
    /// Project secrets on a server (values are never shown).
    Secret {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: remote::SecretCommand,
    },
    /// API tokens.
    Token {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: remote::TokenCommand,
    },
    /// Start a run of a project on a server.
    Trigger {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: runs::TriggerArgs,
    },
    /// A project's runs, newest first.
    Runs {
        #[command(flatten)]
        conn: Connection,
        project: String,
        #[arg(long)]
        json: bool,
    },
    /// A run's state and its jobs (RUN is PROJECT/NUMBER); exits 1 if the
    /// run failed, 2 if it was canceled.
    RunStatus {
        #[command(flatten)]
        conn: Connection,
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// A run's logs; -f follows them live.
    Logs {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: runs::LogsArgs,
    },
    /// Run a run again: every job, or with --failed only those that did not succeed.
    Rerun {
        #[command(flatten)]
        conn: Connection,
        run: String,
        #[arg(long)]
        failed: bool,
        /// Follow the new run and exit 0 only if it succeeds.
        #[arg(long)]
        wait: bool,
    },
    /// Artifact repositories on a server.
    Repo {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: registry::RepoCommand,
    },
    /// Make an image available in another repository, by reference (no bytes copied).
    Promote {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: registry::PromoteArgs,
    },
    /// Apply retention and free blobs nothing references.
    Gc {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: registry::GcArgs,
    },
    #[command(flatten)]
    Deploy(deploy::DeployCommand),
    /// Web UI users.
    User {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: remote::UserCommand,
    },
    /// Cancel a run (RUN is PROJECT/NUMBER).
    Cancel {
        #[command(flatten)]
        conn: Connection,
        run: String,
    },
    /// Runs a host step confined (used by servers and agents, not people).
    #[command(hide = true)]
    SandboxExec(sandbox::Args),
}

/// Where the pipeline file is: shared by `validate` and `run`.
#[derive(Debug, clap::Args)]
struct PipelineFile {
    /// Work in this directory instead of the current one.
    #[arg(short = 'C', long = "dir", env = "SLIPWAY_DIR", default_value = ".")]
    dir: PathBuf,
    /// The pipeline file [default: DIR/.slipway.yml].
    #[arg(short = 'f', long = "file", env = "SLIPWAY_FILE")]
    file: Option<PathBuf>,
}

impl PipelineFile {
    fn path(&self) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| self.dir.join(slipway_spec::DEFAULT_FILE))
    }
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Demo(args) => demo::run(args),
        Command::Gate(args) => gate::run(&args),
        Command::Run(args) => run::run(args),
        Command::Server(args) => server::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Project { conn, cmd } => remote::project(&conn, cmd),
        Command::Secret { conn, cmd } => remote::secret(&conn, cmd),
        Command::Token { conn, cmd } => remote::token(&conn, cmd),
        Command::Trigger { conn, args } => runs::trigger(&conn, args),
        Command::Runs {
            conn,
            project,
            json,
        } => runs::list(&conn, &project, json),
        Command::RunStatus { conn, run, json } => runs::status(&conn, &run, json),
        Command::Logs { conn, args } => runs::logs(&conn, args),
        Command::Cancel { conn, run } => runs::cancel(&conn, &run),
        Command::SandboxExec(args) => Ok(sandbox::run(args)),
        Command::Repo { conn, cmd } => registry::repo(&conn, cmd),
        Command::Promote { conn, args } => registry::promote(&conn, args),
        Command::Gc { conn, args } => registry::gc(&conn, args),
        Command::Deploy(cmd) => deploy::run(cmd),
        Command::User { conn, cmd } => remote::user(&conn, cmd),
        Command::Rerun {
            conn,
            run,
            failed,
            wait,
        } => runs::rerun(&conn, &run, failed, wait),
    }
}

/// Logs for long-running commands (server, agent): `RUST_LOG` or `info`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
