//! The `slipway` binary: command-line parsing and wiring, nothing else.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything reads them: secrets never stay in the process list.
    if let Err(e) = cli::hide_secret_flags() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
