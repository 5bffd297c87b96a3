//! EXS API frames, pure (no I/O): `0xFE`, Length (big-endian), Message Type,
//! reserved, sequence number, logical node ID, body, checksum.
//!
//! Length counts the bytes from the Message Type through the last body byte:
//! not the marker, not the Length field, not the checksum (docs/exs-tftp-manage.md's check: a
//! header-only response has Length 5). [`Framing::decode`] tells "need more
//! bytes" (`Ok(None)`) from "invalid" (`Err`, saying what), so a reader can feed
//! it whatever the socket gave so far.
//!
//! Vendor socket-log traces print neither the marker nor the checksum;
//! [`Form::Trace`] reads and writes that form with the same code.
//!
//! This module does not know what a body means (see `tftp_manage`) and does
//! not resynchronise after garbage: the caller decides what an invalid frame
//! means for its connection.

use clap::ValueEnum;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Checksum rule of EXS API frames (not published; see docs/exs-tftp-manage.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExsChecksum {
    /// Two's complement of the 8-bit sum of the Length-counted bytes.
    #[default]
    Sum8Twos,
    Sum8,
    Xor8,
    None,
}

/// What to do when a field would carry the reserved frame marker 0xFE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExsMarkerRule {
    /// Refuse to send such a frame.
    #[default]
    Refuse,
    /// Send the byte unescaped.
    SendRaw,
}

/// The frame marker, byte 0 of every frame on the wire.
pub const MARKER: u8 = 0xFE;
/// Bytes Length counts before the body: type (2), reserved, sequence, node.
pub const HEADER_LEN: usize = 5;
/// The largest body of any message.
pub const MAX_BODY: usize = 253;
/// The largest valid Length.
pub const MAX_LENGTH: usize = HEADER_LEN + MAX_BODY;

/// One EXS API message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub msg_type: u16,
    /// Byte 5, documented as 0x00; kept as received.
    pub reserved: u8,
    pub seq: u8,
    pub node: u8,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn new(msg_type: u16, seq: u8, node: u8, body: Vec<u8>) -> Frame {
        Frame { msg_type, reserved: 0, seq, node, body }
    }

    /// The Length field's value.
    pub fn length(&self) -> usize {
        HEADER_LEN + self.body.len()
    }
}

/// Wire bytes, or the vendor's trace form (no marker, no checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Wire,
    Trace,
}

/// The two unpublished rules of the framing, selectable from the profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Framing {
    pub checksum: ExsChecksum,
    pub marker_rule: ExsMarkerRule,
}

/// Why bytes are not a frame, or a frame cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("expected the frame marker 0xfe, got {found:#04x}")]
    BadMarker { found: u8 },
    #[error("length {length} is shorter than the 5-byte header (type, reserved, sequence, node)")]
    LengthTooShort { length: u16 },
    #[error("length {length} means a {body}-byte body; a body is at most 253 bytes")]
    LengthTooLong { length: u16, body: usize },
    #[error(
        "bad checksum in {} seq {seq}: expected {expected:#04x}, got {actual:#04x}",
        super::message_type::describe(*msg_type)
    )]
    BadChecksum {
        msg_type: u16,
        seq: u8,
        expected: u8,
        actual: u8,
        /// The whole frame's size: a reader may skip it and go on.
        frame_len: usize,
    },
    #[error("a {len}-byte body is over the 253-byte limit")]
    BodyTooLong { len: usize },
    #[error(
        "the {field} field would carry the reserved marker 0xfe; its escaping rule is not published (marker rule `send-raw` sends it as is)"
    )]
    MarkerInField { field: &'static str },
}

/// The checksum of the Length-counted bytes, or None when the rule checks
/// nothing. The rule is not published: this is the one place it is decided.
/// `sum8-twos` (default) makes the counted bytes plus the checksum sum to 0.
pub fn checksum(rule: ExsChecksum, counted: &[u8]) -> Option<u8> {
    let sum = counted.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    match rule {
        ExsChecksum::Sum8Twos => Some(sum.wrapping_neg()),
        ExsChecksum::Sum8 => Some(sum),
        ExsChecksum::Xor8 => Some(counted.iter().fold(0u8, |acc, b| acc ^ b)),
        ExsChecksum::None => None,
    }
}

