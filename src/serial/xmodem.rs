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

use std::fmt;
use std::time::{Duration, Instant};

use crate::profile::TransferProtocol;

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

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// How a block's data is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// CRC-16/XMODEM, two bytes big-endian.
    Crc16,
    /// 8-bit arithmetic sum, one byte.
    Checksum,
}

impl Check {
    fn len(self) -> usize {
        match self {
            Check::Crc16 => 2,
            Check::Checksum => 1,
        }
    }

    fn append(self, data: &[u8], out: &mut Vec<u8>) {
        match self {
            Check::Crc16 => out.extend_from_slice(&CRC16.checksum(data).to_be_bytes()),
            Check::Checksum => out.push(checksum(data)),
        }
    }

    fn verify(self, data: &[u8], check: &[u8]) -> bool {
        match self {
            Check::Crc16 => check == CRC16.checksum(data).to_be_bytes(),
            Check::Checksum => check == [checksum(data)],
        }
    }
}

fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |sum, b| sum.wrapping_add(*b))
}

/// Appends one framed block to `out`.
pub fn encode_block(number: u8, data: &[u8], check: Check, out: &mut Vec<u8>) {
    debug_assert!(data.len() == 128 || data.len() == 1024);
    out.push(if data.len() == 1024 { STX } else { SOH });
    out.push(number);
    out.push(!number);
    out.extend_from_slice(data);
    check.append(data, out);
}

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
}

/// A file to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Name for YMODEM block 0 (no directories).
    pub name: String,
    pub data: Vec<u8>,
    /// Modification time, seconds since the epoch, for YMODEM block 0.
    pub mtime: u64,
}

/// Timeouts and limits of a [`Sender`].
#[derive(Debug, Clone)]
pub struct SenderOptions {
    pub protocol: TransferProtocol,
    /// Tries per block (the first send counts) before giving up.
    pub block_retries: u32,
    /// How long to wait for the receiver's first `C` or NAK.
    pub start_timeout: Duration,
    /// How long to wait for the reply to a block.
    pub reply_timeout: Duration,
    /// After an ACK for a block that was sent more than once, how long to drop
    /// replies (stale ACKs for the extra copies) before the next block.
    pub settle: Duration,
}

impl SenderOptions {
    /// Timeouts that fit a line of `baud` bits per second (8N1): the reply
    /// timeout covers a 1K block plus a generous turnaround, as the original
    /// 10 s did at 1200 baud.
    pub fn for_baud(protocol: TransferProtocol, baud: u32) -> SenderOptions {
        let block_time = Duration::from_secs_f64(1029.0 * 10.0 / f64::from(baud.max(50)));
        SenderOptions {
            protocol,
            block_retries: 10,
            start_timeout: Duration::from_secs(60),
            reply_timeout: block_time * 2 + Duration::from_secs(2),
            settle: block_time + Duration::from_millis(300),
        }
    }
}

/// Counters of a finished or running transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// File bytes the receiver has acknowledged.
    pub acked_bytes: u64,
    /// All bytes written to the line, framing and retransmissions included.
    pub wire_bytes: u64,
    /// Blocks sent, first copies only.
    pub blocks: u32,
    /// Extra copies sent after a NAK or a timeout.
    pub retransmissions: u32,
    /// Whether the receiver asked for the 8-bit checksum.
    pub checksum_mode: bool,
}

/// A retransmission, for progress reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub unit: Unit,
    pub attempt: u32,
    pub reason: LastReply,
}

/// Where a state machine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Running,
    Done,
    Failed(TransferError),
}

#[derive(Debug, Clone)]
enum SendPhase {
    /// Waiting for `C` (or NAK) before sending `then`.
    AwaitRequest {
        then: Unit,
        deadline: Instant,
        tries: u32,
    },
    /// `unit` is out; waiting for ACK. `unanswered` counts the copies sent
    /// that no NAK answered: more than one may mean a stale ACK is coming.
    AwaitReply {
        unit: Unit,
        tries: u32,
        deadline: Instant,
        last: LastReply,
        unanswered: u32,
    },
    /// `unit` was ACKed after several copies; dropping stale replies.
    Settle {
        next: Unit,
        needs_request: bool,
        until: Instant,
        saw_request: bool,
    },
    Finished,
}

/// The sending side: XMODEM (CRC-16 or checksum), XMODEM-1K or YMODEM.
#[derive(Debug)]
pub struct Sender {
    file: Outgoing,
    options: SenderOptions,
    check: Check,
    phase: SendPhase,
    status: Status,
    stats: TransferStats,
    /// Consecutive CANs seen.
    cans: u8,
    retries: Vec<Retry>,
    /// Data blocks as (offset, length) into the file; length 128 or 1024.
    blocks: Vec<(usize, usize)>,
}

