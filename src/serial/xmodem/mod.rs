//! XMODEM, XMODEM-1K and YMODEM as state machines fed bytes: a [`Sender`] for
//! image loads and a [`Receiver`] for the simulator and the tests.
//!
//! Neither does I/O or reads a clock: the caller passes the current time, feeds
//! received bytes with `on_bytes`, calls `on_timeout` when `poll_timeout` has
//! passed, and writes whatever they appended to `out`. `transfer.rs` is the
//! async loop that drives them over a byte stream.
//!
//! Framing (Forsberg, "XMODEM/YMODEM protocol reference", 1988): a block is
//! `SOH|STX, n, 255-n, 128|1024 data bytes, CRC-16 (big-endian) | checksum`.
//! XMODEM pads the last block with SUB (0x1A): a receiver gets the file rounded
//! up to the block size (128 bytes when the tail fits in 128, else 1024).
//! YMODEM carries the exact size in block 0, so the receiver truncates.
//!
//! Noise handling, the part published crates get wrong:
//! - the sender ignores `C` and garbage while waiting for a reply (a boot loader
//!   streams `C`s, several may be queued when the first block goes out);
//! - when a block was sent more than once, a stale ACK for an earlier copy may
//!   still be on its way; after the ACK the sender waits `settle` and drops
//!   replies before the next block, so a stale ACK never acknowledges it;
//! - the receiver NAKs the first EOT (a noise byte can look like EOT) and only
//!   ends on a second one; after a bad block it waits for the line to go quiet
//!   before it NAKs, so the retransmission starts on a clean line.
//!
//! Layout: `block.rs` frames blocks (CRC-16 or checksum, padding, YMODEM
//! block 0), `sender.rs` and `receiver.rs` are the two state machines; this file
//! holds what both share: the control bytes, the errors and the status.

use std::fmt;
use std::time::Duration;

mod block;
mod receiver;
mod sender;

pub use block::{Check, Incoming, Outgoing, encode_block, padded_len};
use clap::ValueEnum;
pub use receiver::{Receiver, ReceiverOptions, ReceiverStats};
use schemars::JsonSchema;
pub use sender::{Retry, Sender, SenderOptions, TransferStats};
use serde::{Deserialize, Serialize};

/// Serial file-transfer protocols.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TransferProtocol {
    /// XMODEM with CRC-16, falling back to the 8-bit checksum when the receiver
    /// asks with NAK instead of `C`.
    #[default]
    Xmodem,
    /// XMODEM with 1024-byte blocks.
    #[serde(rename = "xmodem-1k")]
    #[value(name = "xmodem-1k")]
    Xmodem1k,
    /// YMODEM batch (file name, size and time in block 0).
    Ymodem,
}

pub const SOH: u8 = 0x01;
pub const STX: u8 = 0x02;
pub const EOT: u8 = 0x04;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;
pub const CAN: u8 = 0x18;
/// The receiver's request for CRC-16 mode.
pub const CRC_REQUEST: u8 = b'C';
/// Padding of the last XMODEM block (CP/M end of file).
pub const SUB: u8 = 0x1A;

/// A byte as a reader wants to see it in an error: `NAK (0x15)`, `0x41 ('A')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteName(pub u8);

impl fmt::Display for ByteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            SOH => Some("SOH"),
            STX => Some("STX"),
            EOT => Some("EOT"),
            ACK => Some("ACK"),
            NAK => Some("NAK"),
            CAN => Some("CAN"),
            SUB => Some("SUB"),
            _ => None,
        };
        match name {
            Some(name) => write!(f, "{name} (0x{:02X})", self.0),
            None if self.0.is_ascii_graphic() => write!(f, "0x{:02X} ('{}')", self.0, self.0 as char),
            None => write!(f, "0x{:02X}", self.0),
        }
    }
}

/// The last thing the other side answered before a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastReply {
    /// Nothing came back before the timeout.
    Timeout,
    /// This byte came back.
    Byte(u8),
}

impl fmt::Display for LastReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LastReply::Timeout => f.write_str("no reply (timeout)"),
            LastReply::Byte(b) => write!(f, "{}", ByteName(*b)),
        }
    }
}

/// Which part of a transfer a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// YMODEM block 0 with name, size and time.
    Header,
    /// A data block, numbered from 1 (the full count, not the 8-bit wire number).
    Data(u32),
    /// The end of the file.
    Eot,
    /// YMODEM's empty block 0 that ends the batch.
    Closing,
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::Header => f.write_str("block 0 (YMODEM header)"),
            Unit::Data(n) => write!(f, "block {n}"),
            Unit::Eot => f.write_str("EOT"),
            Unit::Closing => f.write_str("block 0 (YMODEM end of batch)"),
        }
    }
}

