//! Line and branch coverage by file, from LCOV or Cobertura (told apart by
//! content), merged when several reports or records name the same file.

mod cobertura;
mod lcov;

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Serialize;

use crate::ParseError;

/// One executable line: how often it ran, and its branches (conditions),
/// each with how often it was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineCoverage {
    pub hits: u64,
    /// Taken counts per branch, in the order the report lists them.
    pub branches: Vec<u64>,
}

impl LineCoverage {
    fn merge(&mut self, other: &LineCoverage) {
        self.hits += other.hits;
        if self.branches.len() < other.branches.len() {
            self.branches.resize(other.branches.len(), 0);
        }
        for (mine, theirs) in self.branches.iter_mut().zip(&other.branches) {
            *mine += theirs;
        }
    }

    pub fn uncovered_branches(&self) -> u64 {
        self.branches.iter().filter(|t| **t == 0).count() as u64
    }
}

/// Coverage by path, as the report names the files (normalised later).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub files: BTreeMap<String, BTreeMap<u32, LineCoverage>>,
}

impl Coverage {
    /// Adds a line's data, merging with what is there.
    pub fn record(&mut self, file: &str, line: u32, data: &LineCoverage) {
        let lines = match self.files.get_mut(file) {
            Some(lines) => lines,
            None => self.files.entry(file.to_string()).or_default(),
        };
        lines.entry(line).or_default().merge(data);
    }

    pub fn merge(&mut self, other: Coverage) {
        for (file, lines) in other.files {
            for (line, data) in &lines {
                self.record(&file, *line, data);
            }
        }
    }

    /// Totals over every line, or over the lines `keep` accepts.
    pub fn totals(&self, mut keep: impl FnMut(&str, u32) -> bool) -> Totals {
        let mut t = Totals::default();
        for (file, lines) in &self.files {
            for (line, data) in lines.iter().filter(|(l, _)| keep(file, **l)) {
                let _ = line;
                t.lines_to_cover += 1;
                t.uncovered_lines += u64::from(data.hits == 0);
                t.conditions_to_cover += data.branches.len() as u64;
                t.uncovered_conditions += data.uncovered_branches();
            }
        }
        t
    }
}

/// What coverage is computed from, SonarQube's way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub lines_to_cover: u64,
    pub uncovered_lines: u64,
    pub conditions_to_cover: u64,
    pub uncovered_conditions: u64,
}

impl Totals {
    /// (lines + conditions to cover − uncovered of each) / (lines + conditions),
    /// as a percentage; `None` when there is nothing to cover. Without branch
    /// data this is line coverage.
    pub fn percent(&self) -> Option<f64> {
        let total = self.lines_to_cover + self.conditions_to_cover;
        if total == 0 {
            return None;
        }
        let covered = total - self.uncovered_lines - self.uncovered_conditions;
        Some(covered as f64 * 100.0 / total as f64)
    }
}

/// Reads an LCOV or Cobertura report, whichever `input` holds. Cobertura's
/// `<source>` roots come back too, for resolving its relative paths.
pub fn parse(mut input: impl BufRead) -> Result<(Coverage, Vec<String>), ParseError> {
    let head = input
        .fill_buf()
        .map_err(|e| ParseError::new("coverage", e.to_string()))?;
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]).into_owned();
    if text.trim_start().starts_with('<') {
        cobertura::parse(input)
    } else if text.lines().any(|l| {
        ["TN:", "SF:", "DA:", "BRDA:", "FN:", "end_of_record"]
            .iter()
            .any(|p| l.trim_start().starts_with(p))
    }) {
        Ok((lcov::parse(input)?, Vec::new()))
    } else {
        Err(ParseError::new(
            "coverage",
            "neither LCOV (SF:/DA: records) nor Cobertura XML: which tool wrote this?",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sonarqube_formula_and_line_only_fallback() {
        let t = Totals {
            lines_to_cover: 10,
            uncovered_lines: 2,
            conditions_to_cover: 6,
            uncovered_conditions: 3,
        };
        // (10 + 6 - 2 - 3) / (10 + 6)
        assert_eq!(t.percent(), Some(11.0 * 100.0 / 16.0));
        assert_eq!(Totals::default().percent(), None);
    }
}
