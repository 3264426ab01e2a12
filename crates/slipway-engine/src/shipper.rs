//! A job's events as the chunks a worker stores: each log line with the time
//! it was written, each step with when it started and ended.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use slipway_runner::{Event, Stream, epoch_millis, millis};
use slipway_store::StepTime;

/// One upload of a job's log: its lines with their times, and the steps
/// that started or ended since the chunk before. What in-process workers
/// store and what agents send to their server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// Unique per job: a retried upload of the same chunk changes nothing.
    pub seq: i64,
    pub lines: Vec<String>,
    /// When each line was written (milliseconds since the Unix epoch), one
    /// per line; an agent older than times sends none.
    #[serde(default)]
    pub times: Vec<i64>,
    #[serde(default)]
    pub steps: Vec<StepTime>,
}

impl LogChunk {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.steps.is_empty()
    }
}

/// The chunk being filled from a job's events.
#[derive(Debug)]
pub(crate) struct Batch {
    attempt: i64,
    chunk: LogChunk,
    /// Titles of the steps started, for their end (whose event has none).
    titles: HashMap<usize, String>,
}

impl Batch {
    /// Chunk numbers are per attempt (the attempt is their high half), so a
    /// job that runs again after losing its worker appends to its log rather
    /// than colliding with the chunks of the try before.
    pub(crate) fn new(attempt: i64) -> Batch {
        Batch {
            attempt,
            chunk: LogChunk {
                seq: attempt << 32,
                ..LogChunk::default()
            },
            titles: HashMap::new(),
        }
    }

    /// Takes in one event; `true` when it gave the chunk something to store.
    pub(crate) fn take(&mut self, event: &Event) -> bool {
        let now = SystemTime::now();
        if let Some((text, at)) = log_line(event, now) {
            self.chunk.lines.push(text);
            self.chunk.times.push(epoch_millis(at));
        }
        match event {
            Event::StepStarted { index, title, .. } => {
                self.titles.insert(*index, title.clone());
                self.chunk
                    .steps
                    .push(self.step(*index, epoch_millis(now), None));
            }
            Event::StepFinished {
                index,
                exit_code,
                duration,
                ..
            } => {
                // The runner measured the step on a monotonic clock: the
                // start is its end less that, so start, end and duration agree.
                let end = epoch_millis(now);
                let start = end - millis(*duration);
                let mut step = self.step(*index, start, Some(end));
                step.exit_code = exit_code.map(i64::from);
                self.chunk.steps.push(step);
            }
            _ => {}
        }
        !self.chunk.is_empty()
    }

    fn step(&self, index: usize, started_at: i64, finished_at: Option<i64>) -> StepTime {
        StepTime {
            attempt: self.attempt,
            index: i64::try_from(index).unwrap_or(i64::MAX),
            title: self.titles.get(&index).cloned().unwrap_or_default(),
            started_at,
            finished_at,
            exit_code: None,
        }
    }

    pub(crate) fn lines(&self) -> usize {
        self.chunk.lines.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunk.is_empty()
    }

    /// The chunk to store; the next one gets the next number.
    pub(crate) fn take_chunk(&mut self) -> LogChunk {
        let next = LogChunk {
            seq: self.chunk.seq + 1,
            ..LogChunk::default()
        };
        std::mem::replace(&mut self.chunk, next)
    }
}

/// The stored text of an event, if it has any, and when it happened.
fn log_line(event: &Event, now: SystemTime) -> Option<(String, SystemTime)> {
    let text = match event {
        Event::Line {
            stream: Stream::System,
            text,
            at,
            ..
        } => return Some((format!("▸ {text}"), *at)),
        Event::Line { text, at, .. } => return Some((text.clone(), *at)),
        Event::StepStarted {
            index,
            count,
            title,
            ..
        } => format!("▸ step {}/{count}: {title}", index + 1),
        Event::JobFinished { status, reason, .. } => format!(
            "▸ job {}{}",
            status.as_str(),
            reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Event::JobStarted { attempt, .. } if *attempt > 1 => format!("▸ attempt {attempt}"),
        _ => return None,
    };
    Some((text, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_runner::JobStatus;
    use std::time::Duration;

    #[test]
    fn a_step_gets_its_start_and_an_end_that_agree_with_its_duration() {
        let mut batch = Batch::new(2);
        let job = "build".to_string();
        batch.take(&Event::StepStarted {
            job: job.clone(),
            index: 0,
            count: 1,
            title: "make".into(),
        });
        batch.take(&Event::StepFinished {
            job: job.clone(),
            index: 0,
            exit_code: Some(3),
            duration: Duration::from_millis(1_500),
        });
        batch.take(&Event::JobFinished {
            job,
            status: JobStatus::Failed,
            duration: Duration::from_secs(2),
            reason: None,
        });
        let chunk = batch.take_chunk();
        assert_eq!(chunk.seq, 2 << 32);
        assert_eq!(chunk.lines, ["▸ step 1/1: make", "▸ job failed"]);
        assert_eq!(chunk.times.len(), 2);
        let ended = &chunk.steps[1];
        assert_eq!((ended.attempt, ended.title.as_str()), (2, "make"));
        assert_eq!(ended.duration_ms(), Some(1_500));
        assert_eq!(ended.exit_code, Some(3));
        assert!(batch.is_empty());
        assert_eq!(batch.take_chunk().seq, (2 << 32) + 1);
    }
}
