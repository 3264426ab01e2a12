//! Live output of `slipway run`: each log line prefixed by its job, and on a
//! terminal a spinner per running job (indicatif) with its current step.

use std::collections::HashMap;
use std::time::Duration;

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slipway_runner::{Event, JobStatus, Stream};
use tokio::sync::mpsc::Receiver;

pub struct Display {
    width: usize,
    styles: HashMap<String, Style>,
    bars: Option<MultiProgress>,
    running: HashMap<String, ProgressBar>,
}

const PALETTE: [u8; 6] = [6, 5, 3, 4, 2, 1];

impl Display {
    pub fn new(jobs: &[String]) -> Display {
        let terminal = console::Term::stdout().is_term();
        let styles = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.clone(), Style::new().color256(PALETTE[i % PALETTE.len()])))
            .collect();
        Display {
            width: jobs.iter().map(String::len).max().unwrap_or(0),
            styles,
            bars: terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            running: HashMap::new(),
        }
    }

    pub async fn show(mut self, mut events: Receiver<Event>) {
        while let Some(event) = events.recv().await {
            self.event(event);
        }
        for bar in self.running.values() {
            bar.finish_and_clear();
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::JobStarted { job, attempt } => {
                self.start_bar(&job);
                let again = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.print(&job, Stream::System, &format!("▶ started{again}"));
            }
            Event::StepStarted {
                job,
                index,
                count,
                title,
            } => {
                if let Some(bar) = self.running.get(&job) {
                    bar.set_message(format!("step {}/{count}: {title}", index + 1));
                }
                self.print(
                    &job,
                    Stream::System,
                    &format!("step {}/{count}: {title}", index + 1),
                );
            }
            Event::Line {
                job, stream, text, ..
            } => self.print(&job, stream, &text),
            Event::StepFinished { .. } => {}
            Event::JobFinished {
                job,
                status,
                duration,
                reason,
            } => {
                if let Some(bar) = self.running.remove(&job) {
                    bar.finish_and_clear();
                }
                let mark = match status {
                    JobStatus::Succeeded => "✔",
                    JobStatus::Failed => "✘",
                    JobStatus::Canceled | JobStatus::Skipped => "■",
                };
                let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                let line = format!(
                    "{mark} {} in {:.1}s{why}",
                    status.as_str(),
                    duration.as_secs_f64()
                );
                self.print(&job, Stream::System, &line);
            }
        }
    }

    fn start_bar(&mut self, job: &str) {
        let Some(bars) = &self.bars else { return };
        let bar = bars.add(ProgressBar::new_spinner());
        let style = ProgressStyle::with_template("{spinner} {prefix} {elapsed:>4} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(self.prefix(job));
        bar.enable_steady_tick(Duration::from_millis(120));
        self.running.insert(job.to_string(), bar);
    }

    fn prefix(&self, job: &str) -> String {
        let style = self.styles.get(job).cloned().unwrap_or_default();
        style
            .apply_to(format!("{job:<w$}", w = self.width))
            .to_string()
    }

    fn print(&self, job: &str, stream: Stream, text: &str) {
        let text = match stream {
            Stream::System => Style::new().dim().apply_to(text).to_string(),
            _ => text.to_string(),
        };
        let line = format!("{} │ {text}", self.prefix(job));
        match &self.bars {
            Some(bars) => bars.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }
}
