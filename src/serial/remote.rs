//! Serial ports over the network: `rfc2217://HOST:PORT` (a telnet
//! COM-PORT-OPTION server such as ser2net's `telnet(rfc2217)` accepter) and
//! `tcp://HOST:PORT` (a raw TCP serial server: bytes as they are, the line
//! settings fixed at the server).
//!
//! [`RemoteName::parse`] reads the names; [`connect`] opens the connection
//! with a deadline, negotiates the options, sets baud, data bits, parity and
//! stop bits, purges both directions, and waits a bounded time for the
//! server's acknowledgments (a server that never answers is tolerated and
//! logged, never waited on for ever). [`Rfc2217Stream`] is the
//! `AsyncRead + AsyncWrite` adapter over the TCP stream that escapes IAC
//! bytes going out and decodes telnet coming in (with
//! [`rfc2217`](super::rfc2217), the pure codec). This module does not send
//! control-line requests (DTR, RTS, BREAK) or flow control settings.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::rfc2217::{self, ComPortCommand, ComPortReply, Frame, Negotiator, OPT_COM_PORT, Purge};
use super::settings::{FlowControl, SerialSettings};
use crate::failure::{Classify, FailureClass};

/// How a remote port is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// Telnet with COM-PORT-OPTION (RFC 2217).
    Rfc2217,
    /// Raw TCP: the bytes are the line's.
    RawTcp,
}

/// A parsed `rfc2217://HOST:PORT` or `tcp://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteName {
    pub kind: RemoteKind,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for RemoteName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.kind {
            RemoteKind::Rfc2217 => "rfc2217",
            RemoteKind::RawTcp => "tcp",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl RemoteName {
    /// `Ok(None)` when `name` is not a network name at all (a local path);
    /// an error for a network name that is malformed.
    pub fn parse(name: &str) -> Result<Option<RemoteName>, String> {
        let (kind, rest) = if let Some(rest) = name.strip_prefix("rfc2217://") {
            (RemoteKind::Rfc2217, rest)
        } else if let Some(rest) = name.strip_prefix("tcp://") {
            (RemoteKind::RawTcp, rest)
        } else {
            return Ok(None);
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or("an IPv6 address needs its closing `]`")?;
            // Brackets hold an IPv6 address and nothing else (RFC 3986).
            if !host.is_empty() && host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("`[{host}]` is not an IPv6 address"));
            }
            (host, after.strip_prefix(':').ok_or("the port is missing (HOST:PORT)")?)
        } else {
            let (host, port) = rest.rsplit_once(':').ok_or("the port is missing (HOST:PORT)")?;
            // Else `tcp://::1:7001` would name host `::1`, shown back as
            // `tcp://[::1]:7001`, and `tcp://a:b:7001` a host no lookup finds.
            if host.contains(':') {
                return Err(format!("an IPv6 address goes in brackets: `[{host}]:{port}`"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err("the host is missing (HOST:PORT)".into());
        }
        if host.contains('/') || port.contains('/') {
            return Err("no path may follow HOST:PORT".into());
        }
        if let Some(bad) = host.chars().find(|c| c.is_whitespace() || c.is_control() || "[]{}".contains(*c)) {
            return Err(format!("the host `{}` holds {bad:?}, which no host name or address has", host.escape_debug()));
        }
        let port: u16 = port.parse().map_err(|_| format!("`{port}` is not a TCP port (1-65535)"))?;
        if port == 0 {
            return Err("port 0 is not a TCP port (1-65535)".into());
        }
        Ok(Some(RemoteName { kind, host: host.to_string(), port }))
    }
}

/// The deadlines of opening a remote port.
#[derive(Debug, Clone, Copy)]
pub struct RemoteTimeouts {
    /// For the TCP connection.
    pub connect: Duration,
    /// For the server's acknowledgments of the options and line settings;
    /// past it the session goes on without them.
    pub acknowledge: Duration,
}

impl Default for RemoteTimeouts {
    fn default() -> Self {
        RemoteTimeouts { connect: Duration::from_secs(10), acknowledge: Duration::from_secs(2) }
    }
}

/// Why a remote port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot connect to {name}: {message}")]
    Connect { name: String, message: String },
    #[error("{name} refused RFC 2217 COM-PORT-OPTION (it said DONT 44): is it a telnet(rfc2217) accepter?")]
    NoComPort { name: String },
    #[error("{name}: {message}")]
    Protocol { name: String, message: String },
}

impl Classify for RemoteError {
    /// The serial server is part of the bench: not reachable, or not set up
    /// as an RFC 2217 server.
    fn class(&self) -> FailureClass {
        match self {
            RemoteError::Connect { .. } | RemoteError::NoComPort { .. } | RemoteError::Protocol { .. } => {
                FailureClass::Environment
            }
        }
    }
}

/// What the server acknowledged while the port was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acknowledged {
    pub com_port: bool,
    pub baud: Option<u32>,
    pub data_size: Option<u8>,
    pub parity: Option<u8>,
    pub stop_size: Option<u8>,
    pub purge: bool,
}

