//! Quality gates, pure and fast: test reports (JUnit), coverage (LCOV,
//! Cobertura), new code (git diff hunks), the measures computed from them,
//! and gate conditions with their verdict and a readable report. Callers
//! read files and run git; this crate only parses and computes.

pub mod coverage;
pub mod diff;
pub mod evaluate;
pub mod gate;
pub mod issues;
pub mod job_files;
pub mod junit;
pub mod measures;
pub mod paths;

pub use coverage::Coverage;
pub use diff::NewCode;
pub use gate::{Condition, DEFAULT_GATE, Verdict, evaluate, parse_condition};
pub use junit::{TestCounts, TestReport};
pub use measures::{Measures, uncovered_new_lines};
pub use paths::RepoFiles;

/// An XML attribute's unescaped value (JUnit and Cobertura readers).
fn xml_attr(e: &quick_xml::events::BytesStart<'_>, key: &[u8]) -> Option<String> {
    e.try_get_attribute(key)
        .ok()
        .flatten()
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// A report that could not be read: which format, and what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format}: {message}")]
pub struct ParseError {
    pub format: &'static str,
    pub message: String,
}

impl ParseError {
    pub fn new(format: &'static str, message: impl Into<String>) -> ParseError {
        ParseError {
            format,
            message: message.into(),
        }
    }

    fn at(format: &'static str, offset: u64, e: impl std::fmt::Display) -> ParseError {
        ParseError::new(format, format!("at byte {offset}: {e}"))
    }
}
