//! What a job's workspace starts from: a git working tree of the run's
//! commit (from the server's or agent's mirror, or, for `slipway run`, the
//! user's clone with their uncommitted edits laid over it), or outside git
//! a plain copy of the files.

use std::io;
use std::path::{Path, PathBuf};

use slipway_git::{Checkout as GitCheckout, CheckoutOptions, RefLayout, Submodules};
use slipway_spec::Checkout;
use tokio::process::Command;

use crate::files;
use crate::stamps::SourceStamps;

/// Slipway's own directory in a repository: never copied into a workspace.
pub const STATE_DIR: &str = ".slipway";

/// The files a run starts from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where `files` are copied from (for a mirror: the mirror).
    pub root: PathBuf,
    /// The repository's files, relative to `root` (what report paths are
    /// mapped onto); outside git, all of them are copied.
    pub files: Vec<PathBuf>,
    /// Over a checkout, the files laid on it: the user's uncommitted edits.
    pub overlay: Vec<PathBuf>,
    /// The commit checked out first, when there is one.
    pub repository: Option<Repository>,
}

/// A commit in a repository on this machine.
#[derive(Debug, Clone)]
pub struct Repository {
    pub from: PathBuf,
    pub layout: RefLayout,
    pub commit: String,
    /// Checked out by name; empty for a detached HEAD.
    pub branch: String,
    /// `origin`'s URL as the user knows it (credentials are dropped when checked out).
    pub origin: Option<String>,
    /// Tracked files the user deleted: removed from the checkout.
    pub deleted: Vec<PathBuf>,
}

impl Source {
    /// `slipway run`'s source: at the top of a git work tree with a commit,
    /// HEAD checked out with the user's edits (changed, untracked but not
    /// ignored, deleted) over it; elsewhere every file but `.git` and
    /// Slipway's own state.
    pub async fn discover(root: &Path) -> io::Result<Source> {
        let tree = slipway_git::WorkTree::discover(root)
            .await
            .map_err(io::Error::other)?;
        let Some(tree) = tree else {
            return Source::walk(root);
        };
        let revision = tree.revision().await.map_err(io::Error::other)?;
        let top = tree.is_top().await.map_err(io::Error::other)?;
        let files = without_state(tree.files().await.map_err(io::Error::other)?);
        if revision.commit.is_empty() || !top {
            // No commit yet, or a directory inside a repository: its files.
            return Ok(Source {
                root: root.to_path_buf(),
                files,
                overlay: Vec::new(),
                repository: None,
            });
        }
        let edits = tree.edits().await.map_err(io::Error::other)?;
        Ok(Source {
            root: root.to_path_buf(),
            files,
            overlay: without_state(edits.changed),
            repository: Some(Repository {
                from: root.to_path_buf(),
                layout: RefLayout::Clone,
                commit: revision.commit,
                branch: revision.branch,
                origin: tree.origin_url().await,
                deleted: edits.deleted,
            }),
        })
    }

    /// Every file below `root` (but `.git` and Slipway's state), without asking
    /// git: for trees where ignore rules of an enclosing repository must not apply.
    pub fn walk(root: &Path) -> io::Result<Source> {
        Ok(Source {
            root: root.to_path_buf(),
            files: files::files_in(root, root, |e| {
                e.file_name() != ".git" && e.file_name() != STATE_DIR
            })?,
            overlay: Vec::new(),
            repository: None,
        })
    }

    /// A run's commit in a bare mirror (the server's or an agent's).
    pub async fn mirror(
        mirror: &Path,
        commit: &str,
        branch: &str,
        origin: Option<String>,
    ) -> io::Result<Source> {
        let files = slipway_git::tree_files(mirror, commit)
            .await
            .map_err(io::Error::other)?;
        Ok(Source {
            root: mirror.to_path_buf(),
            files,
            overlay: Vec::new(),
            repository: Some(Repository {
                from: mirror.to_path_buf(),
                layout: RefLayout::Mirror,
                commit: commit.to_string(),
                branch: branch.to_string(),
                origin,
                deleted: Vec::new(),
            }),
        })
    }

