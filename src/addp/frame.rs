//! ADDP messages, pure (no I/O): the 8-byte header (cookie, command, payload
//! length), the four requests flashline sends (discovery with the ADDPv2
//! options, set static address, reboot, DHCP on/off) and the replies as a
//! list of typed fields.
//!
//! [`Frame::decode`] tells "need more bytes" (`Ok(None)`) from "invalid"
//! (`Err`, saying what). A datagram holds exactly one frame; the split keeps
//! the codec usable on any buffer and testable at every offset.
//!
//! Replies are read leniently, as real devices differ: a field of a type
//! this module does not know, or a known type with an unexpected width (or
//! text that is not UTF-8), is kept as [`Field::Other`] instead of refusing
//! the reply; a DHCP field of
//! 1 or 4 bytes and repeated DNS fields are both read. Only a reply whose
//! fields do not add up to the header's length is invalid.
//!
//! This module does not send, wait or decide what a reply means for a
//! command: see `client`.

use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::mac::Mac;

/// Header bytes before the payload.
pub const HEADER_LEN: usize = 8;
/// Every device: the discovery target that asks all of them.
pub const BROADCAST_MAC: Mac = Mac([0xff; 6]);
/// The NetSilicon OEM GUID, NET+OS's default (`bf6db409-c83d-44a3-a36d-21797d2f73f9`).
pub const NETSILICON_GUID: [u8; 16] =
    [0xbf, 0x6d, 0xb4, 0x09, 0xc8, 0x3d, 0x44, 0xa3, 0xa3, 0x6d, 0x21, 0x79, 0x7d, 0x2f, 0x73, 0xf9];
/// ADDPv2, the VERSION option's value.
pub const VERSION_2: u16 = 0x0200;

/// The four-byte family tag every frame starts with; a server ignores
/// frames that do not carry its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cookie(pub [u8; 4]);

impl Cookie {
    /// Digi's commercial firmware.
    pub const DIGI: Cookie = Cookie(*b"DIGI");
    /// NET+OS development-kit builds, 6.2 and later.
    pub const DVKT: Cookie = Cookie(*b"DVKT");
    /// Development kits before 6.0.
    pub const DGDP: Cookie = Cookie(*b"DGDP");
    /// What discovery asks with by default: NET+OS first.
    pub const ALL: [Cookie; 3] = [Cookie::DVKT, Cookie::DIGI, Cookie::DGDP];
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic()) {
            f.write_str(&String::from_utf8_lossy(&self.0))
        } else {
            write!(f, "0x{}", self.0.iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
    }
}

impl Serialize for Cookie {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::str::FromStr for Cookie {
    type Err = String;
    fn from_str(text: &str) -> Result<Cookie, String> {
        let bytes: [u8; 4] = text
            .as_bytes()
            .try_into()
            .map_err(|_| format!("`{text}` is not an ADDP cookie (four characters: DVKT, DIGI, DGDP)"))?;
        Ok(Cookie(bytes))
    }
}

/// The command numbers (requests odd, replies the request's number plus one).
pub mod command {
    pub const DISCOVERY: u16 = 0x0001;
    pub const DISCOVERY_REPLY: u16 = 0x0002;
    pub const SET_STATIC: u16 = 0x0003;
    pub const SET_STATIC_REPLY: u16 = 0x0004;
    pub const REBOOT: u16 = 0x0005;
    pub const REBOOT_REPLY: u16 = 0x0006;
    pub const DHCP: u16 = 0x0007;
    pub const DHCP_REPLY: u16 = 0x0008;

    /// A name for messages (`set static address reply`, `command 0x0042`).
    pub fn describe(command: u16) -> String {
        match command {
            DISCOVERY => "discovery request".into(),
            DISCOVERY_REPLY => "discovery reply".into(),
            SET_STATIC => "set static address request".into(),
            SET_STATIC_REPLY => "set static address reply".into(),
            REBOOT => "reboot request".into(),
            REBOOT_REPLY => "reboot reply".into(),
            DHCP => "DHCP request".into(),
            DHCP_REPLY => "DHCP reply".into(),
            other => format!("command {other:#06x}"),
        }
    }
}

/// One ADDP message: header and raw payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub cookie: Cookie,
    pub command: u16,
    pub payload: Vec<u8>,
}

/// Why bytes are not an ADDP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a {len}-byte payload does not fit the 16-bit length field")]
    PayloadTooLong { len: usize },
    #[error("{what}: field {kind:#04x} at payload offset {offset} says {length} bytes but only {left} remain")]
    FieldOverrun { what: String, kind: u8, offset: usize, length: usize, left: usize },
    #[error(
        "{what}: a lone byte {kind:#04x} at payload offset {offset} where a field (type, length, value) should start"
    )]
    LoneByte { what: String, kind: u8, offset: usize },
    #[error("{what}: the payload has {got} bytes, the layout needs {need}")]
    BadLength { what: String, got: usize, need: String },
    #[error("{what}: the password length byte says {said}, {left} bytes follow")]
    PasswordLength { what: String, said: usize, left: usize },
    #[error("{what}: the DHCP switch is {value:#04x}, expected 0 (off) or 1 (on)")]
    BadSwitch { what: String, value: u8 },
    #[error("{what}: unexpected command, expected {expected}")]
    UnexpectedCommand { what: String, expected: String },
}

