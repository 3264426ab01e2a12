//! Templates in cache keys and image tags: literal text with `{{ … }}` expressions.
//!
//! The language is deliberately tiny: a few run variables and `hash "GLOB" …`,
//! which stands for the SHA-256 of the files the globs match. Parsing is pure;
//! rendering takes the hashing as a function so this crate does no I/O.

use std::fmt;

/// A variable a template may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    RunNumber,
    Commit,
    CommitShort,
    Branch,
    Job,
}

impl Var {
    const ALL: [(&'static str, Var); 5] = [
        ("run.number", Var::RunNumber),
        ("commit", Var::Commit),
        ("commit.short", Var::CommitShort),
        ("branch", Var::Branch),
        ("job", Var::Job),
    ];

    fn parse(name: &str) -> Option<Var> {
        Var::ALL.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Var(Var),
    /// `hash "a" "b/**"`: the digest of every file the globs match.
    Hash(Vec<String>),
    /// `matrix.NAME`: a variable of the job's matrix. Expanding the matrix
    /// replaces it with the combination's value, so a runner never sees one.
    Matrix(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub source: String,
    pub parts: Vec<Part>,
}

/// Where in the template text a problem is (character offset) and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Default)]
pub struct TemplateVars {
    pub run_number: u64,
    pub commit: String,
    pub branch: String,
    pub job: String,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError {
                    offset: char_offset(source, offset + open),
                    message: "`{{` is never closed with `}}`".into(),
                });
            };
            let expr_start = offset + open + 2;
            parts.push(parse_expr(&after[..close], source, expr_start)?);
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if let Some(stray) = rest.find("}}") {
            return Err(TemplateError {
                offset: char_offset(source, offset + stray),
                message: "`}}` without an opening `{{`".into(),
            });
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// Every literal piece of text (for checking which characters a key uses).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        })
    }

    pub fn hashes(&self) -> impl Iterator<Item = &[String]> {
        self.parts.iter().filter_map(|p| match p {
            Part::Hash(globs) => Some(globs.as_slice()),
            _ => None,
        })
    }

    /// Renders the template; `hash` computes the digest for a `hash` expression.
    pub fn render<E>(
        &self,
        vars: &TemplateVars,
        mut hash: impl FnMut(&[String]) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(Var::RunNumber) => out.push_str(&vars.run_number.to_string()),
                Part::Var(Var::Commit) => out.push_str(&vars.commit),
                Part::Var(Var::CommitShort) => out.push_str(short(&vars.commit)),
                Part::Var(Var::Branch) => out.push_str(&vars.branch),
                Part::Var(Var::Job) => out.push_str(&vars.job),
                Part::Hash(globs) => out.push_str(&hash(globs)?),
                // Unreachable for a parsed pipeline (see `Part::Matrix`); kept
                // visible rather than silently empty should that ever change.
                Part::Matrix(name) => out.push_str(&format!("matrix.{name}")),
            }
        }
        Ok(out)
    }
}

impl Template {
    /// The matrix variables the template names.
    pub fn matrix_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Matrix(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The template with every `matrix.NAME` replaced by its value made safe for
    /// a cache key or an image tag (characters other than letters, digits, `.`,
    /// `_` and `-` become `_`); `Err` names a variable `values` does not have.
    pub fn with_matrix(&self, values: &[(String, String)]) -> Result<Template, String> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            parts.push(match part {
                Part::Matrix(name) => {
                    let value = values
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v)
                        .ok_or_else(|| name.clone())?;
                    Part::Text(safe_name(value))
                }
                other => other.clone(),
            });
        }
        let source = parts.iter().map(part_source).collect();
        Ok(Template { source, parts })
    }
}

