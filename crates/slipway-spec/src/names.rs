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

#[cfg(test)]
mod tests {
    use super::*;

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