impl Frame {
    /// Decodes one frame from the start of `buf`: `Ok(None)` when more bytes
    /// are needed, else the frame and the bytes it used. The header has no
    /// field that can be invalid by itself: a bad cookie or command is for
    /// the receiver to judge.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let Some(header) = buf.get(..HEADER_LEN) else { return Ok(None) };
        let length = usize::from(u16::from_be_bytes([header[6], header[7]]));
        let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + length) else { return Ok(None) };
        let frame = Frame {
            cookie: Cookie([header[0], header[1], header[2], header[3]]),
            command: u16::from_be_bytes([header[4], header[5]]),
            payload: payload.to_vec(),
        };
        Ok(Some((frame, HEADER_LEN + length)))
    }

    /// Appends the frame's bytes to `out` (nothing on error).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let length =
            u16::try_from(self.payload.len()).map_err(|_| FrameError::PayloadTooLong { len: self.payload.len() })?;
        out.extend_from_slice(&self.cookie.0);
        out.extend_from_slice(&self.command.to_be_bytes());
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(())
    }
}

/// A password as sent: plain text with a length prefix. Never shown:
/// `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub Vec<u8>);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// The requests of the protocol (wireless settings are not for these devices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Who is there: `mac` is [`BROADCAST_MAC`] for every device. `options`
    /// are the ADDPv2 TLVs after the MAC, in the order given.
    Discovery {
        mac: Mac,
        options: Vec<Field>,
    },
    SetStatic {
        ip: Ipv4Addr,
        mask: Ipv4Addr,
        gateway: Ipv4Addr,
        mac: Mac,
        password: Password,
    },
    Reboot {
        mac: Mac,
        password: Password,
    },
    Dhcp {
        enable: bool,
        mac: Mac,
        password: Password,
    },
}

impl Request {
    /// The discovery flashline sends: every device (or one MAC), with the
    /// options Digi's own tool sends (GUID, then VERSION, as captured).
    pub fn discovery(mac: Mac) -> Request {
        Request::Discovery { mac, options: vec![Field::Guid(NETSILICON_GUID), Field::Version(VERSION_2)] }
    }

    pub fn command(&self) -> u16 {
        match self {
            Request::Discovery { .. } => command::DISCOVERY,
            Request::SetStatic { .. } => command::SET_STATIC,
            Request::Reboot { .. } => command::REBOOT,
            Request::Dhcp { .. } => command::DHCP,
        }
    }

    /// The MAC the request is for.
    pub fn mac(&self) -> Mac {
        match self {
            Request::Discovery { mac, .. }
            | Request::SetStatic { mac, .. }
            | Request::Reboot { mac, .. }
            | Request::Dhcp { mac, .. } => *mac,
        }
    }

    /// The request as a frame with `cookie`. A password longer than 255
    /// bytes cannot be sent (its length is one byte).
    pub fn to_frame(&self, cookie: Cookie) -> Result<Frame, FrameError> {
        let mut payload = Vec::new();
        let password = |payload: &mut Vec<u8>, password: &Password| {
            let len = u8::try_from(password.0.len()).map_err(|_| FrameError::BadLength {
                what: "password".into(),
                got: password.0.len(),
                need: "at most 255".into(),
            })?;
            payload.push(len);
            payload.extend_from_slice(&password.0);
            Ok::<(), FrameError>(())
        };
        match self {
            Request::Discovery { mac, options } => {
                payload.extend_from_slice(&mac.0);
                for option in options {
                    option.encode(&mut payload)?;
                }
            }
            Request::SetStatic { ip, mask, gateway, mac, password: secret } => {
                for address in [ip, mask, gateway] {
                    payload.extend_from_slice(&address.octets());
                }
                payload.extend_from_slice(&mac.0);
                password(&mut payload, secret)?;
            }
            Request::Reboot { mac, password: secret } => {
                payload.extend_from_slice(&mac.0);
                password(&mut payload, secret)?;
            }
            Request::Dhcp { enable, mac, password: secret } => {
                payload.push(u8::from(*enable));
                payload.extend_from_slice(&mac.0);
                password(&mut payload, secret)?;
            }
        }
        Ok(Frame { cookie, command: self.command(), payload })
    }

    /// Appends the request's bytes to `out` (nothing on error).
    pub fn encode(&self, cookie: Cookie, out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.to_frame(cookie)?.encode(out)
    }

