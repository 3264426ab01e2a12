//! Line and branch coverage by file, from LCOV or Cobertura (told apart by
//! content), merged when several reports or records name the same file.

mod cobertura;
mod lcov;

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Serialize;

use crate::ParseError;

/// One executable line as a report gives it: how often it ran, and its
/// branches (conditions), each with how often it was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineCoverage {
    pub hits: u64,
    /// Taken counts per branch, in the order the report lists them.
    pub branches: Box<[u64]>,
}

/// A stored line, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub hits: u64,
    pub branches: &'a [u64],
}

impl Line<'_> {
    pub fn uncovered_branches(&self) -> u64 {
        self.branches.iter().filter(|t| **t == 0).count() as u64
    }
}

/// One file's lines. Hits are kept as (line, hits) pairs of 8 bytes (counts
/// saturate at 4 billion: only zero or not matters), branches apart, for the
/// few lines that have them: a million-line report then takes 8 MB, not 40,
/// and filling it is mostly appending. Readers append in any order and call
/// [`FileLines::finish`], which sorts and merges repeated lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLines {
    lines: Vec<(u32, u32)>,
    branches: Vec<(u32, Box<[u64]>)>,
    /// Whether both are in order with one entry per line (pushing in order keeps it so).
    sorted: bool,
}

impl Default for FileLines {
    fn default() -> FileLines {
        FileLines::with_capacity(0)
    }
}

impl FileLines {
    pub fn with_capacity(lines: usize) -> FileLines {
        FileLines {
            lines: Vec::with_capacity(lines),
            branches: Vec::new(),
            sorted: true,
        }
    }

    pub fn push(&mut self, line: u32, data: LineCoverage) {
        if self.lines.last().is_some_and(|(last, _)| *last >= line) {
            self.sorted = false;
        }
        self.lines
            .push((line, u32::try_from(data.hits).unwrap_or(u32::MAX)));
        if !data.branches.is_empty() {
            if self.branches.last().is_some_and(|(last, _)| *last >= line) {
                self.sorted = false;
            }
            self.branches.push((line, data.branches));
        }
    }

    /// Sorts and merges lines listed more than once (hits add up, branches by position).
    pub fn finish(&mut self) {
        if self.sorted {
            return;
        }
        self.lines.sort_by_key(|(line, _)| *line);
        self.lines.dedup_by(|next, kept| {
            let same = next.0 == kept.0;
            if same {
                kept.1 = kept.1.saturating_add(next.1);
            }
            same
        });
        self.branches.sort_by_key(|(line, _)| *line);
        let mut merged: Vec<(u32, Box<[u64]>)> = Vec::with_capacity(self.branches.len());
        for (line, taken) in self.branches.drain(..) {
            match merged.last_mut() {
                Some((last, existing)) if *last == line => {
                    let mut sum = existing.to_vec();
                    if sum.len() < taken.len() {
                        sum.resize(taken.len(), 0);
                    }
                    for (mine, theirs) in sum.iter_mut().zip(taken.iter()) {
                        *mine = mine.saturating_add(*theirs);
                    }
                    *existing = sum.into_boxed_slice();
                }
                _ => merged.push((line, taken)),
            }
        }
        self.branches = merged;
        self.sorted = true;
    }

    fn branches_of(&self, line: u32) -> &[u64] {
        match self.branches.binary_search_by_key(&line, |(l, _)| *l) {
            Ok(i) => &self.branches[i].1,
            Err(_) => &[],
        }
    }

    pub fn get(&self, line: u32) -> Option<Line<'_>> {
        debug_assert!(self.sorted, "FileLines::finish was not called");
        let i = self.lines.binary_search_by_key(&line, |(l, _)| *l).ok()?;
        Some(Line {
            hits: u64::from(self.lines[i].1),
            branches: self.branches_of(line),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, Line<'_>)> {
        let mut branches = self.branches.iter().peekable();
        self.lines.iter().map(move |(line, hits)| {
            while branches.peek().is_some_and(|(l, _)| l < line) {
                branches.next();
            }
            let own = match branches.peek() {
                Some((l, taken)) if l == line => &taken[..],
                _ => &[],
            };
            (
                *line,
                Line {
                    hits: u64::from(*hits),
                    branches: own,
                },
            )
        })
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn append(&mut self, other: FileLines) {
        let last = self.lines.last().map(|(l, _)| *l);
        let last_branch = self.branches.last().map(|(l, _)| *l);
        if other.lines.first().is_some_and(|(l, _)| Some(*l) <= last)
            || other
                .branches
                .first()
                .is_some_and(|(l, _)| Some(*l) <= last_branch)
        {
            self.sorted = false;
        }
        self.lines.extend(other.lines);
        self.branches.extend(other.branches);
        self.finish();
    }
}

/// Coverage by path, as the report names the files (normalised later).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub files: BTreeMap<String, FileLines>,
}

impl Coverage {
    /// Adds one file's lines (finished), merging with what is there.
    pub fn add_file(&mut self, file: String, mut lines: FileLines) {
        lines.finish();
        match self.files.get_mut(&file) {
            Some(existing) => existing.append(lines),
            None => {
                self.files.insert(file, lines);
            }
        }
    }

    /// Totals over every line.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for lines in self.files.values() {
            for (_, data) in lines.iter() {
                t.count(data);
            }
        }
        t
    }

    /// Totals over the lines `new` names (looked up, not scanned).
    pub fn new_code_totals(&self, new: &crate::diff::NewCode) -> Totals {
        let mut t = Totals::default();
        for (file, new_lines) in &new.files {
            let Some(lines) = self.files.get(file) else {
                continue;
            };
            for data in new_lines.iter().filter_map(|l| lines.get(*l)) {
                t.count(data);
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
    fn count(&mut self, data: Line<'_>) {
        self.lines_to_cover += 1;
        self.uncovered_lines += u64::from(data.hits == 0);
        self.conditions_to_cover += data.branches.len() as u64;
        self.uncovered_conditions += data.uncovered_branches();
    }

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