impl Framing {
    /// Decodes one wire frame from the start of `buf`: `Ok(None)` when more
    /// bytes are needed, else the frame and the bytes it used.
    pub fn decode(&self, buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        self.decode_form(buf, Form::Wire)
    }

    /// Decodes one frame in the trace form (starting at Length, no checksum).
    pub fn decode_trace(&self, buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        self.decode_form(buf, Form::Trace)
    }

    pub fn decode_form(&self, buf: &[u8], form: Form) -> Result<Option<(Frame, usize)>, FrameError> {
        let start = match form {
            Form::Wire => match buf.first() {
                None => return Ok(None),
                Some(&MARKER) => 1,
                Some(&found) => return Err(FrameError::BadMarker { found }),
            },
            Form::Trace => 0,
        };
        let Some(length_bytes) = buf.get(start..start + 2) else {
            return Ok(None);
        };
        let length = u16::from_be_bytes([length_bytes[0], length_bytes[1]]);
        // Judge Length before waiting for the rest, so a bad one is reported
        // at once instead of stalling a reader until its timeout.
        if usize::from(length) < HEADER_LEN {
            return Err(FrameError::LengthTooShort { length });
        }
        if usize::from(length) > MAX_LENGTH {
            return Err(FrameError::LengthTooLong { length, body: usize::from(length) - HEADER_LEN });
        }
        let counted_start = start + 2;
        let counted_end = counted_start + usize::from(length);
        let total = counted_end + usize::from(form == Form::Wire);
        if buf.len() < total {
            return Ok(None);
        }
        let counted = &buf[counted_start..counted_end];
        let frame = Frame {
            msg_type: u16::from_be_bytes([counted[0], counted[1]]),
            reserved: counted[2],
            seq: counted[3],
            node: counted[4],
            body: counted[HEADER_LEN..].to_vec(),
        };
        if form == Form::Wire {
            let actual = buf[counted_end];
            if let Some(expected) = checksum(self.checksum, counted)
                && expected != actual
            {
                return Err(FrameError::BadChecksum {
                    msg_type: frame.msg_type,
                    seq: frame.seq,
                    expected,
                    actual,
                    frame_len: total,
                });
            }
        }
        Ok(Some((frame, total)))
    }

    /// Appends the wire bytes of `frame` to `out` (nothing on error).
    pub fn encode(&self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.encode_form(frame, Form::Wire, out)
    }

    /// Appends the trace form of `frame` (as a socket log prints it) to `out`.
    pub fn encode_trace(&self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.encode_form(frame, Form::Trace, out)
    }

    pub fn encode_form(&self, frame: &Frame, form: Form, out: &mut Vec<u8>) -> Result<(), FrameError> {
        if frame.body.len() > MAX_BODY {
            return Err(FrameError::BodyTooLong { len: frame.body.len() });
        }
        let length = frame.length() as u16;
        let mut counted = Vec::with_capacity(frame.length());
        counted.extend_from_slice(&frame.msg_type.to_be_bytes());
        counted.extend_from_slice(&[frame.reserved, frame.seq, frame.node]);
        counted.extend_from_slice(&frame.body);
        // With `none` the byte is still there (the layout has it); we send 0.
        let sum = checksum(self.checksum, &counted).unwrap_or(0);
        if form == Form::Wire && self.marker_rule == ExsMarkerRule::Refuse {
            let fields: [(&'static str, &[u8]); 7] = [
                ("length", &length.to_be_bytes()),
                ("message type", &counted[0..2]),
                ("reserved", &counted[2..3]),
                ("sequence number", &counted[3..4]),
                ("logical node", &counted[4..5]),
                ("body", &counted[5..]),
                ("checksum", &[sum]),
            ];
            if let Some((field, _)) = fields.iter().find(|(_, bytes)| bytes.contains(&MARKER)) {
                return Err(FrameError::MarkerInField { field });
            }
        }
        if form == Form::Wire {
            out.push(MARKER);
        }
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&counted);
        if form == Form::Wire {
            out.push(sum);
        }
        Ok(())
    }
}

/// Decodes with the default rules (`sum8-twos`, refuse 0xFE).
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    Framing::default().decode(buf)
}

