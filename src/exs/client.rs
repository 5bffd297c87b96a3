//! The host side of an EXS API connection: sends a message, waits for the
//! response with the same type and sequence number, and meanwhile answers what
//! the controller initiates (Poll 0x00AB, Alarm 0x00B9), as the host must.
//!
//! Sequence numbers are counted per message type. [`Client::request`] takes
//! `&mut self` and returns only when the response came (or did not), so at most
//! one message, and so at most one TFTP Manage, is ever outstanding: well under
//! the 25 unacknowledged messages that fault a matrix during a download.
//!
//! When the controller drops the connection while a response is awaited, the
//! client reconnects once (configurable) and sends the same frame again. It
//! does not resynchronise after a frame it cannot read: that ends the request
//! with an error naming the message, its sequence number and what came back.
//!
//! Generic over the transport ([`Connect`]): TCP in production, an in-memory
//! duplex in tests. Buffering, decoding and writing frames is the shared
//! [`Connection`]'s job, as it is for the CSP simulator.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::connection::{Connection, ReadError};
use super::frame::ExsMarkerRule;
use super::frame::{Frame, FrameError, Framing};
use super::message_type::{self, ALARM, POLL};
use super::trace::{format_trace, hex};
use crate::failure::{Classify, FailureClass};

/// Opens (and reopens) the transport.
pub trait Connect: Send {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send;
    fn connect(&mut self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Where it connects, for messages.
    fn peer(&self) -> String;
}

/// TCP to the controller card's own address.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    pub host: String,
    pub port: u16,
    pub connect_timeout: Duration,
}

impl Connect for TcpConnector {
    type Stream = TcpStream;

    async fn connect(&mut self) -> io::Result<TcpStream> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let stream = tokio::time::timeout(self.connect_timeout, connect).await.map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {:?}", self.connect_timeout))
        })??;
        // Frames are small and each waits for an answer: send at once.
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn peer(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    pub framing: Framing,
    pub node: u8,
    /// How long to wait for each response (per attempt).
    pub timeout: Duration,
    /// How many times to reconnect while one response is awaited.
    pub reconnects: u32,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions { framing: Framing::default(), node: 0xFF, timeout: Duration::from_secs(10), reconnects: 1 }
    }
}

/// Something that happened besides the awaited response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ClientEvent {
    /// The controller sent a Poll or Alarm and the client answered it.
    Answered { message: String, seq: u8, body: String },
    /// A frame that answers nothing outstanding (e.g. a wrong sequence number).
    Ignored { message: String, seq: u8, trace: String },
    /// The connection dropped and was opened again.
    Reconnected { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {peer}: {source}")]
    Connect { peer: String, source: io::Error },
    #[error("cannot send {message} seq {seq}: {source}")]
    Encode { message: String, seq: u8, source: FrameError },
    #[error("no response to {message} seq {seq} from {peer} within {waited:?}{}", seen_text(seen))]
    Timeout { message: String, seq: u8, peer: String, waited: Duration, seen: Vec<String> },
    #[error(
        "{peer} closed the connection {times} times while {message} seq {seq} waited for its response (last: {reason})"
    )]
    Closed { message: String, seq: u8, peer: String, times: u32, reason: String },
    #[error("unreadable frame while {message} seq {seq} waited for its response: {source}; received: {received}")]
    BadFrame { message: String, seq: u8, source: FrameError, received: String },
}

impl Classify for ClientError {
    /// A request that cannot be encoded carries values too big for the
    /// frame (input); every other error is the controller's: it refused the
    /// connection, stayed silent, closed it, or sent bytes that are no frame.
    fn class(&self) -> FailureClass {
        match self {
            ClientError::Encode { .. } => FailureClass::Input,
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Closed { .. }
            | ClientError::BadFrame { .. } => FailureClass::Device,
        }
    }
}

fn seen_text(seen: &[String]) -> String {
    if seen.is_empty() {
        "; nothing else came back".to_string()
    } else {
        format!("; received instead: {}", seen.join(", "))
    }
}

/// One request and its response.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: Frame,
    pub response: Frame,
}

/// Why waiting for a response stopped without one.
enum WaitEnd {
    Dropped(String),
    Failed(ClientError),
}

pub struct Client<C: Connect> {
    connector: C,
    connection: Option<Connection<C::Stream>>,
    next_seq: HashMap<u16, u8>,
    options: ClientOptions,
    events: Vec<ClientEvent>,
}

impl<C: Connect> std::fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("connected", &self.connection.is_some()).finish_non_exhaustive()
    }
}

impl<C: Connect> Client<C> {
    /// A client that connects on the first request.
    pub fn new(connector: C, options: ClientOptions) -> Client<C> {
        Client { connector, connection: None, next_seq: HashMap::new(), options, events: Vec::new() }
    }

