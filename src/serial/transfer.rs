//! The async loops that drive the [`xmodem`](super::xmodem) state machines over
//! a byte stream: read with the machine's deadline, feed, write what it wants
//! written, report progress.
//!
//! Time comes from tokio's clock, so tests can run transfers with paused time.
//! Bytes that arrive after the end of a transfer are handed back as
//! `leftover`: they are console output the next reader needs.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::xmodem::{Incoming, Receiver, ReceiverOptions, ReceiverStats, Sender, Status, TransferError, TransferStats};
use crate::failure::{Classify, FailureClass};
use crate::progress::{Progress, ProgressEvent, TaskKind};

/// Why a transfer did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TransferRunError {
    #[error(transparent)]
    Protocol(#[from] TransferError),
    #[error("serial line error during the transfer: {0}")]
    Io(#[from] std::io::Error),
    #[error("the serial line closed during the transfer")]
    Closed,
}

impl Classify for TransferRunError {
    /// The receiver (the device) refused, cancelled, fell silent or closed
    /// the line.
    fn class(&self) -> FailureClass {
        match self {
            TransferRunError::Protocol(_) | TransferRunError::Io(_) | TransferRunError::Closed => FailureClass::Device,
        }
    }
}

/// A completed send.
#[derive(Debug, Clone)]
pub struct SendReport {
    pub stats: TransferStats,
    pub elapsed: Duration,
    /// Bytes read after the transfer ended.
    pub leftover: Vec<u8>,
}

/// A completed receive.
#[derive(Debug, Clone)]
pub struct ReceiveReport {
    pub files: Vec<Incoming>,
    /// Which block sizes the sender used.
    pub stats: ReceiverStats,
    pub elapsed: Duration,
    pub leftover: Vec<u8>,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn write_out<S: AsyncWrite + Unpin>(stream: &mut S, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        stream.flush().await?;
        out.clear();
    }
    Ok(())
}

/// Reads once, waiting at most until `deadline`. `Ok(None)` on timeout.
async fn read_until<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    deadline: Option<std::time::Instant>,
) -> Result<Option<usize>, TransferRunError> {
    let read = stream.read(buf);
    let result = match deadline {
        Some(deadline) => match tokio::time::timeout_at(Instant::from_std(deadline), read).await {
            Ok(result) => result,
            Err(_) => return Ok(None),
        },
        None => read.await,
    };
    match result? {
        0 => Err(TransferRunError::Closed),
        n => Ok(Some(n)),
    }
}

/// Sends with `sender` over `stream`. `pending` holds bytes already read from
/// the line (e.g. the `C`s that came with the boot loader's text).
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut sender: Sender,
    label: &str,
    mut pending: Vec<u8>,
    progress: &dyn Progress,
) -> Result<SendReport, TransferRunError> {
    let kind = TaskKind::SerialTransfer;
    let started = Instant::now();
    progress.report(ProgressEvent::Started { kind, label: label.to_string(), total: Some(sender.total_bytes()) });
    let mut out = Vec::with_capacity(2048);
    let mut buf = vec![0u8; 4096];
    let mut reported = 0;
    let result = loop {
        if !pending.is_empty() {
            let used = sender.on_bytes(now(), &pending, &mut out);
            pending.drain(..used);
        }
        write_out(stream, &mut out).await?;
        for retry in sender.take_retries() {
            let detail = format!("{} sent again (try {}): {}", retry.unit, retry.attempt, retry.reason);
            progress.report(ProgressEvent::Retried { kind, detail });
        }
        let acked = sender.stats().acked_bytes;
        if acked != reported {
            reported = acked;
            progress.report(ProgressEvent::Advanced { kind, done: acked });
        }
        match sender.status() {
            Status::Running => {}
            Status::Done => break Ok(()),
            Status::Failed(error) => break Err(error.clone()),
        }
        match read_until(stream, &mut buf, sender.poll_timeout()).await {
            Ok(Some(n)) => pending.extend_from_slice(&buf[..n]),
            Ok(None) => sender.on_timeout(now(), &mut out),
            // After the last data block a closed line may be a receiver that
            // left after an ACK we lost: say so, not just "closed". After the
            // file's acknowledged EOT (YMODEM's end of batch) it is done.
            Err(TransferRunError::Closed) => match sender.on_line_closed() {
                Some(error) => break Err(error),
                None if sender.status() == &Status::Done => break Ok(()),
                None => return Err(TransferRunError::Closed),
            },
            Err(error) => return Err(error),
        }
    };
    // The CANs of a failed transfer are in `out`.
    write_out(stream, &mut out).await?;
    let elapsed = started.elapsed();
    progress.report(ProgressEvent::Finished { kind, done: sender.stats().acked_bytes, elapsed });
    result?;
    Ok(SendReport { stats: sender.stats(), elapsed, leftover: pending })
}

