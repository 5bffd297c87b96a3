//! Splits console output (a raw capture, a live console, or a flashline
//! transcript) into lines with their times: the part of reading a boot log
//! that every device family shares. What a line *says* is the family's
//! grammar (NET+OS: [`crate::netos::boot_log`]); nothing here knows a banner.
//!
//! Pure: bytes in, lines out, no I/O. A transcript line (`[   1.250] < text`)
//! gives its own time, and its mark tells the console's lines (`<`) from ours
//! (`>` sent, `#` a note). Control bytes are shown as `\xNN`; an endless line
//! keeps its first [`MAX_LINE`] bytes, so memory stays bounded.

use std::time::Duration;

use super::transcript::printable;

/// Longest line kept; the rest of an endless line (binary noise without a
/// newline) is dropped so memory stays bounded.
pub const MAX_LINE: usize = 1024;

/// One line as the console (or a transcript) gave it, not yet read by a grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLine {
    /// Since the capture started, when the input carries times (a
    /// transcript, or a live console).
    pub at: Option<Duration>,
    /// The text, CR dropped, control bytes as `\xNN`.
    pub text: String,
    /// False for a last line cut before its end.
    pub complete: bool,
    /// Sent by us or a note in a flashline transcript: not the console's.
    pub ours: bool,
}

/// Cuts bytes fed in pieces into [`ConsoleLine`]s.
#[derive(Debug, Default)]
pub struct LineReader {
    partial: Vec<u8>,
    /// The time of the first byte of the pending line.
    partial_at: Option<Duration>,
}

impl LineReader {
    /// Adds bytes received at `at` (None for a file without times); each
    /// line they complete goes to `on_line`.
    pub fn feed(&mut self, at: Option<Duration>, bytes: &[u8], mut on_line: impl FnMut(ConsoleLine)) {
        for &byte in bytes {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.partial);
                let line_at = self.partial_at.take().or(at);
                on_line(console_line(line_at, &line, true));
            } else {
                if self.partial.is_empty() && self.partial_at.is_none() {
                    self.partial_at = at;
                }
                // A line longer than MAX_LINE keeps its start; the rest is dropped.
                if self.partial.len() < MAX_LINE {
                    self.partial.push(byte);
                }
            }
        }
    }

    /// Ends the input: the pending line, if any, marked incomplete.
    pub fn finish(&mut self) -> Option<ConsoleLine> {
        if self.partial.is_empty() {
            return None;
        }
        let line = std::mem::take(&mut self.partial);
        let at = self.partial_at.take();
        Some(console_line(at, &line, false))
    }
}

fn console_line(at: Option<Duration>, bytes: &[u8], complete: bool) -> ConsoleLine {
    let raw = printable(bytes);
    match transcript_line(&raw) {
        Some((t, mark, text)) => ConsoleLine { at: Some(t), text: text.to_string(), complete, ours: mark != '<' },
        None => ConsoleLine { at, text: raw, complete, ours: false },
    }
}

/// `[   1.234] < text` (a flashline transcript line): its time, mark and text.
fn transcript_line(line: &str) -> Option<(Duration, char, &str)> {
    let rest = line.strip_prefix('[')?;
    let (time, rest) = rest.split_once(']')?;
    let seconds: f64 = time.trim().parse().ok()?;
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return None;
    }
    let mut chars = rest.chars();
    if chars.next() != Some(' ') {
        return None;
    }
    let mark = chars.next().filter(|c| matches!(c, '<' | '>' | '#'))?;
    let text = chars.as_str();
    let text = text.strip_prefix(' ').unwrap_or(text);
    Some((Duration::from_secs_f64(seconds), mark, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pieces: &[(u64, &[u8])]) -> Vec<ConsoleLine> {
        let mut reader = LineReader::default();
        let mut lines = Vec::new();
        for &(ms, bytes) in pieces {
            reader.feed(Some(Duration::from_millis(ms)), bytes, |line| lines.push(line));
        }
        lines.extend(reader.finish());
        lines
    }

    #[test]
    fn transcript_marks_and_times_win_over_the_feeds() {
        let lines = read(&[(7, b"[   1.250] < banner\n[   2.000] > \n[   2.500] # a note\nplain\r\n")]);
        let summary: Vec<_> = lines.iter().map(|l| (l.at, l.text.as_str(), l.ours)).collect();
        assert_eq!(
            summary,
            vec![
                (Some(Duration::from_millis(1250)), "banner", false),
                (Some(Duration::from_secs(2)), "", true),
                (Some(Duration::from_millis(2500)), "a note", true),
                (Some(Duration::from_millis(7)), "plain", false),
            ]
        );
    }

    #[test]
    fn a_line_keeps_its_first_bytes_time_and_a_cut_line_is_incomplete() {
        let lines = read(&[(1, b"ab"), (2, b"c\nde"), (3, b"f")]);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].at, lines[0].text.as_str(), lines[0].complete),
            (Some(Duration::from_millis(1)), "abc", true)
        );
        assert_eq!(
            (lines[1].at, lines[1].text.as_str(), lines[1].complete),
            (Some(Duration::from_millis(2)), "def", false)
        );
    }

    #[test]
    fn an_endless_line_is_bounded() {
        let long = vec![b'x'; MAX_LINE * 3];
        let lines = read(&[(0, &long), (1, b"\n")]);
        assert_eq!(lines[0].text.len(), MAX_LINE);
    }
}
