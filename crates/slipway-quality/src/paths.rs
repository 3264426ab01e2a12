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

    /// The repository path a report's path names, if any: relative to a
    /// Cobertura source first, then as written, then by suffix.
    pub fn resolve(&self, path: &str, root: &Path, sources: &[String]) -> Option<String> {
        let root = root.to_string_lossy();
        let mut candidates: Vec<String> = sources
            .iter()
            .map(|s| format!("{}/{path}", s.trim_end_matches('/')))
            .collect();
        candidates.push(path.to_string());
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

    /// A path from elsewhere (`/workspace/src/a.rs`) names the repository file
    /// it ends with, the longest if several do; a bare relative path
    /// (`a.rs`) names the one file ending with it, if only one does. A
    /// repository file is never matched by a mere tail of its name's
    /// directory: `/usr/lib/x/utils.py` is not `src/utils.py`.
    fn by_suffix(&self, path: &str) -> Option<String> {
        let name = path.rsplit('/').next()?;
        let same_name = self.by_name.get(name)?;
        let from_elsewhere = path.starts_with('/');
        let matches: Vec<&String> = same_name
            .iter()
            .filter(|f| {
                if from_elsewhere {
                    path.ends_with(&format!("/{f}"))
                } else {
                    f.as_str() == path || f.ends_with(&format!("/{path}"))
                }
            })
            .collect();
        if from_elsewhere {
            // The most specific repository path that the report path ends with.
            let longest = matches.iter().map(|f| f.len()).max()?;
            let best: Vec<&&String> = matches.iter().filter(|f| f.len() == longest).collect();
            return (best.len() == 1).then(|| (**best[0]).clone());
        }
        match matches.as_slice() {
            [only] => Some((*only).clone()),
            _ => None,
        }
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
        // A file outside the repository with a repository file's name is not that file.
        assert_eq!(r.resolve("/usr/lib/python3/main.py", root, &[]), None);
        // A source root wins over a same-named file at the top.
        let both = RepoFiles::new(["lib.py", "pkg/lib.py"].map(String::from));
        assert_eq!(
            both.resolve("lib.py", root, &["/home/ci/checkout/pkg".into()])
                .as_deref(),
            Some("pkg/lib.py")
        );
    }
}
