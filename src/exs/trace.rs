//! Hex text as technicians paste it: vendor socket-log traces such as
//! `[00 09] [00 3A] 00 00 FF 01 01 01 00` (no marker, no checksum) or a wire
//! capture starting with `FE`. Parses the text into bytes and the bytes into
//! frames with the same decoder the client uses ([`Framing::decode_form`]).
//!
//! It does not interpret bodies; `tftp_manage` does.

use std::ops::Range;

use super::frame::{ExsChecksum, ExsMarkerRule};
use super::frame::{Form, Frame, FrameError, Framing, MARKER, checksum};
use crate::failure::{Classify, FailureClass};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    #[error("`{token}` (at character {column}) is not hex")]
    NotHex { token: String, column: usize },
    #[error("`{token}` (at character {column}) has an odd number of hex digits")]
    OddDigits { token: String, column: usize },
    #[error("no bytes in the text")]
    Empty,
    #[error("frame {index} at byte {offset}: {source}")]
    Frame { index: usize, offset: usize, source: FrameError },
    #[error("frame {index} at byte {offset} is incomplete: {available} bytes, the Length needs more")]
    Incomplete { index: usize, offset: usize, available: usize },
}

impl Classify for TraceError {
    /// The bytes were typed or pasted by the user.
    fn class(&self) -> FailureClass {
        FailureClass::Input
    }

    fn help(&self) -> Option<&str> {
        Some("check the arguments; nothing was sent")
    }
}

/// Bytes from hex text. Brackets, `|`, commas, colons and whitespace separate;
/// a token may carry `0x` and hold several bytes (`003A`).
pub fn parse_hex(text: &str) -> Result<Vec<u8>, TraceError> {
    let mut bytes = Vec::new();
    let is_separator = |c: char| c.is_whitespace() || matches!(c, '[' | ']' | '|' | ',' | ':' | ';');
    let mut column = 0;
    for token in text.split(is_separator) {
        let token_column = column + 1;
        column += token.chars().count() + 1;
        if token.is_empty() {
            continue;
        }
        let digits = token.strip_prefix("0x").or_else(|| token.strip_prefix("0X")).unwrap_or(token);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(TraceError::NotHex { token: token.to_string(), column: token_column });
        }
        if digits.len() % 2 != 0 {
            return Err(TraceError::OddDigits { token: token.to_string(), column: token_column });
        }
        for pair in digits.as_bytes().chunks(2) {
            // Both characters are ASCII hex digits, checked above.
            let pair = std::str::from_utf8(pair).unwrap_or("00");
            bytes.push(u8::from_str_radix(pair, 16).unwrap_or(0));
        }
    }
    if bytes.is_empty() {
        return Err(TraceError::Empty);
    }
    Ok(bytes)
}

/// Which form bytes are in. Length's high byte is at most 0x01 (the largest
/// Length is 258), so a leading 0xFE can only be the wire marker.
pub fn form_of(bytes: &[u8]) -> Form {
    if bytes.first() == Some(&MARKER) { Form::Wire } else { Form::Trace }
}

/// Every frame in `bytes`, in the form the first byte shows.
pub fn decode_all(framing: &Framing, bytes: &[u8]) -> Result<(Form, Vec<Frame>), TraceError> {
    let (form, frames) = decode_spans(framing, bytes)?;
    Ok((form, frames.into_iter().map(|(frame, _)| frame).collect()))
}

/// A decoded frame and, for a wire capture, its checksum check.
pub type CheckedFrame = (Frame, Option<ChecksumCheck>);

/// Where in the input a frame's bytes were.
type Span = Range<usize>;

/// A wire frame's checksum byte next to the one a rule gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumCheck {
    pub received: u8,
    /// None when the rule checks nothing.
    pub expected: Option<u8>,
}

impl ChecksumCheck {
    pub fn ok(&self) -> bool {
        self.expected.is_none_or(|e| e == self.received)
    }
}

