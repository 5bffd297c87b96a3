//! A timestamped record of a console session, safe to show: answers marked
//! secret are written as `***`, and so is any echo of them in what the device
//! prints. It also keeps the last lines received, for error messages.
//!
//! Memory is bounded: only the latest entries are kept (a noisy line prints
//! lines without end). A caller that wants all of it gives the transcript a
//! writer ([`Transcript::write_to`], the `--transcript` file), which gets
//! every entry as it is made; [`Transcript::render`] is the kept part.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::time::{Duration, Instant};

/// Which way a transcript entry went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Printed by the device.
    Received,
    /// Sent by us.
    Sent,
    /// A remark of ours (a transfer, a skipped prompt).
    Note,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Since the session started.
    pub at: Duration,
    pub direction: Direction,
    pub text: String,
}

/// How many received lines are kept for error messages.
const RECENT_LINES: usize = 8;

/// Entries kept in memory at most, and their text at most: far more than a
/// boot log or a dialog prints, far less than a noisy line can.
pub const MAX_KEPT_ENTRIES: usize = 4096;
pub const MAX_KEPT_TEXT: usize = 1 << 20;

/// The longest received line kept (longer ones are cut).
const MAX_LINE: usize = 4096;

pub struct Transcript {
    started: Instant,
    /// The latest entries, within [`MAX_KEPT_ENTRIES`] and [`MAX_KEPT_TEXT`].
    entries: VecDeque<Entry>,
    /// Bytes of text in `entries`.
    kept_text: usize,
    /// Entries made and no longer kept.
    dropped: u64,
    /// Received bytes of the line not yet ended.
    partial: Vec<u8>,
    secrets: Vec<String>,
    recent: VecDeque<String>,
    /// Where every entry is written as it is made, if anywhere.
    sink: Option<Box<dyn io::Write + Send + Sync>>,
    /// The first error writing to `sink` (which is then dropped).
    sink_error: Option<io::Error>,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcript")
            .field("entries", &self.entries.len())
            .field("dropped", &self.dropped)
            .field("writes_to_sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl Transcript {
    pub fn new(started: Instant) -> Transcript {
        Transcript {
            started,
            entries: VecDeque::new(),
            kept_text: 0,
            dropped: 0,
            partial: Vec::new(),
            secrets: Vec::new(),
            recent: VecDeque::new(),
            sink: None,
            sink_error: None,
        }
    }

    /// The entries kept in memory (the latest ones).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// How many entries are kept, and their text in bytes (both bounded).
    pub fn kept(&self) -> (usize, usize) {
        (self.entries.len(), self.kept_text)
    }

    /// From now on writes every entry to `sink` as it is made, after the
    /// entries kept so far. [`Transcript::finish`] adds the unfinished last
    /// line and flushes.
    pub fn write_to(&mut self, sink: Box<dyn io::Write + Send + Sync>) {
        self.sink = Some(sink);
        let kept = self.render_kept();
        self.write_sink(kept.as_bytes());
    }

    /// Writes the line not yet ended (a prompt, or what a timeout cut off)
    /// to the sink and flushes it; the first write error, if any.
    pub fn finish(&mut self, now: Instant) -> io::Result<()> {
        if !self.partial.is_empty() {
            let entry = self.partial_entry(now);
            self.write_sink(render_entry(&entry).as_bytes());
        }
        if let Some(sink) = &mut self.sink
            && let Err(error) = sink.flush()
        {
            self.sink_error.get_or_insert(error);
            self.sink = None;
        }
        match self.sink_error.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn write_sink(&mut self, bytes: &[u8]) {
        if let Some(sink) = &mut self.sink
            && let Err(error) = sink.write_all(bytes)
        {
            self.sink_error.get_or_insert(error);
            self.sink = None;
        }
    }

    /// Records `entry`: to the sink, and in memory among the latest.
    fn push(&mut self, entry: Entry) {
        if self.sink.is_some() {
            self.write_sink(render_entry(&entry).as_bytes());
        }
        self.kept_text += entry.text.len();
        self.entries.push_back(entry);
        // Each pass drops one entry: bounded by the entries kept.
        while self.entries.len() > MAX_KEPT_ENTRIES || (self.kept_text > MAX_KEPT_TEXT && self.entries.len() > 1) {
            let Some(old) = self.entries.pop_front() else { break };
            self.kept_text -= old.text.len();
            self.dropped += 1;
        }
    }

    fn partial_entry(&self, now: Instant) -> Entry {
        Entry {
            at: now.saturating_duration_since(self.started),
            direction: Direction::Received,
            text: self.redact(printable(&self.partial)),
        }
    }

    /// Adds received bytes; complete lines become entries.
    pub fn received(&mut self, now: Instant, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.push_line(now, &line);
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(byte);
            }
        }
    }

