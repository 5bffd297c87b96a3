//! The TFTP packet codec (RFC 1350, with the option extension of RFC 2347):
//! pure, no I/O. [`decode`] tells "need more bytes" (`Ok(None)`: a prefix of
//! a packet, such as a request whose strings are not yet terminated) apart
//! from "invalid" (`Err`); over UDP a datagram is a whole packet, so a
//! transport treats "need more" as a truncated datagram. The option values
//! (blksize, tsize, timeout) are interpreted by the server and client, not
//! here.

use std::fmt;

/// Opcodes of RFC 1350 and RFC 2347.
pub const RRQ: u16 = 1;
pub const WRQ: u16 = 2;
pub const DATA: u16 = 3;
pub const ACK: u16 = 4;
pub const ERROR: u16 = 5;
pub const OACK: u16 = 6;

/// The block size of RFC 1350 when no `blksize` option is agreed.
pub const DEFAULT_BLOCK: usize = 512;

/// A read or a write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Read,
    Write,
}

/// One TFTP packet. `Data` borrows its payload from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// RRQ or WRQ: file name, mode (`octet`, `netascii`, compared without
    /// case by the user) and the options in the order sent (RFC 2347).
    Request {
        kind: RequestKind,
        filename: String,
        mode: String,
        options: Vec<(String, String)>,
    },
    Data {
        block: u16,
        data: &'a [u8],
    },
    Ack {
        block: u16,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// RFC 2347 option acknowledgment.
    OptionAck {
        options: Vec<(String, String)>,
    },
}

/// The error codes of RFC 1350 (and 8, option negotiation refused, of RFC
/// 2347). Unknown codes are kept as they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined,
    FileNotFound,
    AccessViolation,
    DiskFull,
    IllegalOperation,
    UnknownTransferId,
    FileExists,
    NoSuchUser,
    OptionRefused,
    Other(u16),
}

