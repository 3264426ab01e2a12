//! The pipeline file, `.slipway.yml`: parsing, validation and the job graph.
//!
//! This crate is pure: no I/O, no async, no processes. It turns the text of a
//! pipeline file into a [`Pipeline`] whose every value has been checked, or into
//! the full list of [`Diagnostic`]s, each with its line and column. The runner,
//! the server and the CLI all validate through here, so a file means the same
//! thing everywhere.

mod checkout;
mod dag;
mod deploy;
mod diagnostic;
pub mod matrix;
mod model;
pub mod names;
mod reader;
mod schema;
pub mod services;
mod template;
mod yaml;

pub use checkout::{Checkout, CheckoutOptions, Submodules};
pub use deploy::{
    Approval, Environment, Health, HealthCheck, Merge, Promote, ReleaseSpec, Source, TargetSpec,
};
pub use diagnostic::{Diagnostic, Pos};
pub use matrix::MatrixCell;
pub use model::{
    BranchFilter, Cache, Env, ImageBuild, Job, JobName, NewCodeReference, Pipeline, Reports, Step,
};
pub use services::Service;
pub use template::{Part, Template, TemplateVars, Var};
pub use yaml::Limits;

/// The file name a repository's pipeline has unless told otherwise.
pub const DEFAULT_FILE: &str = ".slipway.yml";

/// Parses and validates a pipeline file with the default [`Limits`].
pub fn parse(source: &str) -> Result<Pipeline, Vec<Diagnostic>> {
    parse_with(source, Limits::default())
}

/// Parses and validates a pipeline file; on failure every problem found is
/// returned, sorted by position.
pub fn parse_with(source: &str, limits: Limits) -> Result<Pipeline, Vec<Diagnostic>> {
    let root = match yaml::parse(source, limits) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(vec![
                Diagnostic::new(Pos::START, "the pipeline file is empty")
                    .with_help("define `jobs:` with at least one job"),
            ]);
        }
        Err(d) => return Err(vec![d]),
    };
    let mut reader = reader::Reader::default();
    match schema::pipeline(&mut reader, &root) {
        Some(p) if reader.diagnostics.is_empty() => Ok(p),
        _ => {
            let mut diagnostics = reader.diagnostics;
            diagnostics.sort_by_key(|d| d.pos);
            Err(diagnostics)
        }
    }
}

/// Every diagnostic rendered for a terminal, one after the other.
pub fn render_all(file: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| d.render(file, source)).collect()
}
