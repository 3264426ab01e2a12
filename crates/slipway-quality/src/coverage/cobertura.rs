//! Cobertura XML (coverage.py, jest, gcovr, …): several `<source>` roots,
//! the same file under several classes, `condition-coverage="50% (1/2)"`,
//! `NaN` rates (ignored: only line elements are read).

use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};

use super::{Coverage, FileLines, LineCoverage};
use crate::{ParseError, xml_attr as attr};

/// More conditions on one line than any real code has: refused, not allocated.
const MAX_CONDITIONS: u64 = 4096;

pub fn parse(input: impl BufRead) -> Result<(Coverage, Vec<String>), ParseError> {
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut coverage = Coverage::default();
    let mut sources = Vec::new();
    let mut in_source = false;
    let mut file: Option<(String, FileLines)> = None;
    let mut in_method = false;
    let mut saw_root = false;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| ParseError::at("Cobertura XML", reader.buffer_position(), e))?;
        let opens = matches!(event, Event::Start(_));
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"coverage" => saw_root = true,
                // Clover's root is <coverage> too; its files sit under <project>.
                b"project" => {
                    return Err(ParseError::new(
                        "Cobertura XML",
                        "this is a Clover report; ask the tool for Cobertura or LCOV",
                    ));
                }
                // `<source/>` and `<method/>` have no end: only a start opens them.
                b"source" if opens => in_source = true,
                b"class" => file = attr(&e, b"filename").map(|f| (f, FileLines::default())),
                // Method lines repeat the class's: counting both would double them.
                b"method" if opens => in_method = true,
                b"line" if !in_method => {
                    if let Some((_, lines)) = file.as_mut() {
                        let (number, data) = line(&e)?;
                        lines.push(number, data);
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_source => {
                let text = t
                    .decode()
                    .map_err(|e| ParseError::new("Cobertura XML", e.to_string()))?;
                if !text.trim().is_empty() {
                    sources.push(text.trim().to_string());
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"source" => in_source = false,
                b"class" => {
                    if let Some((name, lines)) = file.take() {
                        coverage.add_file(name, lines);
                    }
                }
                b"method" => in_method = false,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_root {
        return Err(ParseError::new(
            "Cobertura XML",
            "no <coverage> element: is this a Cobertura report?",
        ));
    }
    Ok((coverage, sources))
}

fn line(e: &BytesStart<'_>) -> Result<(u32, LineCoverage), ParseError> {
    let bad = |what: &str| ParseError::new("Cobertura XML", format!("a <line> has {what}"));
    let number = attr(e, b"number")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad("no valid number"))?;
    let hits = attr(e, b"hits")
        .and_then(|h| {
            h.parse::<u64>()
                .ok()
                .or_else(|| h.parse::<f64>().ok().map(|f| f.max(0.0) as u64))
        })
        .unwrap_or(0);
    let mut branches = Box::default();
    if attr(e, b"branch").as_deref() == Some("true") {
        // "50% (1/2)": one of two conditions covered.
        if let Some((covered, total)) = attr(e, b"condition-coverage").as_deref().and_then(fraction)
        {
            if total > MAX_CONDITIONS {
                return Err(bad("more than 4096 conditions on one line"));
            }
            branches = (0..total).map(|i| u64::from(i < covered)).collect();
        }
    }
    Ok((number, LineCoverage { hits, branches }))
}

fn fraction(text: &str) -> Option<(u64, u64)> {
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    let (covered, total) = inner.split_once('/')?;
    let (covered, total) = (covered.trim().parse().ok()?, total.trim().parse().ok()?);
    (covered <= total).then_some((covered, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_elements_open_nothing_and_hostile_counts_are_refused() {
        let xml = r#"<coverage><sources><source/></sources><packages><package><classes>
          <class filename="a.py"><methods><method name="m"/></methods><lines><line number="3" hits="1"/></lines></class>
        </classes></package></packages></coverage>"#;
        let (c, sources) = parse(xml.as_bytes()).expect("parses");
        assert!(sources.is_empty());
        assert_eq!(
            c.files["a.py"].len(),
            1,
            "lines after an empty <method/> still count"
        );
        let hostile = r#"<coverage><packages><package><classes><class filename="a.py"><lines>
          <line number="1" hits="0" branch="true" condition-coverage="0% (0/99999999999999)"/></lines></class></classes></package></packages></coverage>"#;
        assert!(
            parse(hostile.as_bytes())
                .expect_err("refused")
                .to_string()
                .contains("4096")
        );
        let clover =
            r#"<coverage generated="1"><project timestamp="1"><metrics/></project></coverage>"#;
        assert!(
            parse(clover.as_bytes())
                .expect_err("refused")
                .to_string()
                .contains("Clover")
        );
    }

    #[test]
    fn reads_sources_classes_and_conditions() {
        let xml = r#"<?xml version="1.0" ?>
<coverage line-rate="NaN" branch-rate="0.5">
  <sources><source>/home/ci/project</source><source>src</source></sources>
  <packages><package name="p"><classes>
    <class name="A" filename="pkg/mod.py"><methods><method name="f"><lines><line number="1" hits="1"/></lines></method></methods>
      <lines><line number="1" hits="1"/><line number="2" hits="0" branch="true" condition-coverage="50% (1/2)"/></lines></class>
    <class name="B" filename="pkg/mod.py"><lines><line number="2" hits="3"/></lines></class>
  </classes></package></packages>
</coverage>"#;
        let (c, sources) = parse(xml.as_bytes()).expect("parses");
        assert_eq!(sources, ["/home/ci/project", "src"]);
        let lines = &c.files["pkg/mod.py"];
        assert_eq!(lines.len(), 2, "method lines are not counted twice");
        assert_eq!(
            lines.get(2).map(|l| l.hits),
            Some(3),
            "classes of one file merge"
        );
        assert_eq!(lines.get(2).map(|l| l.branches.to_vec()), Some(vec![1, 0]));
    }
}