    /// Reads a request frame as a device does: exact layouts (Digi's server
    /// drops a set-static frame whose length is not 19 plus the password's).
    /// `Ok(None)`: not a request (a reply, an unknown command).
    pub fn decode(frame: &Frame) -> Result<Option<Request>, FrameError> {
        let what = || command::describe(frame.command);
        let p = &frame.payload;
        let mac_at = |at: usize| Mac([p[at], p[at + 1], p[at + 2], p[at + 3], p[at + 4], p[at + 5]]);
        let ip_at = |at: usize| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
        let password_at = |at: usize| -> Result<Password, FrameError> {
            let Some(&said) = p.get(at) else {
                return Err(FrameError::BadLength { what: what(), got: p.len(), need: format!("{}", at + 1) });
            };
            let left = p.len() - at - 1;
            if usize::from(said) != left {
                return Err(FrameError::PasswordLength { what: what(), said: usize::from(said), left });
            }
            Ok(Password(p[at + 1..].to_vec()))
        };
        let request = match frame.command {
            command::DISCOVERY => {
                if p.len() < 6 {
                    return Err(FrameError::BadLength { what: what(), got: p.len(), need: "6 or more".into() });
                }
                let options = Field::decode_all(&p[6..], &what())?;
                Request::Discovery { mac: mac_at(0), options }
            }
            command::SET_STATIC => {
                if p.len() < 18 {
                    return Err(FrameError::BadLength { what: what(), got: p.len(), need: "19 + password".into() });
                }
                let password = password_at(18)?;
                Request::SetStatic { ip: ip_at(0), mask: ip_at(4), gateway: ip_at(8), mac: mac_at(12), password }
            }
            command::REBOOT => {
                if p.len() < 6 {
                    return Err(FrameError::BadLength { what: what(), got: p.len(), need: "7 + password".into() });
                }
                let password = password_at(6)?;
                Request::Reboot { mac: mac_at(0), password }
            }
            command::DHCP => {
                if p.len() < 7 {
                    return Err(FrameError::BadLength { what: what(), got: p.len(), need: "8 + password".into() });
                }
                let enable = match p[0] {
                    0 => false,
                    1 => true,
                    value => return Err(FrameError::BadSwitch { what: what(), value }),
                };
                let password = password_at(7)?;
                Request::Dhcp { enable, mac: mac_at(1), password }
            }
            _ => return Ok(None),
        };
        Ok(Some(request))
    }
}

/// Result flag (field 0x0A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultFlag {
    Success,
    Failure,
    /// Neither 0x00 nor 0xFF: not success.
    Other(u8),
}

impl ResultFlag {
    fn from_byte(byte: u8) -> ResultFlag {
        match byte {
            0x00 => ResultFlag::Success,
            0xFF => ResultFlag::Failure,
            other => ResultFlag::Other(other),
        }
    }

    fn byte(self) -> u8 {
        match self {
            ResultFlag::Success => 0x00,
            ResultFlag::Failure => 0xFF,
            ResultFlag::Other(byte) => byte,
        }
    }
}

/// Error code (field 0x11), the vendor's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    None,
    AuthenticationFailure,
    AlreadyHasAddress,
    InvalidValue,
    InvalidData,
    UnsupportedCommand,
    UnableToSave,
    Unknown(u8),
}

impl ErrorCode {
    pub fn from_byte(byte: u8) -> ErrorCode {
        match byte {
            0 => ErrorCode::None,
            1 => ErrorCode::AuthenticationFailure,
            2 => ErrorCode::AlreadyHasAddress,
            3 => ErrorCode::InvalidValue,
            4 => ErrorCode::InvalidData,
            5 => ErrorCode::UnsupportedCommand,
            6 => ErrorCode::UnableToSave,
            other => ErrorCode::Unknown(other),
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            ErrorCode::None => 0,
            ErrorCode::AuthenticationFailure => 1,
            ErrorCode::AlreadyHasAddress => 2,
            ErrorCode::InvalidValue => 3,
            ErrorCode::InvalidData => 4,
            ErrorCode::UnsupportedCommand => 5,
            ErrorCode::UnableToSave => 6,
            ErrorCode::Unknown(byte) => byte,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::None => f.write_str("no error"),
            ErrorCode::AuthenticationFailure => f.write_str("authentication failure (wrong password)"),
            ErrorCode::AlreadyHasAddress => f.write_str("the unit already has an address"),
            ErrorCode::InvalidValue => f.write_str("invalid value"),
            ErrorCode::InvalidData => f.write_str("invalid data"),
            ErrorCode::UnsupportedCommand => f.write_str("unsupported command"),
            ErrorCode::UnableToSave => f.write_str("unable to save"),
            ErrorCode::Unknown(code) => write!(f, "error code {code} (not in the vendor's table)"),
        }
    }
}

