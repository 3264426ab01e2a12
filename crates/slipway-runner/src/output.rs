//! Turning a process's output bytes into masked log lines.

use crate::event::{Event, EventSender, Stream};
use crate::mask::Masker;

/// Lines longer than this are cut, so one endless line cannot fill memory.
const MAX_LINE: usize = 64 * 1024;

/// One output stream of one job: bytes in, complete masked lines out.
#[derive(Debug)]
pub struct LineStream {
    job: String,
    stream: Stream,
    masker: Masker,
    partial: Vec<u8>,
    events: EventSender,
}

impl LineStream {
    pub fn new(job: &str, stream: Stream, masker: Masker, events: EventSender) -> LineStream {
        LineStream {
            job: job.to_string(),
            stream,
            masker,
            partial: Vec::new(),
            events,
        }
    }

    /// Splits off every complete raw (unmasked) line; used by the container
    /// driver to find its markers before lines are masked and sent.
    pub fn raw_lines(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.partial.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(nl) = self.partial.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.partial.drain(..=nl).collect();
            line.pop();
            lines.push(line);
        }
        while self.partial.len() >= MAX_LINE {
            lines.push(self.partial.drain(..MAX_LINE).collect());
        }
        lines
    }

    /// Masks one raw line and sends it.
    pub async fn send_line(&mut self, line: &[u8]) {
        let mut bytes = self.masker.feed(line);
        bytes.extend(self.masker.feed(b"\n"));
        bytes.extend(self.masker.finish());
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_suffix('\r').unwrap_or(&text).to_string();
        let _ = self
            .events
            .send(Event::Line {
                job: self.job.clone(),
                stream: self.stream,
                text,
                at: std::time::SystemTime::now(),
            })
            .await;
    }

    /// Feeds a chunk and sends every line it completes.
    pub async fn feed(&mut self, chunk: &[u8]) {
        for line in self.raw_lines(chunk) {
            self.send_line(&line).await;
        }
    }

    /// Sends the last line if the stream did not end with a newline.
    pub async fn finish(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.send_line(&line).await;
        }
    }
}

/// Sends one of Slipway's own notes to the job log.
pub async fn note(events: &EventSender, job: &str, text: impl Into<String>) {
    let _ = events
        .send(Event::Line {
            job: job.to_string(),
            stream: Stream::System,
            text: text.into(),
            at: std::time::SystemTime::now(),
        })
        .await;
}