impl ErrorCode {
    pub fn number(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTransferId => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionRefused => 8,
            ErrorCode::Other(n) => n,
        }
    }

    pub fn from_number(n: u16) -> ErrorCode {
        match n {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTransferId,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionRefused,
            n => ErrorCode::Other(n),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// Why bytes are not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("unknown TFTP opcode {0}")]
    UnknownOpcode(u16),
    #[error("{what} is not UTF-8")]
    NotText { what: &'static str },
    #[error("empty file name in a request")]
    EmptyFilename,
    #[error("option {name:?} has no value")]
    OptionWithoutValue { name: String },
    #[error("{extra} bytes after a {what} packet")]
    TrailingBytes { what: &'static str, extra: usize },
}

/// Decodes one packet from the start of `bytes`: `Ok(None)` when the bytes
/// are a prefix of a packet, else the packet and the bytes it used.
pub fn decode(bytes: &[u8]) -> Result<Option<(Packet<'_>, usize)>, PacketError> {
    let Some(head) = bytes.get(..2) else { return Ok(None) };
    let opcode = u16::from_be_bytes([head[0], head[1]]);
    let body = &bytes[2..];
    match opcode {
        RRQ | WRQ => {
            let kind = if opcode == RRQ { RequestKind::Read } else { RequestKind::Write };
            let mut strings = Strings { bytes: body, used: 0 };
            let Some(filename) = strings.next("file name")? else { return Ok(None) };
            let Some(mode) = strings.next("mode")? else { return Ok(None) };
            if filename.is_empty() {
                return Err(PacketError::EmptyFilename);
            }
            let options = match strings.options()? {
                Some(options) => options,
                None => return Ok(None),
            };
            Ok(Some((Packet::Request { kind, filename, mode, options }, 2 + strings.used)))
        }
        DATA => {
            let Some(block) = body.get(..2) else { return Ok(None) };
            // A DATA packet's length is its datagram's: it takes everything.
            Ok(Some((Packet::Data { block: u16::from_be_bytes([block[0], block[1]]), data: &body[2..] }, bytes.len())))
        }
        ACK => {
            let Some(block) = body.get(..2) else { return Ok(None) };
            if body.len() > 2 {
                return Err(PacketError::TrailingBytes { what: "ACK", extra: body.len() - 2 });
            }
            Ok(Some((Packet::Ack { block: u16::from_be_bytes([block[0], block[1]]) }, 4)))
        }
        ERROR => {
            let Some(code) = body.get(..2) else { return Ok(None) };
            let mut strings = Strings { bytes: &body[2..], used: 0 };
            let Some(message) = strings.next("error message")? else { return Ok(None) };
            let code = ErrorCode::from_number(u16::from_be_bytes([code[0], code[1]]));
            Ok(Some((Packet::Error { code, message }, 4 + strings.used)))
        }
        OACK => {
            let mut strings = Strings { bytes: body, used: 0 };
            match strings.options()? {
                Some(options) => Ok(Some((Packet::OptionAck { options }, 2 + strings.used))),
                None => Ok(None),
            }
        }
        other => Err(PacketError::UnknownOpcode(other)),
    }
}

/// Decodes a whole datagram: a truncated one is invalid.
pub fn decode_datagram(bytes: &[u8]) -> Result<Packet<'_>, DatagramError> {
    match decode(bytes) {
        Ok(Some((packet, _))) => Ok(packet),
        Ok(None) => Err(DatagramError::Truncated { len: bytes.len() }),
        Err(error) => Err(DatagramError::Invalid(error)),
    }
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    #[error("truncated TFTP packet of {len} bytes")]
    Truncated { len: usize },
    #[error(transparent)]
    Invalid(#[from] PacketError),
}

/// NUL-terminated strings from a packet body.
struct Strings<'a> {
    bytes: &'a [u8],
    used: usize,
}

impl Strings<'_> {
    fn next(&mut self, what: &'static str) -> Result<Option<String>, PacketError> {
        let rest = &self.bytes[self.used..];
        let Some(end) = rest.iter().position(|b| *b == 0) else { return Ok(None) };
        let text = std::str::from_utf8(&rest[..end]).map_err(|_| PacketError::NotText { what })?;
        self.used += end + 1;
        Ok(Some(text.to_string()))
    }

    /// Name/value pairs up to the end of the datagram. A name without its
    /// terminated value is "need more"; the datagram's end ends the list.
    fn options(&mut self) -> Result<Option<Vec<(String, String)>>, PacketError> {
        let mut options = Vec::new();
        // Each option takes at least two bytes: bounded by the packet's size.
        while self.used < self.bytes.len() {
            let Some(name) = self.next("option name")? else { return Ok(None) };
            let Some(value) = self.next("option value")? else { return Ok(None) };
            if value.is_empty() && !name.is_empty() {
                return Err(PacketError::OptionWithoutValue { name });
            }
            options.push((name, value));
        }
        Ok(Some(options))
    }
}

/// Appends the encoding of `packet` to `out`.
pub fn encode(packet: &Packet<'_>, out: &mut Vec<u8>) {
    match packet {
        Packet::Request { kind, filename, mode, options } => {
            let opcode = match kind {
                RequestKind::Read => RRQ,
                RequestKind::Write => WRQ,
            };
            out.extend_from_slice(&opcode.to_be_bytes());
            push_string(out, filename);
            push_string(out, mode);
            push_options(out, options);
        }
        Packet::Data { block, data } => encode_data(*block, data, out),
        Packet::Ack { block } => {
            out.extend_from_slice(&ACK.to_be_bytes());
            out.extend_from_slice(&block.to_be_bytes());
        }
        Packet::Error { code, message } => {
            out.extend_from_slice(&ERROR.to_be_bytes());
            out.extend_from_slice(&code.number().to_be_bytes());
            push_string(out, message);
        }
        Packet::OptionAck { options } => {
            out.extend_from_slice(&OACK.to_be_bytes());
            push_options(out, options);
        }
    }
}

/// A DATA packet without building a [`Packet`] (the server's hot path).
pub fn encode_data(block: u16, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
    out.extend_from_slice(data);
}

/// The encoding of `packet` as a new buffer.
pub fn to_bytes(packet: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(packet, &mut out);
    out
}

fn push_string(out: &mut Vec<u8>, text: &str) {
    // A NUL inside would end the string early on the wire: cut it there.
    let text = text.split('\0').next().unwrap_or("");
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

fn push_options(out: &mut Vec<u8>, options: &[(String, String)]) {
    for (name, value) in options {
        push_string(out, name);
        push_string(out, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    /// Byte literals as RFC 1350 figure 5-1 and RFC 2347 lay them out.
    #[test]
    fn byte_literals_from_the_rfcs() {
        let rrq = b"\x00\x01foo\x00octet\x00";
        let expected =
            Packet::Request { kind: RequestKind::Read, filename: "foo".into(), mode: "octet".into(), options: vec![] };
        assert_eq!(decode(rrq).unwrap(), Some((expected.clone(), rrq.len())));
        assert_eq!(to_bytes(&expected), rrq);

        // RFC 2347's example: "foobar" in octet mode with blksize and tsize.
        let with_options = b"\x00\x01foobar\x00octet\x00blksize\x001432\x00tsize\x000\x00";
        let expected = Packet::Request {
            kind: RequestKind::Read,
            filename: "foobar".into(),
            mode: "octet".into(),
            options: opts(&[("blksize", "1432"), ("tsize", "0")]),
        };
        assert_eq!(decode(with_options).unwrap(), Some((expected.clone(), with_options.len())));
        assert_eq!(to_bytes(&expected), with_options);

        let wrq = b"\x00\x02up.bin\x00NETASCII\x00";
        assert!(matches!(
            decode(wrq).unwrap(),
            Some((Packet::Request { kind: RequestKind::Write, ref mode, .. }, 18)) if mode == "NETASCII"
        ));

        let data = b"\x00\x03\x00\x2Ahello";
        assert_eq!(decode(data).unwrap(), Some((Packet::Data { block: 42, data: b"hello" }, 9)));
        assert_eq!(to_bytes(&Packet::Data { block: 42, data: b"hello" }), data);
        assert_eq!(decode(b"\x00\x03\xFF\xFF").unwrap(), Some((Packet::Data { block: 65535, data: b"" }, 4)));

        assert_eq!(decode(b"\x00\x04\x01\x00").unwrap(), Some((Packet::Ack { block: 256 }, 4)));
        assert_eq!(to_bytes(&Packet::Ack { block: 256 }), b"\x00\x04\x01\x00");

        let error = b"\x00\x05\x00\x01File not found\x00";
        let expected = Packet::Error { code: ErrorCode::FileNotFound, message: "File not found".into() };
        assert_eq!(decode(error).unwrap(), Some((expected.clone(), error.len())));
        assert_eq!(to_bytes(&expected), error);

        let oack = b"\x00\x06blksize\x001432\x00";
        let expected = Packet::OptionAck { options: opts(&[("blksize", "1432")]) };
        assert_eq!(decode(oack).unwrap(), Some((expected.clone(), oack.len())));
        assert_eq!(to_bytes(&expected), oack);
    }

    #[test]
    fn prefixes_need_more() {
        for whole in [
            &b"\x00\x01foo\x00octet\x00"[..],
            b"\x00\x04\x00\x01",
            b"\x00\x05\x00\x02no\x00",
            b"\x00\x01f\x00octet\x00blksize\x00512\x00",
        ] {
            for cut in 0..whole.len() {
                let prefix = &whole[..cut];
                // A request cut right after its mode (or after an option
                // pair) is itself a whole request: the datagram's end ends it.
                if let Ok(Some((_, used))) = decode(prefix) {
                    assert_eq!(used, cut, "{prefix:02X?}");
                    continue;
                }
                assert_eq!(decode(prefix), Ok(None), "{prefix:02X?}");
            }
        }
        assert_eq!(decode_datagram(b"\x00"), Err(DatagramError::Truncated { len: 1 }));
    }

    #[test]
    fn invalid_packets() {
        assert_eq!(decode(b"\x00\x07"), Err(PacketError::UnknownOpcode(7)));
        assert_eq!(decode(b"\x00\x00"), Err(PacketError::UnknownOpcode(0)));
        assert_eq!(decode(b"\x00\x01\x00octet\x00"), Err(PacketError::EmptyFilename));
        assert_eq!(decode(b"\x00\x01\xFF\x00octet\x00"), Err(PacketError::NotText { what: "file name" }));
        assert_eq!(
            decode(b"\x00\x01f\x00octet\x00blksize\x00\x00"),
            Err(PacketError::OptionWithoutValue { name: "blksize".into() })
        );
        assert_eq!(decode(b"\x00\x04\x00\x01\x00"), Err(PacketError::TrailingBytes { what: "ACK", extra: 1 }));
    }

    #[test]
    fn error_codes_keep_their_numbers() {
        for n in 0..20u16 {
            assert_eq!(ErrorCode::from_number(n).number(), n);
        }
    }

    proptest::proptest! {
        /// Whatever arrives from the network, decoding never panics, and a
        /// packet it accepts encodes back to the bytes it used.
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Ok(Some((packet, used))) = decode(&bytes) {
                proptest::prop_assert!(used <= bytes.len());
                if !matches!(packet, Packet::Error { .. }) {
                    proptest::prop_assert_eq!(to_bytes(&packet), &bytes[..used]);
                }
            }
        }

        #[test]
        fn requests_round_trip(
            name in "[a-zA-Z0-9_./-]{1,40}",
            blksize in 8u16..65464,
            write in proptest::bool::ANY,
        ) {
            let kind = if write { RequestKind::Write } else { RequestKind::Read };
            let packet = Packet::Request {
                kind, filename: name, mode: "octet".into(), options: opts(&[("blksize", &blksize.to_string())]),
            };
            let bytes = to_bytes(&packet);
            proptest::prop_assert_eq!(decode(&bytes).unwrap(), Some((packet, bytes.len())));
        }
    }
}
