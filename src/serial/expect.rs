//! The push-style expect engine: bytes go in as they arrive, and the caller
//! asks whether one of several regexes (on bytes) has matched yet.
//!
//! Pure: no I/O, no clock. [`console`](super::console) adds the stream, the
//! timeouts and the transcript. The earliest match in the stream wins (not the
//! first pattern in the list), so a rejection printed before the next prompt
//! is seen as such. A match consumes the buffer up to its end; what follows
//! stays for the next expectation or is handed on (to an XMODEM transfer)
//! with [`Matcher::take_rest`].

use regex::bytes::Regex;

/// Unmatched bytes kept at most; older ones are dropped (a chatty console
/// must not grow memory without bound).
const MAX_BUFFER: usize = 64 * 1024;

/// A match of one of the patterns asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Index of the pattern that matched.
    pub pattern: usize,
    /// The matched bytes.
    pub matched: Vec<u8>,
    /// The whole line the match is on, as far as it has arrived.
    pub line: Vec<u8>,
    /// What arrived before the match since the last one: a command's
    /// output when the match is the prompt that follows it.
    pub before: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Matcher {
    buffer: Vec<u8>,
}

impl Matcher {
    pub fn new() -> Matcher {
        Matcher::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() > MAX_BUFFER {
            let excess = self.buffer.len() - MAX_BUFFER;
            self.buffer.drain(..excess);
        }
    }

    /// The earliest match of any of `patterns` (pattern index, start, end),
    /// consuming nothing.
    pub fn peek(&self, patterns: &[&Regex]) -> Option<(usize, usize, usize)> {
        patterns
            .iter()
            .enumerate()
            .filter_map(|(index, regex)| regex.find(&self.buffer).map(|m| (index, m.start(), m.end())))
            .min_by_key(|&(index, start, _)| (start, index))
    }

    /// The earliest match of any of `patterns`; consumes through its end.
    pub fn find(&mut self, patterns: &[&Regex]) -> Option<Found> {
        let (pattern, start, end) = self.peek(patterns)?;
        let line_start = self.buffer[..start].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let line_end = self.buffer[end..].iter().position(|&b| b == b'\n').map_or(self.buffer.len(), |p| end + p);
        let found = Found {
            pattern,
            matched: self.buffer[start..end].to_vec(),
            line: self.buffer[line_start..line_end].to_vec(),
            before: self.buffer[..start].to_vec(),
        };
        self.buffer.drain(..end);
        Some(found)
    }

    /// Bytes received and not consumed by a match.
    pub fn pending(&self) -> &[u8] {
        &self.buffer
    }

    /// Drops the first `count` unconsumed bytes (they were read elsewhere).
    pub fn consume(&mut self, count: usize) {
        self.buffer.drain(..count.min(self.buffer.len()));
    }

    /// Hands on every unconsumed byte.
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buffer)
    }

    /// Drops bytes before a new exchange (e.g. the echo of our own answer).
    pub fn clear(&mut self) {
        self.buffer.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap()
    }

    #[test]
    fn matches_across_pushes_at_every_split() {
        let text = b"boot\r\nPress any key in 5 seconds to change these settings.\r\nCCC";
        for split in 0..text.len() {
            let mut matcher = Matcher::new();
            let prompt = re(r"Press any key in \d+ seconds");
            matcher.push(&text[..split]);
            let early = matcher.find(&[&prompt]);
            matcher.push(&text[split..]);
            let found = early.or_else(|| matcher.find(&[&prompt])).expect("found");
            // The line as far as it had arrived when the match was found.
            assert!(found.line.starts_with(b"Press any key in 5 seconds"), "{split}");
            assert_eq!(matcher.take_rest(), b" to change these settings.\r\nCCC");
        }
    }

    #[test]
    fn earliest_match_wins() {
        let mut matcher = Matcher::new();
        matcher.push(b"Invalid IP address\r\nIP address  [0.0.0.0]? ");
        let prompt = re(r"IP address  \[");
        let reject = re(r"(?i)invalid");
        let found = matcher.find(&[&prompt, &reject]).unwrap();
        assert_eq!(found.pattern, 1);
        assert_eq!(found.line, b"Invalid IP address\r");
        assert_eq!(matcher.find(&[&prompt, &reject]).unwrap().pattern, 0);
        assert_eq!(matcher.find(&[&prompt, &reject]), None);
    }

    #[test]
    fn garbage_is_bounded() {
        let mut matcher = Matcher::new();
        for _ in 0..100 {
            matcher.push(&[0xFFu8; 4096]);
        }
        assert_eq!(matcher.pending().len(), MAX_BUFFER);
        assert_eq!(matcher.find(&[&re("x")]), None);
    }
}
