//! What a job's run amounts to: the report stored in the run summary and sent
//! to the server.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use slipway_spec::Job;

use crate::event::JobStatus;

/// Whole milliseconds of `d`, saturating: the one rounding of leases,
/// heartbeats, step and job durations and log times, here and in the server.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch at `at` (0 for a time before it).
pub fn epoch_millis(at: SystemTime) -> i64 {
    millis(at.duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// What happened to a job; stored in the run summary.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub name: String,
    pub status: JobStatus,
    pub allow_failure: bool,
    pub attempts: u32,
    #[serde(with = "rfc3339_opt")]
    pub started_at: Option<SystemTime>,
    #[serde(with = "rfc3339_opt")]
    pub finished_at: Option<SystemTime>,
    pub duration_ms: u64,
    pub steps: Vec<StepReport>,
    /// Exit code of the step that failed, or 0.
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub artifacts: Vec<PathBuf>,
    pub cache_hits: Vec<String>,
    pub cache_misses: Vec<String>,
    pub images: Vec<String>,
    /// Images pushed to Slipway's registry, with their digests.
    pub pushed: Vec<crate::PushedImage>,
    /// The quality gate's outcome (JSON), for a job with reports.
    pub gate: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub title: String,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
}

impl JobReport {
    /// A job that never ran.
    pub fn not_run(job: &Job, status: JobStatus, reason: impl Into<String>) -> JobReport {
        JobReport {
            allow_failure: job.allow_failure,
            status,
            ..JobReport::failed(job.name.as_str(), reason)
        }
    }

    /// A job that failed before it could run, for the reason given.
    pub fn failed(name: &str, reason: impl Into<String>) -> JobReport {
        JobReport {
            name: name.to_string(),
            status: JobStatus::Failed,
            allow_failure: false,
            attempts: 0,
            started_at: None,
            finished_at: None,
            duration_ms: 0,
            steps: Vec::new(),
            exit_code: None,
            reason: Some(reason.into()),
            artifacts: Vec::new(),
            cache_hits: Vec::new(),
            cache_misses: Vec::new(),
            images: Vec::new(),
            pushed: Vec::new(),
            gate: None,
        }
    }

    /// Whether jobs that need this one may run.
    pub fn unblocks_dependents(&self) -> bool {
        self.status == JobStatus::Succeeded
            || (self.status == JobStatus::Failed && self.allow_failure)
    }
}

/// Optional timestamps as RFC 3339 strings in the summary.
mod rfc3339_opt {
    use std::time::SystemTime;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_saturate_and_times_before_the_epoch_are_zero() {
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        assert_eq!(millis(Duration::MAX), i64::MAX);
        assert_eq!(epoch_millis(UNIX_EPOCH + Duration::from_secs(2)), 2_000);
        assert_eq!(epoch_millis(UNIX_EPOCH - Duration::from_secs(2)), 0);
    }
}
