//! Problems found in a pipeline file, and how they are shown to a person:
//! `FILE:LINE:COL: error: MESSAGE`, the offending line, and a caret under the column.

use std::fmt::Write as _;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };

    pub fn new(line: usize, col: usize) -> Pos {
        Pos {
            line: line.max(1),
            col: col.max(1),
        }
    }

    /// The position `chars` characters further on the same line.
    pub fn right(self, chars: usize) -> Pos {
        Pos::new(self.line, self.col + chars)
    }
}

/// One problem at one place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
    /// What to do about it, when there is something better to say than the message.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            pos,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Renders the diagnostic the way compilers do, so editors and people can jump to it.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = format!(
            "{file}:{}:{}: error: {}\n",
            self.pos.line, self.pos.col, self.message
        );
        if let Some(line) = source.lines().nth(self.pos.line - 1) {
            let gutter = self.pos.line.to_string();
            let pad = " ".repeat(gutter.len());
            // Keep very long lines readable: show at most 200 characters around the column.
            let start = self.pos.col.saturating_sub(100).max(1);
            let shown: String = line.chars().skip(start - 1).take(200).collect();
            let caret_at = self.pos.col - start;
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{gutter} | {shown}");
            let _ = writeln!(out, "{pad} | {}^", " ".repeat(caret_at));
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_line_and_caret() {
        let d = Diagnostic::new(Pos::new(2, 5), "bad").with_help("fix it");
        let text = d.render("p.yml", "a:\n  b: c\n");
        assert_eq!(
            text,
            "p.yml:2:5: error: bad\n  |\n2 |   b: c\n  |     ^\n  = help: fix it\n"
        );
    }
}
