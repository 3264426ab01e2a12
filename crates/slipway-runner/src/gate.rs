//! The quality gate of a job with `reports:`: read after its steps (passed,
//! failed or timed out), judged against the run's new code, printed into the
//! job's log; a failed gate fails the job with the failed conditions as its
//! reason. After a failed step the gate is failed whatever it measured: a
//! failed job is never a green reference, so its coverage must not read as one.

use std::path::Path;

use slipway_quality::diff::NewCodeBase;
use slipway_quality::evaluate::{GateConfig, Globs, Outcome, Reports};

use crate::EventSender;
use crate::output::note;

/// What a job's gate is judged against: its run's reference.
#[derive(Debug, Clone, Copy)]
pub struct Reference<'a> {
    /// `git diff -U0 -M` from the reference to the run's commit: the new code.
    pub new_code: &'a str,
    /// What the new code was measured from, for the report to say.
    pub base: Option<&'a NewCodeBase>,
    /// The reference's issue fingerprints: issues with these are not new.
    pub issues: Option<&'a [String]>,
}

/// Evaluates the gate over the workspace `ws` (blocking work on the blocking pool).
pub async fn judge(
    job: &str,
    reports: &slipway_spec::Reports,
    ws: &Path,
    files: Vec<String>,
    reference: Reference<'_>,
    events: &EventSender,
) -> Result<Outcome, String> {
    let config = GateConfig {
        // Checked when the pipeline was validated; parsed here into conditions.
        conditions: reports
            .gate
            .iter()
            .map(|c| slipway_quality::parse_condition(c))
            .collect::<Result<_, _>>()?,
        lenient_below: reports.lenient_below,
        debt_minutes: reports
            .debt_minutes
            .unwrap_or(slipway_quality::issues::DEFAULT_DEBT_MINUTES),
        reference_fingerprints: reference.issues.map(|f| f.iter().cloned().collect()),
        new_code_base: reference.base.cloned(),
    };
    let globs = Globs {
        junit: reports.junit.clone(),
        coverage: reports.coverage.clone(),
        issues: reports.issues.clone(),
        reference_issues: Vec::new(),
    };
    let (ws, new_code) = (ws.to_path_buf(), reference.new_code.to_string());
    let outcome = tokio::task::spawn_blocking(move || {
        Reports::read(&ws, &globs)
            .and_then(|r| r.evaluate(&ws, files, &new_code, &config))
            .map_err(|e| format!("quality gate: {e}"))
    })
    .await
    .map_err(|e| format!("quality gate: {e}"))??;
    for line in outcome.render().lines() {
        note(events, job, line.to_string()).await;
    }
    Ok(outcome)
}

/// Marks the gate JSON of a job whose steps failed as failed, with the
/// failure it follows (`failed_step`); returns the line that says so in the log.
pub fn fail_after_failed_step(gate: &mut serde_json::Value, failed_step: &str) -> String {
    if let Some(fields) = gate.as_object_mut() {
        fields.insert("status".into(), "failed".into());
        fields.insert("failed_step".into(), failed_step.into());
    }
    format!(
        "quality gate counts as failed: {failed_step}; the measures above are shown, but a failed job never passes its gate"
    )
}