/// Reads at most while waiting for the server's acknowledgments.
const MAX_OPENING_READS: usize = 256;

/// Largest raw read at once; also bounds the decode buffer.
const CHUNK: usize = 8192;

/// An RFC 2217 session as a byte stream: reads give the line's data (telnet
/// commands answered or dropped), writes are escaped.
pub struct Rfc2217Stream {
    tcp: TcpStream,
    name: String,
    negotiator: Negotiator,
    /// Received bytes not decoded yet (a command cut by a read boundary).
    raw: Vec<u8>,
    /// Decoded data not yet given to the reader.
    data: Vec<u8>,
    /// Bytes for the server not yet written (escaped data, answers).
    out: Vec<u8>,
    acknowledged: Acknowledged,
    eof: bool,
    /// Still opening: data before the purge's acknowledgment is stale.
    opening: bool,
}

impl std::fmt::Debug for Rfc2217Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2217Stream").field("name", &self.name).finish()
    }
}

impl Rfc2217Stream {
    /// What the server acknowledged so far.
    pub fn acknowledged(&self) -> &Acknowledged {
        &self.acknowledged
    }

    fn queue(&mut self, frame: &Frame) {
        rfc2217::encode(frame, &mut self.out);
    }

    /// Decodes what `raw` holds into `data`, answering negotiations.
    fn process(&mut self) -> io::Result<()> {
        let mut used_total = 0;
        loop {
            let rest = &self.raw[used_total..];
            let decoded = rfc2217::decode(rest)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.name)))?;
            let Some((frame, used)) = decoded else { break };
            used_total += used;
            match frame {
                Frame::Data(bytes) => self.data.extend_from_slice(&bytes),
                Frame::Negotiate { verb, option } => {
                    if let Some(answer) = self.negotiator.answer(verb, option) {
                        self.queue(&answer);
                    }
                    self.acknowledged.com_port = self.negotiator.com_port_agreed();
                }
                Frame::Subnegotiation { option: OPT_COM_PORT, payload } => {
                    if let Some(ComPortReply::Ack { command, value }) = ComPortReply::parse(&payload) {
                        let small = u8::try_from(value).ok();
                        match command {
                            ComPortCommand::SET_BAUDRATE => self.acknowledged.baud = Some(value),
                            ComPortCommand::SET_DATASIZE => self.acknowledged.data_size = small,
                            ComPortCommand::SET_PARITY => self.acknowledged.parity = small,
                            ComPortCommand::SET_STOPSIZE => self.acknowledged.stop_size = small,
                            ComPortCommand::PURGE_DATA => {
                                self.acknowledged.purge = true;
                                if self.opening {
                                    self.data.clear();
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Frame::Subnegotiation { .. } | Frame::Command(_) => {}
            }
        }
        self.raw.drain(..used_total);
        Ok(())
    }

    /// Writes queued bytes; Ready once `out` is empty.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    /// Reads and decodes one chunk from the server (for the opening).
    async fn read_some(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; CHUNK];
        let n = self.tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        self.raw.extend_from_slice(&buf[..n]);
        self.process()?;
        Ok(true)
    }

    async fn flush_out(&mut self) -> io::Result<()> {
        let out = std::mem::take(&mut self.out);
        self.tcp.write_all(&out).await?;
        self.tcp.flush().await
    }
}

impl AsyncRead for Rfc2217Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Answers to negotiations go out as reads find them; a full socket
        // leaves them queued for the next write or read.
        if let Poll::Ready(Err(error)) = this.poll_drain(cx) {
            return Poll::Ready(Err(error));
        }
        // Bounded: each round either returns or consumes a chunk from the socket.
        for _ in 0..64 {
            if !this.data.is_empty() {
                let n = this.data.len().min(buf.remaining());
                buf.put_slice(&this.data[..n]);
                this.data.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            std::task::ready!(Pin::new(&mut this.tcp).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
                if !this.raw.is_empty() {
                    tracing::debug!("{}: the connection closed inside a telnet command", this.name);
                }
                continue;
            }
            this.raw.extend_from_slice(read.filled());
            this.process()?;
            if let Poll::Ready(Err(error)) = this.poll_drain(cx) {
                return Poll::Ready(Err(error));
            }
        }
        // Only telnet commands for a long while: let other tasks run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl AsyncWrite for Rfc2217Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Queue at most one caller buffer (escaped, twice its size at worst).
        std::task::ready!(this.poll_drain(cx))?;
        let take = buf.len().min(CHUNK);
        rfc2217::escape_data(&buf[..take], &mut this.out);
        if let Poll::Ready(Err(error)) = this.poll_drain(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// An open remote port.
#[derive(Debug)]
pub enum RemotePort {
    // Boxed: the option tables make the session large.
    Rfc2217(Box<Rfc2217Stream>),
    RawTcp(TcpStream),
}

async fn tcp_connect(name: &RemoteName, timeout: Duration) -> Result<TcpStream, RemoteError> {
    let fail = |message: String| RemoteError::Connect { name: name.to_string(), message };
    let address = (name.host.as_str(), name.port);
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Err(_) => Err(fail(format!("no answer within {}s", timeout.as_secs_f32()))),
        Ok(Err(error)) => Err(fail(error.to_string())),
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

/// Opens `name` with `settings`. A raw TCP port only connects (its line
/// settings are the server's); an RFC 2217 port is negotiated, set and
/// purged, waiting at most `timeouts.acknowledge` for the server's answers.
pub async fn connect(
    name: &RemoteName,
    settings: &SerialSettings,
    timeouts: RemoteTimeouts,
) -> Result<RemotePort, RemoteError> {
    let tcp = tcp_connect(name, timeouts.connect).await?;
    if name.kind == RemoteKind::RawTcp {
        tracing::info!("{name}: raw TCP, the line settings are the server's ({} baud not sent)", settings.baud);
        return Ok(RemotePort::RawTcp(tcp));
    }
    let mut stream = Rfc2217Stream {
        tcp,
        name: name.to_string(),
        negotiator: Negotiator::new(),
        raw: Vec::new(),
        data: Vec::new(),
        out: Vec::new(),
        acknowledged: Acknowledged::default(),
        eof: false,
        opening: true,
    };
    let io_error = |error: io::Error| RemoteError::Connect { name: name.to_string(), message: error.to_string() };
    for frame in stream.negotiator.opening() {
        stream.queue(&frame);
    }
    let requests = [
        ComPortCommand::SetBaud(settings.baud),
        ComPortCommand::SetDataSize(settings.data_bits),
        ComPortCommand::SetParity(ComPortCommand::parity_value(settings.parity)),
        ComPortCommand::SetStopSize(settings.stop_bits),
        ComPortCommand::Purge(Purge::Both),
    ];
    // RFC 2217 lets the client send COM-PORT commands once it sent WILL;
    // a server that has not agreed yet ignores or queues them.
    for request in requests {
        stream.queue(&request.frame());
    }
    stream.flush_out().await.map_err(io_error)?;
    if settings.flow_control != FlowControl::None {
        tracing::warn!("{name}: flow control is left to the server (not set over RFC 2217)");
    }
    let deadline = Instant::now() + timeouts.acknowledge;
    // Bounded by the deadline and in rounds (a server streaming data
    // would otherwise keep the loop busy until the deadline); each round
    // reads once.
    for round in 0..=MAX_OPENING_READS {
        if round == MAX_OPENING_READS {
            tracing::info!("{name}: still no acknowledgment of every setting after {round} reads; going on");
            break;
        }
        if stream.negotiator.com_port_refused() {
            return Err(RemoteError::NoComPort { name: name.to_string() });
        }
        let ack = &stream.acknowledged;
        if ack.com_port
            && ack.baud.is_some()
            && ack.data_size.is_some()
            && ack.parity.is_some()
            && ack.stop_size.is_some()
            && ack.purge
        {
            break;
        }
        match tokio::time::timeout_at(deadline, stream.read_some()).await {
            Err(_) => {
                tracing::info!(
                    "{name}: the server did not acknowledge every setting within {}s ({:?}); going on",
                    timeouts.acknowledge.as_secs_f32(),
                    stream.acknowledged
                );
                break;
            }
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                return Err(RemoteError::Protocol {
                    name: name.to_string(),
                    message: "the server closed the connection while the port was being set up".into(),
                });
            }
            Ok(Err(error)) => return Err(RemoteError::Protocol { name: name.to_string(), message: error.to_string() }),
        }
        if !stream.out.is_empty() {
            stream.flush_out().await.map_err(io_error)?;
        }
    }
    if let Some(baud) = stream.acknowledged.baud
        && baud != settings.baud
    {
        tracing::warn!("{name}: asked for {} baud, the server set {baud}", settings.baud);
    }
    stream.opening = false;
    Ok(RemotePort::Rfc2217(Box::new(stream)))
}

impl AsyncRead for RemotePort {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RemotePort::Rfc2217(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            RemotePort::RawTcp(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RemotePort {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            RemotePort::Rfc2217(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            RemotePort::RawTcp(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RemotePort::Rfc2217(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            RemotePort::RawTcp(stream) => Pin::new(stream).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RemotePort::Rfc2217(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            RemotePort::RawTcp(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn names_parse() {
        let parsed = RemoteName::parse("rfc2217://127.0.0.1:7000").unwrap().unwrap();
        assert_eq!(parsed, RemoteName { kind: RemoteKind::Rfc2217, host: "127.0.0.1".into(), port: 7000 });
        assert_eq!(parsed.to_string(), "rfc2217://127.0.0.1:7000");
        let raw = RemoteName::parse("tcp://[::1]:2000").unwrap().unwrap();
        assert_eq!((raw.kind, raw.host.as_str(), raw.port), (RemoteKind::RawTcp, "::1", 2000));
        assert_eq!(raw.to_string(), "tcp://[::1]:2000");
        assert_eq!(RemoteName::parse("/dev/ttyUSB0").unwrap(), None);
        assert!(RemoteName::parse("rfc2217://host").unwrap_err().contains("port is missing"));
        assert!(RemoteName::parse("tcp://host:99999").unwrap_err().contains("not a TCP port"));
        assert!(RemoteName::parse("tcp://:5").unwrap_err().contains("host is missing"));
        assert!(RemoteName::parse("tcp://h:5/x").is_err());
    }

    /// Found by the `serial_names` fuzz target: a host the brackets do not
    /// hold was taken as it came, and printed back as another name.
    #[test]
    fn a_name_is_refused_unless_it_prints_back_as_itself() {
        for (name, why) in [
            ("tcp://{::1]:7001", "brackets"),
            ("tcp://::1:7001", "brackets"),
            ("rfc2217://a:b:7000", "brackets"),
            ("tcp://[host]:7001", "not an IPv6 address"),
            ("tcp://[::1]x]:7001", "port is missing"),
            ("tcp://ho st:7001", "holds ' '"),
            ("tcp://h]:7001", "holds ']'"),
        ] {
            let error = RemoteName::parse(name).expect_err(name);
            assert!(error.contains(why), "{name}: {error}");
        }
        for name in ["tcp://[::1]:7001", "rfc2217://[fe80::1]:7000", "tcp://ser2net.local:2000", "tcp://127.0.0.1:1"] {
            let parsed = RemoteName::parse(name).unwrap().unwrap();
            assert_eq!(parsed.to_string(), name);
        }
    }

    /// A server that negotiates but never acknowledges a setting: the
    /// opening goes on after the acknowledge deadline, and data with 0xFF
    /// goes both ways escaped on the wire and exact at the ends.
    #[tokio::test]
    async fn silent_server_is_tolerated_and_iac_is_escaped_both_ways() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // Read the client's opening (negotiation and settings) until the purge.
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.ends_with(&[255, 250, 44, 12, 3, 255, 240]) {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            // Ask for ECHO (refused), then send data holding IAC, escaped.
            socket.write_all(&[255, 251, 1, b'A', 255, 255, b'B']).await.unwrap();
            let mut echo = vec![0u8; 6];
            socket.read_exact(&mut echo).await.unwrap();
            (got, echo)
        });
        let name = RemoteName::parse(&format!("rfc2217://127.0.0.1:{port}")).unwrap().unwrap();
        let timeouts = RemoteTimeouts { connect: Duration::from_secs(5), acknowledge: Duration::from_millis(300) };
        let started = std::time::Instant::now();
        let mut port =
            connect(&name, &SerialSettings { baud: 115_200, ..SerialSettings::default() }, timeouts).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        let mut three = [0u8; 3];
        port.read_exact(&mut three).await.unwrap();
        assert_eq!(&three, b"A\xFFB");
        port.write_all(&[0xFF, b'z', 0xFF]).await.unwrap();
        port.flush().await.unwrap();
        let (opening, echo) = server.await.unwrap();
        assert!(opening.starts_with(&[255, 251, 0, 255, 253, 0]), "{opening:?}");
        assert!(opening.windows(10).any(|w| w == [255, 250, 44, 1, 0, 1, 0xC2, 0, 255, 240]), "{opening:?}");
        // DONT ECHO, then the data with each 0xFF doubled.
        assert_eq!(echo, [255, 254, 1, 255, 255, b'z']);
        // README: flow control and modem lines stay as the server has them.
        // The client's COM-PORT commands are the four settings and the
        // purge, never SET-CONTROL (5: flow control, DTR, RTS, BREAK) nor a
        // line or modem state mask (10, 11).
        let mut commands = Vec::new();
        let mut rest = &opening[..];
        while let Ok(Some((frame, used))) = crate::serial::rfc2217::decode(rest) {
            if let crate::serial::rfc2217::Frame::Subnegotiation { option: 44, payload } = frame {
                commands.push(payload[0]);
            }
            rest = &rest[used..];
        }
        assert_eq!(commands, [1, 2, 3, 4, 12], "{opening:?}");
    }

    /// A plain telnet server that refuses COM-PORT-OPTION (DONT 44) is named
    /// as such; one that hangs up during the set-up is a protocol error.
    /// Both end well within the acknowledge deadline.
    #[tokio::test]
    async fn a_server_refusing_com_port_or_hanging_up_fails_clearly() {
        for (reply, closes) in [(&[255u8, 254, 44][..], false), (&[][..], true)] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 64];
                let _ = socket.read(&mut buf).await.unwrap();
                socket.write_all(reply).await.unwrap();
                if !closes {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
            let name = RemoteName::parse(&format!("rfc2217://127.0.0.1:{port}")).unwrap().unwrap();
            let timeouts = RemoteTimeouts { connect: Duration::from_secs(5), acknowledge: Duration::from_secs(3) };
            let started = std::time::Instant::now();
            let error = connect(&name, &SerialSettings::default(), timeouts).await.unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(2), "{error}");
            if closes {
                assert!(matches!(error, RemoteError::Protocol { .. }), "{error:?}");
                assert!(error.to_string().contains("closed the connection while the port was being set up"));
            } else {
                assert!(matches!(error, RemoteError::NoComPort { .. }), "{error:?}");
                assert!(error.to_string().contains("refused RFC 2217 COM-PORT-OPTION (it said DONT 44)"));
            }
            assert_eq!(error.class(), FailureClass::Environment);
            server.abort();
        }
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        let (_held, port) = crate::net::closed_loopback_port();
        let name = RemoteName::parse(&format!("tcp://127.0.0.1:{port}")).unwrap().unwrap();
        let error = connect(&name, &SerialSettings::default(), RemoteTimeouts::default()).await.unwrap_err();
        assert!(matches!(error, RemoteError::Connect { .. }), "{error:?}");
        assert!(error.to_string().starts_with(&format!("cannot connect to tcp://127.0.0.1:{port}: ")), "{error}");
    }
}