/// One `type, length, value` field of a reply (or a discovery option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Mac(Mac),
    Ip(Ipv4Addr),
    Mask(Ipv4Addr),
    NetworkName(String),
    Domain(String),
    HardwareType(u8),
    HardwareRevision(u8),
    Firmware(String),
    ResultMessage(String),
    ResultFlag(ResultFlag),
    Gateway(Ipv4Addr),
    /// 0 none, 1 misconfigured (e.g. on another subnet than the asker).
    Advisory(u16),
    HardwareName(String),
    RealPort(u32),
    Dns(Ipv4Addr),
    /// `wide`: sent in 4 bytes (one product does) instead of 1; any non-zero
    /// value is on.
    Dhcp {
        enabled: bool,
        wide: bool,
    },
    ErrorCode(ErrorCode),
    SerialPorts(u8),
    SecureRealPort(u32),
    Version(u16),
    Guid([u8; 16]),
    InterfaceType(u8),
    Challenge([u8; 14]),
    /// A type this module does not know, or a known type with a width it
    /// does not expect: kept as received.
    Other {
        kind: u8,
        value: Vec<u8>,
    },
}

/// A text field's value; `None` when it is not UTF-8 (kept raw instead, so
/// it is written back as received: a lossy copy could outgrow its length byte).
fn text(value: &[u8]) -> Option<String> {
    // Devices pad some strings with NULs; they are not part of the text.
    std::str::from_utf8(value).ok().map(|t| t.trim_end_matches('\0').to_string())
}

impl Field {
    /// The field's type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Field::Mac(_) => 0x01,
            Field::Ip(_) => 0x02,
            Field::Mask(_) => 0x03,
            Field::NetworkName(_) => 0x04,
            Field::Domain(_) => 0x05,
            Field::HardwareType(_) => 0x06,
            Field::HardwareRevision(_) => 0x07,
            Field::Firmware(_) => 0x08,
            Field::ResultMessage(_) => 0x09,
            Field::ResultFlag(_) => 0x0A,
            Field::Gateway(_) => 0x0B,
            Field::Advisory(_) => 0x0C,
            Field::HardwareName(_) => 0x0D,
            Field::RealPort(_) => 0x0E,
            Field::Dns(_) => 0x0F,
            Field::Dhcp { .. } => 0x10,
            Field::ErrorCode(_) => 0x11,
            Field::SerialPorts(_) => 0x12,
            Field::SecureRealPort(_) => 0x13,
            Field::Version(_) => 0x14,
            Field::Guid(_) => 0x15,
            Field::InterfaceType(_) => 0x16,
            Field::Challenge(_) => 0x17,
            Field::Other { kind, .. } => *kind,
        }
    }

    /// Reads one field's value of type `kind`.
    fn from_value(kind: u8, value: &[u8]) -> Field {
        let ip = || Ipv4Addr::new(value[0], value[1], value[2], value[3]);
        let u32_be = || u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
        match (kind, value.len()) {
            (0x01, 6) => Field::Mac(Mac([value[0], value[1], value[2], value[3], value[4], value[5]])),
            (0x02, 4) => Field::Ip(ip()),
            (0x03, 4) => Field::Mask(ip()),
            (0x04, _) if text(value).is_some() => Field::NetworkName(text(value).expect("checked")),
            (0x05, _) if text(value).is_some() => Field::Domain(text(value).expect("checked")),
            (0x06, 1) => Field::HardwareType(value[0]),
            (0x07, 1) => Field::HardwareRevision(value[0]),
            (0x08, _) if text(value).is_some() => Field::Firmware(text(value).expect("checked")),
            (0x09, _) if text(value).is_some() => Field::ResultMessage(text(value).expect("checked")),
            (0x0A, 1) => Field::ResultFlag(ResultFlag::from_byte(value[0])),
            (0x0B, 4) => Field::Gateway(ip()),
            (0x0C, 2) => Field::Advisory(u16::from_be_bytes([value[0], value[1]])),
            (0x0D, _) if text(value).is_some() => Field::HardwareName(text(value).expect("checked")),
            (0x0E, 4) => Field::RealPort(u32_be()),
            (0x0F, 4) => Field::Dns(ip()),
            (0x10, 1) if value[0] <= 1 => Field::Dhcp { enabled: value[0] == 1, wide: false },
            (0x10, 4) if u32_be() <= 1 => Field::Dhcp { enabled: u32_be() == 1, wide: true },
            (0x11, 1) => Field::ErrorCode(ErrorCode::from_byte(value[0])),
            (0x12, 1) => Field::SerialPorts(value[0]),
            (0x13, 4) => Field::SecureRealPort(u32_be()),
            (0x14, 2) => Field::Version(u16::from_be_bytes([value[0], value[1]])),
            (0x15, 16) => Field::Guid(value.try_into().expect("16 bytes")),
            (0x16, 1) => Field::InterfaceType(value[0]),
            (0x17, 14) => Field::Challenge(value.try_into().expect("14 bytes")),
            _ => Field::Other { kind, value: value.to_vec() },
        }
    }

    /// Appends `type, length, value` to `out` (nothing on error: a text over
    /// 255 bytes does not fit the length byte).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let value: Vec<u8> = match self {
            Field::Mac(mac) => mac.0.to_vec(),
            Field::Ip(a) | Field::Mask(a) | Field::Gateway(a) | Field::Dns(a) => a.octets().to_vec(),
            Field::NetworkName(s)
            | Field::Domain(s)
            | Field::Firmware(s)
            | Field::ResultMessage(s)
            | Field::HardwareName(s) => s.as_bytes().to_vec(),
            Field::HardwareType(b) | Field::HardwareRevision(b) | Field::SerialPorts(b) | Field::InterfaceType(b) => {
                vec![*b]
            }
            Field::ResultFlag(flag) => vec![flag.byte()],
            Field::Advisory(v) | Field::Version(v) => v.to_be_bytes().to_vec(),
            Field::RealPort(v) | Field::SecureRealPort(v) => v.to_be_bytes().to_vec(),
            Field::Dhcp { enabled, wide: false } => vec![u8::from(*enabled)],
            Field::Dhcp { enabled, wide: true } => u32::from(*enabled).to_be_bytes().to_vec(),
            Field::ErrorCode(code) => vec![code.byte()],
            Field::Guid(guid) => guid.to_vec(),
            Field::Challenge(challenge) => challenge.to_vec(),
            Field::Other { value, .. } => value.clone(),
        };
        let len = u8::try_from(value.len()).map_err(|_| FrameError::BadLength {
            what: format!("field {:#04x}", self.kind()),
            got: value.len(),
            need: "at most 255".into(),
        })?;
        out.extend_from_slice(&[self.kind(), len]);
        out.extend_from_slice(&value);
        Ok(())
    }

    /// Reads fields until `payload` is used up; `what` names the message in errors.
    pub fn decode_all(payload: &[u8], what: &str) -> Result<Vec<Field>, FrameError> {
        let mut fields = Vec::new();
        let mut offset = 0;
        while offset < payload.len() {
            let kind = payload[offset];
            let Some(&length) = payload.get(offset + 1) else {
                return Err(FrameError::LoneByte { what: what.into(), kind, offset });
            };
            let start = offset + 2;
            let Some(value) = payload.get(start..start + usize::from(length)) else {
                return Err(FrameError::FieldOverrun {
                    what: what.into(),
                    kind,
                    offset,
                    length: usize::from(length),
                    left: payload.len() - start,
                });
            };
            fields.push(Field::from_value(kind, value));
            offset = start + usize::from(length);
        }
        Ok(fields)
    }
}