/// Why a transfer failed. Messages name the block, the tries and the byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("the receiver never asked for data: no `C` or NAK within {}s", waited.as_secs_f32())]
    NoStart { waited: Duration },
    #[error("{unit}: no ACK after {tries} tries; last reply: {last}")]
    RetriesExhausted { unit: Unit, tries: u32, last: LastReply },
    /// The line answered a unit with a stream of bytes, not with replies:
    /// no ACK in it is believed (a line of random bytes holds many 0x06).
    #[error(
        "{unit}: the line answered with {bytes} bytes that are not XMODEM replies (a lone ACK, NAK, CAN or `C`): line noise, a wrong speed or no XMODEM receiver on the line; no ACK in them was counted"
    )]
    Junk { unit: Unit, bytes: u32 },
    #[error("the receiver cancelled the transfer (CAN CAN) at {unit}")]
    CancelledByReceiver { unit: Unit },
    #[error("the sender cancelled the transfer (CAN CAN) before block {block}")]
    CancelledBySender { block: u32 },
    #[error("no data from the sender: no block after {tries} requests")]
    SenderSilent { tries: u32 },
    #[error("block {block}: giving up after {tries} bad tries; last problem: {last}")]
    TooManyErrors { block: u32, tries: u32, last: String },
    #[error("block {block}: out of sequence: expected block number {expected}, got {got}")]
    OutOfSequence { block: u32, expected: u8, got: u8 },
    #[error("YMODEM header (block 0) is not valid: {reason}")]
    BadHeader { reason: String },
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the YMODEM header says {declared} bytes but {received} arrived")]
    SizeMismatch { declared: u64, received: u64 },
    /// The sender had sent the last data block (or EOT), then the line went
    /// silent or closed: the receiver may have the whole file and only its
    /// last ACK was lost, or it may not. Not a success, not a plain failure.
    #[error(
        "{unit}: {cause} after the last data block was sent: the receiver may have the complete file (its final ACK may have been lost); check the device before sending again"
    )]
    FinalAckMissing { unit: Unit, cause: FinalAckCause },
}

/// What ended a transfer whose final ACK never came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalAckCause {
    /// No ACK after every try; `last` is what came back to the last copy.
    NoReply { tries: u32, last: LastReply },
    /// The line closed (e.g. the receiver left after its last ACK).
    LineClosed,
}

impl fmt::Display for FinalAckCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinalAckCause::NoReply { tries, last } => write!(f, "no ACK after {tries} tries (last reply: {last})"),
            FinalAckCause::LineClosed => f.write_str("the serial line closed"),
        }
    }
}

