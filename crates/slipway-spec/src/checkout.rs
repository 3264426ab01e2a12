//! `checkout:` — how much of the repository a job's workspace gets: a git
//! working tree of the run's commit (the default: full history, tags, no
//! submodules), less of it (`depth`), more (`submodules`, `lfs`), or nothing
//! (`checkout: false`, for jobs that work only on artifacts).

use crate::reader::Reader;
use crate::yaml::{Node, Value};

const CHECKOUT_KEYS: &[&str] = &["depth", "submodules", "lfs"];

/// The deepest shallow checkout asked for that is still called shallow.
const MAX_DEPTH: u32 = 1_000_000;

/// What a job's workspace starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    /// No sources at all: only the artifacts of the jobs it needs.
    Skip,
    /// A git working tree of the run's commit.
    Repository(CheckoutOptions),
}

impl Default for Checkout {
    fn default() -> Self {
        Checkout::Repository(CheckoutOptions::default())
    }
}

/// The settings of a repository checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutOptions {
    /// Commits of history (the run's commit and its `depth - 1` ancestors);
    /// `None` for all of it, with the tags.
    pub depth: Option<u32>,
    pub submodules: Submodules,
    /// Whether Git LFS files are fetched.
    pub lfs: bool,
}

/// Which submodules a checkout brings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Submodules {
    #[default]
    No,
    /// The commit's own submodules.
    Yes,
    /// Theirs too, all the way down.
    Recursive,
}

/// Reads `checkout:` (`what` names it in messages: `checkout`, `jobs.build.checkout`).
pub(crate) fn read(r: &mut Reader, node: &Node, what: &str) -> Option<Checkout> {
    if let Value::Scalar(s) = &node.value {
        return match node.as_bool() {
            Some(false) => Some(Checkout::Skip),
            Some(true) => Some(Checkout::default()),
            None => {
                r.error_with_help(
                    node.pos,
                    format!("`{what}` must be a mapping or `false`, found `{}`", s.text),
                    "write `checkout: { depth: 1 }`, `checkout: { submodules: true }` or `checkout: false`",
                );
                None
            }
        };
    }
    let f = r.fields(node, what, CHECKOUT_KEYS)?;
    let depth = f.get("depth").and_then(|n| depth(r, n, what));
    let submodules = f
        .get("submodules")
        .and_then(|n| submodules(r, n, &format!("{what}.submodules")))
        .unwrap_or_default();
    let lfs = f
        .get("lfs")
        .and_then(|n| r.bool(n, &format!("{what}.lfs")))
        .unwrap_or(false);
    Some(Checkout::Repository(CheckoutOptions {
        depth,
        submodules,
        lfs,
    }))
}

/// Gives the file's top-level `checkout:` to the jobs that have none of their own.
pub(crate) fn default_for(r: &mut Reader, node: Option<&Node>, jobs: &mut [crate::Job]) {
    let Some(default) = node.and_then(|n| read(r, n, "checkout")) else {
        return;
    };
    for job in jobs.iter_mut().filter(|j| j.checkout.is_none()) {
        job.checkout = Some(default.clone());
    }
}

fn depth(r: &mut Reader, node: &Node, what: &str) -> Option<u32> {
    let what = format!("{what}.depth");
    let depth = r.count(node, &what, MAX_DEPTH)?;
    if depth == 0 {
        r.error_with_help(
            node.pos,
            format!("`{what}` must be at least 1"),
            "leave `depth` out for the whole history, or write `depth: 1` for the commit alone",
        );
        return None;
    }
    Some(depth)
}

fn submodules(r: &mut Reader, node: &Node, what: &str) -> Option<Submodules> {
    match (node.as_bool(), &node.value) {
        (Some(true), _) => return Some(Submodules::Yes),
        (Some(false), _) => return Some(Submodules::No),
        (None, Value::Scalar(s)) if s.text == "recursive" => return Some(Submodules::Recursive),
        _ => {}
    }
    r.error_with_help(
        node.pos,
        format!(
            "`{what}` must be `true`, `false` or `recursive`, found {}",
            describe(node)
        ),
        "`recursive` checks out the submodules' own submodules too",
    );
    None
}

fn describe(node: &Node) -> String {
    match &node.value {
        Value::Scalar(s) => format!("`{}`", s.text),
        _ => node.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_checkout(yaml: &str) -> Result<Option<Checkout>, String> {
        let file = format!("jobs:\n  build:\n    steps: [{{ run: 'true' }}]\n{yaml}");
        crate::parse(&file)
            .map(|p| p.jobs[0].checkout.clone())
            .map_err(|d| crate::render_all(".slipway.yml", &file, &d))
    }

    #[test]
    fn settings_are_read() {
        assert_eq!(job_checkout(""), Ok(None));
        assert_eq!(
            job_checkout("    checkout: { depth: 1, submodules: recursive, lfs: true }\n"),
            Ok(Some(Checkout::Repository(CheckoutOptions {
                depth: Some(1),
                submodules: Submodules::Recursive,
                lfs: true,
            })))
        );
        assert_eq!(
            job_checkout("    checkout: false\n"),
            Ok(Some(Checkout::Skip))
        );
    }

    #[test]
    fn the_file_gives_the_default_and_a_job_replaces_it() {
        let file = "checkout: { depth: 5 }\njobs:\n  a:\n    steps: [{ run: 'true' }]\n  \
                    b:\n    checkout: { submodules: true }\n    steps: [{ run: 'true' }]\n";
        let p = crate::parse(file).expect("valid");
        let shallow = CheckoutOptions {
            depth: Some(5),
            ..CheckoutOptions::default()
        };
        assert_eq!(p.jobs[0].checkout, Some(Checkout::Repository(shallow)));
        let with_submodules = CheckoutOptions {
            submodules: Submodules::Yes,
            ..CheckoutOptions::default()
        };
        assert_eq!(
            p.jobs[1].checkout,
            Some(Checkout::Repository(with_submodules))
        );
    }

    #[test]
    fn bad_values_say_where_and_what_to_write() {
        let err = job_checkout("    checkout: { depth: 0, submodules: maybe, lfs: 3, deep: 1 }\n")
            .expect_err("invalid");
        assert!(err.contains("4:24") && err.contains("at least 1"), "{err}");
        assert!(
            err.contains("`true`, `false` or `recursive`, found `maybe`"),
            "{err}"
        );
        assert!(err.contains("jobs.build.checkout.lfs"), "{err}");
        assert!(err.contains("deep"), "{err}");
        let err = job_checkout("    checkout: yes\n").expect_err("invalid");
        assert!(err.contains("mapping or `false`"), "{err}");
    }
}