/// Encodes with the default rules (`sum8-twos`, refuse 0xFE).
pub fn encode(frame: &Frame, out: &mut Vec<u8>) -> Result<(), FrameError> {
    Framing::default().encode(frame, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The page's host-to-CSP trace: `[00 09] [00 3A] 00 00 FF 01 01 01 00`.
    const HOST_TRACE: [u8; 11] = [0x00, 0x09, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x01, 0x00];

    fn query_frame() -> Frame {
        Frame::new(0x003A, 0, 0xFF, vec![0x01, 0x01, 0x01, 0x00])
    }

    fn all_rules() -> [Framing; 4] {
        [ExsChecksum::Sum8Twos, ExsChecksum::Sum8, ExsChecksum::Xor8, ExsChecksum::None]
            .map(|checksum| Framing { checksum, marker_rule: ExsMarkerRule::SendRaw })
    }

    #[test]
    fn encoding_the_page_query_reproduces_the_host_trace() {
        let mut wire = Vec::new();
        encode(&query_frame(), &mut wire).unwrap();
        assert_eq!(wire[0], MARKER);
        assert_eq!(&wire[1..wire.len() - 1], &HOST_TRACE);
        // sum8-twos: counted bytes plus checksum sum to 0 mod 256.
        let sum = wire[3..].iter().fold(0u8, |a, b| a.wrapping_add(*b));
        assert_eq!(sum, 0);
        assert_eq!(*wire.last().unwrap(), 0x3A_u8.wrapping_add(0xFF).wrapping_add(3).wrapping_neg());

        let mut trace = Vec::new();
        Framing::default().encode_trace(&query_frame(), &mut trace).unwrap();
        assert_eq!(trace, HOST_TRACE);
    }

    #[test]
    fn checksum_rules() {
        let counted = [0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x01, 0x00];
        assert_eq!(checksum(ExsChecksum::Sum8, &counted), Some(0x3C));
        assert_eq!(checksum(ExsChecksum::Sum8Twos, &counted), Some(0xC4));
        assert_eq!(checksum(ExsChecksum::Xor8, &counted), Some(0x3A ^ 0xFF ^ 0x01));
        assert_eq!(checksum(ExsChecksum::None, &counted), None);
    }

    #[test]
    fn decodes_the_trace_form() {
        let (frame, used) = Framing::default().decode_trace(&HOST_TRACE).unwrap().unwrap();
        assert_eq!(used, HOST_TRACE.len());
        assert_eq!(frame, query_frame());
    }

    #[test]
    fn every_split_offset_needs_more_bytes_then_decodes() {
        for framing in all_rules() {
            let mut wire = Vec::new();
            framing.encode(&query_frame(), &mut wire).unwrap();
            for cut in 0..wire.len() {
                assert_eq!(framing.decode(&wire[..cut]), Ok(None), "cut at {cut} with {framing:?}");
            }
            // Fed in two pieces at every offset, as a socket may deliver it.
            for cut in 0..=wire.len() {
                let mut buf = wire[..cut].to_vec();
                if let Some((frame, _)) = framing.decode(&buf).unwrap() {
                    assert_eq!(cut, wire.len());
                    assert_eq!(frame, query_frame());
                    continue;
                }
                buf.extend_from_slice(&wire[cut..]);
                let (frame, used) = framing.decode(&buf).unwrap().unwrap();
                assert_eq!((frame, used), (query_frame(), wire.len()));
            }
        }
    }

    #[test]
    fn two_frames_back_to_back() {
        let mut wire = Vec::new();
        encode(&query_frame(), &mut wire).unwrap();
        let second = Frame::new(0x00AB, 7, 0xFF, Vec::new());
        encode(&second, &mut wire).unwrap();
        let (first, used) = decode(&wire).unwrap().unwrap();
        assert_eq!(first, query_frame());
        let (next, rest) = decode(&wire[used..]).unwrap().unwrap();
        assert_eq!(next, second);
        assert_eq!(used + rest, wire.len());
    }

    #[test]
    fn invalid_inputs_say_what_is_wrong() {
        assert_eq!(decode(&[0x00, 0x00, 0x09]), Err(FrameError::BadMarker { found: 0x00 }));
        assert_eq!(decode(&[MARKER, 0x00, 0x04]), Err(FrameError::LengthTooShort { length: 4 }));
        assert_eq!(decode(&[MARKER, 0x01, 0x03]), Err(FrameError::LengthTooLong { length: 259, body: 254 }));
        // The largest Length is fine and only needs more bytes.
        assert_eq!(decode(&[MARKER, 0x01, 0x02]), Ok(None));

        let mut wire = Vec::new();
        encode(&query_frame(), &mut wire).unwrap();
        let last = wire.len() - 1;
        wire[last] ^= 0x01;
        let error = decode(&wire).unwrap_err();
        assert_eq!(
            error,
            FrameError::BadChecksum { msg_type: 0x3A, seq: 0, expected: 0xC4, actual: 0xC5, frame_len: wire.len() }
        );
        assert_eq!(error.to_string(), "bad checksum in TFTP Manage (0x003a) seq 0: expected 0xc4, got 0xc5");
        // `none` checks nothing.
        let lax = Framing { checksum: ExsChecksum::None, ..Framing::default() };
        assert!(lax.decode(&wire).unwrap().is_some());
    }

    #[test]
    fn marker_rule_refuses_0xfe_in_any_field_unless_send_raw() {
        let mut out = Vec::new();
        let frame = Frame::new(0x003A, 0xFE, 0xFF, vec![1, 1, 1, 0]);
        assert_eq!(encode(&frame, &mut out), Err(FrameError::MarkerInField { field: "sequence number" }));
        let frame = Frame::new(0x003A, 0, 0xFF, vec![1, 2, 0x37, 1, 0xFE]);
        assert_eq!(encode(&frame, &mut out), Err(FrameError::MarkerInField { field: "body" }));
        assert!(out.is_empty(), "nothing written on error");
        let raw = Framing { marker_rule: ExsMarkerRule::SendRaw, ..Framing::default() };
        raw.encode(&frame, &mut out).unwrap();
        assert_eq!(raw.decode(&out).unwrap().unwrap().0, frame);
        // A checksum that happens to be 0xFE is refused too: the controller's
        // escaping (if any) would apply to it as well.
        let mut body = vec![0u8];
        let sum_without = checksum(ExsChecksum::Sum8Twos, &[0, 0x3A, 0, 0, 0x10, 0]).unwrap();
        body[0] = sum_without.wrapping_sub(0xFE);
        let frame = Frame::new(0x003A, 0, 0x10, body);
        assert_eq!(encode(&frame, &mut out), Err(FrameError::MarkerInField { field: "checksum" }));
    }

    #[test]
    fn body_over_253_bytes_is_refused() {
        let frame = Frame::new(0x003A, 0, 0, vec![0; 254]);
        assert_eq!(encode(&frame, &mut Vec::new()), Err(FrameError::BodyTooLong { len: 254 }));
        let frame = Frame::new(0x003A, 0, 0, vec![0; 253]);
        let mut out = Vec::new();
        encode(&frame, &mut out).unwrap();
        assert_eq!(decode(&out).unwrap().unwrap().0, frame);
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        (any::<u16>(), any::<u8>(), any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..=MAX_BODY))
            .prop_map(|(msg_type, reserved, seq, node, body)| Frame { msg_type, reserved, seq, node, body })
    }

    proptest! {
        #[test]
        fn round_trip(frame in any_frame(), rule in 0usize..4, cut in any::<prop::sample::Index>()) {
            let framing = all_rules()[rule];
            let mut wire = Vec::new();
            framing.encode(&frame, &mut wire).unwrap();
            prop_assert_eq!(framing.decode(&wire).unwrap(), Some((frame.clone(), wire.len())));
            let cut = cut.index(wire.len());
            prop_assert_eq!(framing.decode(&wire[..cut]).unwrap(), None);
            let mut trace = Vec::new();
            framing.encode_trace(&frame, &mut trace).unwrap();
            prop_assert_eq!(&trace[..], &wire[1..wire.len() - 1]);
            prop_assert_eq!(framing.decode_trace(&trace).unwrap(), Some((frame, trace.len())));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            for framing in all_rules() {
                if let Ok(Some((_, used))) = framing.decode(&bytes) {
                    prop_assert!(used <= bytes.len());
                }
                let _ = framing.decode_trace(&bytes);
            }
        }
    }
}