impl Sender {
    pub fn new(file: Outgoing, options: SenderOptions, now: Instant) -> Sender {
        let big = options.protocol != TransferProtocol::Xmodem;
        let blocks = plan_blocks(file.data.len(), big);
        let first =
            if options.protocol == TransferProtocol::Ymodem { Unit::Header } else { first_data_or_eot(&blocks) };
        Sender {
            phase: SendPhase::AwaitRequest { then: first, deadline: now + options.start_timeout, tries: 1 },
            file,
            check: Check::Crc16,
            status: Status::Running,
            stats: TransferStats::default(),
            cans: 0,
            retries: Vec::new(),
            blocks,
            options,
        }
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    pub fn stats(&self) -> TransferStats {
        self.stats
    }

    pub fn total_bytes(&self) -> u64 {
        self.file.data.len() as u64
    }

    /// Retransmissions since the last call.
    pub fn take_retries(&mut self) -> Vec<Retry> {
        std::mem::take(&mut self.retries)
    }

    /// When `on_timeout` must be called, if the transfer is still running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            SendPhase::AwaitRequest { deadline, .. } | SendPhase::AwaitReply { deadline, .. } => Some(*deadline),
            SendPhase::Settle { until, .. } => Some(*until),
            SendPhase::Finished => None,
        }
    }

    /// Feeds received bytes; returns how many were consumed. Bytes after the
    /// end of the transfer are not consumed: they belong to the console.
    pub fn on_bytes(&mut self, now: Instant, input: &[u8], out: &mut Vec<u8>) -> usize {
        for (index, &byte) in input.iter().enumerate() {
            if matches!(self.phase, SendPhase::Finished) {
                return index;
            }
            self.on_byte(now, byte, out);
        }
        input.len()
    }

    fn on_byte(&mut self, now: Instant, byte: u8, out: &mut Vec<u8>) {
        if byte == CAN {
            self.cans += 1;
            if self.cans >= 2 {
                let unit = self.current_unit();
                self.fail(TransferError::CancelledByReceiver { unit }, None);
            }
            return;
        }
        self.cans = 0;
        match self.phase.clone() {
            SendPhase::AwaitRequest { then, .. } => {
                let first_request = self.stats.blocks == 0 && self.stats.retransmissions == 0;
                match byte {
                    CRC_REQUEST => self.send_unit(now, then, out),
                    // A NAK as the very first request asks for the checksum.
                    NAK if first_request => {
                        self.check = Check::Checksum;
                        self.stats.checksum_mode = true;
                        // 1K blocks need CRC-16: re-plan with 128-byte blocks.
                        self.blocks = plan_blocks(self.file.data.len(), false);
                        let then = if then == Unit::Header { then } else { first_data_or_eot(&self.blocks) };
                        self.send_unit(now, then, out);
                    }
                    NAK => self.send_unit(now, then, out),
                    _ => {} // console text, stale ACKs: not a request
                }
            }
            SendPhase::AwaitReply { unit, tries, unanswered, .. } => match byte {
                ACK => self.acked(now, unit, unanswered, out),
                NAK if unit == Unit::Eot && tries == 1 => {
                    // YMODEM receivers NAK the first EOT on purpose.
                    self.retransmit(now, unit, tries, LastReply::Byte(byte), out, false, unanswered - 1);
                }
                NAK => {
                    self.retransmit(now, unit, tries, LastReply::Byte(byte), out, true, unanswered.saturating_sub(1))
                }
                other => {
                    if let SendPhase::AwaitReply { last, .. } = &mut self.phase {
                        *last = LastReply::Byte(other);
                    }
                }
            },
            SendPhase::Settle { .. } => {
                if (byte == CRC_REQUEST || byte == NAK)
                    && let SendPhase::Settle { saw_request, .. } = &mut self.phase
                {
                    *saw_request = true;
                }
            }
            SendPhase::Finished => {}
        }
    }

    /// Call when `poll_timeout` has passed.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<u8>) {
        match self.phase.clone() {
            SendPhase::AwaitRequest { then, deadline, tries } if now >= deadline => {
                if then == Unit::Header || (self.stats.blocks == 0 && self.stats.retransmissions == 0) {
                    let waited = self.options.start_timeout;
                    self.fail(TransferError::NoStart { waited }, Some(out));
                } else if tries >= self.options.block_retries {
                    let error = TransferError::RetriesExhausted { unit: then, tries, last: LastReply::Timeout };
                    self.fail(error, Some(out));
                } else {
                    // YMODEM: the `C` after block 0 or EOT may have been lost.
                    self.phase =
                        SendPhase::AwaitRequest { then, deadline: now + self.options.reply_timeout, tries: tries + 1 };
                }
            }
            SendPhase::AwaitReply { unit, tries, deadline, last, unanswered } if now >= deadline => {
                self.retransmit(now, unit, tries, last, out, true, unanswered);
            }
            SendPhase::Settle { next, needs_request, until, saw_request } if now >= until => {
                self.after_ack(now, next, needs_request && !saw_request, out);
            }
            _ => {}
        }
    }

    fn current_unit(&self) -> Unit {
        match &self.phase {
            SendPhase::AwaitRequest { then, .. } => *then,
            SendPhase::AwaitReply { unit, .. } => *unit,
            SendPhase::Settle { next, .. } => *next,
            SendPhase::Finished => Unit::Eot,
        }
    }

    fn fail(&mut self, error: TransferError, out: Option<&mut Vec<u8>>) {
        if let Some(out) = out {
            // Tell the receiver we gave up, so it does not wait for us.
            out.extend_from_slice(&[CAN, CAN]);
            self.stats.wire_bytes += 2;
        }
        self.phase = SendPhase::Finished;
        self.status = Status::Failed(error);
    }

    /// Sends `unit` again; `unanswered` copies of it may still be answered.
    #[allow(clippy::too_many_arguments)]
    fn retransmit(
        &mut self,
        now: Instant,
        unit: Unit,
        tries: u32,
        reason: LastReply,
        out: &mut Vec<u8>,
        counts: bool,
        unanswered: u32,
    ) {
        if counts && tries >= self.options.block_retries {
            let error = TransferError::RetriesExhausted { unit, tries, last: reason };
            self.fail(error, Some(out));
            return;
        }
        self.retries.push(Retry { unit, attempt: tries + 1, reason });
        self.stats.retransmissions += 1;
        self.write_unit(unit, out);
        self.phase = SendPhase::AwaitReply {
            unit,
            tries: tries + 1,
            deadline: now + self.options.reply_timeout,
            last: LastReply::Timeout,
            unanswered: unanswered + 1,
        };
    }

    fn acked(&mut self, now: Instant, unit: Unit, unanswered: u32, out: &mut Vec<u8>) {
        if let Unit::Data(n) = unit {
            let (offset, len) = self.blocks[n as usize - 1];
            self.stats.acked_bytes = (offset + len).min(self.file.data.len()) as u64;
        }
        let next = match unit {
            Unit::Header => first_data_or_eot(&self.blocks),
            Unit::Data(n) if (n as usize) < self.blocks.len() => Unit::Data(n + 1),
            Unit::Data(_) => Unit::Eot,
            Unit::Eot if self.options.protocol == TransferProtocol::Ymodem => Unit::Closing,
            Unit::Eot | Unit::Closing => {
                self.phase = SendPhase::Finished;
                self.status = Status::Done;
                return;
            }
        };
        // YMODEM: the receiver asks again with `C` after block 0 and after EOT.
        let needs_request = matches!(unit, Unit::Header | Unit::Eot);
        if unanswered > 1 {
            self.phase =
                SendPhase::Settle { next, needs_request, until: now + self.options.settle, saw_request: false };
        } else {
            self.after_ack(now, next, needs_request, out);
        }
    }

    fn after_ack(&mut self, now: Instant, next: Unit, needs_request: bool, out: &mut Vec<u8>) {
        if needs_request {
            self.phase = SendPhase::AwaitRequest { then: next, deadline: now + self.options.reply_timeout, tries: 1 };
        } else {
            self.send_unit(now, next, out);
        }
    }

    fn send_unit(&mut self, now: Instant, unit: Unit, out: &mut Vec<u8>) {
        self.stats.blocks += 1;
        self.write_unit(unit, out);
        self.phase = SendPhase::AwaitReply {
            unit,
            tries: 1,
            deadline: now + self.options.reply_timeout,
            last: LastReply::Timeout,
            unanswered: 1,
        };
    }

    fn write_unit(&mut self, unit: Unit, out: &mut Vec<u8>) {
        let before = out.len();
        match unit {
            Unit::Header => {
                let header = ymodem_header(&self.file);
                encode_block(0, &header, self.check, out);
            }
            Unit::Closing => encode_block(0, &[0u8; 128], self.check, out),
            Unit::Eot => out.push(EOT),
            Unit::Data(n) => {
                let (offset, len) = self.blocks[n as usize - 1];
                let end = (offset + len).min(self.file.data.len());
                let mut data = Vec::with_capacity(len);
                data.extend_from_slice(&self.file.data[offset..end]);
                data.resize(len, SUB);
                encode_block(n as u8, &data, self.check, out);
            }
        }
        self.stats.wire_bytes += (out.len() - before) as u64;
    }
}

