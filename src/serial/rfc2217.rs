//! The telnet (RFC 854/855) and RFC 2217 COM-PORT-OPTION codec, as pure code:
//! [`decode`] turns received bytes into [`Frame`]s (data, option negotiation,
//! subnegotiation, other commands), telling "need more bytes" apart from
//! "invalid"; [`encode`] and [`escape_data`] write frames and data (IAC
//! doubled); [`ComPortCommand`] builds the client's COM-PORT requests and
//! reads the server's replies (command + 100); [`Negotiator`] is the client's
//! option policy (BINARY and SUPPRESS-GO-AHEAD both ways, COM-PORT-OPTION
//! from us), answering each change once so two peers never loop.
//!
//! No I/O here: `remote.rs` drives it over a TCP stream. It does not do
//! NVT text processing (CR NUL), which BINARY mode turns off.

use super::settings::Parity;

/// Interpret As Command: starts every telnet command; doubled in data.
pub const IAC: u8 = 0xFF;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
/// Subnegotiation begin and end.
pub const SB: u8 = 250;
pub const SE: u8 = 240;
pub const NOP: u8 = 241;

/// Telnet options this client knows.
pub const OPT_BINARY: u8 = 0;
pub const OPT_SUPPRESS_GO_AHEAD: u8 = 3;
pub const OPT_COM_PORT: u8 = 44;

/// Longest subnegotiation accepted (RFC 2217's longest is a signature text).
pub const MAX_SUBNEGOTIATION: usize = 1024;

/// One unit of the received stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Data bytes, IAC IAC already turned back into one 0xFF.
    Data(Vec<u8>),
    /// WILL, WONT, DO or DONT for an option.
    Negotiate { verb: u8, option: u8 },
    /// IAC SB option payload IAC SE (payload unescaped).
    Subnegotiation { option: u8, payload: Vec<u8> },
    /// Another two-byte command (NOP, GA, BRK, AYT...).
    Command(u8),
}

/// Why received bytes are not telnet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("telnet: IAC followed by 0x{0:02X}, which is no command")]
    UnknownCommand(u8),
    #[error("telnet: IAC 0x{0:02X} inside a subnegotiation (only IAC IAC and IAC SE may appear there)")]
    BadSubnegotiation(u8),
    #[error("telnet: a subnegotiation longer than {MAX_SUBNEGOTIATION} bytes")]
    SubnegotiationTooLong,
}

/// Decodes one frame from the start of `buf`: the frame and the bytes it
/// used, `Ok(None)` when `buf` ends inside a command (need more bytes).
/// A data frame takes every byte up to the next IAC.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, CodecError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    if first != IAC {
        let len = buf.iter().position(|&b| b == IAC).unwrap_or(buf.len());
        return Ok(Some((Frame::Data(buf[..len].to_vec()), len)));
    }
    let Some(&command) = buf.get(1) else { return Ok(None) };
    match command {
        IAC => Ok(Some((Frame::Data(vec![IAC]), 2))),
        WILL | WONT | DO | DONT => match buf.get(2) {
            Some(&option) => Ok(Some((Frame::Negotiate { verb: command, option }, 3))),
            None => Ok(None),
        },
        SB => decode_subnegotiation(buf),
        // SE outside a subnegotiation is tolerated as a bare command.
        SE..=249 => Ok(Some((Frame::Command(command), 2))),
        other => Err(CodecError::UnknownCommand(other)),
    }
}

fn decode_subnegotiation(buf: &[u8]) -> Result<Option<(Frame, usize)>, CodecError> {
    let Some(&option) = buf.get(2) else { return Ok(None) };
    let mut payload = Vec::new();
    let mut at = 3;
    loop {
        if payload.len() > MAX_SUBNEGOTIATION {
            return Err(CodecError::SubnegotiationTooLong);
        }
        let Some(&byte) = buf.get(at) else { return Ok(None) };
        if byte != IAC {
            payload.push(byte);
            at += 1;
            continue;
        }
        match buf.get(at + 1) {
            None => return Ok(None),
            Some(&IAC) => payload.push(IAC),
            Some(&SE) => return Ok(Some((Frame::Subnegotiation { option, payload }, at + 2))),
            Some(&other) => return Err(CodecError::BadSubnegotiation(other)),
        }
        at += 2;
    }
}

