//! A timestamped record of a console session, safe to show: answers marked
//! secret are written as `***`, and so is any echo of them in what the device
//! prints. It also keeps the last lines received, for error messages.
//!
//! It does not decide where the transcript goes (a file, a report): callers
//! render it with [`Transcript::render`].

use std::collections::VecDeque;
use std::fmt::Write as _;
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

#[derive(Debug)]
pub struct Transcript {
    started: Instant,
    entries: Vec<Entry>,
    /// Received bytes of the line not yet ended.
    partial: Vec<u8>,
    secrets: Vec<String>,
    recent: VecDeque<String>,
}

impl Transcript {
    pub fn new(started: Instant) -> Transcript {
        Transcript { started, entries: Vec::new(), partial: Vec::new(), secrets: Vec::new(), recent: VecDeque::new() }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Adds received bytes; complete lines become entries.
    pub fn received(&mut self, now: Instant, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.push_line(now, &line);
            } else if self.partial.len() < 4096 {
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
        self.entries.push(Entry { at: now - self.started, direction: Direction::Received, text });
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
        self.entries.push(Entry { at: now - self.started, direction: Direction::Sent, text: shown });
    }

    pub fn note(&mut self, now: Instant, text: &str) {
        self.flush_partial(now);
        self.entries.push(Entry { at: now - self.started, direction: Direction::Note, text: text.to_string() });
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

    /// `[   1.234] < text` per entry: `<` received, `>` sent, `#` note.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for entry in &self.entries {
            let mark = match entry.direction {
                Direction::Received => '<',
                Direction::Sent => '>',
                Direction::Note => '#',
            };
            let _ = writeln!(out, "[{:>8.3}] {mark} {}", entry.at.as_secs_f64(), entry.text);
        }
        out
    }
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
