//! The sending side: a state machine that answers the receiver's requests
//! with blocks, retransmits on NAK or timeout, and drops stale ACKs. It does
//! not read the line or the clock: `transfer.rs` drives it.

use std::time::{Duration, Instant};

use super::TransferProtocol;
use super::block::{Check, Outgoing, encode_block, plan_blocks, ymodem_header};
use super::{ACK, CAN, CRC_REQUEST, EOT, FinalAckCause, LastReply, NAK, SUB, Status, TransferError, Unit};

/// Tries for YMODEM's end-of-batch block (see
/// [`TransferStats::end_of_batch_unacknowledged`]).
const END_OF_BATCH_TRIES: u32 = 3;

/// Bytes that are not replies (neither a lone ACK, NAK, CAN nor `C`) the
/// sender takes for one unit, over all its copies, before it fails with
/// [`TransferError::Junk`]: line noise damages a byte or two per reply, a
/// line that streams bytes is not an XMODEM receiver answering.
pub const JUNK_LIMIT: u32 = 256;

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
    /// YMODEM: the file's EOT was acknowledged (the file is complete) but the
    /// empty block 0 that ends the batch was not (lrzsz `rb` flushes its
    /// terminal right after its last ACK, a device may leave the protocol).
    /// A warning, not a failure.
    pub end_of_batch_unacknowledged: bool,
}

impl TransferStats {
    /// What a finished transfer should warn about, if anything.
    pub fn warning(&self) -> Option<&'static str> {
        self.end_of_batch_unacknowledged.then_some(
            "the receiver did not acknowledge YMODEM's end-of-batch block (the file itself was acknowledged in full)",
        )
    }
}