fn first_data_or_eot(blocks: &[(usize, usize)]) -> Unit {
    if blocks.is_empty() { Unit::Eot } else { Unit::Data(1) }
}

/// Splits `len` bytes into blocks: 1024 bytes while more than 128 remain (when
/// `big`), 128 bytes for the tail, so the padding never exceeds 127 bytes
/// beyond a 1K boundary.
fn plan_blocks(len: usize, big: bool) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut offset = 0;
    while offset < len {
        let size = if big && len - offset > 128 { 1024 } else { 128 };
        blocks.push((offset, size));
        offset += size;
    }
    blocks
}

/// The length an XMODEM receiver ends up with for a file of `len` bytes (the
/// padding rule of [`plan_blocks`]).
pub fn padded_len(len: usize, protocol: TransferProtocol) -> usize {
    plan_blocks(len, protocol != TransferProtocol::Xmodem).iter().map(|(_, size)| size).sum()
}

/// YMODEM block 0: `name NUL size mtime(octal) mode(octal)`, 128 bytes, or
/// 1024 when a long name needs it.
fn ymodem_header(file: &Outgoing) -> Vec<u8> {
    let name = file.name.rsplit('/').next().unwrap_or(&file.name);
    let mut header = Vec::with_capacity(128);
    header.extend_from_slice(name.as_bytes());
    header.push(0);
    header.extend_from_slice(format!("{} {:o} 100644", file.data.len(), file.mtime).as_bytes());
    let size = if header.len() < 128 { 128 } else { 1024 };
    header.truncate(size - 1);
    header.resize(size, 0);
    header
}

