//! The names people give things that end up in paths, URLs, container names
//! and variables: one rule per kind, said once, so every edge (API, CLI, UI,
//! pipeline file) refuses the same names with the same words.

/// A project (or similar top-level) name: 1 to 64 of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit, so `.`, `..` and hidden names cannot be
/// made and every name is a safe path segment.
pub fn check_project_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "project name `{}` must be 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
            name.escape_debug()
        ))
    }
}

/// An environment name: lowercase letters, digits and `-`, starting with a
/// letter, at most 40 (it names containers and services).
pub fn is_environment_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 40
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A secret (or variable) name: letters, digits and `_`, not starting with a
/// digit, at most 128.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A branch name, by git's rules (`git check-ref-format --branch`): it must
/// not pass for an option (`-x`), a range or revision expression (`a..b`,
/// `x~1`, `x^`, `x@{1}`, `a:b`), or a path trick (`.x`, `a//b`, `x.lock`).
pub fn check_branch_name(name: &str) -> Result<(), String> {
    if ref_name_ok(name, " ~^:?*[\\") {
        Ok(())
    } else {
        Err(branch_refusal(name, "branch name"))
    }
}

/// A protected-branch pattern (`main`, `release/*`): a branch name whose
/// components may hold the glob characters `*`, `?` and `[…]`.
pub fn check_branch_pattern(pattern: &str) -> Result<(), String> {
    if ref_name_ok(pattern, " ~^:\\") {
        Ok(())
    } else {
        Err(branch_refusal(pattern, "branch pattern"))
    }
}

fn ref_name_ok(name: &str, refused: &str) -> bool {
    let bad_char = |c: char| c.is_ascii_control() || c == '\u{7f}' || refused.contains(c);
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("/.")
        && !name.contains(".lock/")
        && !name.contains("@{")
        && name != "@"
        && !name.chars().any(bad_char)
}

fn branch_refusal(name: &str, what: &str) -> String {
    format!(
        "`{}` is not a valid {what}: git refuses names that start with `-`, `.` or `/`, end with `/`, `.` or \
         `.lock`, or hold `..`, `//`, `@{{`, a space, a control character or one of ~ ^ : ? * [ \\ \
         (see `git check-ref-format --branch`)",
        name.escape_debug()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_git() {
        for good in [
            "main",
            "feature/x",
            "release/1.2",
            "bugfix/SLIP-12",
            "ünïcode",
        ] {
            assert!(check_branch_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a/", "x.lock", "a//b", "a@{1}", "@", ".x", "x~1", "x^",
            "a:b", "a\\b", "a\nb", "HEAD@{u}", "r/*",
        ] {
            assert!(check_branch_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_branch_pattern("release/*").is_ok());
        assert!(check_branch_pattern("-x").is_err() && check_branch_pattern("a..b").is_err());
    }

    #[test]
    fn project_names_are_safe_path_segments() {
        for good in ["web", "Web-2", "a.b_c", "9lives"] {
            assert!(check_project_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(65);
        for bad in [
            ".",
            "..",
            ".hidden",
            "-x",
            "_x",
            "",
            "a/b",
            "a b",
            "a\r\nb",
            long.as_str(),
        ] {
            assert!(check_project_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn environment_and_variable_names() {
        assert!(is_environment_name("prod-2") && !is_environment_name("Prod"));
        assert!(!is_environment_name("..") && !is_environment_name("a.b"));
        assert!(is_variable_name("_A1") && !is_variable_name("1A") && !is_variable_name("A-B"));
    }
}
