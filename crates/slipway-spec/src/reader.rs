//! Reading typed values out of YAML nodes while collecting every problem found.
//!
//! Each method returns `None` (or an empty value) after recording a diagnostic,
//! so validation carries on and the user sees all errors in one go.

use std::time::Duration;

use humantime::DurationError;

use crate::diagnostic::{Diagnostic, Pos};
use crate::model::Env;
use crate::yaml::{Node, Value};

#[derive(Debug, Default)]
pub struct Reader {
    pub diagnostics: Vec<Diagnostic>,
}

/// The fields of a mapping whose keys have been checked against the known ones.
#[derive(Debug)]
pub struct Fields<'a> {
    pub pos: Pos,
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }
}

impl Reader {
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(pos, message));
    }

    pub fn error_with_help(
        &mut self,
        pos: Pos,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::new(pos, message).with_help(help));
    }

    fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) {
        self.error(
            node.pos,
            format!("`{what}` must be {expected}, found {}", node.kind()),
        );
    }

    /// The entries of a mapping, each key a string and none repeated.
    pub fn entries<'a>(
        &mut self,
        node: &'a Node,
        what: &str,
    ) -> Vec<(&'a str, &'a Node, &'a Node)> {
        let Value::Map(pairs) = &node.value else {
            self.wrong_type(node, what, "a mapping");
            return Vec::new();
        };
        let mut out: Vec<(&str, &Node, &Node)> = Vec::with_capacity(pairs.len());
        // Index by key: pipelines with a thousand jobs must not cost a million comparisons.
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (k, v) in pairs {
            let Some(key) = k.as_str() else {
                self.error(
                    k.pos,
                    format!("keys of `{what}` must be strings, found {}", k.kind()),
                );
                continue;
            };
            if let Some(&at) = seen.get(key) {
                let line = out[at].1.pos.line;
                self.error_with_help(
                    k.pos,
                    format!("duplicate key `{key}` in `{what}` (first defined on line {line})"),
                    "names must be unique; rename or remove one of them",
                );
                continue;
            }
            seen.insert(key, out.len());
            out.push((key, k, v));
        }
        out
    }

    /// A mapping with a fixed set of keys; unknown ones are reported with a suggestion.
    pub fn fields<'a>(&mut self, node: &'a Node, what: &str, known: &[&str]) -> Option<Fields<'a>> {
        if !matches!(node.value, Value::Map(_)) {
            self.wrong_type(node, what, "a mapping");
            return None;
        }
        let mut entries = self.entries(node, what);
        entries.retain(|(key, k, _)| {
            if known.contains(key) {
                return true;
            }
            let message = format!("unknown key `{key}` in `{what}`");
            match suggest(key, known) {
                Some(s) => self.error_with_help(k.pos, message, format!("did you mean `{s}`?")),
                None => self.error_with_help(
                    k.pos,
                    message,
                    format!("known keys: {}", known.join(", ")),
                ),
            }
            false
        });
        Some(Fields {
            pos: node.pos,
            entries,
        })
    }

    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match (&node.value, node.as_str()) {
            (Value::Scalar(_), Some(s)) => Some(s.to_string()),
            _ => {
                self.wrong_type(node, what, "a string");
                None
            }
        }
    }

    /// A non-empty string.
    pub fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if s.trim().is_empty() {
            self.error(node.pos, format!("`{what}` must not be empty"));
            return None;
        }
        Some(s)
    }

    /// A list of strings; a single string counts as a list of one.
    pub fn strings(&mut self, node: &Node, what: &str) -> Vec<(String, Pos)> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|item| self.text(item, what).map(|s| (s, item.pos)))
                .collect(),
            Value::Scalar(_) if !node.is_null() => self
                .text(node, what)
                .map(|s| vec![(s, node.pos)])
                .unwrap_or_default(),
            _ => {
                self.wrong_type(node, what, "a list of strings");
                Vec::new()
            }
        }
    }

    pub fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        let b = node.as_bool();
        if b.is_none() {
            self.wrong_type(node, what, "true or false");
        }
        b
    }

    pub fn count(&mut self, node: &Node, what: &str, max: u32) -> Option<u32> {
        match node.as_u64() {
            Some(n) if n <= u64::from(max) => u32::try_from(n).ok(),
            Some(n) => {
                self.error(
                    node.pos,
                    format!("`{what}` is {n}; at most {max} is allowed"),
                );
                None
            }
            None => {
                self.wrong_type(node, what, "a whole number");
                None
            }
        }
    }

    /// `90`, `90s`, `5m`, `1h 30m`; never zero.
    pub fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let duration = match node.as_u64() {
            Some(secs) => Duration::from_secs(secs),
            None => {
                let text = self.string(node, what)?;
                match humantime::parse_duration(&text) {
                    Ok(d) => d,
                    Err(e) => {
                        let (message, at) = duration_error(&text, e);
                        let pos = at.map_or(node.pos, |at| node.pos.right(node.text_offset() + at));
                        self.error_with_help(
                            pos,
                            format!("`{what}` is not a duration: {message}"),
                            "write a duration such as `90s`, `5m` or `1h 30m`",
                        );
                        return None;
                    }
                }
            }
        };
        // A bare `0` is refused like `0s`: a zero timeout would stop the job at once.
        if duration.is_zero() {
            self.error(node.pos, format!("`{what}` must be longer than zero"));
            return None;
        }
        Some(duration)
    }

    /// Variables: names are shell identifiers and not ours; values are any scalar.
    pub fn env(&mut self, node: &Node, what: &str) -> Env {
        let mut env = Env::new();
        for (key, k, v) in self.entries(node, what) {
            if !is_identifier(key) {
                self.error_with_help(
                    k.pos,
                    format!("`{key}` is not a valid variable name"),
                    "use letters, digits and `_`, not starting with a digit",
                );
                continue;
            }
            if key.starts_with("SLIPWAY_") {
                self.error_with_help(
                    k.pos,
                    format!(
                        "`{key}` is reserved: variables starting with SLIPWAY_ are set by Slipway"
                    ),
                    "choose another name",
                );
                continue;
            }
            let value = match &v.value {
                Value::Scalar(_) if v.is_null() => Some(String::new()),
                Value::Scalar(s) => Some(s.text.clone()),
                _ => None,
            };
            match value {
                Some(value) => env.push((key.to_string(), value)),
                None => self.wrong_type(v, &format!("{what}.{key}"), "a string, number or boolean"),
            }
        }
        env
    }
}

/// humantime's message without the byte offset it ends in ("expected number at 10"),
/// and that place in characters, so the caret can show it instead.
fn duration_error(text: &str, e: DurationError) -> (String, Option<usize>) {
    let chars = |at: usize| text.get(..at).map(|t| t.chars().count());
    match e {
        DurationError::InvalidCharacter(at) => {
            let c = text.get(at..).and_then(|t| t.chars().next());
            let c = c.map(|c| format!(" `{c}`")).unwrap_or_default();
            (format!("unexpected character{c}"), chars(at))
        }
        DurationError::NumberExpected(at) => ("expected a number".into(), chars(at)),
        DurationError::UnknownUnit { start, .. } => (e.to_string(), chars(start)),
        _ => (e.to_string(), None),
    }
}

pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The known key closest to a misspelt one, if it is close enough to be a typo.
pub fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let known = ["steps", "needs", "image", "timeout"];
        assert_eq!(suggest("step", &known), Some("steps"));
        assert_eq!(suggest("neds", &known), Some("needs"));
        assert_eq!(suggest("timout", &known), Some("timeout"));
        assert_eq!(suggest("banana", &known), None);
    }
}