/// A file the receiver got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    /// From YMODEM block 0.
    pub name: Option<String>,
    /// From YMODEM block 0; XMODEM files keep their padding.
    pub declared_size: Option<u64>,
    pub mtime: Option<u64>,
    pub data: Vec<u8>,
}

/// Timeouts and limits of a [`Receiver`].
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// YMODEM batch (block 0 first) instead of plain XMODEM.
    pub ymodem: bool,
    /// Ask with `C` (CRC-16) or NAK (checksum).
    pub check: Check,
    /// How often to repeat the request before the first block.
    pub request_interval: Duration,
    /// How many requests before giving up.
    pub request_limit: u32,
    /// Longest silence inside a block or between blocks before a NAK.
    pub block_timeout: Duration,
    /// After a bad block, the line must be quiet this long before the NAK.
    pub quiet: Duration,
    /// Bad tries per block before giving up.
    pub max_errors: u32,
    /// Largest file accepted.
    pub max_size: usize,
}

impl ReceiverOptions {
    /// Timeouts that fit a line of `baud` bits per second.
    pub fn for_baud(ymodem: bool, baud: u32) -> ReceiverOptions {
        let block_time = Duration::from_secs_f64(1029.0 * 10.0 / f64::from(baud.max(50)));
        ReceiverOptions {
            ymodem,
            check: Check::Crc16,
            request_interval: Duration::from_secs(1),
            request_limit: 60,
            block_timeout: block_time + Duration::from_secs(2),
            quiet: Duration::from_millis(100) + Duration::from_secs_f64(20.0 * 10.0 / f64::from(baud.max(50))),
            max_errors: 10,
            max_size: 64 << 20,
        }
    }
}

#[derive(Debug, Clone)]
enum ReceivePhase {
    /// Sending `C`/NAK every `request_interval` until a block starts.
    Requesting {
        next: Instant,
        sent: u32,
    },
    /// Between blocks, waiting for SOH/STX/EOT.
    AwaitBlock {
        deadline: Instant,
    },
    /// Inside a block.
    InBlock {
        deadline: Instant,
    },
    /// After a bad block: dropping bytes until the line is quiet, then NAK.
    Purging {
        quiet_until: Instant,
    },
    Finished,
}

/// The receiving side. One file for XMODEM, a batch for YMODEM.
#[derive(Debug)]
pub struct Receiver {
    options: ReceiverOptions,
    phase: ReceivePhase,
    status: Status,
    block: Vec<u8>,
    /// The full number of the next data block expected (from 1).
    expected: u32,
    /// Bad tries of the current block.
    errors: u32,
    last_error: String,
    /// An EOT was NAKed once; the next EOT ends the file.
    eot_seen: bool,
    /// YMODEM: waiting for block 0 of the next file.
    want_header: bool,
    current: Incoming,
    files: Vec<Incoming>,
    cans: u8,
}