/// A value as a piece of a file, container or tag name: letters, digits, `.`,
/// `_` and `-` kept, anything else `_`, never empty.
pub fn safe_name(value: &str) -> String {
    if value.is_empty() {
        return "_".into();
    }
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A part written back as template text.
fn part_source(part: &Part) -> String {
    match part {
        Part::Text(t) => t.clone(),
        Part::Var(v) => {
            let name = Var::ALL.iter().find(|(_, x)| x == v).map_or("", |(n, _)| n);
            format!("{{{{ {name} }}}}")
        }
        Part::Hash(globs) => {
            let quoted: Vec<String> = globs.iter().map(|g| format!("\"{g}\"")).collect();
            format!("{{{{ hash {} }}}}", quoted.join(" "))
        }
        Part::Matrix(name) => format!("{{{{ matrix.{name} }}}}"),
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn char_offset(source: &str, byte: usize) -> usize {
    source[..byte].chars().count()
}

fn parse_expr(expr: &str, source: &str, start: usize) -> Result<Part, TemplateError> {
    // Point at the expression itself, not at the blank after `{{`.
    let leading = expr.len() - expr.trim_start().len();
    let err = |message: String| TemplateError {
        offset: char_offset(source, start + leading),
        message,
    };
    let expr = expr.trim();
    if expr.is_empty() {
        return Err(err("empty `{{ }}` expression".into()));
    }
    if let Some(args) = expr.strip_prefix("hash")
        && (args.is_empty() || args.starts_with(char::is_whitespace))
    {
        return parse_hash_args(args).map(Part::Hash).map_err(err);
    }
    if let Some(name) = expr.strip_prefix("matrix.") {
        if !crate::reader::is_identifier(name) {
            return Err(err(format!(
                "`{expr}` does not name a matrix variable; write `matrix.NAME`"
            )));
        }
        return Ok(Part::Matrix(name.to_string()));
    }
    Var::parse(expr).map(Part::Var).ok_or_else(|| {
        let known: Vec<_> = Var::ALL.iter().map(|(n, _)| *n).collect();
        err(format!(
            "unknown template expression `{expr}`; known: {}, matrix.NAME, and hash \"GLOB\"",
            known.join(", ")
        ))
    })
}

/// `"a" "b"` → `["a", "b"]`; at least one argument, each double-quoted.
fn parse_hash_args(args: &str) -> Result<Vec<String>, String> {
    let mut globs = Vec::new();
    let mut rest = args.trim_start();
    while !rest.is_empty() {
        let Some(quoted) = rest.strip_prefix('"') else {
            return Err(format!(
                "`hash` takes double-quoted file globs, e.g. hash \"Cargo.lock\"; found `{rest}`"
            ));
        };
        let Some(end) = quoted.find('"') else {
            return Err("unterminated string in `hash` argument".into());
        };
        let glob = &quoted[..end];
        if glob.is_empty() {
            return Err("`hash` argument is an empty string".into());
        }
        globs.push(glob.to_string());
        rest = quoted[end + 1..].trim_start();
    }
    if globs.is_empty() {
        return Err("`hash` needs at least one file glob, e.g. hash \"Cargo.lock\"".into());
    }
    Ok(globs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t =
            Template::parse("deps-{{ hash \"Cargo.lock\" \"x/*\" }}-{{ branch }}-{{run.number}}")
                .expect("valid");
        let vars = TemplateVars {
            run_number: 7,
            branch: "main".into(),
            ..Default::default()
        };
        let out = t
            .render(&vars, |globs| Ok::<_, ()>(globs.join("+")))
            .expect("renders");
        assert_eq!(out, "deps-Cargo.lock+x/*-main-7");
    }

    #[test]
    fn errors_point_into_the_text() {
        let e = Template::parse("k-{{ hsh \"a\" }}").expect_err("invalid");
        assert_eq!(e.offset, 5);
        assert!(
            e.message
                .contains("unknown template expression `hsh \"a\"`")
        );
        assert!(Template::parse("k-{{ hash }}").is_err());
        assert!(Template::parse("k-{{ hash Cargo.lock }}").is_err());
        assert_eq!(Template::parse("k-{{ branch").expect_err("open").offset, 2);
        assert!(Template::parse("k-}}").is_err());
    }
}
