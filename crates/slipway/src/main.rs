//! The `slipway` binary: command-line parsing and wiring, nothing else.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_when_stdout_closes();
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

/// What a shell reports for a process ended by SIGPIPE (128 + 13).
const CLOSED_PIPE_EXIT: i32 = 141;

/// `slipway logs P/1 | head -1`: once the reader has gone, `println!` panics
/// with "failed printing to stdout: Broken pipe". Rust ignores SIGPIPE, and
/// resetting it needs `unsafe` (forbidden here), so every print in the CLI is
/// covered at this one place instead: that panic ends the process quietly,
/// with the status a shell gives a process SIGPIPE ended. Any other panic is
/// reported as before.
fn quiet_when_stdout_closes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(CLOSED_PIPE_EXIT);
        }
        report(info);
    }));
}
