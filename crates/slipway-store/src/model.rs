//! The persisted domain: projects, runs and jobs, and the states runs and jobs move through.

use std::fmt;

use serde::Serialize;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id!(
    /// A project's id.
    ProjectId
);
id!(
    /// A run's id (unique across projects; the per-project `number` is what people see).
    RunId
);
id!(
    /// A job's id.
    JobId
);

/// Where a run or a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A job whose `needs` have not all finished yet.
    Waiting,
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
    /// A job that never ran because a job it needs did not succeed.
    Skipped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Canceled => "canceled",
            State::Skipped => "skipped",
        }
    }

    pub const ALL: [State; 7] = [
        State::Waiting,
        State::Queued,
        State::Running,
        State::Succeeded,
        State::Failed,
        State::Canceled,
        State::Skipped,
    ];

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Succeeded | State::Failed | State::Canceled | State::Skipped
        )
    }

    /// The moves the state machine allows. Running → queued is a re-queue
    /// (lost worker, server restart); nothing leaves a final state.
    pub fn can_become(self, next: State) -> bool {
        use State::*;
        matches!(
            (self, next),
            (Waiting, Queued | Skipped | Canceled)
                | (Queued, Running | Canceled | Failed)
                | (Running, Queued | Succeeded | Failed | Canceled)
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub git_url: String,
    /// Branch patterns that trigger runs; empty means every branch.
    pub branches: Vec<String>,
    pub poll_seconds: Option<i64>,
    /// At most this many of its jobs run at once.
    pub max_running: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub id: RunId,
    pub project_id: ProjectId,
    pub number: i64,
    pub commit: String,
    pub branch: String,
    pub state: State,
    pub reason: Option<String>,
    /// What created it: `webhook`, `poll` or `manual`.
    pub trigger: String,
    /// Who caused it: they do not approve the deployments of what it ships.
    pub cause: crate::RunCause,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub run_id: RunId,
    pub name: String,
    pub state: State,
    /// Labels a worker must have to run the job.
    pub labels: Vec<String>,
    /// Jobs of the same run that must finish first.
    pub needs: Vec<String>,
    pub allow_failure: bool,
    pub attempt: i64,
    /// Who runs (or last ran) it: a worker or agent name.
    pub worker: Option<String>,
    pub lease_until: Option<i64>,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The combination of a matrix this job is; `None` for a job without one.
    pub matrix: Option<JobMatrix>,
}

/// Which job of the pipeline file a job is one combination of (`matrix:`),
/// so the UI and the CLI can group the combinations under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct JobMatrix {
    /// The job as the file names it (`test`).
    pub job: String,
    /// How people see the combination: `test [PYTHON=3.11, DB=sqlite]`.
    pub title: String,
    /// The combination's variables.
    pub values: std::collections::BTreeMap<String, String>,
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub from: Option<State>,
    pub to: State,
    pub reason: Option<String>,
    pub at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states_are_final() {
        for s in [State::Succeeded, State::Failed, State::Canceled] {
            for next in [State::Queued, State::Running, State::Succeeded] {
                assert!(!s.can_become(next), "{s} → {next}");
            }
        }
        assert!(State::Running.can_become(State::Queued));
        assert!(!State::Queued.can_become(State::Succeeded));
    }
}
