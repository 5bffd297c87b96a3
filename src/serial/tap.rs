//! `serial tap` and `serial monitor`: a transparent relay between two serial
//! ports (a production controller on one, the module's console on the
//! other) and a read-only recorder of one port, both writing a timestamped
//! record of what went by.
//!
//! The relay never changes a byte in transit: what is read from one side is
//! written to the other as read, before it is recorded. The record
//! ([`TapLog`], pure) has a line per chunk read: the time since the start,
//! the direction (`A>B`, `B>A`, or `<` for a monitor), the byte count and the
//! bytes as escaped text, optionally followed by hex; a pause longer than
//! the idle threshold gets its own line. A controller that types a password
//! must not leave it in the record: after one side prints something with
//! `password` in it, the other side's next line is recorded as `*` (the
//! relay still passes it unchanged).

use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::failure::{Classify, FailureClass};

/// Which way a chunk went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read on port A, written to port B.
    AtoB,
    /// Read on port B, written to port A.
    BtoA,
    /// Read on the monitored port.
    Received,
}

impl Flow {
    fn mark(self) -> &'static str {
        match self {
            Flow::AtoB => "A>B",
            Flow::BtoA => "B>A",
            Flow::Received => "<  ",
        }
    }

    /// The side a password prompt printed by this side is answered from.
    fn answered_by(self) -> Option<Flow> {
        match self {
            Flow::AtoB => Some(Flow::BtoA),
            Flow::BtoA => Some(Flow::AtoB),
            Flow::Received => None,
        }
    }
}

/// One chunk as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Since the tap started.
    pub at: Duration,
    pub flow: Flow,
    pub bytes: Vec<u8>,
}

/// How the record looks.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// Add the bytes in hex under each chunk's text.
    pub hex: bool,
    /// A pause at least this long gets an `idle` line.
    pub idle: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { hex: false, idle: Duration::from_millis(500) }
    }
}

/// Turns chunks into record lines. Pure.
#[derive(Debug)]
pub struct TapLog {
    options: LogOptions,
    last: Option<Duration>,
    /// The direction whose bytes are masked until its next line ending.
    masking: Option<Flow>,
    /// The tail of each side's text, to find `password` split across chunks.
    tails: [Vec<u8>; 3],
}

impl TapLog {
    pub fn new(options: LogOptions) -> TapLog {
        TapLog { options, last: None, masking: None, tails: Default::default() }
    }

    /// Appends the record of `chunk` to `out`.
    pub fn record(&mut self, chunk: &Chunk, out: &mut String) {
        if let Some(last) = self.last
            && chunk.at.saturating_sub(last) >= self.options.idle
        {
            let _ =
                writeln!(out, "[{:>10.3}] --- idle {:.3} s", chunk.at.as_secs_f64(), (chunk.at - last).as_secs_f64());
        }
        self.last = Some(chunk.at);
        let masked = self.mask(chunk);
        let _ = writeln!(
            out,
            "[{:>10.3}] {} {:>5}  {}",
            chunk.at.as_secs_f64(),
            chunk.flow.mark(),
            chunk.bytes.len(),
            escape(&chunk.bytes, &masked)
        );
        if self.options.hex {
            for (row, hidden) in chunk.bytes.chunks(16).zip(masked.chunks(16)) {
                let hex: Vec<String> = row
                    .iter()
                    .zip(hidden)
                    .map(|(b, hidden)| if *hidden { "**".into() } else { format!("{b:02X}") })
                    .collect();
                let _ = writeln!(out, "{:>22}{}", "", hex.join(" "));
            }
        }
        self.watch_for_prompt(chunk);
    }

    /// Which bytes of the chunk are a password being typed (not shown).
    fn mask(&mut self, chunk: &Chunk) -> Vec<bool> {
        let mut hidden = Vec::with_capacity(chunk.bytes.len());
        for &byte in &chunk.bytes {
            let line_end = matches!(byte, b'\r' | b'\n');
            if line_end && self.masking == Some(chunk.flow) {
                self.masking = None;
            }
            hidden.push(self.masking == Some(chunk.flow));
        }
        hidden
    }

