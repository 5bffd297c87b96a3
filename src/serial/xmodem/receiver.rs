//! The receiving side, for the simulator and the tests: requests blocks,
//! checks and acknowledges them, NAKs the first EOT, waits for a quiet line
//! before each NAK. One file for XMODEM, a batch for YMODEM. No I/O inside.

use std::time::{Duration, Instant};

use super::block::{Check, Incoming, parse_ymodem_header};
use super::{ACK, ByteName, CAN, CRC_REQUEST, EOT, NAK, SOH, STX, Status, TransferError};

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

/// Counters of a receiver: which block sizes the sender used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Data blocks accepted with 128 bytes (SOH), YMODEM block 0 not counted.
    pub blocks_128: u32,
    /// Data blocks accepted with 1024 bytes (STX).
    pub blocks_1k: u32,
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
    stats: ReceiverStats,
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
            stats: ReceiverStats::default(),
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

    /// Blocks, retransmissions and errors so far.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
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
            if data.len() == 1024 {
                self.stats.blocks_1k += 1;
            } else {
                self.stats.blocks_128 += 1;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::xmodem::encode_block;
    use crate::serial::xmodem::tests::receiver_opts;

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
    fn stats_count_the_block_sizes_used() {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut receiver = Receiver::new(receiver_opts(false), now, &mut out);
        let mut blocks = Vec::new();
        encode_block(1, &[7u8; 1024], Check::Crc16, &mut blocks);
        encode_block(2, &[8u8; 128], Check::Crc16, &mut blocks);
        encode_block(3, &[9u8; 128], Check::Crc16, &mut blocks);
        receiver.on_bytes(now, &blocks, &mut out);
        assert_eq!(receiver.stats(), ReceiverStats { blocks_128: 2, blocks_1k: 1 });
        assert_eq!(receiver.received_bytes(), 1280);
    }
}
