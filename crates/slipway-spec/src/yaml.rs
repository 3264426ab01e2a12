//! A YAML document as a tree of nodes that remember where they stand in the file.
//!
//! We build our own tree from `saphyr-parser` events instead of deserialising with
//! serde because validation must report *every* problem with its line and column,
//! not stop at the first. The builder also enforces the input limits that keep
//! hostile files (alias bombs, deep nesting) from costing time or memory.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostic::{Diagnostic, Pos};

/// Limits on what a pipeline file may contain; anything beyond is refused, not parsed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted file, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes the document may have once aliases are expanded.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_depth: 64,
            max_nodes: 200_000,
        }
    }
}

/// One YAML node and the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    /// Quoted and block scalars are always strings; only plain ones can be
    /// numbers, booleans or null.
    pub plain: bool,
}

impl Node {
    /// What kind of value this is, as a user would call it in an error message.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar(s) if s.plain && is_null(&s.text) => "null",
            Value::Scalar(s) if s.plain && as_bool(&s.text).is_some() => "a boolean",
            Value::Scalar(s) if s.plain && s.text.parse::<f64>().is_ok() => "a number",
            Value::Scalar(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) if !(s.plain && is_null(&s.text)) => Some(&s.text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar(s) if s.plain => as_bool(&s.text),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match &self.value {
            Value::Scalar(s) if s.plain => s.text.parse().ok(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.plain && is_null(&s.text))
    }

    /// How far a quoted scalar's text is from its node position (the opening quote).
    pub fn text_offset(&self) -> usize {
        match &self.value {
            Value::Scalar(s) if !s.plain => 1,
            _ => 0,
        }
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn as_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Parses `source` into a tree, or returns the one diagnostic that stopped parsing.
/// An empty document yields `None`.
pub fn parse(source: &str, limits: Limits) -> Result<Option<Node>, Diagnostic> {
    if source.len() > limits.max_bytes {
        return Err(Diagnostic::new(
            Pos::START,
            format!(
                "the file is {} bytes; pipeline files may be at most {} bytes",
                source.len(),
                limits.max_bytes
            ),
        )
        .with_help("split the pipeline or move large data out of it"));
    }
    let mut builder = Builder::new(limits);
    let mut parser = Parser::new_from_str(source);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            let pos = Pos::new(m.line(), m.col() + 1);
            if e.info().contains("recursion limit") {
                return too_deep(pos, limits.max_depth);
            }
            Diagnostic::new(pos, format!("invalid YAML: {}", e.info()))
        })?;
        if builder.on_event(event, span)? {
            break;
        }
    }
    Ok(builder.root)
}

fn too_deep(pos: Pos, max_depth: usize) -> Diagnostic {
    Diagnostic::new(pos, format!("nesting deeper than {max_depth} levels"))
        .with_help("pipeline files never need this depth; flatten the structure")
}

/// A sequence or mapping still being read.
struct Open {
    pos: Pos,
    anchor: usize,
    items: Vec<Node>,
    is_map: bool,
    /// Nodes in this subtree so far, itself included (what an alias to it costs).
    size: usize,
}

struct Builder {
    limits: Limits,
    stack: Vec<Open>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    root: Option<Node>,
    documents: usize,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            root: None,
            documents: 0,
        }
    }

    /// Takes one event; returns `true` when the document is complete.
    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<bool, Diagnostic> {
        let pos = Pos::new(span.start.line(), span.start.col() + 1);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::new(
                        pos,
                        "a pipeline file holds one YAML document; found a second one",
                    )
                    .with_help(
                        "remove the `---` line or move the second document to its own file",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let node = Node {
                    pos,
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        plain,
                    }),
                };
                self.count(1, pos)?;
                self.push(node, anchor, 1);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.stack.len() >= self.limits.max_depth {
                    return Err(too_deep(pos, self.limits.max_depth));
                }
                self.count(1, pos)?;
                let is_map = matches!(event, Event::MappingStart(..));
                self.stack.push(Open {
                    pos,
                    anchor,
                    items: Vec::new(),
                    is_map,
                    size: 1,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Alias(id) => self.alias(id, pos)?,
            Event::DocumentEnd | Event::StreamEnd => return Ok(true),
            Event::Nothing | Event::StreamStart => {}
        }
        Ok(false)
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), Diagnostic> {
        self.nodes += n;
        if self.nodes > self.limits.max_nodes {
            return Err(Diagnostic::new(
                pos,
                format!(
                    "the document expands to more than {} values (aliases included)",
                    self.limits.max_nodes
                ),
            )
            .with_help("an alias that refers to large anchors many times looks like an alias bomb; expand it by hand"));
        }
        Ok(())
    }

    fn alias(&mut self, id: usize, pos: Pos) -> Result<(), Diagnostic> {
        let Some((node, size)) = self.anchors.get(&id) else {
            return Err(Diagnostic::new(pos, "alias to an unknown anchor"));
        };
        let (mut node, size) = (node.clone(), *size);
        self.count(size, pos)?;
        // The alias stands where it is written, so errors inside point at it.
        node.pos = pos;
        self.push(node, 0, size);
        Ok(())
    }

    fn close(&mut self) {
        let Some(open) = self.stack.pop() else { return };
        let size = open.size;
        let value = if open.is_map {
            let mut pairs = Vec::with_capacity(open.items.len() / 2);
            let mut items = open.items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            Value::Map(pairs)
        } else {
            Value::Seq(open.items)
        };
        self.push(
            Node {
                pos: open.pos,
                value,
            },
            open.anchor,
            size,
        );
    }

    fn push(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            Some(open) => {
                open.items.push(node);
                open.size += size;
            }
            None => self.root = Some(node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> Node {
        parse(src, Limits::default())
            .expect("parses")
            .expect("not empty")
    }

    #[test]
    fn remembers_positions() {
        let node = parse_ok("jobs:\n  build:\n    steps: []\n");
        let Value::Map(top) = &node.value else {
            panic!("map")
        };
        assert_eq!(top[0].0.pos, Pos::new(1, 1));
        let Value::Map(jobs) = &top[0].1.value else {
            panic!("map")
        };
        assert_eq!(jobs[0].0.pos, Pos::new(2, 3));
    }

    #[test]
    fn expands_aliases() {
        let node = parse_ok("a: &x [1, 2]\nb: *x\n");
        let Value::Map(top) = &node.value else {
            panic!("map")
        };
        assert_eq!(top[0].1.value, top[1].1.value);
        assert_eq!(top[1].1.pos, Pos::new(2, 4));
    }

    #[test]
    fn refuses_an_alias_bomb() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&src, Limits::default()).expect_err("refused");
        assert!(
            err.message.contains("expands to more than"),
            "{}",
            err.message
        );
    }

    #[test]
    fn refuses_deep_nesting() {
        let src = "[".repeat(10_000);
        let err = parse(&src, Limits::default()).expect_err("refused");
        assert!(err.message.contains("nesting deeper"), "{}", err.message);
    }

    #[test]
    fn scalar_kinds() {
        let node = parse_ok("[1, true, ~, x, '1']");
        let Value::Seq(items) = &node.value else {
            panic!("seq")
        };
        let kinds: Vec<_> = items.iter().map(Node::kind).collect();
        assert_eq!(
            kinds,
            ["a number", "a boolean", "null", "a string", "a string"]
        );
    }
}