/// A reply: its cookie, command and fields in the order received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub cookie: Cookie,
    pub command: u16,
    pub fields: Vec<Field>,
}

impl Reply {
    /// Reads a reply frame. A request (odd command) is not a reply.
    pub fn from_frame(frame: &Frame) -> Result<Reply, FrameError> {
        let what = command::describe(frame.command);
        if frame.command % 2 == 1 {
            return Err(FrameError::UnexpectedCommand { what, expected: "a reply (an even command)".into() });
        }
        let fields = Field::decode_all(&frame.payload, &what)?;
        Ok(Reply { cookie: frame.cookie, command: frame.command, fields })
    }

    /// Decodes one reply from the start of `buf` (see [`Frame::decode`]).
    pub fn decode(buf: &[u8]) -> Result<Option<(Reply, usize)>, FrameError> {
        let Some((frame, used)) = Frame::decode(buf)? else { return Ok(None) };
        Ok(Some((Reply::from_frame(&frame)?, used)))
    }

    pub fn to_frame(&self) -> Result<Frame, FrameError> {
        let mut payload = Vec::new();
        for field in &self.fields {
            field.encode(&mut payload)?;
        }
        Ok(Frame { cookie: self.cookie, command: self.command, payload })
    }

    /// Appends the reply's bytes to `out` (nothing on error).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.to_frame()?.encode(out)
    }

    /// The first field `pick` accepts.
    fn first<T>(&self, pick: impl Fn(&Field) -> Option<T>) -> Option<T> {
        self.fields.iter().find_map(pick)
    }

    pub fn mac(&self) -> Option<Mac> {
        self.first(|f| if let Field::Mac(v) = f { Some(*v) } else { None })
    }

    pub fn result_flag(&self) -> Option<ResultFlag> {
        self.first(|f| if let Field::ResultFlag(v) = f { Some(*v) } else { None })
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        self.first(|f| if let Field::ErrorCode(v) = f { Some(*v) } else { None })
    }

    pub fn result_message(&self) -> Option<String> {
        self.first(|f| if let Field::ResultMessage(v) = f { Some(v.clone()) } else { None })
    }

    /// What a discovery reply says about the device.
    pub fn device(&self) -> DeviceInfo {
        let mut info = DeviceInfo { cookie: self.cookie, ..DeviceInfo::default() };
        for field in &self.fields {
            match field {
                Field::Mac(v) => info.mac = info.mac.or(Some(*v)),
                Field::Ip(v) => info.ip = info.ip.or(Some(*v)),
                Field::Mask(v) => info.mask = info.mask.or(Some(*v)),
                Field::Gateway(v) => info.gateway = info.gateway.or(Some(*v)),
                Field::Dns(v) => info.dns.push(*v),
                Field::Dhcp { enabled, .. } => info.dhcp = info.dhcp.or(Some(*enabled)),
                Field::NetworkName(v) => info.name = info.name.take().or(Some(v.clone())),
                Field::Domain(v) => info.domain = info.domain.take().or(Some(v.clone())),
                Field::HardwareName(v) => info.hardware = info.hardware.take().or(Some(v.clone())),
                Field::HardwareType(v) => info.hardware_type = info.hardware_type.or(Some(*v)),
                Field::HardwareRevision(v) => info.hardware_revision = info.hardware_revision.or(Some(*v)),
                Field::Firmware(v) => info.firmware = info.firmware.take().or(Some(v.clone())),
                Field::Advisory(v) => info.advisory = info.advisory.or(Some(*v)),
                Field::RealPort(v) => info.realport = info.realport.or(Some(*v)),
                Field::SecureRealPort(v) => info.secure_realport = info.secure_realport.or(Some(*v)),
                Field::SerialPorts(v) => info.serial_ports = info.serial_ports.or(Some(*v)),
                Field::Version(v) => info.version = info.version.or(Some(*v)),
                Field::Guid(v) => info.guid = info.guid.take().or(Some(guid_text(v))),
                _ => {}
            }
        }
        info
    }
}

