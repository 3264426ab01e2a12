//! LCOV tracefiles, 1.x and 2.x: records in any order, `DA` with a checksum,
//! `BRDA` taken as `-` (never reached), `FN` with an end line.

use std::io::BufRead;

use super::{Coverage, FileLines, LineCoverage};
use crate::ParseError;

/// Reads a tracefile in place from the reader's buffer, line by line (a line
/// cut by the buffer's end is carried over); each file's lines gather in a
/// local vector that joins the result at `end_of_record`.
pub fn parse(mut input: impl BufRead) -> Result<Coverage, ParseError> {
    let mut state = Tracefile::default();
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let chunk = input
            .fill_buf()
            .map_err(|e| ParseError::new("LCOV", e.to_string()))?;
        if chunk.is_empty() {
            break;
        }
        let mut start = 0;
        while let Some(at) = chunk[start..].iter().position(|b| *b == b'\n') {
            let line = &chunk[start..start + at];
            if carry.is_empty() {
                state.line(line)?;
            } else {
                carry.extend_from_slice(line);
                state.line(&carry)?;
                carry.clear();
            }
            start += at + 1;
        }
        carry.extend_from_slice(&chunk[start..]);
        let used = chunk.len();
        input.consume(used);
    }
    if !carry.is_empty() {
        state.line(&carry)?;
    }
    Ok(state.finish())
}

/// What a tracefile has said so far.
#[derive(Default)]
struct Tracefile {
    coverage: Coverage,
    current: Option<(String, FileLines)>,
    /// The record's BRDA entries, (line, taken), in report order: grouped by
    /// line when the record ends, so each line gets all its branches at once.
    branches: Vec<(u32, u64)>,
    /// Lines read, for messages.
    number: usize,
    /// Files of one project tend to be alike: each file's lines are sized like the last.
    last_len: usize,
}

impl Tracefile {
    fn line(&mut self, raw: &[u8]) -> Result<(), ParseError> {
        self.number += 1;
        let number = self.number;
        let line = raw.trim_ascii();
        let bad = |what: &str| {
            ParseError::new(
                "LCOV",
                format!("line {number}: {what}: `{}`", String::from_utf8_lossy(line)),
            )
        };
        // DA lines are nearly all of a tracefile: look for them first.
        if let Some(value) = line.strip_prefix(b"DA:") {
            let (_, lines) = self
                .current
                .as_mut()
                .ok_or_else(|| bad("DA outside a file record"))?;
            let mut parts = value.split(|b| *b == b',');
            let at = parts
                .next()
                .and_then(number_of)
                .ok_or_else(|| bad("bad line number"))?;
            let hits = parts
                .next()
                .and_then(hits_of)
                .ok_or_else(|| bad("bad hit count"))?;
            let line_no = u32::try_from(at).map_err(|_| bad("line number out of range"))?;
            lines.push(
                line_no,
                LineCoverage {
                    hits,
                    branches: Box::default(),
                },
            );
        } else if let Some(path) = line.strip_prefix(b"SF:") {
            // A record without end_of_record ends at the next SF.
            self.close();
            self.current = Some((
                String::from_utf8_lossy(path).into_owned(),
                FileLines::with_capacity(self.last_len),
            ));
        } else if let Some(value) = line.strip_prefix(b"BRDA:") {
            if self.current.is_none() {
                return Err(bad("BRDA outside a file record"));
            }
            // LINE,BLOCK,BRANCH,TAKEN; the branch id may itself hold commas
            // (coverage.py: "jump to line 11"), so TAKEN is the last field.
            let at = value
                .split(|b| *b == b',')
                .next()
                .and_then(number_of)
                .ok_or_else(|| bad("BRDA needs LINE,BLOCK,BRANCH,TAKEN"))?;
            let taken = value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            let taken = if taken == b"-" {
                0
            } else {
                hits_of(taken).ok_or_else(|| bad("bad taken count"))?
            };
            let line_no = u32::try_from(at).map_err(|_| bad("line number out of range"))?;
            self.branches.push((line_no, taken));
        } else if line == b"end_of_record" {
            self.close();
        }
        Ok(())
    }

    fn finish(mut self) -> Coverage {
        self.close();
        self.coverage
    }

    /// Ends a file record: its branches join their lines (a branch line
    /// without DA is executable all the same, with no hits), and the file
    /// joins the result.
    fn close(&mut self) {
        let Some((file, mut lines)) = self.current.take() else {
            self.branches.clear();
            return;
        };
        self.branches.sort_by_key(|(line, _)| *line);
        for group in self.branches.chunk_by(|a, b| a.0 == b.0) {
            let taken: Box<[u64]> = group.iter().map(|(_, t)| *t).collect();
            lines.push(
                group[0].0,
                LineCoverage {
                    hits: 0,
                    branches: taken,
                },
            );
        }
        self.branches.clear();
        self.last_len = lines.len();
        self.coverage.add_file(file, lines);
    }
}

fn number_of(bytes: &[u8]) -> Option<u64> {
    let bytes = bytes.trim_ascii();
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for b in bytes {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10 + u64::from(digit);
    }
    Some(n)
}

/// Hit counts are whole numbers; some tools write them as floats.
fn hits_of(bytes: &[u8]) -> Option<u64> {
    number_of(bytes).or_else(|| {
        std::str::from_utf8(bytes)
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_in_any_order_with_checksums_and_unreached_branches() {
        let lcov = "TN:\nSF:src/a.rs\nFN:1,3,main\nFNDA:1,main\nBRDA:2,0,0,-\nDA:1,1,abcdef\nDA:2,0\nBRDA:2,0,1,4\nLF:2\nLH:1\nend_of_record\nSF:src/b.rs\nDA:5,3\nBRDA:5,0,0,1\nSF:src/a.rs\nDA:2,1\nend_of_record\n";
        let c = parse(lcov.as_bytes()).expect("parses");
        let a = &c.files["src/a.rs"];
        assert_eq!(a.get(1).map(|l| l.hits), Some(1));
        assert_eq!(
            a.get(2).map(|l| l.hits),
            Some(1),
            "records of one file merge"
        );
        assert_eq!(a.get(2).map(|l| l.branches.to_vec()), Some(vec![0, 4]));
        let b = &c.files["src/b.rs"];
        assert_eq!(
            b.get(5).map(|l| l.branches.to_vec()),
            Some(vec![1]),
            "a record closed by the next SF keeps its branches"
        );
        let t = c.totals();
        assert_eq!(
            (
                t.lines_to_cover,
                t.uncovered_lines,
                t.conditions_to_cover,
                t.uncovered_conditions
            ),
            (3, 0, 3, 1)
        );
    }

    #[test]
    fn lines_cut_by_the_buffer_read_the_same() {
        let lcov = "SF:src/a.rs\nDA:1,1\nDA:2,0\nBRDA:2,0,0,3\nend_of_record\nSF:src/b.rs\nDA:10,7";
        let whole = parse(lcov.as_bytes()).expect("parses");
        for capacity in [1, 2, 3, 7, 13] {
            let small = std::io::BufReader::with_capacity(capacity, lcov.as_bytes());
            assert_eq!(parse(small).expect("parses"), whole, "buffer of {capacity}");
        }
        assert_eq!(
            whole.files["src/b.rs"].get(10).map(|l| l.hits),
            Some(7),
            "no final newline"
        );
    }

    #[test]
    fn a_broken_line_names_itself() {
        let err = parse("SF:x\nDA:one,1\n".as_bytes()).expect_err("refused");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