    pub fn events(&self) -> &[ClientEvent] {
        &self.events
    }

    pub fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    /// Sends a message and returns it with its response.
    pub async fn request(&mut self, msg_type: u16, body: Vec<u8>) -> Result<Exchange, ClientError> {
        let (frame, wire) = self.build(msg_type, body)?;
        let message = message_type::describe(msg_type);
        let mut drops = 0;
        loop {
            match self.attempt(&frame, &wire).await {
                Ok(response) => {
                    return Ok(Exchange { request: frame, response });
                }
                Err(WaitEnd::Failed(error)) => return Err(error),
                Err(WaitEnd::Dropped(reason)) => {
                    drops += 1;
                    self.connection = None;
                    if drops > self.options.reconnects {
                        return Err(ClientError::Closed {
                            message,
                            seq: frame.seq,
                            peer: self.connector.peer(),
                            times: drops,
                            reason,
                        });
                    }
                    tracing::info!("reconnecting to {}: {reason}", self.connector.peer());
                    self.events.push(ClientEvent::Reconnected { reason });
                }
            }
        }
    }

    /// The next sequence number for this type whose frame can be sent: under
    /// the `refuse` marker rule a sequence number that is 0xFE, or that makes
    /// the checksum 0xFE, is skipped (the originator may pick any number).
    fn build(&mut self, msg_type: u16, body: Vec<u8>) -> Result<(Frame, Vec<u8>), ClientError> {
        let counter = self.next_seq.entry(msg_type).or_insert(0);
        let mut frame = Frame::new(msg_type, *counter, self.options.node, body);
        let mut last = None;
        for _ in 0..=u8::MAX {
            frame.seq = *counter;
            *counter = counter.wrapping_add(1);
            let mut wire = Vec::new();
            match self.options.framing.encode(&frame, &mut wire) {
                Ok(()) => return Ok((frame, wire)),
                Err(error @ FrameError::MarkerInField { field: "sequence number" | "checksum" }) => last = Some(error),
                Err(error) => {
                    last = Some(error);
                    break;
                }
            }
        }
        Err(ClientError::Encode {
            message: message_type::describe(msg_type),
            seq: frame.seq,
            source: last.unwrap_or(FrameError::MarkerInField { field: "checksum" }),
        })
    }