/// A GUID in its usual text form.
pub fn guid_text(guid: &[u8; 16]) -> String {
    let hex: String = guid.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// A device as a discovery reply describes it (the first of each field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    pub mac: Option<Mac>,
    pub ip: Option<Ipv4Addr>,
    pub mask: Option<Ipv4Addr>,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub dhcp: Option<bool>,
    pub name: Option<String>,
    pub domain: Option<String>,
    pub hardware: Option<String>,
    pub hardware_type: Option<u8>,
    pub hardware_revision: Option<u8>,
    pub firmware: Option<String>,
    /// The device's own advisory field (1: misconfigured).
    pub advisory: Option<u16>,
    pub realport: Option<u32>,
    pub secure_realport: Option<u32>,
    pub serial_ports: Option<u8>,
    pub version: Option<u16>,
    pub guid: Option<String>,
    pub cookie: Cookie,
}

impl Default for Cookie {
    fn default() -> Cookie {
        Cookie::DVKT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
    }

    const CONNECT_ME: Mac = Mac([0x00, 0x40, 0x9d, 0x31, 0xa9, 0x0a]);
    const OTHER_ME: Mac = Mac([0x00, 0x40, 0x9d, 0x31, 0xa3, 0xa5]);
    fn dbps() -> Password {
        Password(b"dbps".to_vec())
    }

    const DISCOVERY_REPLY: &str = "44 49 47 49 00 02 00 60 01 06 00 40 9d 31 a9 0a
        02 04 0a 00 00 e7 03 04 ff ff ff 00 0b 04 0a 00
        00 01 0d 0f 44 69 67 69 20 43 6f 6e 6e 65 63 74
        20 4d 45 10 01 00 07 01 00 08 1e 56 65 72 73 69
        6f 6e 20 38 32 30 30 30 38 35 36 5f 46 36 20 30
        37 2f 32 31 2f 32 30 30 36 0e 04 00 00 03 03 13
        04 00 00 04 03 12 01 01";
    const SET_REPLY_OK: &str = "44 49 47 49 00 04 00 24 0a 01 00 09 14 4f 70 65
        72 61 74 69 6f 6e 20 53 75 63 63 65 73 73 66 75
        6c 11 01 00 01 06 00 40 9d 31 a9 0a";
    const SET_REPLY_REFUSED: &str = "44 49 47 49 00 04 00 1d 0a 01 ff 09 0d 49 6e 76
        61 6c 69 64 20 76 61 6c 75 65 11 01 03 01 06 00
        40 9d 31 a3 a5";

    fn encoded(request: &Request, cookie: Cookie) -> Vec<u8> {
        let mut out = Vec::new();
        request.encode(cookie, &mut out).unwrap();
        out
    }

