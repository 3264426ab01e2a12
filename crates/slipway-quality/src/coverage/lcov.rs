//! LCOV tracefiles, 1.x and 2.x: records in any order, `DA` with a checksum,
//! `BRDA` taken as `-` (never reached), `FN` with an end line.

use std::io::BufRead;

use super::{Coverage, LineCoverage};
use crate::ParseError;

pub fn parse(input: impl BufRead) -> Result<Coverage, ParseError> {
    let mut coverage = Coverage::default();
    let mut file: Option<String> = None;
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| ParseError::new("LCOV", e.to_string()))?;
        let line = line.trim();
        let bad = |what: &str| ParseError::new("LCOV", format!("line {}: {what}: `{line}`", n + 1));
        let Some((tag, value)) = line.split_once(':') else {
            if line == "end_of_record" {
                file = None;
            }
            continue;
        };
        match tag {
            "SF" => file = Some(value.to_string()),
            "DA" => {
                let f = file
                    .as_deref()
                    .ok_or_else(|| bad("DA outside a file record"))?;
                let mut parts = value.split(',');
                let number = parts
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("bad line number"))?;
                let hits = parts
                    .next()
                    .and_then(hit_count)
                    .ok_or_else(|| bad("bad hit count"))?;
                coverage.record(
                    f,
                    number,
                    &LineCoverage {
                        hits,
                        branches: Vec::new(),
                    },
                );
            }
            "BRDA" => {
                let f = file
                    .as_deref()
                    .ok_or_else(|| bad("BRDA outside a file record"))?;
                let parts: Vec<&str> = value.split(',').collect();
                let (Some(number), Some(taken)) =
                    (parts.first().and_then(|v| v.parse().ok()), parts.get(3))
                else {
                    return Err(bad("BRDA needs LINE,BLOCK,BRANCH,TAKEN"));
                };
                let taken = if *taken == "-" {
                    0
                } else {
                    hit_count(taken).ok_or_else(|| bad("bad taken count"))?
                };
                // A branch on a line the report has no DA for still makes it executable.
                append_branch(&mut coverage, f, number, taken);
            }
            _ => {}
        }
    }
    Ok(coverage)
}

/// Hit counts are whole numbers; some tools write them as floats or huge values.
fn hit_count(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok().or_else(|| {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0)
            .map(|f| f as u64)
    })
}

fn append_branch(coverage: &mut Coverage, file: &str, line: u32, taken: u64) {
    let lines = coverage.files.entry(file.to_string()).or_default();
    lines.entry(line).or_default().branches.push(taken);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_in_any_order_with_checksums_and_unreached_branches() {
        let lcov = "TN:\nSF:src/a.rs\nFN:1,3,main\nFNDA:1,main\nBRDA:2,0,0,-\nDA:1,1,abcdef\nDA:2,0\nBRDA:2,0,1,4\nLF:2\nLH:1\nend_of_record\nSF:src/b.rs\nDA:5,3\nend_of_record\nSF:src/a.rs\nDA:2,1\nend_of_record\n";
        let c = parse(lcov.as_bytes()).expect("parses");
        let a = &c.files["src/a.rs"];
        assert_eq!(a[&1].hits, 1);
        assert_eq!(a[&2].hits, 1, "records of one file merge");
        assert_eq!(a[&2].branches, [0, 4]);
        let t = c.totals(|_, _| true);
        assert_eq!(
            (
                t.lines_to_cover,
                t.uncovered_lines,
                t.conditions_to_cover,
                t.uncovered_conditions
            ),
            (3, 0, 2, 1)
        );
    }

    #[test]
    fn a_broken_line_names_itself() {
        let err = parse("SF:x\nDA:one,1\n".as_bytes()).expect_err("refused");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