/// A retransmission, for progress reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub unit: Unit,
    pub attempt: u32,
    pub reason: LastReply,
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
        /// Bytes that are not replies since this copy went out: an ACK
        /// after any of them is not the receiver's answer but noise.
        junk_since_sent: u32,
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
    /// The last data block (or, for an empty file, EOT) has gone out: from
    /// here on silence or a closed line may only mean a lost final ACK.
    last_block_sent: bool,
    /// Data blocks as (offset, length) into the file; length 128 or 1024.
    blocks: Vec<(usize, usize)>,
    /// Bytes that were not replies while the current unit waited for its
    /// ACK, over all its copies (see [`JUNK_LIMIT`]).
    junk: u32,
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
            last_block_sent: false,
            retries: Vec::new(),
            blocks,
            options,
            junk: 0,
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
    ///
    /// A reply comes alone: the receiver sends one byte and waits for the
    /// next block, so an ACK that arrives with other bytes after it (before
    /// the next block could go out) is noise, except for YMODEM's `C` after
    /// the ACK of block 0 or EOT and the console text after the last ACK.
    pub fn on_bytes(&mut self, now: Instant, input: &[u8], out: &mut Vec<u8>) -> usize {
        for (index, &byte) in input.iter().enumerate() {
            if matches!(self.phase, SendPhase::Finished) {
                return index;
            }
            let alone = byte != ACK || self.nothing_else_with_ack(&input[index + 1..]);
            self.on_byte(now, byte, alone, out);
        }
        input.len()
    }

    /// Whether `after` (what came with an ACK, after it) leaves the ACK
    /// alone, as a receiver's answer is.
    fn nothing_else_with_ack(&self, after: &[u8]) -> bool {
        let Some(&next) = after.first() else { return true };
        let SendPhase::AwaitReply { unit, .. } = &self.phase else { return true };
        let ymodem = self.options.protocol == TransferProtocol::Ymodem;
        match unit {
            // The transfer ends with this ACK: what follows is the console's.
            Unit::Eot if !ymodem => true,
            Unit::Closing => true,
            // YMODEM's receiver asks for the next unit at once.
            Unit::Header => next == CRC_REQUEST,
            // U-Boot's receiver acknowledges an EOT twice (once where it
            // reads the header, once where it ends the file: its
            // xyzModem.c), then asks for the closing block: `ACK ACK C`.
            Unit::Eot => after.iter().find(|&&b| b != ACK).is_none_or(|&b| b == CRC_REQUEST),
            Unit::Data(_) => false,
        }
    }

    fn on_byte(&mut self, now: Instant, byte: u8, alone: bool, out: &mut Vec<u8>) {
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
            SendPhase::AwaitReply { unit, tries, unanswered, junk_since_sent, .. } => match byte {
                ACK if alone && junk_since_sent == 0 => {
                    self.junk = 0;
                    self.acked(now, unit, unanswered, out)
                }
                NAK if unit == Unit::Eot && tries == 1 => {
                    // YMODEM receivers NAK the first EOT on purpose.
                    self.retransmit(now, unit, tries, LastReply::Byte(byte), out, false, unanswered - 1);
                }
                NAK => {
                    self.retransmit(now, unit, tries, LastReply::Byte(byte), out, true, unanswered.saturating_sub(1))
                }
                // Queued requests from before the block went out.
                CRC_REQUEST => {}
                other => {
                    if let SendPhase::AwaitReply { last, junk_since_sent, .. } = &mut self.phase {
                        *last = LastReply::Byte(other);
                        *junk_since_sent += 1;
                    }
                    self.junk += 1;
                    if self.junk > JUNK_LIMIT {
                        self.fail(TransferError::Junk { unit, bytes: self.junk }, Some(out));
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
                } else if tries >= self.tries_for(then) {
                    if self.end_of_batch_unanswered() {
                        return;
                    }
                    let error = self.exhausted(then, tries, LastReply::Timeout);
                    self.fail(error, Some(out));
                } else {
                    // YMODEM: the `C` after block 0 or EOT may have been lost.
                    self.phase =
                        SendPhase::AwaitRequest { then, deadline: now + self.options.reply_timeout, tries: tries + 1 };
                }
            }
            SendPhase::AwaitReply { unit, tries, deadline, last, unanswered, .. } if now >= deadline => {
                self.retransmit(now, unit, tries, last, out, true, unanswered);
            }
            SendPhase::Settle { next, needs_request, until, saw_request } if now >= until => {
                self.after_ack(now, next, needs_request && !saw_request, out);
            }
            _ => {}
        }
    }

    /// The line closed while the transfer was running. After the last data
    /// block went out this fails with [`TransferError::FinalAckMissing`] and
    /// returns it; before, it returns None and the caller reports the line.
    pub fn on_line_closed(&mut self) -> Option<TransferError> {
        if self.status != Status::Running || !self.last_block_sent || self.end_of_batch_unanswered() {
            return None;
        }
        let error = TransferError::FinalAckMissing { unit: self.current_unit(), cause: FinalAckCause::LineClosed };
        self.fail(error.clone(), None);
        Some(error)
    }

    /// Tries for `unit`: the end-of-batch block comes after the file is
    /// complete, so it is not worth a long wait.
    fn tries_for(&self, unit: Unit) -> u32 {
        if unit == Unit::Closing {
            self.options.block_retries.min(END_OF_BATCH_TRIES)
        } else {
            self.options.block_retries
        }
    }

    /// Ends the transfer as done when only YMODEM's end-of-batch block is
    /// left unanswered (the file's EOT was acknowledged): the file is
    /// complete, and the report carries the warning.
    fn end_of_batch_unanswered(&mut self) -> bool {
        if self.current_unit() != Unit::Closing {
            return false;
        }
        self.stats.end_of_batch_unacknowledged = true;
        self.phase = SendPhase::Finished;
        self.status = Status::Done;
        true
    }

    /// The error for a unit that got no ACK after `tries`: a NAK means the
    /// receiver did not take it; anything else after the last data block
    /// may be a lost final ACK.
    fn exhausted(&self, unit: Unit, tries: u32, last: LastReply) -> TransferError {
        if self.last_block_sent && last != LastReply::Byte(NAK) {
            TransferError::FinalAckMissing { unit, cause: FinalAckCause::NoReply { tries, last } }
        } else {
            TransferError::RetriesExhausted { unit, tries, last }
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
        if counts && tries >= self.tries_for(unit) {
            if self.end_of_batch_unanswered() {
                return;
            }
            let error = self.exhausted(unit, tries, reason);
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
            junk_since_sent: 0,
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
        self.junk = 0;
        self.write_unit(unit, out);
        self.phase = SendPhase::AwaitReply {
            unit,
            tries: 1,
            deadline: now + self.options.reply_timeout,
            last: LastReply::Timeout,
            unanswered: 1,
            junk_since_sent: 0,
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
            Unit::Eot => {
                self.last_block_sent = true;
                out.push(EOT);
            }
            Unit::Data(n) => {
                self.last_block_sent |= n as usize == self.blocks.len();
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::xmodem::tests::{file, opts};

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
    fn silence_after_the_last_block_says_the_file_may_be_complete() {
        // 300 bytes: blocks 1-3 are ACKed, then every ACK of EOT is lost.
        let mut now = Instant::now();
        let mut sender = Sender::new(file(300), opts(TransferProtocol::Xmodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        for _ in 0..3 {
            sender.on_bytes(now, &[ACK], &mut out);
        }
        for _ in 0..3 {
            now += Duration::from_secs(1);
            sender.on_timeout(now, &mut out);
        }
        let Status::Failed(error) = sender.status() else { panic!("{:?}", sender.status()) };
        assert!(
            matches!(
                error,
                TransferError::FinalAckMissing {
                    unit: Unit::Eot,
                    cause: FinalAckCause::NoReply { tries: 3, last: LastReply::Timeout }
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("the receiver may have the complete file"), "{error}");
    }

    #[test]
    fn a_closed_line_after_the_last_block_is_a_missing_final_ack() {
        let now = Instant::now();
        let mut sender = Sender::new(file(300), opts(TransferProtocol::Ymodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        sender.on_bytes(now, &[ACK, b'C'], &mut out);
        // Block 1 (1K: the whole file) is out: the last data block.
        let mut before = Sender::new(file(2000), opts(TransferProtocol::Ymodem), now);
        before.on_bytes(now, b"C", &mut out);
        before.on_bytes(now, &[ACK, b'C'], &mut out);
        assert_eq!(before.on_line_closed(), None, "block 1 of 2: a plain closed line");
        assert_eq!(before.status(), &Status::Running);
        let error = sender.on_line_closed().expect("after the last block");
        assert_eq!(error, TransferError::FinalAckMissing { unit: Unit::Data(1), cause: FinalAckCause::LineClosed });
        assert_eq!(sender.status(), &Status::Failed(error));
    }

    /// The receiver ACKs the file's EOT, then drops the ACK of the empty
    /// end-of-batch block (lrzsz `rb` under load): the file is complete, so
    /// the transfer is done with a warning, after a short wait.
    #[test]
    fn a_lost_end_of_batch_ack_is_a_warning_not_a_failure() {
        for closes in [false, true] {
            let mut now = Instant::now();
            let mut sender = Sender::new(file(300), opts(TransferProtocol::Ymodem), now);
            let mut out = Vec::new();
            sender.on_bytes(now, b"C", &mut out);
            sender.on_bytes(now, &[ACK, b'C'], &mut out); // header, then data
            sender.on_bytes(now, &[ACK], &mut out); // block 1: the whole file
            sender.on_bytes(now, &[NAK, ACK, b'C'], &mut out); // EOT (NAKed once, as YMODEM does)
            assert_eq!(sender.stats().acked_bytes, 300);
            if closes {
                assert_eq!(sender.on_line_closed(), None);
            } else {
                for _ in 0..END_OF_BATCH_TRIES {
                    now += Duration::from_secs(1);
                    sender.on_timeout(now, &mut out);
                }
            }
            assert_eq!(sender.status(), &Status::Done, "line closed: {closes}");
            assert!(sender.stats().end_of_batch_unacknowledged);
        }
        // An acknowledged end of batch carries no warning.
        let now = Instant::now();
        let mut sender = Sender::new(file(300), opts(TransferProtocol::Ymodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        // Each reply once the unit it answers went out.
        for reply in [&[ACK, b'C'][..], &[ACK], &[NAK], &[ACK, b'C'], &[ACK]] {
            sender.on_bytes(now, reply, &mut out);
        }
        assert_eq!(sender.status(), &Status::Done);
        assert!(!sender.stats().end_of_batch_unacknowledged);
    }

    /// U-Boot's `loady` answers the EOT with `ACK ACK C` (its header reader
    /// and its end of file each send an ACK): in one read, that is the EOT
    /// acknowledged and the closing block asked for, not noise.
    #[test]
    fn u_boots_double_ack_of_the_eot_ends_the_batch() {
        let now = Instant::now();
        let mut sender = Sender::new(file(300), opts(TransferProtocol::Ymodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        sender.on_bytes(now, &[ACK, b'C'], &mut out); // header, then data
        sender.on_bytes(now, &[ACK], &mut out); // block 1: the whole file; EOT goes out
        out.clear();
        sender.on_bytes(now, &[ACK, ACK, b'C'], &mut out);
        assert_eq!(out.first(), Some(&crate::serial::xmodem::SOH), "the closing block follows at once");
        sender.on_bytes(now, &[ACK], &mut out);
        assert_eq!(sender.status(), &Status::Done);
        assert!(!sender.stats().end_of_batch_unacknowledged);
        // An ACK followed by something else than ACKs and a `C` stays noise.
        let mut sender = Sender::new(file(300), opts(TransferProtocol::Ymodem), now);
        let mut out = Vec::new();
        for reply in [&b"C"[..], &[ACK, b'C'], &[ACK]] {
            sender.on_bytes(now, reply, &mut out);
        }
        out.clear();
        sender.on_bytes(now, &[ACK, ACK, 0x41], &mut out);
        assert!(out.is_empty(), "no closing block after junk");
    }

    /// Issue 28 item 7: an ACK counts only alone, after the block went out.
    #[test]
    fn an_ack_among_other_bytes_is_not_counted() {
        let mut now = Instant::now();
        for (name, reply) in
            [("after junk", &[0x41, ACK][..]), ("before junk", &[ACK, 0x41]), ("before a request", &[ACK, b'C'])]
        {
            let mut sender = Sender::new(file(300), opts(TransferProtocol::Xmodem), now);
            let mut out = Vec::new();
            sender.on_bytes(now, b"C", &mut out);
            out.clear();
            sender.on_bytes(now, reply, &mut out);
            assert!(out.is_empty(), "{name}: block 2 went out");
            assert_eq!(sender.stats().acked_bytes, 0, "{name}");
            // A late lone ACK of the same copy is still doubtful after junk...
            sender.on_bytes(now, &[ACK], &mut out);
            assert!(out.is_empty(), "{name}: a lone ACK after junk");
            // ...the copy sent again on the timeout gets a clean answer.
            now += Duration::from_secs(1);
            sender.on_timeout(now, &mut out);
            assert_eq!(out[1], 1, "{name}: block 1 again");
            out.clear();
            sender.on_bytes(now, &[ACK], &mut out);
            assert_eq!(sender.stats().acked_bytes, 128, "{name}");
            // Two copies went out: block 2 follows the settle time.
            now += Duration::from_millis(200);
            sender.on_timeout(now, &mut out);
            assert_eq!(out[1], 2, "{name}");
        }
        // Queued `C`s before the ACK are requests, not junk.
        let mut sender = Sender::new(file(300), opts(TransferProtocol::Xmodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        out.clear();
        sender.on_bytes(now, b"CC", &mut out);
        sender.on_bytes(now, &[ACK], &mut out);
        assert_eq!(out[1], 2);
    }

    /// A line that answers with a stream of bytes fails as such, with the
    /// cancel, before its ACK-looking bytes can move the transfer on.
    #[test]
    fn a_stream_of_junk_fails_as_such() {
        let now = Instant::now();
        let mut sender = Sender::new(file(20_000), opts(TransferProtocol::Xmodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        // Random bytes, a 0x06 every 256 on average (seeded xorshift).
        let mut state = 0x9E37_79B9u32;
        let noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        assert!(noise.iter().filter(|&&b| b == ACK).count() > 1000);
        for chunk in noise.chunks(4096) {
            if sender.on_bytes(now, chunk, &mut out) < chunk.len() {
                break;
            }
        }
        let Status::Failed(error) = sender.status() else { panic!("{:?}", sender.status()) };
        assert_eq!(*error, TransferError::Junk { unit: Unit::Data(1), bytes: JUNK_LIMIT + 1 });
        assert!(
            error.to_string().starts_with("block 1: the line answered with 257 bytes that are not XMODEM replies"),
            "{error}"
        );
        assert_eq!(sender.stats().acked_bytes, 0);
        assert!(out.ends_with(&[CAN, CAN]));
    }

    #[test]
    fn naks_for_the_last_block_are_a_plain_failure() {
        let now = Instant::now();
        let mut sender = Sender::new(file(100), opts(TransferProtocol::Xmodem), now);
        let mut out = Vec::new();
        sender.on_bytes(now, b"C", &mut out);
        sender.on_bytes(now, &[NAK, NAK, NAK], &mut out);
        assert!(
            matches!(sender.status(), Status::Failed(TransferError::RetriesExhausted { unit: Unit::Data(1), .. })),
            "{:?}",
            sender.status()
        );
    }
}
