//! A console session over a byte stream: wait for text with a timeout, send
//! answers (paced and echo-checked when asked), keep a redacted transcript,
//! and hand the stream and any unread bytes to an XMODEM transfer and back.
//!
//! The matching itself is [`expect::Matcher`](super::expect::Matcher); this is
//! its async loop. It knows nothing about profiles (see `steps.rs`).

use std::time::Duration;

use regex::bytes::Regex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::expect::{Found, Matcher};
use super::transcript::{Transcript, printable};
use crate::failure::{Classify, FailureClass};

/// Why a console exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    // "timed out waiting for X", not "no X within": callers name what they wait
    // for with an article ("the unit's MAC"), and "no the ..." misreads.
    #[error("timed out after {}s waiting for {waiting_for}{}", waited.as_secs_f32(), quote_lines(last_lines))]
    Timeout { waiting_for: String, waited: Duration, last_lines: Vec<String> },
    #[error("the serial line closed while waiting for {waiting_for}{}", quote_lines(last_lines))]
    Closed { waiting_for: String, last_lines: Vec<String> },
    #[error("the console did not echo `{sent}`: it sent back `{got}`")]
    EchoMismatch { sent: String, got: String },
    #[error("serial line error: {0}")]
    Io(#[from] std::io::Error),
}

impl Classify for ConsoleError {
    /// The console is the device talking: silence, a closed line or a wrong
    /// echo are the device's (a vanished USB adapter shows as `Io` too).
    fn class(&self) -> FailureClass {
        match self {
            ConsoleError::Timeout { .. }
            | ConsoleError::Closed { .. }
            | ConsoleError::EchoMismatch { .. }
            | ConsoleError::Io(_) => FailureClass::Device,
        }
    }
}

impl ConsoleError {
    /// The last lines the device printed, when the error has them.
    pub fn last_lines(&self) -> &[String] {
        match self {
            ConsoleError::Timeout { last_lines, .. } | ConsoleError::Closed { last_lines, .. } => last_lines,
            _ => &[],
        }
    }
}

fn quote_lines(lines: &[String]) -> String {
    if lines.is_empty() {
        return "; nothing was received".to_string();
    }
    let mut text = "; last lines received:".to_string();
    for line in lines {
        text.push_str("\n  | ");
        text.push_str(line);
    }
    text
}

/// How to send one answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Written as `***` in the transcript.
    pub secret: bool,
    /// Pause between characters (consoles that drop characters).
    pub char_delay: Duration,
    /// Wait this long for the console to echo the text (not the line ending).
    pub echo_timeout: Option<Duration>,
}

pub struct Console<S> {
    stream: S,
    matcher: Matcher,
    transcript: Transcript,
    buf: Vec<u8>,
}