    fn watch_for_prompt(&mut self, chunk: &Chunk) {
        let tail = &mut self.tails[chunk.flow as usize];
        tail.extend(chunk.bytes.iter().map(u8::to_ascii_lowercase));
        if tail.windows(8).any(|w| w == b"password") {
            self.masking = chunk.flow.answered_by();
            tail.clear();
        }
        let keep = tail.len().saturating_sub(7);
        tail.drain(..keep);
    }
}

/// Bytes as text: printable ASCII as is, the rest escaped (`\r`, `\n`,
/// `\t`, `\\`, `\xNN`), a hidden byte as `*`.
fn escape(bytes: &[u8], hidden: &[bool]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for (&byte, &hidden) in bytes.iter().zip(hidden) {
        match byte {
            _ if hidden => out.push('*'),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7E => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02X}");
            }
        }
    }
    out
}

/// Why a tap or monitor stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("port {side}: read failed: {source}")]
    Read {
        side: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("port {side}: write failed: {source}")]
    Write {
        side: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("port {side} closed")]
    Closed { side: &'static str },
    #[error("cannot write the record: {0}")]
    Record(#[source] std::io::Error),
}

impl Classify for TapError {
    /// A port that fails or goes away (a USB adapter unplugged) and a
    /// record that cannot be written are this bench's to fix.
    fn class(&self) -> FailureClass {
        FailureClass::Environment
    }
}

/// Bytes relayed or read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    pub a_to_b: u64,
    pub b_to_a: u64,
}

/// Relays between `a` and `b` until `stop` completes (Ok) or a side fails
/// or closes (Err, with the counts so far). Every chunk goes to `record`.
pub async fn relay<A, B>(
    a: A,
    b: B,
    record: mpsc::Sender<Chunk>,
    stop: impl Future<Output = ()>,
) -> (TapStats, Result<(), TapError>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let (a_to_b, b_to_a) = (AtomicU64::new(0), AtomicU64::new(0));
    let result = tokio::select! {
        r = pump(&mut a_read, Some((&mut b_write, "B")), "A", Flow::AtoB, started, &record, &a_to_b) => r,
        r = pump(&mut b_read, Some((&mut a_write, "A")), "B", Flow::BtoA, started, &record, &b_to_a) => r,
        _ = stop => Ok(()),
    };
    (TapStats { a_to_b: a_to_b.into_inner(), b_to_a: b_to_a.into_inner() }, result)
}

/// Reads `port` (never writing to it) until `stop` completes or it fails.
pub async fn monitor<P: AsyncRead + Unpin>(
    mut port: P,
    record: mpsc::Sender<Chunk>,
    stop: impl Future<Output = ()>,
) -> (u64, Result<(), TapError>) {
    let count = AtomicU64::new(0);
    let result = tokio::select! {
        r = pump::<_, tokio::io::Sink>(&mut port, None, "A", Flow::Received, Instant::now(), &record, &count) => r,
        _ = stop => Ok(()),
    };
    (count.into_inner(), result)
}

async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    from: &mut R,
    mut to: Option<(&mut W, &'static str)>,
    side: &'static str,
    flow: Flow,
    started: Instant,
    record: &mpsc::Sender<Chunk>,
    count: &AtomicU64,
) -> Result<(), TapError> {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => return Err(TapError::Closed { side }),
            Ok(n) => n,
            Err(source) => return Err(TapError::Read { side, source }),
        };
        let at = started.elapsed();
        // Relayed first, recorded after: the record never delays the line.
        if let Some((to, to_side)) = to.as_mut() {
            to.write_all(&buf[..n]).await.map_err(|source| TapError::Write { side: to_side, source })?;
            to.flush().await.map_err(|source| TapError::Write { side: to_side, source })?;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
        // A record writer that went away (its error is reported by it)
        // must not stop the relay.
        let _ = record.send(Chunk { at, flow, bytes: buf[..n].to_vec() }).await;
    }
}