    #[test]
    fn requests_encode_to_the_captures_byte_for_byte() {
        let cases = [
            (
                Request::Discovery { mac: BROADCAST_MAC, options: vec![] },
                Cookie::DIGI,
                "44 49 47 49 00 01 00 06 ff ff ff ff ff ff",
            ),
            (
                Request::discovery(BROADCAST_MAC),
                Cookie::DVKT,
                "44564b54 0001 001c ffffffffffff 15 10 bf6db409c83d44a3a36d21797d2f73f9 14 02 0200",
            ),
            (
                Request::SetStatic {
                    ip: Ipv4Addr::new(10, 0, 0, 9),
                    mask: Ipv4Addr::new(255, 255, 255, 0),
                    gateway: Ipv4Addr::new(10, 0, 0, 1),
                    mac: CONNECT_ME,
                    password: dbps(),
                },
                Cookie::DIGI,
                "44 49 47 49 00 03 00 17 0a 00 00 09 ff ff ff 00 0a 00 00 01 00 40 9d 31 a9 0a 04 64 62 70 73",
            ),
            (
                Request::Dhcp { enable: true, mac: OTHER_ME, password: dbps() },
                Cookie::DIGI,
                "44 49 47 49 00 07 00 0c 01 00 40 9d 31 a3 a5 04 64 62 70 73",
            ),
            (
                Request::Reboot { mac: CONNECT_ME, password: dbps() },
                Cookie::DIGI,
                "44 49 47 49 00 05 00 0b 00 40 9d 31 a9 0a 04 64 62 70 73",
            ),
        ];
        for (request, cookie, capture) in cases {
            let bytes = hex(capture);
            assert_eq!(encoded(&request, cookie), bytes, "{request:?}");
            // And a device reads the capture back to the same request.
            let (frame, used) = Frame::decode(&bytes).unwrap().unwrap();
            assert_eq!((used, frame.cookie), (bytes.len(), cookie));
            assert_eq!(Request::decode(&frame).unwrap(), Some(request));
        }
    }

