//! New code: the lines a `git diff -U0 -M` adds or changes, by file (the new
//! path of a renamed file; a rename alone adds no line).

use std::collections::{BTreeMap, BTreeSet};

use crate::ParseError;

/// New lines by repository-relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCode {
    pub files: BTreeMap<String, BTreeSet<u32>>,
}

impl NewCode {
    pub fn contains(&self, file: &str, line: u32) -> bool {
        self.files
            .get(file)
            .is_some_and(|lines| lines.contains(&line))
    }

    pub fn line_count(&self) -> usize {
        self.files.values().map(BTreeSet::len).sum()
    }
}

/// Reads the output of `git diff --no-color --no-ext-diff -U0 -M BASE HEAD`.
pub fn parse(diff: &str) -> Result<NewCode, ParseError> {
    let mut new = NewCode::default();
    let mut file: Option<String> = None;
    for (n, line) in diff.lines().enumerate() {
        if let Some(path) = line.strip_prefix("+++ ") {
            file = match path {
                "/dev/null" => None,
                p => Some(unquote(p.strip_prefix("b/").unwrap_or(p))),
            };
        } else if let Some(hunk) = line.strip_prefix("@@ ") {
            let Some(f) = &file else { continue };
            let (start, count) = added_range(hunk).ok_or_else(|| {
                ParseError::new(
                    "git diff",
                    format!("line {}: unreadable hunk header `{line}`", n + 1),
                )
            })?;
            if count > 0 {
                new.files
                    .entry(f.clone())
                    .or_default()
                    .extend(start..start + count);
            }
        }
    }
    Ok(new)
}

/// `-a,b +c,d @@ …` → (c, d); a missing count means one line.
fn added_range(hunk: &str) -> Option<(u32, u32)> {
    let plus = hunk.split_whitespace().find(|w| w.starts_with('+'))?;
    let mut parts = plus[1..].split(',');
    let start = parts.next()?.parse().ok()?;
    let count = match parts.next() {
        Some(c) => c.parse().ok()?,
        None => 1,
    };
    Some((start, count))
}

/// Git quotes paths with unusual characters: `"b/a\tb.rs"`.
fn unquote(path: &str) -> String {
    let Some(inner) = path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) else {
        return path.to_string();
    };
    let inner = inner.strip_prefix("b/").unwrap_or(inner);
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_and_changed_lines_by_new_path() {
        let diff = "\
diff --git a/src/a.rs b/src/a.rs
index 1..2 100644
--- a/src/a.rs
+++ b/src/a.rs
@@ -3 +3 @@ fn main() {
-old
+new
@@ -10,0 +11,2 @@
+x
+y
@@ -20,3 +22,0 @@
-gone
diff --git a/old.rs b/moved.rs
similarity index 90%
rename from old.rs
rename to moved.rs
--- a/old.rs
+++ b/moved.rs
@@ -7 +7 @@
-a
+b
diff --git a/gone.rs b/gone.rs
deleted file mode 100644
--- a/gone.rs
+++ /dev/null
@@ -1,2 +0,0 @@
";
        let new = parse(diff).expect("parses");
        assert_eq!(new.files["src/a.rs"], BTreeSet::from([3, 11, 12]));
        assert_eq!(new.files["moved.rs"], BTreeSet::from([7]));
        assert_eq!(new.line_count(), 4);
        assert!(!new.files.contains_key("gone.rs"));
    }

    #[test]
    fn quoted_paths() {
        assert_eq!(unquote("\"b/a\\tb.rs\""), "a\tb.rs");
    }
}