/// Every frame in `bytes`, decoded with no checksum rule, each with its
/// checksum checked against `rule` when the bytes are a wire capture (a trace
/// has no checksum): a wrong checksum is shown next to the fields instead of
/// hiding them.
pub fn decode_checked(bytes: &[u8], rule: ExsChecksum) -> Result<(Form, Vec<CheckedFrame>), TraceError> {
    let lenient = Framing { checksum: ExsChecksum::None, marker_rule: ExsMarkerRule::SendRaw };
    let (form, frames) = decode_spans(&lenient, bytes)?;
    let checked = frames
        .into_iter()
        .map(|(frame, span)| {
            let check = (form == Form::Wire).then(|| {
                let mut counted = Vec::new();
                let _ = lenient.encode_trace(&frame, &mut counted);
                // The trace form starts with the 2-byte Length, which the
                // checksum does not count.
                ChecksumCheck { received: bytes[span.end - 1], expected: checksum(rule, &counted[2..]) }
            });
            (frame, check)
        })
        .collect();
    Ok((form, checked))
}

/// Every frame with the bytes of `bytes` it came from.
fn decode_spans(framing: &Framing, bytes: &[u8]) -> Result<(Form, Vec<(Frame, Span)>), TraceError> {
    let form = form_of(bytes);
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let index = frames.len() + 1;
        match framing.decode_form(&bytes[offset..], form) {
            Ok(Some((frame, used))) => {
                frames.push((frame, offset..offset + used));
                offset += used;
            }
            Ok(None) => {
                return Err(TraceError::Incomplete { index, offset, available: bytes.len() - offset });
            }
            Err(source) => return Err(TraceError::Frame { index, offset, source }),
        }
    }
    Ok((form, frames))
}

/// A frame as the vendor's socket log prints it: `[00 09] [00 3A] 00 00 FF ...`.
pub fn format_trace(frame: &Frame) -> String {
    let mut text = format!(
        "[{:02X} {:02X}] [{:02X} {:02X}] {:02X} {:02X} {:02X}",
        (frame.length() >> 8) as u8,
        frame.length() as u8,
        (frame.msg_type >> 8) as u8,
        frame.msg_type as u8,
        frame.reserved,
        frame.seq,
        frame.node
    );
    for byte in &frame.body {
        text.push_str(&format!(" {byte:02X}"));
    }
    text
}

/// Bytes as spaced upper-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOST: &str = "[00 09] [00 3A] 00 00 FF 01 01 01 00";

    #[test]
    fn parses_the_page_trace() {
        let bytes = parse_hex(HOST).unwrap();
        assert_eq!(bytes, [0, 9, 0, 0x3A, 0, 0, 0xFF, 1, 1, 1, 0]);
        let (form, frames) = decode_all(&Framing::default(), &bytes).unwrap();
        assert_eq!(form, Form::Trace);
        assert_eq!(frames, vec![Frame::new(0x3A, 0, 0xFF, vec![1, 1, 1, 0])]);
        assert_eq!(format_trace(&frames[0]), HOST);
    }

    #[test]
    fn accepts_other_spellings() {
        assert_eq!(parse_hex("0x00,0x09 | 003a").unwrap(), [0, 9, 0, 0x3A]);
        assert_eq!(parse_hex("fe:00:05").unwrap(), [0xFE, 0, 5]);
    }

    #[test]
    fn rejects_what_is_not_hex() {
        assert_eq!(parse_hex("00 0G"), Err(TraceError::NotHex { token: "0G".into(), column: 4 }));
        assert_eq!(parse_hex("[00 009]"), Err(TraceError::OddDigits { token: "009".into(), column: 5 }));
        assert_eq!(parse_hex(" [ ] "), Err(TraceError::Empty));
        assert!(matches!(parse_hex("0x"), Err(TraceError::NotHex { .. })));
        assert!(matches!(parse_hex("é"), Err(TraceError::NotHex { .. })));
    }

    #[test]
    fn wire_capture_is_checked_and_incomplete_text_is_reported() {
        let mut wire = Vec::new();
        Framing::default().encode(&Frame::new(0x3A, 0, 0xFF, vec![1, 1, 1, 0]), &mut wire).unwrap();
        let (form, frames) = decode_all(&Framing::default(), &wire).unwrap();
        assert_eq!((form, frames.len()), (Form::Wire, 1));
        assert_eq!(
            decode_all(&Framing::default(), &parse_hex("00 09 00 3A 00").unwrap()),
            Err(TraceError::Incomplete { index: 1, offset: 0, available: 5 })
        );
        assert!(matches!(
            decode_all(&Framing::default(), &[0, 2, 0, 0]),
            Err(TraceError::Frame { source: FrameError::LengthTooShort { length: 2 }, .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
            if let Ok(bytes) = parse_hex(&text) {
                let _ = decode_all(&Framing::default(), &bytes);
            }
        }
    }
}