impl Receiver {
    /// Starts receiving; the first request goes into `out` at once.
    pub fn new(options: ReceiverOptions, now: Instant, out: &mut Vec<u8>) -> Receiver {
        let mut receiver = Receiver {
            phase: ReceivePhase::Requesting { next: now, sent: 0 },
            status: Status::Running,
            block: Vec::with_capacity(1029),
            expected: 1,
            errors: 0,
            last_error: String::new(),
            eot_seen: false,
            want_header: options.ymodem,
            current: Incoming::default(),
            files: Vec::new(),
            cans: 0,
            options,
        };
        receiver.on_timeout(now, out);
        receiver
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The files received so far (complete ones only).
    pub fn files(&self) -> &[Incoming] {
        &self.files
    }

    pub fn into_files(self) -> Vec<Incoming> {
        self.files
    }

    /// Data bytes of the file in progress.
    pub fn received_bytes(&self) -> u64 {
        self.current.data.len() as u64
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            ReceivePhase::Requesting { next, .. } => Some(*next),
            ReceivePhase::AwaitBlock { deadline } | ReceivePhase::InBlock { deadline } => Some(*deadline),
            ReceivePhase::Purging { quiet_until } => Some(*quiet_until),
            ReceivePhase::Finished => None,
        }
    }

    fn request_byte(&self) -> u8 {
        match self.options.check {
            Check::Crc16 => CRC_REQUEST,
            Check::Checksum => NAK,
        }
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<u8>) {
        match self.phase.clone() {
            ReceivePhase::Requesting { next, sent } if now >= next => {
                if sent >= self.options.request_limit {
                    self.fail(TransferError::SenderSilent { tries: sent }, out);
                    return;
                }
                out.push(self.request_byte());
                self.phase = ReceivePhase::Requesting { next: now + self.options.request_interval, sent: sent + 1 };
            }
            ReceivePhase::AwaitBlock { deadline } if now >= deadline => {
                self.bad_block(now, "no block before the timeout".into(), out);
                if self.status == Status::Running {
                    // Nothing is arriving, so no need to wait for quiet. Before
                    // a YMODEM file's first block, ask again with `C`: the
                    // sender waits for one after block 0 and after EOT.
                    let asking = self.want_header || (self.options.ymodem && self.expected == 1 && !self.eot_seen);
                    out.push(if asking { self.request_byte() } else { NAK });
                    self.phase = ReceivePhase::AwaitBlock { deadline: now + self.options.block_timeout };
                }
            }
            ReceivePhase::InBlock { deadline } if now >= deadline => {
                let got = self.block.len();
                self.bad_block(now, format!("block cut short after {got} bytes"), out);
                if self.status == Status::Running {
                    out.push(NAK);
                    self.phase = ReceivePhase::AwaitBlock { deadline: now + self.options.block_timeout };
                }
            }
            ReceivePhase::Purging { quiet_until } if now >= quiet_until => {
                out.push(NAK);
                self.phase = ReceivePhase::AwaitBlock { deadline: now + self.options.block_timeout };
            }
            _ => {}
        }
    }

    fn fail(&mut self, error: TransferError, out: &mut Vec<u8>) {
        out.extend_from_slice(&[CAN, CAN]);
        self.phase = ReceivePhase::Finished;
        self.status = Status::Failed(error);
    }

    /// Counts a bad try and starts purging.
    fn bad_block(&mut self, now: Instant, problem: String, out: &mut Vec<u8>) {
        self.errors += 1;
        self.last_error = problem;
        if self.errors >= self.options.max_errors {
            let error = TransferError::TooManyErrors {
                block: if self.want_header { 0 } else { self.expected },
                tries: self.errors,
                last: self.last_error.clone(),
            };
            self.fail(error, out);
            return;
        }
        self.phase = ReceivePhase::Purging { quiet_until: now + self.options.quiet };
    }

    /// Feeds received bytes; returns how many were consumed (all, unless the
    /// transfer ended: later bytes belong to whoever reads the line next).
    pub fn on_bytes(&mut self, now: Instant, input: &[u8], out: &mut Vec<u8>) -> usize {
        for (index, &byte) in input.iter().enumerate() {
            if let ReceivePhase::Finished = self.phase {
                // A sender whose last ACK was lost repeats EOT: answer it.
                if byte == EOT && self.status == Status::Done {
                    out.push(ACK);
                    continue;
                }
                return index;
            }
            self.on_byte(now, byte, out);
        }
        input.len()
    }