    #[test]
    fn the_discovery_reply_capture_decodes_to_its_fields_and_back() {
        let bytes = hex(DISCOVERY_REPLY);
        let (reply, used) = Reply::decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!((reply.cookie, reply.command), (Cookie::DIGI, command::DISCOVERY_REPLY));
        let device = reply.device();
        assert_eq!(device.mac, Some(CONNECT_ME));
        assert_eq!(device.ip, Some(Ipv4Addr::new(10, 0, 0, 231)));
        assert_eq!(device.mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(device.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(device.hardware.as_deref(), Some("Digi Connect ME"));
        assert_eq!(device.dhcp, Some(false));
        assert_eq!(device.hardware_revision, Some(0));
        assert_eq!(device.firmware.as_deref(), Some("Version 82000856_F6 07/21/2006"));
        assert_eq!((device.realport, device.secure_realport, device.serial_ports), (Some(771), Some(1027), Some(1)));
        assert!(!reply.fields.iter().any(|f| matches!(f, Field::Other { .. })), "{:?}", reply.fields);
        let mut out = Vec::new();
        reply.encode(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn the_operation_replies_decode_to_flag_error_and_message() {
        let ok = Reply::decode(&hex(SET_REPLY_OK)).unwrap().unwrap().0;
        assert_eq!(ok.command, command::SET_STATIC_REPLY);
        assert_eq!(ok.result_flag(), Some(ResultFlag::Success));
        assert_eq!(ok.error_code(), Some(ErrorCode::None));
        assert_eq!(ok.result_message().as_deref(), Some("Operation Successful"));
        assert_eq!(ok.mac(), Some(CONNECT_ME));
        let refused = Reply::decode(&hex(SET_REPLY_REFUSED)).unwrap().unwrap().0;
        assert_eq!(refused.result_flag(), Some(ResultFlag::Failure));
        assert_eq!(refused.error_code(), Some(ErrorCode::InvalidValue));
        assert_eq!(refused.result_message().as_deref(), Some("Invalid value"));
        assert_eq!(refused.mac(), Some(OTHER_ME));
        for (reply, capture) in [(ok, SET_REPLY_OK), (refused, SET_REPLY_REFUSED)] {
            let mut out = Vec::new();
            reply.encode(&mut out).unwrap();
            assert_eq!(out, hex(capture));
        }
    }

    #[test]
    fn every_prefix_needs_more_and_every_split_reads_the_same() {
        let bytes = hex(DISCOVERY_REPLY);
        for cut in 0..bytes.len() {
            assert_eq!(Reply::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        // Bytes after the frame are not part of it.
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"DVKT");
        assert_eq!(Reply::decode(&longer).unwrap().unwrap().1, bytes.len());
    }

    #[test]
    fn lenient_where_devices_differ() {
        let mut payload = Vec::new();
        // DHCP in 4 bytes, two DNS servers, an unknown type, an IP of 3 bytes.
        payload.extend_from_slice(&[0x10, 4, 0, 0, 0, 1]);
        payload.extend_from_slice(&[0x0f, 4, 10, 0, 0, 53, 0x0f, 4, 10, 0, 0, 54]);
        payload.extend_from_slice(&[0x42, 3, 1, 2, 3]);
        payload.extend_from_slice(&[0x02, 3, 1, 2, 3]);
        payload.extend_from_slice(&[0x10, 1, 7]);
        let frame = Frame { cookie: Cookie::DVKT, command: command::DISCOVERY_REPLY, payload: payload.clone() };
        let reply = Reply::from_frame(&frame).unwrap();
        let device = reply.device();
        assert_eq!(device.dhcp, Some(true));
        assert_eq!(device.dns, [Ipv4Addr::new(10, 0, 0, 53), Ipv4Addr::new(10, 0, 0, 54)]);
        assert_eq!(device.ip, None);
        assert_eq!(reply.fields[3], Field::Other { kind: 0x42, value: vec![1, 2, 3] });
        assert_eq!(reply.fields[5], Field::Other { kind: 0x10, value: vec![7] });
        // Found by the fuzz target: text that is not UTF-8 is kept raw, so it
        // is written back as received (a lossy copy grew past 255 bytes).
        let latin1 = Reply::from_frame(&Frame {
            cookie: Cookie::DVKT,
            command: command::DISCOVERY_REPLY,
            payload: [&[0x04u8, 200][..], &[0xc1; 200][..]].concat(),
        })
        .unwrap();
        assert_eq!(latin1.fields, [Field::Other { kind: 0x04, value: vec![0xc1; 200] }]);
        assert_eq!(latin1.to_frame().unwrap().payload.len(), 202);
        assert_eq!(reply.to_frame().unwrap().payload, payload);
    }

    #[test]
    fn invalid_replies_and_requests_say_what_is_wrong() {
        let frame = |command, payload: &[u8]| Frame { cookie: Cookie::DVKT, command, payload: payload.to_vec() };
        let overrun = Reply::from_frame(&frame(2, &[0x01, 6, 0, 0x40])).unwrap_err();
        assert_eq!(
            overrun.to_string(),
            "discovery reply: field 0x01 at payload offset 0 says 6 bytes but only 2 remain"
        );
        let lone = Reply::from_frame(&frame(4, &[0x0a, 1, 0, 0x09])).unwrap_err();
        assert!(lone.to_string().contains("lone byte 0x09 at payload offset 3"), "{lone}");
        assert!(Reply::from_frame(&frame(1, &[])).is_err(), "a request is not a reply");
        // Digi's server drops a set whose length is not 19 + password.
        let short = frame(3, &hex("0a000009 ffffff00 0a000001 00409d31a90a 05 64627073"));
        assert!(matches!(Request::decode(&short), Err(FrameError::PasswordLength { said: 5, left: 4, .. })));
        assert!(matches!(Request::decode(&frame(7, &hex("02 00409d31a3a5 00"))), Err(FrameError::BadSwitch { .. })));
        assert!(matches!(Request::decode(&frame(5, &[0; 5])), Err(FrameError::BadLength { .. })));
        assert_eq!(Request::decode(&frame(9, &[])), Ok(None));
    }

    #[test]
    fn passwords_are_never_shown() {
        let request = Request::Reboot { mac: CONNECT_ME, password: Password(b"s3cret".to_vec()) };
        assert!(!format!("{request:?}").contains("s3cret"));
    }

    fn any_field() -> impl Strategy<Value = Field> {
        let ip = any::<[u8; 4]>().prop_map(Ipv4Addr::from);
        let text = "[ -~]{0,40}";
        prop_oneof![
            any::<[u8; 6]>().prop_map(|m| Field::Mac(Mac(m))),
            ip.clone().prop_map(Field::Ip),
            ip.clone().prop_map(Field::Mask),
            ip.clone().prop_map(Field::Gateway),
            ip.prop_map(Field::Dns),
            text.prop_map(Field::NetworkName),
            text.prop_map(Field::Firmware),
            text.prop_map(Field::HardwareName),
            text.prop_map(Field::ResultMessage),
            any::<u8>().prop_map(|b| Field::ResultFlag(ResultFlag::from_byte(b))),
            any::<u8>().prop_map(|b| Field::ErrorCode(ErrorCode::from_byte(b))),
            (any::<bool>(), any::<bool>()).prop_map(|(enabled, wide)| Field::Dhcp { enabled, wide }),
            any::<u16>().prop_map(Field::Advisory),
            any::<u32>().prop_map(Field::RealPort),
            any::<[u8; 16]>().prop_map(Field::Guid),
            any::<[u8; 14]>().prop_map(Field::Challenge),
            (0x18u8.., proptest::collection::vec(any::<u8>(), 0..20))
                .prop_map(|(kind, value)| Field::Other { kind, value }),
        ]
    }

    proptest! {
        #[test]
        fn replies_round_trip(fields in proptest::collection::vec(any_field(), 0..12), command in 0u16..6) {
            let reply = Reply { cookie: Cookie::DVKT, command: command * 2, fields };
            let mut out = Vec::new();
            reply.encode(&mut out).unwrap();
            let (back, used) = Reply::decode(&out).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(back, reply);
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(Some((frame, used))) = Frame::decode(&bytes) {
                prop_assert!(used <= bytes.len());
                let mut out = Vec::new();
                frame.encode(&mut out).unwrap();
                prop_assert_eq!(&out[..], &bytes[..used]);
                if let Ok(reply) = Reply::from_frame(&frame) {
                    let _ = reply.device();
                    // What was read can be written back (text padded with
                    // NULs comes back shorter).
                    prop_assert!(reply.to_frame().is_ok());
                }
                if let Ok(Some(request)) = Request::decode(&frame) {
                    prop_assert!(request.to_frame(frame.cookie).is_ok());
                }
            }
        }
    }
}
