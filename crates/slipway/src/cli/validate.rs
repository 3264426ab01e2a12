//! `slipway validate`: the pipeline file's problems, compiler-style.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use slipway_spec::Pipeline;

use super::PipelineFile;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    file: PipelineFile,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let path = args.file.path();
    match load(&path)? {
        Ok(pipeline) => {
            println!("{}: {}", path.display(), summary(&pipeline));
            Ok(ExitCode::SUCCESS)
        }
        Err(report) => {
            eprint!("{report}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Reads and validates a pipeline file: `Ok(Err(report))` when the file is invalid,
/// `Err` when it cannot be read at all.
pub fn load(path: &Path) -> anyhow::Result<Result<Pipeline, String>> {
    let limits = slipway_spec::Limits::default();
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read pipeline file {}", path.display()))?
        .len();
    let name = path.display().to_string();
    // Refuse oversized files before reading them into memory.
    if size > limits.max_bytes as u64 {
        let d = slipway_spec::Diagnostic::new(
            slipway_spec::Pos::START,
            format!(
                "the file is {size} bytes; pipeline files may be at most {} bytes",
                limits.max_bytes
            ),
        );
        return Ok(Err(d.render(&name, "")));
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
    let source = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let d = slipway_spec::Diagnostic::new(
                slipway_spec::Pos::new(line, 1),
                "the file is not valid UTF-8",
            )
            .with_help("save the file as UTF-8");
            return Ok(Err(d.render(&name, "")));
        }
    };
    Ok(slipway_spec::parse_with(&source, limits)
        .map_err(|diagnostics| slipway_spec::render_all(&name, &source, &diagnostics)))
}

fn summary(p: &Pipeline) -> String {
    let steps: usize = p.jobs.iter().map(|j| j.steps.len()).sum();
    let containers = p.jobs.iter().filter(|j| j.image.is_some()).count();
    let images = p.jobs.iter().filter(|j| j.image_build.is_some()).count();
    let mut out = format!(
        "valid: {} jobs, {steps} steps, {containers} in containers, {images} image builds",
        p.jobs.len()
    );
    if !p.environments.is_empty() {
        let names: Vec<&str> = p.environments.iter().map(|e| e.name.as_str()).collect();
        out.push_str(&format!(", environments {}", names.join(" → ")));
    }
    out
}