    fn push_line(&mut self, now: Instant, line: &[u8]) {
        let text = self.redact(printable(line));
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(text.clone());
        self.push(Entry { at: now - self.started, direction: Direction::Received, text });
    }

    /// Records what we sent; a secret is written as `***` and from then on
    /// also hidden in what the device prints.
    pub fn sent(&mut self, now: Instant, text: &str, secret: bool) {
        self.flush_partial(now);
        let shown = if secret {
            if !text.is_empty() && !self.secrets.iter().any(|s| s == text) {
                self.secrets.push(text.to_string());
            }
            "***".to_string()
        } else {
            self.redact(printable(text.as_bytes()))
        };
        self.push(Entry { at: now - self.started, direction: Direction::Sent, text: shown });
    }

    pub fn note(&mut self, now: Instant, text: &str) {
        self.flush_partial(now);
        self.push(Entry { at: now - self.started, direction: Direction::Note, text: text.to_string() });
    }

    /// Ends the pending partial line (a prompt has no newline).
    fn flush_partial(&mut self, now: Instant) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.push_line(now, &line);
        }
    }

    /// The last lines received, the unfinished one included, redacted.
    pub fn last_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.recent.iter().cloned().collect();
        if !self.partial.is_empty() {
            lines.push(self.redact(printable(&self.partial)));
        }
        let skip = lines.len().saturating_sub(RECENT_LINES);
        lines.into_iter().skip(skip).filter(|l| !l.trim().is_empty()).collect()
    }

    /// Hides every secret sent so far in `text`.
    pub fn redact(&self, mut text: String) -> String {
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }

    /// `[   1.234] < text` per entry kept: `<` received, `>` sent, `#`
    /// note; the line not yet ended (what a timeout cut off) last.
    pub fn render(&self) -> String {
        let mut out = self.render_kept();
        if !self.partial.is_empty() {
            let at = self.entries.back().map_or(Duration::ZERO, |e| e.at);
            out.push_str(&render_entry(&Entry { at, ..self.partial_entry(self.started) }));
        }
        out
    }

    fn render_kept(&self) -> String {
        let mut out = String::new();
        if self.dropped > 0 {
            let _ = writeln!(out, "[{:>8}] # {} earlier entries are not kept in memory", "", self.dropped);
        }
        for entry in &self.entries {
            out.push_str(&render_entry(entry));
        }
        out
    }
}

fn render_entry(entry: &Entry) -> String {
    let mark = match entry.direction {
        Direction::Received => '<',
        Direction::Sent => '>',
        Direction::Note => '#',
    };
    format!("[{:>8.3}] {mark} {}\n", entry.at.as_secs_f64(), entry.text)
}

/// Text for a human: CR dropped, other control bytes and invalid UTF-8 as `\xNN`.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\r' => {}
                '\t' => out.push(' '),
                c if c.is_control() => {
                    let _ = write!(out, "\\x{:02X}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_in_both_directions() {
        let start = Instant::now();
        let mut transcript = Transcript::new(start);
        transcript.received(start, b"Enter the root password: ");
        transcript.sent(start, "Netsilicon", true);
        transcript.received(start, b"echo Netsilicon\r\nIP address  [0.0.0.0]? ");
        transcript.sent(start, "10.0.0.5", false);
        let text = transcript.render();
        assert!(!text.contains("Netsilicon"), "{text}");
        assert!(text.contains("> ***"));
        assert!(text.contains("< echo ***"));
        assert!(text.contains("< IP address  [0.0.0.0]? "));
        assert!(text.contains("> 10.0.0.5"));
        assert_eq!(transcript.last_lines().last().unwrap(), "IP address  [0.0.0.0]? ");
    }

    #[test]
    fn control_bytes_are_escaped() {
        assert_eq!(printable(b"a\r\x07b\xff"), "a\\x07b\\xFF");
    }
}