    fn on_byte(&mut self, now: Instant, byte: u8, out: &mut Vec<u8>) {
        match self.phase.clone() {
            ReceivePhase::Purging { .. } => {
                self.phase = ReceivePhase::Purging { quiet_until: now + self.options.quiet };
            }
            ReceivePhase::Requesting { .. } | ReceivePhase::AwaitBlock { .. } => {
                if byte == CAN {
                    self.cans += 1;
                    if self.cans >= 2 {
                        let block = self.expected;
                        self.fail(TransferError::CancelledBySender { block }, out);
                    }
                    return;
                }
                self.cans = 0;
                match byte {
                    SOH | STX => {
                        self.block.clear();
                        self.block.push(byte);
                        self.phase = ReceivePhase::InBlock { deadline: now + self.options.block_timeout };
                    }
                    // The sender repeats EOT when our ACK was lost: ACK again.
                    EOT if self.want_header && !self.files.is_empty() => {
                        out.push(ACK);
                        out.push(self.request_byte());
                    }
                    EOT if !self.want_header => {
                        if self.eot_seen {
                            out.push(ACK);
                            self.end_of_file(now, out);
                        } else {
                            // The first EOT may be noise: ask again.
                            self.eot_seen = true;
                            out.push(NAK);
                            self.phase = ReceivePhase::AwaitBlock { deadline: now + self.options.block_timeout };
                        }
                    }
                    // Before the first block, stray bytes (echo, noise) are ignored.
                    _ if matches!(self.phase, ReceivePhase::Requesting { .. }) => {}
                    other => self.bad_block(now, format!("unexpected {} between blocks", ByteName(other)), out),
                }
            }
            ReceivePhase::InBlock { .. } => {
                self.block.push(byte);
                let data_len = if self.block[0] == STX { 1024 } else { 128 };
                let total = 3 + data_len + self.options.check.len();
                if self.block.len() < total {
                    self.phase = ReceivePhase::InBlock { deadline: now + self.options.block_timeout };
                    return;
                }
                let block = std::mem::take(&mut self.block);
                self.complete_block(now, &block, out);
            }
            ReceivePhase::Finished => {}
        }
    }

    fn complete_block(&mut self, now: Instant, block: &[u8], out: &mut Vec<u8>) {
        let (number, complement) = (block[1], block[2]);
        let data = &block[3..block.len() - self.options.check.len()];
        let check = &block[block.len() - self.options.check.len()..];
        if number != !complement {
            return self.bad_block(
                now,
                format!("block number 0x{number:02X} and complement 0x{complement:02X} disagree"),
                out,
            );
        }
        if !self.options.check.verify(data, check) {
            return self.bad_block(now, "bad CRC/checksum".into(), out);
        }
        self.eot_seen = false;
        let next_deadline = now + self.options.block_timeout;
        if self.want_header {
            if number != 0 {
                // Sender skipped block 0? Treat as out of sequence.
                let error = TransferError::OutOfSequence { block: 0, expected: 0, got: number };
                return self.fail(error, out);
            }
            self.errors = 0;
            if data[0] == 0 {
                // Empty block 0: the batch is over.
                out.push(ACK);
                self.phase = ReceivePhase::Finished;
                self.status = Status::Done;
                return;
            }
            match parse_ymodem_header(data) {
                Ok(incoming) => {
                    self.current = incoming;
                    self.want_header = false;
                    self.expected = 1;
                    out.push(ACK);
                    out.push(self.request_byte());
                    self.phase = ReceivePhase::AwaitBlock { deadline: next_deadline };
                }
                Err(reason) => self.fail(TransferError::BadHeader { reason }, out),
            }
            return;
        }
        let expected_wire = self.expected as u8;
        if number == expected_wire {
            if self.current.data.len() + data.len() > self.options.max_size {
                let limit = self.options.max_size;
                return self.fail(TransferError::TooLarge { limit }, out);
            }
            self.current.data.extend_from_slice(data);
            self.expected += 1;
            self.errors = 0;
            out.push(ACK);
        } else if number == expected_wire.wrapping_sub(1) || (self.expected == 1 && number == 0 && self.options.ymodem)
        {
            // A repeat of the block we already ACKed (our ACK was lost), or of
            // YMODEM block 0: ACK again, keep nothing. Re-ask for data after
            // a repeated header.
            out.push(ACK);
            if self.expected == 1 && self.options.ymodem {
                out.push(self.request_byte());
            }
        } else {
            let error = TransferError::OutOfSequence { block: self.expected, expected: expected_wire, got: number };
            return self.fail(error, out);
        }
        self.phase = ReceivePhase::AwaitBlock { deadline: next_deadline };
    }