/// Appends `data` with every 0xFF doubled.
pub fn escape_data(data: &[u8], out: &mut Vec<u8>) {
    for &byte in data {
        out.push(byte);
        if byte == IAC {
            out.push(IAC);
        }
    }
}

/// Appends `frame` in its wire form.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    match frame {
        Frame::Data(data) => escape_data(data, out),
        Frame::Negotiate { verb, option } => out.extend_from_slice(&[IAC, *verb, *option]),
        Frame::Subnegotiation { option, payload } => {
            out.extend_from_slice(&[IAC, SB, *option]);
            escape_data(payload, out);
            out.extend_from_slice(&[IAC, SE]);
        }
        Frame::Command(command) => out.extend_from_slice(&[IAC, *command]),
    }
}

/// What PURGE-DATA clears (RFC 2217).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Purge {
    Receive = 1,
    Transmit = 2,
    Both = 3,
}

/// The client's COM-PORT-OPTION requests this crate sends (client to server
/// numbers; the server answers with the same command + 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComPortCommand {
    /// SET-BAUDRATE (1), four bytes, network order; 0 asks the current one.
    SetBaud(u32),
    /// SET-DATASIZE (2): 5 to 8; 0 asks.
    SetDataSize(u8),
    /// SET-PARITY (3): 1 none, 2 odd, 3 even, 4 mark, 5 space; 0 asks.
    SetParity(u8),
    /// SET-STOPSIZE (4): 1 one, 2 two, 3 one and a half; 0 asks.
    SetStopSize(u8),
    /// PURGE-DATA (12).
    Purge(Purge),
}

impl ComPortCommand {
    pub const SET_BAUDRATE: u8 = 1;
    pub const SET_DATASIZE: u8 = 2;
    pub const SET_PARITY: u8 = 3;
    pub const SET_STOPSIZE: u8 = 4;
    pub const PURGE_DATA: u8 = 12;
    /// Added to a command number in the server's reply.
    pub const SERVER_OFFSET: u8 = 100;

    /// The RFC 2217 value of a profile's parity.
    pub fn parity_value(parity: Parity) -> u8 {
        match parity {
            Parity::None => 1,
            Parity::Odd => 2,
            Parity::Even => 3,
        }
    }

    /// The command number (client to server).
    pub fn number(&self) -> u8 {
        match self {
            ComPortCommand::SetBaud(_) => Self::SET_BAUDRATE,
            ComPortCommand::SetDataSize(_) => Self::SET_DATASIZE,
            ComPortCommand::SetParity(_) => Self::SET_PARITY,
            ComPortCommand::SetStopSize(_) => Self::SET_STOPSIZE,
            ComPortCommand::Purge(_) => Self::PURGE_DATA,
        }
    }

    /// The subnegotiation frame of this request.
    pub fn frame(&self) -> Frame {
        let mut payload = vec![self.number()];
        match *self {
            ComPortCommand::SetBaud(baud) => payload.extend_from_slice(&baud.to_be_bytes()),
            ComPortCommand::SetDataSize(v) | ComPortCommand::SetParity(v) | ComPortCommand::SetStopSize(v) => {
                payload.push(v)
            }
            ComPortCommand::Purge(what) => payload.push(what as u8),
        }
        Frame::Subnegotiation { option: OPT_COM_PORT, payload }
    }
}

/// A COM-PORT-OPTION subnegotiation from the server: the client command it
/// answers (its number minus 100) and the value it reports. Notifications
/// (line and modem state) and commands this crate does not send come as
/// `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComPortReply {
    /// The command answered and its value (a baud rate, or a one-byte
    /// setting widened).
    Ack {
        command: u8,
        value: u32,
    },
    Other {
        command: u8,
    },
    /// A reply too short for its command.
    Malformed {
        command: u8,
    },
}

