//! The validated pipeline: what `.slipway.yml` means once every check has passed.
//! Values of these types are only made by [`crate::parse`], so a runner can take
//! them as they are.

use std::fmt;
use std::time::Duration;

use globset::GlobMatcher;

use crate::diagnostic::Pos;
use crate::template::Template;

/// The whole pipeline file.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Variables every job gets (a job's and a step's own `env` win over these).
    pub env: Env,
    /// Jobs in the order the file lists them.
    pub jobs: Vec<Job>,
    /// How green runs become releases.
    pub release: crate::deploy::ReleaseSpec,
    /// Where releases go, in the file's order (the order of promotion).
    pub environments: Vec<crate::deploy::Environment>,
}

impl Pipeline {
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name.as_str() == name)
    }

    pub fn environment(&self, name: &str) -> Option<&crate::deploy::Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// Whether a green run on `branch` makes a release: the branches `release:`
    /// names, or else those environments take releases of.
    pub fn releases_branch(&self, branch: &str) -> bool {
        if !self.release.branches.is_empty() {
            return self.release.branches.iter().any(|b| b == branch);
        }
        self.environments
            .iter()
            .any(|e| e.source == crate::deploy::Source::Branch(branch.to_string()))
    }
}

/// A job name: letters, digits, `-`, `_` and `.`, so it can name files and containers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobName(String);

impl JobName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(name: &str) -> Result<JobName, String> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(format!(
                "job names must have 1 to {} characters",
                Self::MAX_LEN
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "job name `{name}` contains `{bad}`; use letters, digits, `-`, `_` and `.`"
            ));
        }
        if name.starts_with('.') {
            return Err(format!("job name `{name}` must not start with `.`"));
        }
        Ok(JobName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Environment variables in the order they were written.
pub type Env = Vec<(String, String)>;

/// One job of the pipeline.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: JobName,
    /// Where the job is defined, for messages about it at run time.
    pub pos: Pos,
    pub steps: Vec<Step>,
    pub needs: Vec<JobName>,
    pub env: Env,
    /// Run the steps in a container of this (local) image instead of on the host.
    pub image: Option<String>,
    pub timeout: Option<Duration>,
    /// Directory the steps start in, relative to the workspace.
    pub workdir: Option<String>,
    pub branches: BranchFilter,
    /// Globs of files kept after the job and laid into the workspaces of jobs that need it.
    pub artifacts: Vec<String>,
    pub caches: Vec<Cache>,
    /// How many more times to try the job after it fails.
    pub retry: u32,
    pub allow_failure: bool,
    /// Names of secrets given to the job as environment variables.
    pub secrets: Vec<String>,
    /// Labels a server's worker or agent must have to run the job.
    pub labels: Vec<String>,
    pub image_build: Option<ImageBuild>,
    /// Test, coverage and issue reports the job writes; a job with reports
    /// passes only if the quality gate does.
    pub reports: Option<Reports>,
    /// The job's `checkout:`, or else the file's; `None` when neither says
    /// (a full checkout: [`crate::Checkout::default`]).
    pub checkout: Option<crate::Checkout>,
    /// The job of the file and the values this job is one combination of
    /// (`matrix:`); `None` for a job without a matrix.
    pub matrix: Option<crate::matrix::MatrixCell>,
    /// Containers started beside the job (`services:`), in the file's order.
    pub services: Vec<crate::services::Service>,
}

impl Job {
    /// Whether the job needs a Docker engine: it runs in a container, builds
    /// an image or has services.
    pub fn needs_docker(&self) -> bool {
        self.image.is_some() || self.image_build.is_some() || !self.services.is_empty()
    }

    /// How people see the job: `test [PYTHON=3.11, DB=sqlite]` for a combination
    /// of a matrix, else its name.
    pub fn title(&self) -> String {
        self.matrix
            .as_ref()
            .map_or_else(|| self.name.to_string(), crate::matrix::MatrixCell::title)
    }
}

/// Globs of the reports a job writes, relative to its workspace.
#[derive(Debug, Clone, Default)]
pub struct Reports {
    pub junit: Vec<String>,
    pub coverage: Vec<String>,
    pub issues: Vec<String>,
    /// The gate's conditions, as written (`gate:` at the top of the file, or the default gate).
    pub gate: Vec<String>,
    /// What new code is measured from (`new_code:` at the top of the file).
    pub new_code: NewCodeReference,
    /// Coverage conditions on new code are skipped when it has fewer lines to
    /// cover than this (SonarQube's leniency for small changes; off by default).
    pub lenient_below: Option<u64>,
    /// Remediation minutes per issue by severity, info to blocker (`debt_minutes:`).
    pub debt_minutes: Option<[u64; 5]>,
}

/// What new code is measured from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NewCodeReference {
    /// The commit of the branch's last successful run.
    #[default]
    PreviousSuccess,
    /// The merge-base with this branch.
    Branch(String),
    /// The branch as it was this many days ago.
    Days(u32),
}

/// One shell command of a job.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: Option<String>,
    pub run: String,
    pub env: Env,
}

impl Step {
    /// The step's name, or its command's first line when it has none.
    pub fn title(&self) -> &str {
        self.name
            .as_deref()
            .unwrap_or_else(|| self.run.lines().next().unwrap_or(""))
    }
}

/// Paths restored before a job and saved after it under a key.
#[derive(Debug, Clone)]
pub struct Cache {
    pub key: Template,
    pub paths: Vec<String>,
}

/// Build an image from a Dockerfile after the job's steps.
#[derive(Debug, Clone)]
pub struct ImageBuild {
    /// The build context, relative to the workspace.
    pub context: String,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// Local image names (with `push` and no `tags`: the pushed names).
    pub tags: Vec<Template>,
    pub build_args: Env,
    /// `REPOSITORY/IMAGE` in Slipway's registry to push the image to.
    pub push: Option<String>,
    /// Tags pushed (default: the run number and the short commit).
    pub push_tags: Vec<Template>,
}

/// Which branches a job runs on.
#[derive(Debug, Clone, Default)]
pub struct BranchFilter {
    pub only: Vec<GlobMatcher>,
    pub except: Vec<GlobMatcher>,
}

impl BranchFilter {
    pub fn allows(&self, branch: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|g| g.is_match(branch)))
            && !self.except.iter().any(|g| g.is_match(branch))
    }
}