    fn end_of_file(&mut self, now: Instant, out: &mut Vec<u8>) {
        let mut file = std::mem::take(&mut self.current);
        if let Some(declared) = file.declared_size {
            let received = file.data.len() as u64;
            // YMODEM pads like XMODEM; the header's size is the truth. A file
            // shorter than declared lost blocks: refuse it.
            if received < declared || received > declared + 1024 {
                self.files.push(file);
                return self.fail(TransferError::SizeMismatch { declared, received }, out);
            }
            file.data.truncate(declared as usize);
        }
        self.files.push(file);
        self.eot_seen = false;
        self.expected = 1;
        if self.options.ymodem {
            self.want_header = true;
            out.push(self.request_byte());
            self.phase = ReceivePhase::AwaitBlock { deadline: now + self.options.block_timeout };
        } else {
            self.phase = ReceivePhase::Finished;
            self.status = Status::Done;
        }
    }
}

/// Parses YMODEM block 0 data: `name NUL [size [mtime-octal [mode-octal ...]]]`.
fn parse_ymodem_header(data: &[u8]) -> Result<Incoming, String> {
    let name_end = data.iter().position(|&b| b == 0).ok_or("no NUL after the file name")?;
    let name = String::from_utf8_lossy(&data[..name_end]).into_owned();
    let rest = &data[name_end + 1..];
    let info_end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let info = String::from_utf8_lossy(&rest[..info_end]);
    let mut fields = info.split_ascii_whitespace();
    let declared_size = match fields.next() {
        Some(size) => Some(size.parse::<u64>().map_err(|_| format!("size `{size}` is not a number"))?),
        None => None,
    };
    let mtime = fields.next().and_then(|m| u64::from_str_radix(m, 8).ok());
    Ok(Incoming { name: Some(name), declared_size, mtime, data: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(protocol: TransferProtocol) -> SenderOptions {
        SenderOptions {
            protocol,
            block_retries: 3,
            start_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(1),
            settle: Duration::from_millis(100),
        }
    }

    fn file(len: usize) -> Outgoing {
        Outgoing {
            name: "image.bin".into(),
            data: (0..len).map(|i| (i * 7 + i / 251) as u8).collect(),
            mtime: 0o14_000_000_000,
        }
    }

    fn receiver_opts(ymodem: bool) -> ReceiverOptions {
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
    fn block_encoding_matches_the_spec() {
        let mut out = Vec::new();
        encode_block(1, &[0x1A; 128], Check::Checksum, &mut out);
        assert_eq!(&out[..3], &[SOH, 0x01, 0xFE]);
        assert_eq!(out.len(), 132);
        assert_eq!(out[131], (0x1Au32 * 128 % 256) as u8);
        // CRC-16/XMODEM check value of "123456789" is 0x31C3.
        assert_eq!(CRC16.checksum(b"123456789"), 0x31C3);
        let mut out = Vec::new();
        encode_block(255, &[0u8; 1024], Check::Crc16, &mut out);
        assert_eq!(&out[..3], &[STX, 0xFF, 0x00]);
        assert_eq!(out.len(), 1029);
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
    fn failure_names_block_tries_and_byte() {
        let now = Instant::now();
        let mut sender = Sender::new(file(300), opts(TransferProtocol::Xmodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        sender.on_bytes(now, &[ACK], &mut out);
        for _ in 0..3 {
            sender.on_bytes(now, &[NAK], &mut out);
        }
        let Status::Failed(error) = sender.status() else { panic!("{:?}", sender.status()) };
        assert_eq!(error.to_string(), "block 2: no ACK after 3 tries; last reply: NAK (0x15)");
        assert!(out.ends_with(&[CAN, CAN]));
    }

    #[test]
    fn cancel_by_receiver() {
        let now = Instant::now();
        let mut sender = Sender::new(file(300), opts(TransferProtocol::Xmodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        sender.on_bytes(now, &[CAN, 0x41, CAN, 0x41], &mut out);
        assert_eq!(sender.status(), &Status::Running, "CANs must be consecutive");
        assert_eq!(sender.on_bytes(now, &[CAN, CAN, b'x'], &mut out), 2);
        assert!(matches!(sender.status(), Status::Failed(TransferError::CancelledByReceiver { unit: Unit::Data(1) })));
    }

    #[test]
    fn queued_c_stream_does_not_duplicate_block_one() {
        let now = Instant::now();
        let mut sender = Sender::new(file(200), opts(TransferProtocol::Xmodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"CCCC", &mut out);
        assert_eq!(out.len(), 133, "one block 1 only");
        assert_eq!(sender.stats().blocks, 1);
    }

    #[test]
    fn stale_ack_after_timeout_is_dropped() {
        let mut now = Instant::now();
        let mut sender = Sender::new(file(300), opts(TransferProtocol::Xmodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        now += Duration::from_secs(1);
        sender.on_timeout(now, &mut out); // block 1 again
        out.clear();
        sender.on_bytes(now, &[ACK], &mut out); // ACK for the first copy
        assert!(out.is_empty(), "block 2 must wait for the settle time");
        sender.on_bytes(now, &[ACK], &mut out); // stale ACK for the second copy
        now += Duration::from_millis(100);
        sender.on_timeout(now, &mut out);
        assert_eq!(out[1], 2, "block 2 goes out after settling");
        out.clear();
        sender.on_bytes(now, &[ACK], &mut out);
        assert_eq!(out[1], 3);
    }

    #[test]
    fn a_nak_answered_copy_needs_no_settling() {
        // YMODEM: EOT, NAK (on purpose), EOT, ACK + C: the closing block
        // follows at once, no settle wait (only one copy was unanswered).
        let now = Instant::now();
        let mut sender = Sender::new(file(0), opts(TransferProtocol::Ymodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        sender.on_bytes(now, &[ACK, b'C'], &mut out);
        out.clear();
        sender.on_bytes(now, &[NAK], &mut out);
        assert_eq!(out, [EOT]);
        out.clear();
        sender.on_bytes(now, &[ACK, b'C'], &mut out);
        assert_eq!(out.len(), 133, "closing block 0 at once");
    }

    #[test]
    fn no_start_fails_with_cancel() {
        let now = Instant::now();
        let mut sender = Sender::new(file(10), opts(TransferProtocol::Xmodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"garbage without the request", &mut out);
        assert!(out.is_empty());
        sender.on_timeout(now + Duration::from_secs(5), &mut out);
        assert!(matches!(sender.status(), Status::Failed(TransferError::NoStart { .. })));
    }

    #[test]
    fn receiver_survives_garbage_and_truncated_blocks() {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut receiver = Receiver::new(receiver_opts(false), now, &mut out);
        assert_eq!(out, b"C");
        // Every byte value, a truncated block, then silence: no panic, NAKs.
        let garbage: Vec<u8> = (0..=255u8).chain([SOH, 1, 0xFE, 0, 1, 2]).collect();
        receiver.on_bytes(now, &garbage, &mut out);
        let mut t = now;
        for _ in 0..20 {
            if let Some(next) = receiver.poll_timeout() {
                t = t.max(next);
                receiver.on_timeout(t, &mut out);
            }
        }
        assert!(
            matches!(receiver.status(), Status::Failed(TransferError::TooManyErrors { .. })),
            "{:?}",
            receiver.status()
        );
        assert!(out.ends_with(&[CAN, CAN]));
    }

    #[test]
    fn receiver_rejects_out_of_sequence() {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut receiver = Receiver::new(receiver_opts(false), now, &mut out);
        let mut block = Vec::new();
        encode_block(3, &[0u8; 128], Check::Crc16, &mut block);
        receiver.on_bytes(now, &block, &mut out);
        let Status::Failed(error) = receiver.status() else { panic!() };
        assert_eq!(error.to_string(), "block 1: out of sequence: expected block number 1, got 3");
    }

    #[test]
    fn ymodem_header_parsing() {
        let header = ymodem_header(&file(1234));
        let parsed = parse_ymodem_header(&header).unwrap();
        assert_eq!(parsed.name.as_deref(), Some("image.bin"));
        assert_eq!(parsed.declared_size, Some(1234));
        assert!(parse_ymodem_header(&[b'a'; 128]).is_err());
        let mut bad = b"x\0notanumber".to_vec();
        bad.resize(128, 0);
        assert!(parse_ymodem_header(&bad).is_err());
        // A long name moves block 0 to 1K.
        let long = Outgoing { name: "n".repeat(200), data: vec![], mtime: 0 };
        assert_eq!(ymodem_header(&long).len(), 1024);
    }

    #[test]
    fn byte_names() {
        assert_eq!(ByteName(NAK).to_string(), "NAK (0x15)");
        assert_eq!(ByteName(b'A').to_string(), "0x41 ('A')");
        assert_eq!(ByteName(0x80).to_string(), "0x80");
    }
}