    /// Lays the source into `dest` (a fresh, empty directory) as the job's
    /// `checkout:` asks; submodules and LFS files are fetched inside
    /// `sandbox` when there is one, as the job's steps would be. Returns
    /// the checkout's source times (see [`SourceStamps`]).
    pub(crate) async fn lay(
        &self,
        dest: &Path,
        checkout: &Checkout,
        sandbox: Option<&crate::Sandbox>,
    ) -> Result<SourceStamps, String> {
        let options = match checkout {
            Checkout::Skip => return Ok(SourceStamps::default()),
            Checkout::Repository(options) => options,
        };
        if let Some(repo) = &self.repository {
            let git = GitCheckout {
                from: &repo.from,
                layout: repo.layout,
                commit: &repo.commit,
                branch: &repo.branch,
                origin: repo.origin.as_deref(),
            };
            let depth = CheckoutOptions {
                depth: options.depth,
            };
            git.make(dest, &depth).await.map_err(|e| {
                format!(
                    "cannot check out commit {}: {e}",
                    slipway_git::short(&repo.commit)
                )
            })?;
            fetch_extras(dest, options, sandbox).await?;
        }
        // Over a checkout only the edits are laid; without one, every file.
        let laid = match self.repository {
            Some(_) => self.overlay.clone(),
            None => self.files.clone(),
        };
        let (root, files, dest_dir) = (self.root.clone(), laid, dest.to_path_buf());
        let deleted = self
            .repository
            .as_ref()
            .map(|r| r.deleted.clone())
            .unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            files::copy_paths(&root, &dest_dir, &files)?;
            remove_deleted(&dest_dir, &deleted)?;
            // The job's modes now, before the source times are taken: a
            // chmod later would move every file's change time, and the
            // times would match none (see `SourceStamps::record`).
            crate::workspace::open_for_job(&dest_dir)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot lay the sources into the workspace: {e}"))?;
        Ok(match &self.repository {
            Some(repo) => {
                SourceStamps::of_checkout(dest, &repo.from, &repo.commit, &self.overlay).await
            }
            None => SourceStamps::default(),
        })
    }
}

/// Submodules and LFS files, from the URLs the commit names: with the
/// job's powers, never the server's (a `.gitmodules` could name another
/// project's mirror on this machine).
async fn fetch_extras(
    dest: &Path,
    options: &slipway_spec::CheckoutOptions,
    sandbox: Option<&crate::Sandbox>,
) -> Result<(), String> {
    let mode = match options.submodules {
        slipway_spec::Submodules::No => Submodules::No,
        slipway_spec::Submodules::Yes => Submodules::Yes,
        slipway_spec::Submodules::Recursive => Submodules::Recursive,
    };
    if options.lfs {
        // Unconfined git in the workspace: only before anything confined
        // ran there (it could have set `core.fsmonitor` in `.git/config`).
        slipway_git::lfs_available(dest)
            .await
            .map_err(|e| e.to_string())?;
    }
    if let Some(args) = slipway_git::submodule_args(mode) {
        confined_git(dest, &args, sandbox)
            .await
            .map_err(|e| format!("cannot check out the submodules: {e}"))?;
    }
    if options.lfs {
        confined_git(dest, slipway_git::LFS_PULL, sandbox)
            .await
            .map_err(|e| format!("cannot fetch the Git LFS files: {e}"))?;
    }
    Ok(())
}

/// `git ARGS` in the workspace, writing only there when confined.
async fn confined_git(
    dest: &Path,
    args: &[&str],
    sandbox: Option<&crate::Sandbox>,
) -> Result<(), String> {
    let env = [("GIT_TERMINAL_PROMPT".to_string(), "0".to_string())];
    let mut command = match sandbox {
        Some(sandbox) => sandbox
            .launch(&[], &[dest.to_path_buf()], "git", &env)
            .map_err(|e| e.to_string())?,
        None => {
            let mut command = Command::new("git");
            command.envs(env).stdin(std::process::Stdio::null());
            command
        }
    };
    let out = command
        .args(args)
        .current_dir(dest)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn without_state(files: Vec<PathBuf>) -> Vec<PathBuf> {
    files
        .into_iter()
        .filter(|f| !f.starts_with(STATE_DIR))
        .collect()
}

/// What the user deleted goes from the checkout too (only files and links:
/// never a directory, never through one a link stands for).
fn remove_deleted(dest: &Path, deleted: &[PathBuf]) -> io::Result<()> {
    for path in deleted {
        let through_link = path.ancestors().skip(1).any(|a| {
            !a.as_os_str().is_empty()
                && dest
                    .join(a)
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink())
        });
        let full = dest.join(path);
        let is_file = full.symlink_metadata().is_ok_and(|m| !m.is_dir());
        if is_file && !through_link {
            std::fs::remove_file(full)?;
        }
    }
    Ok(())
}
