//! Subcommands. Each module parses nothing itself: clap gives it typed options.

mod progress;
mod run;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run a pipeline on this machine: jobs on the host or in Docker containers.
    Run(run::Args),
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
        Command::Run(args) => run::run(args),
    }
}