    async fn attempt(&mut self, frame: &Frame, wire: &[u8]) -> Result<Frame, WaitEnd> {
        let message = message_type::describe(frame.msg_type);
        if self.connection.is_none() {
            let stream = self
                .connector
                .connect()
                .await
                .map_err(|source| WaitEnd::Failed(ClientError::Connect { peer: self.connector.peer(), source }))?;
            self.connection = Some(Connection::new(stream, self.options.framing));
        }
        tracing::debug!("send {message} seq {}: {}", frame.seq, format_trace(frame));
        if let Err(error) = self.write(wire).await {
            return Err(WaitEnd::Dropped(format!("sending failed: {error}")));
        }
        let deadline = Instant::now() + self.options.timeout;
        let mut seen = Vec::new();
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return Err(WaitEnd::Dropped("no connection".into()));
            };
            let received = match timeout_at(deadline, connection.read_frame()).await {
                Ok(Ok(Some(received))) => received,
                Err(_) => {
                    let pending = connection.buffered();
                    if !pending.is_empty() {
                        seen.push(format!("{} bytes of an incomplete frame ({})", pending.len(), hex(pending)));
                    }
                    return Err(WaitEnd::Failed(ClientError::Timeout {
                        message,
                        seq: frame.seq,
                        peer: self.connector.peer(),
                        waited: self.options.timeout,
                        seen,
                    }));
                }
                Ok(Ok(None)) => return Err(WaitEnd::Dropped("connection closed".into())),
                Ok(Err(error @ ReadError::ClosedMidFrame { .. })) => return Err(WaitEnd::Dropped(error.to_string())),
                Ok(Err(ReadError::Io(error))) => return Err(WaitEnd::Dropped(error.to_string())),
                Ok(Err(ReadError::Frame(source))) => {
                    let pending = connection.buffered();
                    return Err(WaitEnd::Failed(ClientError::BadFrame {
                        message,
                        seq: frame.seq,
                        source,
                        received: hex(&pending[..pending.len().min(64)]),
                    }));
                }
            };
            if received.msg_type == frame.msg_type && received.seq == frame.seq {
                tracing::debug!("received {message} seq {}: {}", received.seq, format_trace(&received));
                return Ok(received);
            }
            if matches!(received.msg_type, POLL | ALARM) {
                self.answer(&received).await?;
                continue;
            }
            let what = format!("{} seq {}", message_type::describe(received.msg_type), received.seq);
            tracing::warn!("ignored {what} while {message} seq {} waits", frame.seq);
            self.events.push(ClientEvent::Ignored {
                message: message_type::describe(received.msg_type),
                seq: received.seq,
                trace: format_trace(&received),
            });
            seen.push(what);
        }
    }

    /// Answers a controller-initiated message. The answer is header-only: the
    /// notes confirm this for Alarm (Length 0x0005) and it is assumed for Poll.
    async fn answer(&mut self, received: &Frame) -> Result<(), WaitEnd> {
        let reply = Frame::new(received.msg_type, received.seq, received.node, Vec::new());
        let mut wire = Vec::new();
        if self.options.framing.encode(&reply, &mut wire).is_err() {
            // The controller chose this sequence number itself; an answer it
            // cannot match would make it resend or fault, so send it as is.
            let raw = Framing { marker_rule: ExsMarkerRule::SendRaw, ..self.options.framing };
            wire.clear();
            raw.encode(&reply, &mut wire).map_err(|source| {
                WaitEnd::Failed(ClientError::Encode {
                    message: message_type::describe(reply.msg_type),
                    seq: reply.seq,
                    source,
                })
            })?;
        }
        self.write(&wire).await.map_err(|error| WaitEnd::Dropped(format!("answering failed: {error}")))?;
        tracing::debug!("answered {} seq {}", message_type::describe(received.msg_type), received.seq);
        self.events.push(ClientEvent::Answered {
            message: message_type::describe(received.msg_type),
            seq: received.seq,
            body: hex(&received.body),
        });
        Ok(())
    }

    async fn write(&mut self, wire: &[u8]) -> io::Result<()> {
        let connection =
            self.connection.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))?;
        connection.write_bytes(wire).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exs::frame::ExsChecksum;
    use crate::exs::message_type::TFTP_MANAGE;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    /// Hands out prepared in-memory streams, one per connection.
    struct Streams(Vec<DuplexStream>);

    impl Connect for Streams {
        type Stream = DuplexStream;
        async fn connect(&mut self) -> io::Result<DuplexStream> {
            if self.0.is_empty() {
                Err(io::Error::new(io::ErrorKind::ConnectionRefused, "no more test streams"))
            } else {
                Ok(self.0.remove(0))
            }
        }
        fn peer(&self) -> String {
            "test".into()
        }
    }

    fn options() -> ClientOptions {
        ClientOptions { timeout: Duration::from_secs(2), ..ClientOptions::default() }
    }

    fn wire(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        Framing { marker_rule: ExsMarkerRule::SendRaw, ..Framing::default() }.encode(frame, &mut out).unwrap();
        out
    }

    /// Reads `count` frames from the controller's end.
    async fn read_frames(peer: &mut DuplexStream, count: usize) -> Vec<Frame> {
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        while frames.len() < count {
            if let Some((frame, used)) = Framing::default().decode(&buf).unwrap() {
                buf.drain(..used);
                frames.push(frame);
                continue;
            }
            let mut chunk = [0u8; 64];
            let n = peer.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed");
            buf.extend_from_slice(&chunk[..n]);
        }
        frames
    }

    async fn read_frame(peer: &mut DuplexStream) -> Frame {
        read_frames(peer, 1).await.remove(0)
    }

    #[tokio::test]
    async fn response_split_in_single_bytes_with_poll_and_alarm_first() {
        let (client_end, mut peer) = duplex(1024);
        let mut client = Client::new(Streams(vec![client_end]), options());
        let controller = tokio::spawn(async move {
            let request = read_frame(&mut peer).await;
            assert_eq!((request.msg_type, request.seq, request.body.as_slice()), (TFTP_MANAGE, 0, &[1, 1, 1, 0][..]));
            let mut bytes = wire(&Frame::new(POLL, 7, 0xFF, vec![]));
            bytes.extend(wire(&Frame::new(ALARM, 3, 0xFF, vec![1, 0x1E, 1, 0])));
            bytes.extend(wire(&Frame::new(TFTP_MANAGE, 0, 0xFF, vec![0, 0x10, 0, 0])));
            for byte in bytes {
                peer.write_all(&[byte]).await.unwrap();
                tokio::task::yield_now().await;
            }
            let mut answers = read_frames(&mut peer, 2).await;
            let alarm_answer = answers.pop().unwrap();
            (answers.pop().unwrap(), alarm_answer)
        });
        let exchange = client.request(TFTP_MANAGE, vec![1, 1, 1, 0]).await.unwrap();
        assert_eq!(exchange.response.body, [0, 0x10, 0, 0]);
        let (poll, alarm) = controller.await.unwrap();
        assert_eq!((poll.msg_type, poll.seq, poll.body.len()), (POLL, 7, 0));
        assert_eq!((alarm.msg_type, alarm.seq, alarm.body.len()), (ALARM, 3, 0));
        assert_eq!(client.events().len(), 2);
        assert!(matches!(&client.events()[1], ClientEvent::Answered { seq: 3, .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn wrong_sequence_number_times_out_saying_what_came() {
        let (client_end, mut peer) = duplex(1024);
        let mut client = Client::new(Streams(vec![client_end]), options());
        tokio::spawn(async move {
            let request = read_frame(&mut peer).await;
            peer.write_all(&wire(&Frame::new(TFTP_MANAGE, request.seq + 1, 0xFF, vec![0, 0x10]))).await.unwrap();
            // Keep the connection open until the client gives up.
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let error = client.request(TFTP_MANAGE, vec![1, 1, 1, 0]).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "no response to TFTP Manage (0x003a) seq 0 from test within 2s; received instead: TFTP Manage (0x003a) seq 1"
        );
    }

    #[tokio::test]
    async fn reconnects_once_and_sends_the_same_frame() {
        let (first, mut peer1) = duplex(1024);
        let (second, mut peer2) = duplex(1024);
        let mut client = Client::new(Streams(vec![first, second]), options());
        tokio::spawn(async move {
            let request = read_frame(&mut peer1).await;
            // Half a response, then the connection drops.
            let response = wire(&Frame::new(TFTP_MANAGE, request.seq, 0xFF, vec![0, 0x10, 0, 0]));
            peer1.write_all(&response[..4]).await.unwrap();
            drop(peer1);
            let again = read_frame(&mut peer2).await;
            assert_eq!(again, request);
            peer2.write_all(&response).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let exchange = client.request(TFTP_MANAGE, vec![1, 1, 1, 0]).await.unwrap();
        assert_eq!(exchange.response.body, [0, 0x10, 0, 0]);
        assert_eq!(
            client.events(),
            [ClientEvent::Reconnected { reason: "connection closed after 4 bytes of an incomplete frame".into() }]
        );
    }

    #[tokio::test]
    async fn second_drop_is_an_error() {
        let (first, peer1) = duplex(64);
        let (second, peer2) = duplex(64);
        drop((peer1, peer2));
        let mut client = Client::new(Streams(vec![first, second]), options());
        let error = client.request(TFTP_MANAGE, vec![1, 1, 1, 0]).await.unwrap_err();
        assert!(matches!(error, ClientError::Closed { times: 2, seq: 0, .. }), "{error}");
    }

    #[tokio::test]
    async fn bad_checksum_names_message_sequence_and_bytes() {
        let (client_end, mut peer) = duplex(1024);
        let mut client = Client::new(Streams(vec![client_end]), options());
        tokio::spawn(async move {
            let request = read_frame(&mut peer).await;
            let mut response = wire(&Frame::new(TFTP_MANAGE, request.seq, 0xFF, vec![0, 0x10, 0, 0]));
            *response.last_mut().unwrap() ^= 0xFF;
            peer.write_all(&response).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let error = client.request(TFTP_MANAGE, vec![1, 1, 1, 0]).await.unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("unreadable frame while TFTP Manage (0x003a) seq 0 waited for its response: bad checksum in TFTP Manage (0x003a) seq 0: expected 0x"), "{text}");
        assert!(text.contains("received: FE 00 09 00 3A"), "{text}");
    }

    #[test]
    fn sequence_numbers_count_per_type_and_skip_the_marker() {
        let mut client = Client::new(Streams(vec![]), options());
        let seqs: Vec<u8> = (0..300).map(|_| client.build(TFTP_MANAGE, vec![1, 1, 1, 0]).unwrap().0.seq).collect();
        assert_eq!(&seqs[..3], &[0, 1, 2]);
        assert!(!seqs.contains(&0xFE));
        assert_eq!(client.build(POLL, vec![]).unwrap().0.seq, 0, "own counter per type");
        for _ in 0..300 {
            let (_, wire) = client.build(TFTP_MANAGE, vec![1, 1, 1, 0]).unwrap();
            assert!(!wire[1..].contains(&0xFE));
        }
        let mut raw = Client::new(
            Streams(vec![]),
            ClientOptions {
                framing: Framing { checksum: ExsChecksum::Sum8, marker_rule: ExsMarkerRule::SendRaw },
                ..options()
            },
        );
        let seqs: Vec<u8> = (0..256).map(|_| raw.build(TFTP_MANAGE, vec![]).unwrap().0.seq).collect();
        assert!(seqs.contains(&0xFE), "send-raw uses every number");
    }
}
