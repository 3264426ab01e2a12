//! New code: the lines a `git diff -U0 -M` adds or changes, by file (the new
//! path of a renamed file; a rename alone adds no line).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// What new code is measured from, so a report can say what it measured:
/// a run's reference (its branch's last green run, the push's previous head,
/// its first parent) or `slipway gate`'s base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCodeBase {
    /// The commit new code is compared with; `None`: nothing (a root commit),
    /// so every line is new.
    pub commit: Option<String>,
    /// Why that commit, for people: `first parent`, `last green run 4`,
    /// `merge-base of origin/main and HEAD`.
    pub why: String,
}

impl NewCodeBase {
    pub fn since(commit: impl Into<String>, why: impl Into<String>) -> NewCodeBase {
        NewCodeBase {
            commit: Some(commit.into()),
            why: why.into(),
        }
    }

    /// Nothing to compare with: every line is new, and `why` says so.
    pub fn everything(why: impl Into<String>) -> NewCodeBase {
        NewCodeBase {
            commit: None,
            why: why.into(),
        }
    }

    /// `12 lines since abc1234 (first parent)`.
    pub fn describe(&self, lines: u64) -> String {
        let noun = if lines == 1 { "line" } else { "lines" };
        match &self.commit {
            Some(commit) => {
                let short = commit.get(..7).unwrap_or(commit);
                format!("{lines} {noun} since {short} ({})", self.why)
            }
            None => format!("{lines} {noun}, every line ({})", self.why),
        }
    }
}

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
///
/// New lines are the `+` lines actually present, numbered from the hunk
/// header: a header's counts only say when the hunk ends, so a damaged or
/// hostile header cannot make the reader invent (or allocate) lines.
pub fn parse(diff: &str) -> Result<NewCode, ParseError> {
    let mut new = NewCode::default();
    let mut file: Option<String> = None;
    // Inside a hunk: the next new line's number, and the old and new lines still to come.
    let mut hunk: Option<(u32, u64, u64)> = None;
    for (n, line) in diff.lines().enumerate() {
        if let Some((next, old_left, new_left)) = hunk.as_mut() {
            let consumed = match line.as_bytes().first() {
                Some(b'+') if *new_left > 0 => {
                    if let Some(f) = &file {
                        new.files.entry(f.clone()).or_default().insert(*next);
                    }
                    *next = next.saturating_add(1);
                    *new_left -= 1;
                    true
                }
                Some(b'-') if *old_left > 0 => {
                    *old_left -= 1;
                    true
                }
                Some(b' ') if *new_left > 0 && *old_left > 0 => {
                    *next = next.saturating_add(1);
                    *new_left -= 1;
                    *old_left -= 1;
                    true
                }
                Some(b'\\') => true,
                _ => false,
            };
            if !consumed || hunk.is_some_and(|(_, o, n)| o == 0 && n == 0) {
                hunk = None;
            }
            // A line the hunk took is content, whatever it looks like.
            if consumed {
                continue;
            }
        }
        if let Some(path) = line.strip_prefix("+++ ") {
            // Git ends a path holding a space with a tab.
            let path = path.strip_suffix('\t').unwrap_or(path);
            file = match path {
                "/dev/null" => None,
                p => Some(unquote(p.strip_prefix("b/").unwrap_or(p))),
            };
        } else if let Some(header) = line.strip_prefix("@@ ") {
            let (start, old_count, new_count) = hunk_counts(header).ok_or_else(|| {
                ParseError::new(
                    "git diff",
                    format!("line {}: unreadable hunk header `{line}`", n + 1),
                )
            })?;
            if old_count > 0 || new_count > 0 {
                hunk = Some((start, old_count, new_count));
            }
        }
    }
    Ok(new)
}

/// `-a,b +c,d @@ …` → (c, b, d); a missing count means one line.
fn hunk_counts(header: &str) -> Option<(u32, u64, u64)> {
    let mut words = header.split_whitespace();
    let old = words.next()?.strip_prefix('-')?;
    let plus = words.next()?.strip_prefix('+')?;
    let count = |range: &str| -> Option<u64> {
        match range.split_once(',') {
            Some((_, c)) => c.parse().ok(),
            None => Some(1),
        }
    };
    let start = plus.split(',').next()?.parse().ok()?;
    Some((start, count(old)?, count(plus)?))
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
    fn hunk_headers_cannot_invent_lines() {
        // Found by fuzzing: a header claiming 81 million new lines, with none present.
        let diff = "+++ b/x.rs\n@@ -0,0 +1,81863728 @@\n+only\n+++ two\n";
        let new = parse(diff).expect("parses");
        assert_eq!(
            new.files["x.rs"],
            BTreeSet::from([1, 2]),
            "a `+++ ` line inside a hunk is content"
        );
        assert!(
            parse("+++ b/y.rs\n@@ -1 +4294967295,3 @@\n+a\n+b\n").is_ok(),
            "no overflow"
        );
    }

    #[test]
    fn the_last_line_of_a_hunk_is_content_and_spaced_paths_lose_their_tab() {
        let diff = "+++ b/my file.py\t\n@@ -0,0 +1 @@\n++ x\n@@ -5,0 +6 @@\n+y\n";
        let new = parse(diff).expect("parses");
        assert_eq!(new.files["my file.py"], BTreeSet::from([1, 6]));
        assert_eq!(new.files.len(), 1);
    }

    #[test]
    fn quoted_paths() {
        assert_eq!(unquote("\"b/a\\tb.rs\""), "a\tb.rs");
    }
}
