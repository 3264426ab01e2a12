//! What a running job tells the world: the events a UI, a log file or the server
//! consume. Secrets are masked before any event is made.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    /// Slipway's own notes in the job log (cache hits, retries, image builds).
    System,
}

impl Stream {
    pub fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
            Stream::System => "sys",
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Succeeded,
    Failed,
    /// Stopped before finishing: Ctrl-C, or another job failed first (fail-fast).
    Canceled,
    /// Never started: its branch filter excluded it, or a job it needs did not succeed.
    Skipped,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Canceled => "canceled",
            JobStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    JobStarted {
        job: String,
        attempt: u32,
    },
    StepStarted {
        job: String,
        index: usize,
        count: usize,
        title: String,
    },
    Line {
        job: String,
        stream: Stream,
        text: String,
        /// When the line was complete: stamped here, not where it is stored,
        /// so a backlog of lines does not bunch their times together.
        at: SystemTime,
    },
    StepFinished {
        job: String,
        index: usize,
        exit_code: Option<i32>,
        duration: Duration,
    },
    JobFinished {
        job: String,
        status: JobStatus,
        duration: Duration,
        reason: Option<String>,
    },
}

impl Event {
    pub fn job(&self) -> &str {
        match self {
            Event::JobStarted { job, .. }
            | Event::StepStarted { job, .. }
            | Event::Line { job, .. }
            | Event::StepFinished { job, .. }
            | Event::JobFinished { job, .. } => job,
        }
    }
}

/// Where a job sends its events. Bounded, so a flood of output slows the job
/// rather than filling memory.
pub type EventSender = tokio::sync::mpsc::Sender<Event>;
