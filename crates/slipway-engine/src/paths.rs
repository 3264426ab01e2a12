//! Where the server keeps files in its data directory.

use std::path::{Path, PathBuf};

use slipway_store::{ProjectId, RunId};

#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
}

impl Paths {
    pub fn new(data_dir: &Path) -> Paths {
        Paths {
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// The bare mirror of a project's repository.
    pub fn mirror(&self, project: ProjectId) -> PathBuf {
        self.data_dir.join("repos").join(format!("{project}.git"))
    }

    pub fn run(&self, run: RunId) -> PathBuf {
        self.data_dir.join("runs").join(run.to_string())
    }

    /// The tree of a run's commit, exported once and shared by its jobs.
    pub fn source(&self, run: RunId) -> PathBuf {
        self.run(run).join("source")
    }

    pub fn artifacts(&self, run: RunId) -> PathBuf {
        self.run(run).join("artifacts")
    }

    /// A project's cache entries for jobs of one protection level. Jobs on
    /// protected branches never restore what a job of another branch saved
    /// (a poisoned `target/`), so each level has its own namespace, as
    /// GitLab gives protected branches theirs. (`cache/PROJECT`, where all
    /// branches once shared entries, is read no more.)
    pub fn cache(&self, project: ProjectId, protected: bool) -> PathBuf {
        self.data_dir
            .join("caches")
            .join(slipway_runner::protection_level(protected))
            .join(project.to_string())
    }

    /// Parent of job workspaces of in-process workers.
    pub fn work(&self) -> PathBuf {
        self.data_dir.join("work")
    }
}