/// Writes the record of every chunk received to `out` until the senders
/// are gone.
pub async fn write_record<W: AsyncWrite + Unpin>(
    mut chunks: mpsc::Receiver<Chunk>,
    mut out: W,
    options: LogOptions,
) -> Result<(), TapError> {
    let mut log = TapLog::new(options);
    let mut text = String::new();
    let mut failed = None;
    while let Some(chunk) = chunks.recv().await {
        if failed.is_some() {
            continue; // keep draining so the relay never waits on us
        }
        text.clear();
        log.record(&chunk, &mut text);
        if let Err(error) = out.write_all(text.as_bytes()).await {
            failed = Some(error);
        }
    }
    if let Some(error) = failed {
        return Err(TapError::Record(error));
    }
    out.flush().await.map_err(TapError::Record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(ms: u64, flow: Flow, bytes: &[u8]) -> Chunk {
        Chunk { at: Duration::from_millis(ms), flow, bytes: bytes.to_vec() }
    }

    #[test]
    fn records_have_time_direction_text_hex_and_idle_gaps() {
        let mut log = TapLog::new(LogOptions { hex: true, idle: Duration::from_millis(500) });
        let mut out = String::new();
        log.record(&chunk(10, Flow::BtoA, b"NET+OS\r\n"), &mut out);
        log.record(&chunk(1510, Flow::AtoB, b"M\x00\xff\\"), &mut out);
        assert_eq!(
            out,
            "[     0.010] B>A     8  NET+OS\\r\\n\n                      4E 45 54 2B 4F 53 0D 0A\n\
             [     1.510] --- idle 1.500 s\n\
             [     1.510] A>B     4  M\\x00\\xFF\\\\\n                      4D 00 FF 5C\n"
        );
    }

    #[test]
    fn a_typed_password_is_masked_in_the_record_only() {
        let mut log = TapLog::new(LogOptions { hex: true, idle: Duration::from_secs(60) });
        let mut out = String::new();
        log.record(&chunk(0, Flow::BtoA, b"Enter the root pass"), &mut out);
        log.record(&chunk(1, Flow::BtoA, b"word: "), &mut out);
        log.record(&chunk(2, Flow::AtoB, b"Nets"), &mut out);
        log.record(&chunk(3, Flow::AtoB, b"ilicon\rM"), &mut out);
        assert!(!out.contains("Nets") && !out.contains("ilicon") && !out.contains("4E 65"), "{out}");
        assert!(out.contains("A>B     4  ****\n"), "{out}");
        assert!(out.contains("A>B     8  ******\\rM\n"), "the line after the password shows: {out}");
        assert!(out.contains("** ** ** ** ** ** 0D 4D"), "{out}");
        // A monitor has no other side to mask.
        let mut log = TapLog::new(LogOptions::default());
        let mut out = String::new();
        log.record(&chunk(0, Flow::Received, b"password: "), &mut out);
        log.record(&chunk(1, Flow::Received, b"abc\r\n"), &mut out);
        assert!(out.contains("abc"));
    }

    #[tokio::test]
    async fn relays_both_ways_unchanged_and_records_each_chunk() {
        let (mut a_peer, a) = tokio::io::duplex(1024);
        let (mut b_peer, b) = tokio::io::duplex(1024);
        let (record, chunks) = mpsc::channel(16);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let writer = tokio::spawn(write_record(chunks, Vec::new(), LogOptions::default()));
        let tap = tokio::spawn(async move {
            relay(a, b, record, async {
                let _ = stop_rx.await;
            })
            .await
        });
        let every: Vec<u8> = (0..=255).collect();
        a_peer.write_all(&every).await.unwrap();
        let mut got = vec![0u8; 256];
        b_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(got, every);
        b_peer.write_all(b"back").await.unwrap();
        let mut back = [0u8; 4];
        a_peer.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"back");
        stop_tx.send(()).unwrap();
        let (stats, result) = tap.await.unwrap();
        assert!(result.is_ok());
        assert_eq!(stats, TapStats { a_to_b: 256, b_to_a: 4 });
        writer.await.unwrap().unwrap();

        // A side that closes ends the tap with which one.
        let (a_peer, a) = tokio::io::duplex(64);
        let (_b_peer, b) = tokio::io::duplex(64);
        drop(a_peer);
        let (record, _chunks) = mpsc::channel(16);
        let (_, result) = relay(a, b, record, std::future::pending()).await;
        assert!(matches!(result, Err(TapError::Closed { side: "A" })), "{result:?}");
    }
}
