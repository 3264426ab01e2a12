//! Where a run's time went, as the CLI prints it: step and job durations for
//! `run-status`, line times for `logs --timestamps`.

use serde_json::Value;

/// Wide as an RFC 3339 time with milliseconds, so lines without a time
/// (stored before times were kept) keep the columns straight.
const TIME_WIDTH: usize = 24;

/// A duration people read at a glance: `850ms`, `12.4s`, `3m 05s`, `1h 02m`.
pub fn duration_text(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A job's duration column: its time when it ended, `-` before.
pub fn job_duration(job: &Value) -> String {
    job["duration_ms"]
        .as_i64()
        .map_or_else(|| "-".to_string(), duration_text)
}

/// One line per step of a job: its number, title and duration (`running`
/// while it runs), with the exit code of a step that failed.
pub fn step_lines(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| {
            let took = step["duration_ms"]
                .as_i64()
                .map_or_else(|| "running".to_string(), duration_text);
            let exit = match step["exit_code"].as_i64() {
                Some(code) if code != 0 => format!("  exit {code}"),
                _ => String::new(),
            };
            let title: String = step["title"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(48)
                .collect();
            format!(
                "    {:>2}. {title:<48} {took:>9}{exit}",
                step["index"].as_i64().unwrap_or_default() + 1
            )
        })
        .collect()
}

/// The time column of a log line: its RFC 3339 time, or `-` padded to the
/// same width for a line stored without one.
pub fn line_time(at: &Value) -> String {
    let time = at.as_str().unwrap_or("-");
    format!("{time:<TIME_WIDTH$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration_text(850), "850ms");
        assert_eq!(duration_text(12_449), "12.4s");
        assert_eq!(duration_text(185_000), "3m 05s");
        assert_eq!(duration_text(3_720_000), "1h 02m");
    }

    #[test]
    fn a_failed_step_shows_its_exit_code_and_a_running_one_no_duration() {
        let job = json!({ "steps": [
            { "index": 0, "title": "make", "duration_ms": 1500, "exit_code": 2 },
            { "index": 1, "title": "test", "duration_ms": null, "exit_code": null },
        ]});
        let lines = step_lines(&job);
        assert!(lines[0].contains("1. make") && lines[0].ends_with("1.5s  exit 2"));
        assert!(lines[1].trim_end().ends_with("running"));
        assert_eq!(line_time(&Value::Null).len(), TIME_WIDTH);
    }
}