impl<S> std::fmt::Debug for Console<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("buffered", &self.buf.len()).finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Console<S> {
    pub fn new(stream: S) -> Console<S> {
        Console {
            stream,
            matcher: Matcher::new(),
            transcript: Transcript::new(Instant::now().into_std()),
            buf: vec![0u8; 4096],
        }
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// To give the transcript a file ([`Transcript::write_to`]) and finish it.
    pub fn transcript_mut(&mut self) -> &mut Transcript {
        &mut self.transcript
    }

    pub fn note(&mut self, text: &str) {
        self.transcript.note(Instant::now().into_std(), text);
    }

    /// The stream and the bytes read but not consumed, for a transfer. Give
    /// the bytes read after it back with [`Console::give_back`].
    pub fn take_for_transfer(&mut self) -> (&mut S, Vec<u8>) {
        let rest = self.matcher.take_rest();
        (&mut self.stream, rest)
    }

    /// Bytes a transfer read past its end (console text).
    pub fn give_back(&mut self, bytes: &[u8]) {
        self.transcript.received(Instant::now().into_std(), bytes);
        self.matcher.push(bytes);
    }

    pub fn into_inner(self) -> (S, Vec<u8>, Transcript) {
        let Console { stream, mut matcher, transcript, .. } = self;
        (stream, matcher.take_rest(), transcript)
    }

    /// Waits until one of `patterns` matches; `what` names them in errors.
    pub async fn expect(&mut self, patterns: &[&Regex], timeout: Duration, what: &str) -> Result<Found, ConsoleError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.matcher.find(patterns) {
                return Ok(found);
            }
            match self.read_chunk(deadline, what).await? {
                Some(bytes) => self.matcher.push(&bytes),
                None => {
                    return Err(ConsoleError::Timeout {
                        waiting_for: what.to_string(),
                        waited: timeout,
                        last_lines: self.transcript.last_lines(),
                    });
                }
            }
        }
    }

    /// Waits until `pattern` matches, or until the line has been silent for
    /// `quiet` (`None`): how a station tells a unit that reboots (its banner
    /// again) from one that was unplugged.
    pub async fn expect_or_quiet(&mut self, pattern: &Regex, quiet: Duration) -> Result<Option<Found>, ConsoleError> {
        loop {
            if let Some(found) = self.matcher.find(&[pattern]) {
                return Ok(Some(found));
            }
            match self.read_chunk(Instant::now() + quiet, "the unit's banner or silence").await? {
                Some(bytes) => self.matcher.push(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// The bytes received and not yet consumed by an expectation, for a
    /// state machine that reads the console itself (the dialog).
    pub fn take_pending(&mut self) -> Vec<u8> {
        self.matcher.take_rest()
    }

    /// Reads what arrives before `deadline` (into the transcript, not the
    /// matcher); `None` when nothing came in time. `what` names what we wait
    /// for when the line closes.
    pub async fn read_chunk(&mut self, deadline: Instant, what: &str) -> Result<Option<Vec<u8>>, ConsoleError> {
        match tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)).await {
            Err(_) => Ok(None),
            Ok(Ok(0)) => {
                Err(ConsoleError::Closed { waiting_for: what.to_string(), last_lines: self.transcript.last_lines() })
            }
            Ok(Ok(n)) => {
                self.transcript.received(Instant::now().into_std(), &self.buf[..n]);
                Ok(Some(self.buf[..n].to_vec()))
            }
            Ok(Err(error)) => Err(error.into()),
        }
    }

    /// The last lines the device printed (redacted), for error messages.
    pub fn last_lines(&self) -> Vec<String> {
        self.transcript.last_lines()
    }

    /// Sends `text` then `line_ending`.
    pub async fn send(&mut self, text: &str, line_ending: &str, options: SendOptions) -> Result<(), ConsoleError> {
        self.transcript.sent(Instant::now().into_std(), text, options.secret);
        if options.echo_timeout.is_some() {
            // Only the echo of this answer counts, not older output.
            self.matcher.clear();
        }
        if options.char_delay.is_zero() {
            self.stream.write_all(text.as_bytes()).await?;
        } else {
            for byte in text.as_bytes() {
                self.stream.write_all(std::slice::from_ref(byte)).await?;
                self.stream.flush().await?;
                tokio::time::sleep(options.char_delay).await;
            }
        }
        self.stream.flush().await?;
        if let Some(timeout) = options.echo_timeout.filter(|_| !text.is_empty()) {
            let echo = Regex::new(&regex::escape(text)).expect("an escaped literal is a valid regex");
            let shown = if options.secret { "***".to_string() } else { text.to_string() };
            if let Err(error) = self.expect(&[&echo], timeout, &format!("the echo of `{shown}`")).await {
                return Err(match error {
                    ConsoleError::Timeout { .. } | ConsoleError::Closed { .. } => ConsoleError::EchoMismatch {
                        sent: shown,
                        got: self.transcript.redact(printable(self.matcher.pending())),
                    },
                    other => other,
                });
            }
        }
        if !line_ending.is_empty() {
            self.stream.write_all(line_ending.as_bytes()).await?;
            self.stream.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timeout_quotes_the_last_lines() {
        let (ours, mut device) = tokio::io::duplex(1024);
        let mut console = Console::new(ours);
        device.write_all(b"NET+OS Version 7.5\r\nPLATFORM: connectme9210\r\nAPPLICATION: naftpapp\r\n").await.unwrap();
        let prompt = Regex::new("Press any key").unwrap();
        let error = console.expect(&[&prompt], Duration::from_secs(2), "`Press any key`").await.unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("timed out after 2s waiting for `Press any key`; last lines received:"), "{text}");
        // With an article, as the station words it (issue 28 item 16).
        let error =
            console.expect(&[&prompt], Duration::from_secs(1), "the unit's MAC in its banner").await.unwrap_err();
        assert!(
            error.to_string().starts_with("timed out after 1s waiting for the unit's MAC in its banner;"),
            "{error}"
        );
        assert!(text.ends_with("  | PLATFORM: connectme9210\n  | APPLICATION: naftpapp"), "{text}");
    }

    /// Issue 28 items 4 and 14: megabytes of noise lines before the prompt
    /// keep a bounded transcript in memory while its file gets every line;
    /// the line a timeout cut off is in both.
    #[tokio::test(start_paused = true)]
    async fn a_noisy_line_keeps_memory_bounded_and_the_file_whole() {
        use crate::serial::transcript::{MAX_KEPT_ENTRIES, MAX_KEPT_TEXT};
        let (ours, mut device) = tokio::io::duplex(1 << 16);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript.txt");
        let mut console = Console::new(ours);
        console.transcript_mut().write_to(Box::new(std::io::BufWriter::new(std::fs::File::create(&path).unwrap())));
        const LINES: usize = 100_000;
        let noise = tokio::spawn(async move {
            // 100,000 lines of 80 random printable bytes: 8 MB.
            let mut state = 0x2545_F491u32;
            let mut chunk = Vec::with_capacity(81 * 100);
            for i in 0..LINES {
                for _ in 0..80 {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    chunk.push(b'!' + (state >> 24) as u8 % 90);
                }
                chunk.push(b'\n');
                if i % 100 == 99 {
                    device.write_all(&chunk).await.unwrap();
                    chunk.clear();
                }
            }
            device.write_all(b"Password").await.unwrap();
            device
        });
        let prompt = Regex::new("Password:").unwrap();
        // Paused time stands still while the bytes flow; once the writer is
        // done the expectation times out on the unfinished line (the
        // prompt without its colon).
        let error = console.expect(&[&prompt], Duration::from_secs(5), "`Password:`").await.unwrap_err();
        let _device = noise.await.unwrap();
        assert!(matches!(error, ConsoleError::Timeout { .. }), "{error}");
        assert_eq!(error.last_lines().last().map(String::as_str), Some("Password"), "{error}");
        let (kept, text) = console.transcript().kept();
        assert!(kept <= MAX_KEPT_ENTRIES && text <= MAX_KEPT_TEXT, "{kept} entries, {text} bytes kept");
        assert!(console.transcript().render().ends_with("< Password\n"), "the cut-off line is rendered");
        console.transcript_mut().finish(Instant::now().into_std()).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), LINES + 1, "every line in the file");
        assert!(lines[LINES].ends_with("] < Password"), "{}", lines[LINES]);
        assert!(lines[..LINES].iter().all(|l| l.len() == 11 + 2 + 80), "{}", lines[0]);
    }

    #[tokio::test(start_paused = true)]
    async fn echo_check_and_pacing() {
        let (ours, device) = tokio::io::duplex(1024);
        let (mut device_read, mut device_write) = tokio::io::split(device);
        let mut console = Console::new(ours);
        let echo = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 1];
            while got.len() < 9 {
                device_read.read_exact(&mut buf).await.unwrap();
                got.push(buf[0]);
                // A console that echoes everything but the digit 5.
                if buf[0] != b'5' {
                    device_write.write_all(&buf).await.unwrap();
                }
            }
            got
        });
        let options = SendOptions {
            char_delay: Duration::from_millis(10),
            echo_timeout: Some(Duration::from_secs(1)),
            secret: false,
        };
        let started = Instant::now();
        console.send("10.0", "\r", options).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(40), "paced");
        let error = console.send("10.5", "\r", options).await.unwrap_err();
        assert_eq!(error.to_string(), "the console did not echo `10.5`: it sent back `10.`");
        assert_eq!(echo.await.unwrap(), b"10.0\r10.5");
    }
}
