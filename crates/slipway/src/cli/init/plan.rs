//! What `slipway init` decided about one project, before it is written as
//! YAML: every choice carries the reason the comment above it will give.

/// One recognised project (a Cargo package, a Python package, …) and the
/// jobs that build, test and run it.
#[derive(Debug, Default)]
pub struct Plan {
    /// The ecosystem's name: `rust`, `python`, `node`, `java` (a job-name suffix
    /// when one repository holds several).
    pub kind: &'static str,
    /// What was found, for the comment at the top of the file.
    pub found: Vec<String>,
    /// Variables every job of this kind gets.
    pub env: Vec<(String, String)>,
    pub test: Job,
    /// Builds what the `dev` environment runs, when the project has something to run.
    pub build: Option<Job>,
    pub run: Option<Runnable>,
    /// `major.minor` of the project's own version, kept as the release's prefix.
    pub version_prefix: Option<String>,
}

#[derive(Debug, Default)]
pub struct Job {
    /// Comment lines above the job (what is not done, and how to add it).
    pub notes: Vec<String>,
    pub steps: Vec<Step>,
    pub caches: Vec<Cache>,
    pub reports: Reports,
    pub artifacts: Vec<String>,
}

#[derive(Debug)]
pub struct Step {
    pub name: String,
    /// The shell script; several lines become a block scalar.
    pub run: String,
    pub why: String,
}

impl Step {
    pub fn new(name: &str, run: impl Into<String>, why: impl Into<String>) -> Step {
        Step {
            name: name.to_string(),
            run: run.into(),
            why: why.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cache {
    pub key: String,
    pub paths: Vec<String>,
    pub why: String,
}

impl Cache {
    pub fn new(key: impl Into<String>, paths: &[&str], why: impl Into<String>) -> Cache {
        Cache {
            key: key.into(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            why: why.into(),
        }
    }
}

/// A report file and why that tool wrote it.
#[derive(Debug)]
pub struct Report {
    pub glob: String,
    pub why: String,
}

impl Report {
    pub fn new(glob: &str, why: impl Into<String>) -> Option<Report> {
        Some(Report {
            glob: glob.to_string(),
            why: why.into(),
        })
    }
}

#[derive(Debug, Default)]
pub struct Reports {
    pub junit: Option<Report>,
    pub coverage: Option<Report>,
    pub issues: Option<Report>,
}

impl Reports {
    pub fn any(&self) -> bool {
        self.junit.is_some() || self.coverage.is_some() || self.issues.is_some()
    }
}

/// How the `dev` environment starts what the build job left in the release.
#[derive(Debug)]
pub struct Runnable {
    pub command: String,
    pub why: String,
}