/// Where a state machine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Running,
    Done,
    Failed(TransferError),
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::TransferProtocol;
    use super::*;

    pub(super) fn opts(protocol: TransferProtocol) -> SenderOptions {
        SenderOptions {
            protocol,
            block_retries: 3,
            start_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(1),
            settle: Duration::from_millis(100),
        }
    }

    pub(super) fn file(len: usize) -> Outgoing {
        Outgoing {
            name: "image.bin".into(),
            data: (0..len).map(|i| (i * 7 + i / 251) as u8).collect(),
            mtime: 0o14_000_000_000,
        }
    }

    pub(super) fn receiver_opts(ymodem: bool) -> ReceiverOptions {
        let mut options = ReceiverOptions::for_baud(ymodem, 115_200);
        options.max_errors = 5;
        options
    }

    /// Runs sender and receiver against each other in memory, with a
    /// `tamper` hook on each sender-to-receiver chunk.
    fn run_pair(
        protocol: TransferProtocol,
        len: usize,
        check: Check,
        mut tamper: impl FnMut(usize, &mut Vec<u8>),
    ) -> (Status, Status, Vec<Incoming>, TransferStats) {
        let mut now = Instant::now();
        let mut to_sender = Vec::new();
        let mut options = receiver_opts(protocol == TransferProtocol::Ymodem);
        options.check = check;
        let mut receiver = Receiver::new(options, now, &mut to_sender);
        let mut sender = Sender::new(file(len), opts(protocol), now);
        let mut chunk_index = 0;
        for _ in 0..100_000 {
            let mut to_receiver = Vec::new();
            sender.on_bytes(now, &to_sender, &mut to_receiver);
            to_sender.clear();
            if !to_receiver.is_empty() {
                tamper(chunk_index, &mut to_receiver);
                chunk_index += 1;
                receiver.on_bytes(now, &to_receiver, &mut to_sender);
            }
            if sender.status() != &Status::Running && receiver.status() != &Status::Running {
                break;
            }
            if to_sender.is_empty() {
                // Nothing in flight: jump to the earliest timer.
                let next = [sender.poll_timeout(), receiver.poll_timeout()].into_iter().flatten().min();
                let Some(next) = next else { break };
                now = now.max(next);
                let mut to_receiver = Vec::new();
                sender.on_timeout(now, &mut to_receiver);
                receiver.on_bytes(now, &to_receiver, &mut to_sender);
                receiver.on_timeout(now, &mut to_sender);
            }
        }
        let stats = sender.stats();
        (sender.status().clone(), receiver.status().clone(), receiver.into_files(), stats)
    }

    #[test]
    fn every_protocol_round_trips_every_size() {
        for protocol in [TransferProtocol::Xmodem, TransferProtocol::Xmodem1k, TransferProtocol::Ymodem] {
            for len in [0usize, 1, 127, 128, 129, 1023, 1024, 1025, 33 * 1024 + 5] {
                let (s, r, files, stats) = run_pair(protocol, len, Check::Crc16, |_, _| {});
                assert_eq!(s, Status::Done, "{protocol:?} {len}");
                assert_eq!(r, Status::Done, "{protocol:?} {len}");
                assert_eq!(files.len(), 1);
                let want = file(len).data;
                let got = &files[0].data;
                if protocol == TransferProtocol::Ymodem {
                    assert_eq!(got, &want, "{len}");
                    assert_eq!(files[0].name.as_deref(), Some("image.bin"));
                    assert_eq!(files[0].mtime, Some(0o14_000_000_000));
                } else {
                    assert_eq!(got.len(), padded_len(len, protocol), "{protocol:?} {len}");
                    assert_eq!(&got[..len], &want[..]);
                    assert!(got[len..].iter().all(|&b| b == SUB));
                }
                assert_eq!(stats.retransmissions, 1, "only the deliberate EOT NAK");
                assert_eq!(stats.acked_bytes, len as u64);
            }
        }
    }

    #[test]
    fn checksum_mode_when_asked_with_nak() {
        let (s, r, files, stats) = run_pair(TransferProtocol::Xmodem1k, 3000, Check::Checksum, |_, _| {});
        assert_eq!((s, r), (Status::Done, Status::Done));
        assert!(stats.checksum_mode);
        // 1K blocks need CRC: the sender fell back to 128-byte blocks.
        assert_eq!(files[0].data.len(), 3072);
        assert_eq!(stats.wire_bytes, 24 * 132 + 2);
    }

    #[test]
    fn exact_wire_byte_count() {
        let (_, _, _, stats) = run_pair(TransferProtocol::Xmodem1k, 2048 + 100, Check::Crc16, |_, _| {});
        assert_eq!(stats.wire_bytes, 2 * 1029 + 133 + 2);
        assert_eq!(stats.blocks, 4);
    }

    #[test]
    fn corrupted_blocks_are_retransmitted() {
        // Flip a byte in the 2nd and 3rd chunks (blocks 2 and 3).
        let (s, r, files, stats) = run_pair(TransferProtocol::Xmodem, 1000, Check::Crc16, |i, chunk| {
            if i == 1 || i == 2 {
                let last = chunk.len() - 1;
                chunk[last / 2] ^= 0x10;
            }
        });
        assert_eq!((s, r), (Status::Done, Status::Done));
        assert_eq!(&files[0].data[..1000], &file(1000).data[..]);
        assert_eq!(stats.retransmissions, 3);
    }

    #[test]
    fn lost_blocks_time_out_and_are_resent() {
        let (s, r, files, _) = run_pair(TransferProtocol::Ymodem, 5000, Check::Crc16, |i, chunk| {
            if i == 2 {
                chunk.clear();
            }
        });
        assert_eq!((s, r), (Status::Done, Status::Done));
        assert_eq!(files[0].data, file(5000).data);
    }

    #[test]
    fn byte_names() {
        assert_eq!(ByteName(NAK).to_string(), "NAK (0x15)");
        assert_eq!(ByteName(b'A').to_string(), "0x41 ('A')");
        assert_eq!(ByteName(0x80).to_string(), "0x80");
    }
}
