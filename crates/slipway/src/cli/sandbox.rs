//! `slipway sandbox-exec` (hidden): the launcher a server or an agent runs
//! each host step through. It confines itself, then becomes the step's shell
//! (see `slipway_runner::sandbox`). Not for people: it has no stable options.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use slipway_runner::sandbox::Confinement;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job's cgroup, which the launcher joins before anything else.
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// A socket or socket directory to cover.
    #[arg(long)]
    hide: Vec<PathBuf>,
    /// A path the step may not read or write.
    #[arg(long)]
    protect: Vec<PathBuf>,
    /// A path the step may read, even inside a protected one.
    #[arg(long)]
    read: Vec<PathBuf>,
    /// A path the step may write.
    #[arg(long)]
    write: Vec<PathBuf>,
    /// The command to run confined.
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

pub fn run(args: Args) -> ExitCode {
    if let Err(error) = slipway_runner::sandbox::begin(args.cgroup.as_deref()) {
        eprintln!("error: {error}");
        return ExitCode::from(126);
    }
    let confinement = Confinement {
        protected: args.protect,
        hidden: args.hide,
        readable: args.read,
        writable: args.write,
    };
    // Only returns when the step could not be started confined.
    let error = confinement.exec(&args.command);
    eprintln!("error: {error}");
    // 126: "found but cannot be run", as a shell says it.
    ExitCode::from(126)
}