/// Receives over `stream`. After the end it keeps answering a repeated EOT
/// for `linger` (in case its last ACK was lost) before returning.
pub async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    options: ReceiverOptions,
    linger: Duration,
) -> Result<ReceiveReport, TransferRunError> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(64);
    let mut receiver = Receiver::new(options, now(), &mut out);
    let mut buf = vec![0u8; 4096];
    let mut leftover = Vec::new();
    loop {
        write_out(stream, &mut out).await?;
        match receiver.status() {
            Status::Running => {}
            Status::Done => break,
            Status::Failed(error) => return Err(error.clone().into()),
        }
        match read_until(stream, &mut buf, receiver.poll_timeout()).await? {
            Some(n) => {
                let used = receiver.on_bytes(now(), &buf[..n], &mut out);
                leftover.extend_from_slice(&buf[used..n]);
            }
            None => receiver.on_timeout(now(), &mut out),
        }
    }
    let elapsed = started.elapsed();
    // tokio's clock, not the system's: with paused time the two differ.
    let linger_end = now() + linger;
    while leftover.is_empty() && now() < linger_end {
        match read_until(stream, &mut buf, Some(linger_end)).await {
            Ok(Some(n)) => {
                let used = receiver.on_bytes(now(), &buf[..n], &mut out);
                leftover.extend_from_slice(&buf[used..n]);
                write_out(stream, &mut out).await?;
            }
            Ok(None) | Err(TransferRunError::Closed) => break,
            Err(error) => return Err(error),
        }
    }
    Ok(ReceiveReport { stats: receiver.stats(), files: receiver.into_files(), elapsed, leftover })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::xmodem::TransferProtocol;
    use crate::serial::xmodem::{Outgoing, SenderOptions};

    #[tokio::test(start_paused = true)]
    async fn send_and_receive_over_a_duplex() {
        for protocol in [TransferProtocol::Xmodem, TransferProtocol::Xmodem1k, TransferProtocol::Ymodem] {
            let (mut a, mut b) = tokio::io::duplex(256);
            let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
            let file = Outgoing { name: "rom.bin".into(), data: data.clone(), mtime: 1 };
            let options = SenderOptions::for_baud(protocol, 115_200);
            let sender = Sender::new(file, options, now());
            let events = std::sync::Mutex::new(Vec::new());
            let record = |event: ProgressEvent| events.lock().unwrap().push(event);
            let receiving = tokio::spawn(async move {
                let options = ReceiverOptions::for_baud(protocol == TransferProtocol::Ymodem, 115_200);
                let report = receive(&mut b, options, Duration::from_millis(50)).await;
                b.write_all(b"after").await.unwrap();
                report
            });
            let report = send(&mut a, sender, "rom.bin", Vec::new(), &record).await.unwrap();
            let received = receiving.await.unwrap().unwrap();
            assert_eq!(&received.files[0].data[..5000], &data[..]);
            assert_eq!(report.stats.acked_bytes, 5000);
            let events = events.into_inner().unwrap();
            assert!(matches!(events.last(), Some(ProgressEvent::Finished { done: 5000, .. })));
            assert!(events.iter().any(|e| matches!(e, ProgressEvent::Advanced { done: 5000, .. })));
            // The console text after the transfer is handed on.
            let mut rest = report.leftover;
            // Bounded: each read brings a byte or ends the test (EOF).
            while rest.len() < 5 {
                let mut buf = [0u8; 16];
                let n = a.read(&mut buf).await.unwrap();
                assert!(n > 0, "the line closed after {:?}", String::from_utf8_lossy(&rest));
                rest.extend_from_slice(&buf[..n]);
            }
            assert_eq!(rest, b"after");
        }
    }

    /// Issue 28 item 7: a line that answers with random bytes (a 0x06 every
    /// 256 on average) fails with the junk error, not "sent".
    #[tokio::test(start_paused = true)]
    async fn a_line_of_random_bytes_is_not_a_receiver() {
        use crate::serial::xmodem::{TransferError, Unit};
        for protocol in [TransferProtocol::Xmodem, TransferProtocol::Xmodem1k, TransferProtocol::Ymodem] {
            let (mut ours, theirs) = tokio::io::duplex(4096);
            let (mut their_read, mut their_write) = tokio::io::split(theirs);
            // Whatever we send is read and dropped; random bytes come back
            // at 115200 baud (a chunk of 1152 bytes every 100 ms), 60 s at most.
            let drain = tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while their_read.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            });
            let noise = tokio::spawn(async move {
                let mut state = 0x1234_5678u32;
                for _ in 0..600 {
                    let chunk: Vec<u8> = (0..1152)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 17;
                            state ^= state << 5;
                            (state >> 24) as u8
                        })
                        .collect();
                    if their_write.write_all(&chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
            let file = Outgoing { name: "image.bin".into(), data, mtime: 1 };
            let sender = Sender::new(file, SenderOptions::for_baud(protocol, 115_200), now());
            let error = send(&mut ours, sender, "image.bin", Vec::new(), &crate::progress::Silent).await.unwrap_err();
            let first = if protocol == TransferProtocol::Ymodem { Unit::Header } else { Unit::Data(1) };
            assert!(
                matches!(error, TransferRunError::Protocol(TransferError::Junk { unit, .. }) if unit == first),
                "{protocol:?}: {error}"
            );
            assert!(error.to_string().contains("bytes that are not XMODEM replies"), "{error}");
            noise.abort();
            drop(ours);
            let _ = drain.await;
        }
    }
}
