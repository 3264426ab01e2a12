//! What a release runs on this host (its `local` process, health commands
//! and smoke tests) comes from the release's own pipeline file, so from
//! whoever pushed its commit: it runs confined as host steps of jobs are
//! (`slipway_runner::Sandbox`), reading its release's tree but nothing else
//! of the data directory, and writing only the environment's own `HOME` and
//! `TMPDIR`. The tree stays read-only: one release runs in several
//! environments, and what one of them changed would run in the next.

use std::path::{Path, PathBuf};

use slipway_runner::Sandbox;
use tokio::process::Command;

/// Where and how a release's commands run in one environment.
#[derive(Debug, Clone)]
pub struct ReleaseSandbox {
    /// `None` only when the admin accepted unconfined host jobs
    /// (`--unsafe-host-jobs`) on a kernel that cannot confine them.
    sandbox: Option<Sandbox>,
    /// The release's artifacts: the working directory, read-only.
    tree: PathBuf,
    home: PathBuf,
    tmp: PathBuf,
}

impl ReleaseSandbox {
    /// `environment_dir`: the environment's own directory, which holds its
    /// private `home` and `tmp`.
    pub fn new(sandbox: Option<Sandbox>, tree: PathBuf, environment_dir: &Path) -> ReleaseSandbox {
        ReleaseSandbox {
            sandbox,
            tree,
            home: environment_dir.join("home"),
            tmp: environment_dir.join("tmp"),
        }
    }

    /// The release's tree, where its commands start.
    pub fn tree(&self) -> &Path {
        &self.tree
    }

    /// `sh -c SCRIPT` in the release's tree, confined, with `env` over the
    /// environment's `HOME` and `TMPDIR` and none of Slipway's own settings.
    /// Confined, the variables reach only the script, once the sandbox
    /// holds, and it runs in a session of its own; callers add no
    /// variables and no stdin to the command (see `Sandbox::launch`).
    pub fn shell(&self, script: &str, env: &[(String, String)]) -> std::io::Result<Command> {
        for dir in [&self.home, &self.tmp] {
            std::fs::create_dir_all(dir)?;
        }
        let mut all = vec![
            ("HOME".to_string(), self.home.display().to_string()),
            ("TMPDIR".to_string(), self.tmp.display().to_string()),
        ];
        all.extend(env.iter().cloned());
        let mut command = match &self.sandbox {
            Some(sandbox) => sandbox.launch(
                std::slice::from_ref(&self.tree),
                &[self.home.clone(), self.tmp.clone()],
                "sh",
                &all,
            )?,
            None => {
                let mut command = Command::new("sh");
                slipway_runner::without_slipway_settings(&mut command);
                command
                    .envs(all.iter().map(|(k, v)| (k, v)))
                    .stdin(std::process::Stdio::null())
                    .process_group(0);
                command
            }
        };
        command.args(["-c", script]).current_dir(&self.tree);
        Ok(command)
    }
}