impl ComPortReply {
    /// Reads a COM-PORT-OPTION payload (after the option byte).
    pub fn parse(payload: &[u8]) -> Option<ComPortReply> {
        let (&number, value) = payload.split_first()?;
        let Some(command) = number.checked_sub(ComPortCommand::SERVER_OFFSET) else {
            return Some(ComPortReply::Other { command: number });
        };
        let reply = match command {
            ComPortCommand::SET_BAUDRATE => match <[u8; 4]>::try_from(value) {
                Ok(bytes) => ComPortReply::Ack { command, value: u32::from_be_bytes(bytes) },
                Err(_) => ComPortReply::Malformed { command },
            },
            ComPortCommand::SET_DATASIZE
            | ComPortCommand::SET_PARITY
            | ComPortCommand::SET_STOPSIZE
            | ComPortCommand::PURGE_DATA => match value.first() {
                Some(&v) => ComPortReply::Ack { command, value: u32::from(v) },
                None => ComPortReply::Malformed { command },
            },
            _ => ComPortReply::Other { command },
        };
        Some(reply)
    }
}

/// The client's telnet option policy: we want BINARY and SUPPRESS-GO-AHEAD
/// both ways and COM-PORT-OPTION on our side; everything else is refused.
/// An answer is sent only when an option's state changes and not for the
/// reply to our own request (RFC 854's rule), and at most
/// [`ANSWERS_PER_OPTION`] times per option: a peer whose requests flip an
/// option back and forth (DONT then DO, as a confused or hostile server
/// sends) could otherwise keep two such rule-followers answering each
/// other for ever, the loop RFC 1143 describes.
#[derive(Debug, Clone)]
pub struct Negotiator {
    /// Options we perform (our WILL accepted by their DO).
    ours: [bool; 256],
    /// Options they perform (their WILL accepted by our DO).
    theirs: [bool; 256],
    /// Our WILL sent, their answer not seen yet.
    asked_ours: [bool; 256],
    /// Our DO sent, their answer not seen yet.
    asked_theirs: [bool; 256],
    /// The server said DONT COM-PORT-OPTION.
    com_port_refused: bool,
    /// Answers sent per option.
    answered: [u8; 256],
}

/// How many answers one option gets at most in a connection. A server
/// negotiates an option once or twice; more is a loop.
pub const ANSWERS_PER_OPTION: u8 = 8;

impl Default for Negotiator {
    fn default() -> Self {
        Negotiator::new()
    }
}

impl Negotiator {
    pub fn new() -> Negotiator {
        Negotiator {
            ours: [false; 256],
            theirs: [false; 256],
            asked_ours: [false; 256],
            asked_theirs: [false; 256],
            com_port_refused: false,
            answered: [0; 256],
        }
    }

    /// What the client sends first: WILL and DO BINARY, WILL and DO
    /// SUPPRESS-GO-AHEAD, WILL COM-PORT-OPTION.
    pub fn opening(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        for option in [OPT_BINARY, OPT_SUPPRESS_GO_AHEAD] {
            self.asked_ours[usize::from(option)] = true;
            self.asked_theirs[usize::from(option)] = true;
            frames.push(Frame::Negotiate { verb: WILL, option });
            frames.push(Frame::Negotiate { verb: DO, option });
        }
        self.asked_ours[usize::from(OPT_COM_PORT)] = true;
        frames.push(Frame::Negotiate { verb: WILL, option: OPT_COM_PORT });
        frames
    }

    fn wanted_ours(option: u8) -> bool {
        matches!(option, OPT_BINARY | OPT_SUPPRESS_GO_AHEAD | OPT_COM_PORT)
    }

    fn wanted_theirs(option: u8) -> bool {
        matches!(option, OPT_BINARY | OPT_SUPPRESS_GO_AHEAD)
    }

    /// Whether the server agreed to COM-PORT-OPTION (said DO).
    pub fn com_port_agreed(&self) -> bool {
        self.ours[usize::from(OPT_COM_PORT)]
    }

