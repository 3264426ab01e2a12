//! Report paths made repository-relative: absolute paths under the checkout,
//! paths relative to a Cobertura `<source>`, and paths from another machine
//! or a container (`/workspace/src/a.rs`) matched by their longest suffix
//! that names exactly one file of the repository.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// The repository's files, and how to find one by a path's tail.
#[derive(Debug, Default)]
pub struct RepoFiles {
    files: BTreeSet<String>,
    /// File name → paths ending in it.
    by_name: HashMap<String, Vec<String>>,
}

impl RepoFiles {
    pub fn new(files: impl IntoIterator<Item = String>) -> RepoFiles {
        let files: BTreeSet<String> = files.into_iter().collect();
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        for f in &files {
            let name = f.rsplit('/').next().unwrap_or(f).to_string();
            by_name.entry(name).or_default().push(f.clone());
        }
        RepoFiles { files, by_name }
    }

    pub fn contains(&self, path: &str) -> bool {
        self.files.contains(path)
    }

    /// The repository path a report's path names, if any.
    pub fn resolve(&self, path: &str, root: &Path, sources: &[String]) -> Option<String> {
        let root = root.to_string_lossy();
        let mut candidates = vec![path.to_string()];
        candidates.extend(
            sources
                .iter()
                .map(|s| format!("{}/{path}", s.trim_end_matches('/'))),
        );
        for candidate in &candidates {
            let cleaned = clean(candidate);
            let relative = cleaned
                .strip_prefix(root.trim_end_matches('/'))
                .map(|r| r.trim_start_matches('/').to_string())
                .unwrap_or(cleaned);
            if self.files.contains(&relative) {
                return Some(relative);
            }
        }
        self.by_suffix(&clean(path))
    }

    fn by_suffix(&self, path: &str) -> Option<String> {
        let name = path.rsplit('/').next()?;
        let same_name = self.by_name.get(name)?;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        // The longest tail shared with exactly one file wins.
        for take in (1..=parts.len()).rev() {
            let tail = parts[parts.len() - take..].join("/");
            let matches: Vec<&String> = same_name
                .iter()
                .filter(|f| f.as_str() == tail || f.ends_with(&format!("/{tail}")))
                .collect();
            if let [only] = matches.as_slice() {
                return Some((*only).clone());
            }
            if matches.len() > 1 {
                return None;
            }
        }
        None
    }
}

/// `./a/./b/../c` → `a/c`, lexically (no file system access).
fn clean(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> RepoFiles {
        RepoFiles::new(
            [
                "src/lib.rs",
                "src/util/mod.rs",
                "tests/mod.rs",
                "app/main.py",
            ]
            .map(String::from),
        )
    }

    #[test]
    fn resolves_absolute_relative_source_rooted_and_foreign_paths() {
        let r = repo();
        let root = Path::new("/home/ci/checkout");
        assert_eq!(
            r.resolve("/home/ci/checkout/src/lib.rs", root, &[])
                .as_deref(),
            Some("src/lib.rs")
        );
        assert_eq!(
            r.resolve("./src/./util/../lib.rs", root, &[]).as_deref(),
            Some("src/lib.rs")
        );
        assert_eq!(
            r.resolve("main.py", root, &["/home/ci/checkout/app".into()])
                .as_deref(),
            Some("app/main.py")
        );
        assert_eq!(
            r.resolve("/workspace/src/util/mod.rs", root, &[])
                .as_deref(),
            Some("src/util/mod.rs")
        );
        assert_eq!(r.resolve("mod.rs", root, &[]), None, "ambiguous");
        assert_eq!(r.resolve("/elsewhere/other.rs", root, &[]), None);
    }
}