    /// Whether the server refused COM-PORT-OPTION (said DONT).
    pub fn com_port_refused(&self) -> bool {
        self.com_port_refused
    }

    /// The answer to one negotiation from the server, if any is due.
    pub fn answer(&mut self, verb: u8, option: u8) -> Option<Frame> {
        let reply = self.next_state(verb, option)?;
        let answered = &mut self.answered[usize::from(option)];
        if *answered >= ANSWERS_PER_OPTION {
            return None;
        }
        *answered += 1;
        Some(reply)
    }

    /// Takes the server's `verb` for `option` into the state; the answer
    /// RFC 854 calls for, if any.
    fn next_state(&mut self, verb: u8, option: u8) -> Option<Frame> {
        let index = usize::from(option);
        match verb {
            DO | DONT => {
                let asked = std::mem::replace(&mut self.asked_ours[index], false);
                let want = verb == DO && Self::wanted_ours(option);
                if verb == DONT && option == OPT_COM_PORT {
                    self.com_port_refused = true;
                }
                let was = std::mem::replace(&mut self.ours[index], want);
                let reply = Frame::Negotiate { verb: if want { WILL } else { WONT }, option };
                // Their reply to our request, or no change: nothing to say.
                (!asked && (was != want || (!want && verb == DO))).then_some(reply)
            }
            WILL | WONT => {
                let asked = std::mem::replace(&mut self.asked_theirs[index], false);
                let want = verb == WILL && Self::wanted_theirs(option);
                let was = std::mem::replace(&mut self.theirs[index], want);
                let reply = Frame::Negotiate { verb: if want { DO } else { DONT }, option };
                (!asked && (was != want || (!want && verb == WILL))).then_some(reply)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(mut bytes: &[u8]) -> Result<Vec<Frame>, CodecError> {
        let mut frames = Vec::new();
        while let Some((frame, used)) = decode(bytes)? {
            frames.push(frame);
            bytes = &bytes[used..];
        }
        assert!(bytes.is_empty(), "left over: {bytes:?}");
        Ok(frames)
    }

    /// Joins adjacent data frames (a split may cut a data run in two).
    fn joined(frames: Vec<Frame>) -> Vec<Frame> {
        let mut out: Vec<Frame> = Vec::new();
        for frame in frames {
            if let (Some(Frame::Data(last)), Frame::Data(more)) = (out.last_mut(), &frame) {
                last.extend_from_slice(more);
                continue;
            }
            out.push(frame);
        }
        out
    }

    /// Found by the rfc2217_frames fuzz target: a peer's DONT then DO for
    /// an option both sides want kept two negotiators answering each other
    /// for ever (WONT/WILL, DONT/DO, ...). Each option gets a bounded number
    /// of answers, so it ends.
    #[test]
    fn a_peer_flipping_an_option_does_not_keep_two_negotiators_answering() {
        let mut ours = Negotiator::new();
        let mut theirs = Negotiator::new();
        let flip = |n: &mut Negotiator, frames: Vec<Frame>| -> Vec<Frame> {
            frames
                .into_iter()
                .filter_map(|f| match f {
                    Frame::Negotiate { verb, option } => n.answer(verb, option),
                    _ => None,
                })
                .collect()
        };
        let mut to_us = theirs.opening();
        to_us.extend([
            Frame::Negotiate { verb: DONT, option: OPT_SUPPRESS_GO_AHEAD },
            Frame::Negotiate { verb: DO, option: OPT_SUPPRESS_GO_AHEAD },
        ]);
        let mut to_them = ours.opening();
        let mut rounds = 0;
        while !(to_us.is_empty() && to_them.is_empty()) {
            rounds += 1;
            assert!(rounds <= 64, "still answering after {rounds} rounds");
            let from_us = flip(&mut ours, std::mem::take(&mut to_us));
            to_us = flip(&mut theirs, std::mem::take(&mut to_them));
            to_them = from_us;
        }
        // BINARY, untouched by the flipping, was agreed both ways.
        assert!(ours.ours[usize::from(OPT_BINARY)] && ours.theirs[usize::from(OPT_BINARY)]);
    }

    #[test]
    fn rfc854_commands_and_escaped_data() {
        // RFC 854: IAC = 255, WILL 251, WONT 252, DO 253, DONT 254, SB 250, SE 240.
        assert_eq!(decode(&[255, 251, 44]).unwrap(), Some((Frame::Negotiate { verb: WILL, option: 44 }, 3)));
        assert_eq!(decode(&[255, 253, 0, 9]).unwrap(), Some((Frame::Negotiate { verb: DO, option: 0 }, 3)));
        assert_eq!(decode(&[255, 255, 1]).unwrap(), Some((Frame::Data(vec![0xFF]), 2)));
        assert_eq!(decode(&[255, 241]).unwrap(), Some((Frame::Command(NOP), 2)));
        assert_eq!(decode(b"ab\xFF\xFF").unwrap(), Some((Frame::Data(b"ab".to_vec()), 2)));
        assert_eq!(
            decode_all(b"C\x00\xFF\xFF\x15").unwrap(),
            vec![Frame::Data(b"C\x00".to_vec()), Frame::Data(vec![0xFF]), Frame::Data(vec![0x15])]
        );
    }

    #[test]
    fn need_more_is_not_invalid() {
        for partial in [&[][..], &[255], &[255, 251], &[255, 250], &[255, 250, 44], &[255, 250, 44, 101, 255]] {
            assert_eq!(decode(partial), Ok(None), "{partial:?}");
        }
        assert_eq!(decode(&[255, 0x10]), Err(CodecError::UnknownCommand(0x10)));
        assert_eq!(decode(&[255, 250, 44, 101, 255, 1]), Err(CodecError::BadSubnegotiation(1)));
        let mut long = vec![255, 250, 44];
        long.extend(std::iter::repeat_n(7u8, MAX_SUBNEGOTIATION + 2));
        assert_eq!(decode(&long), Err(CodecError::SubnegotiationTooLong));
    }

    #[test]
    fn rfc2217_requests_as_on_the_wire() {
        let wire = |command: ComPortCommand| {
            let mut out = Vec::new();
            encode(&command.frame(), &mut out);
            out
        };
        // IAC SB COM-PORT-OPTION SET-BAUDRATE <value(4)> IAC SE: 115200 = 0x0001C200.
        assert_eq!(wire(ComPortCommand::SetBaud(115_200)), [255, 250, 44, 1, 0x00, 0x01, 0xC2, 0x00, 255, 240]);
        assert_eq!(wire(ComPortCommand::SetDataSize(8)), [255, 250, 44, 2, 8, 255, 240]);
        assert_eq!(
            wire(ComPortCommand::SetParity(ComPortCommand::parity_value(Parity::Even))),
            [255, 250, 44, 3, 3, 255, 240]
        );
        assert_eq!(wire(ComPortCommand::SetStopSize(1)), [255, 250, 44, 4, 1, 255, 240]);
        assert_eq!(wire(ComPortCommand::Purge(Purge::Both)), [255, 250, 44, 12, 3, 255, 240]);
        // A baud whose bytes hold 0xFF is escaped inside the subnegotiation.
        assert_eq!(wire(ComPortCommand::SetBaud(0x0000_FF00)), [255, 250, 44, 1, 0, 0, 255, 255, 0, 255, 240]);
    }

    #[test]
    fn rfc2217_server_replies() {
        // The server answers SET-BAUDRATE with 101 and the speed it set.
        let (frame, used) = decode(&[255, 250, 44, 101, 0x00, 0x01, 0xC2, 0x00, 255, 240]).unwrap().unwrap();
        assert_eq!(used, 10);
        let Frame::Subnegotiation { option: OPT_COM_PORT, payload } = frame else { panic!("{frame:?}") };
        assert_eq!(ComPortReply::parse(&payload), Some(ComPortReply::Ack { command: 1, value: 115_200 }));
        assert_eq!(ComPortReply::parse(&[102, 8]), Some(ComPortReply::Ack { command: 2, value: 8 }));
        assert_eq!(ComPortReply::parse(&[112, 3]), Some(ComPortReply::Ack { command: 12, value: 3 }));
        // NOTIFY-MODEMSTATE (107) is a notification, not an answer to us.
        assert_eq!(ComPortReply::parse(&[107, 0x30]), Some(ComPortReply::Other { command: 7 }));
        assert_eq!(ComPortReply::parse(&[101, 0, 1]), Some(ComPortReply::Malformed { command: 1 }));
        assert_eq!(ComPortReply::parse(&[]), None);
    }

    #[test]
    fn every_split_of_a_session_decodes_the_same() {
        let wire: &[u8] = &[
            255, 251, 3, 255, 253, 44, b'N', b'E', b'T', 255, 255, 0, 255, 250, 44, 101, 0, 0, 37, 128, 255, 240, b'+',
            255, 250, 44, 107, 255, 255, 255, 240, 255, 241, b'!',
        ];
        let whole = joined(decode_all(wire).unwrap());
        for split in 0..=wire.len() {
            let mut buffer = Vec::new();
            let mut frames = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                buffer.extend_from_slice(part);
                while let Some((frame, used)) = decode(&buffer).unwrap() {
                    frames.push(frame);
                    buffer.drain(..used);
                }
            }
            assert!(buffer.is_empty(), "split {split}");
            assert_eq!(joined(frames), whole, "split at {split}");
        }
        assert!(whole.contains(&Frame::Subnegotiation { option: 44, payload: vec![107, 255] }));
    }

    #[test]
    fn negotiation_answers_once_and_refuses_the_unknown() {
        let mut n = Negotiator::new();
        assert_eq!(n.opening().len(), 5);
        // Their DO COM-PORT answers our WILL: nothing more to say.
        assert_eq!(n.answer(DO, OPT_COM_PORT), None);
        assert!(n.com_port_agreed());
        assert_eq!(n.answer(DO, OPT_COM_PORT), None, "no answer to a repeat");
        assert_eq!(n.answer(WILL, OPT_BINARY), None);
        // ECHO (1) and TERMINAL-TYPE (24) are refused.
        assert_eq!(n.answer(WILL, 1), Some(Frame::Negotiate { verb: DONT, option: 1 }));
        assert_eq!(n.answer(DO, 24), Some(Frame::Negotiate { verb: WONT, option: 24 }));
        assert_eq!(n.answer(DONT, OPT_COM_PORT), Some(Frame::Negotiate { verb: WONT, option: OPT_COM_PORT }));
        assert!(n.com_port_refused() && !n.com_port_agreed());
        assert_eq!(n.answer(DONT, OPT_COM_PORT), None);
    }

    proptest! {
        /// Any data escaped then decoded, cut anywhere, comes back exact.
        #[test]
        fn escaped_data_round_trips(data in proptest::collection::vec(any::<u8>(), 0..600), cut in any::<prop::sample::Index>()) {
            let mut wire = Vec::new();
            escape_data(&data, &mut wire);
            let cut = cut.index(wire.len() + 1);
            let mut buffer = Vec::new();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buffer.extend_from_slice(part);
                while let Some((frame, used)) = decode(&buffer).unwrap() {
                    let Frame::Data(bytes) = frame else { panic!("{frame:?}") };
                    got.extend_from_slice(&bytes);
                    buffer.drain(..used);
                }
            }
            prop_assert!(buffer.is_empty());
            prop_assert_eq!(got, data);
        }

        /// Arbitrary bytes never panic the decoder, and every frame it gives
        /// consumes at least one byte.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut rest = &bytes[..];
            while let Ok(Some((frame, used))) = decode(rest) {
                prop_assert!(used > 0 && used <= rest.len(), "{frame:?}");
                rest = &rest[used..];
            }
        }

        /// Subnegotiations round trip through encode and decode.
        #[test]
        fn subnegotiations_round_trip(option in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let frame = Frame::Subnegotiation { option, payload };
            let mut wire = Vec::new();
            encode(&frame, &mut wire);
            prop_assert_eq!(decode(&wire).unwrap(), Some((frame, wire.len())));
        }
    }
}
