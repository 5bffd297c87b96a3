//! A simulated CSP matrix controller: the EXS API server side of TFTP Manage,
//! over TCP, for tests and demos.
//!
//! It keeps the TFTP settings the host assigns, answers every query, sends
//! Poll every 2 seconds (configurable) and wants it answered, and on Begin
//! Download really fetches the configuration file over TFTP from the server
//! address it was given ([`super::tftp_client`]), checks it with the same rules
//! as `exs check-config`, and answers with the Status / More Status a controller
//! gives. Like a real controller it serves one host connection; a new one
//! replaces the old.
//!
//! Faults can be injected, one per TFTP Manage answer, in order: a bad
//! checksum, a wrong sequence number, a truncated frame (then the connection
//! drops), a dropped connection, an Alarm that must be acknowledged before the
//! answer comes.
//!
//! Frames go through the same [`Connection`] the host's client uses; what a
//! controller answers to a request it cannot read (`refusal`) is decided here,
//! not in the codec.
//!
//! Simulator-only assumptions (not the client's): the Poll and Alarm bodies,
//! and how a downloaded file becomes "loads" (load n is the file's n-th
//! `<CARD>_LOAD` line; its version is the timestamp; save options are one
//! byte per load, 1 for SAVE_LOAD_TRUE). It does not fetch the loads
//! themselves. While it fetches a file it does not read or poll.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{Instant, timeout_at};

use super::tftp_client::{self, TftpError, TftpOptions};
use crate::exs::config_file::{self, ConfigRules};
use crate::exs::connection::{Connection, WriteError};
use crate::exs::frame::{ExsChecksum, ExsMarkerRule};
use crate::exs::frame::{Frame, FrameError, Framing};
use crate::exs::icb::{ACTION, Icb};
use crate::exs::message_type::{self, ALARM, POLL, TFTP_MANAGE};
use crate::exs::status::{MoreStatus, Status, StatusCode};
use crate::exs::tftp_manage::{
    ActionSubtype, DataSubtype, DataValue, Filename, RequestIcb, ResponseLayout, TftpManageError, TftpManageRequest,
    TftpManageResponse,
};
use crate::exs::trace::hex;
use crate::sync::lock;

/// A fault to inject into one TFTP Manage answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    BadChecksum,
    WrongSequence,
    /// Half the answer, then the connection drops.
    Truncated,
    /// The connection drops instead of the answer.
    DropConnection,
    /// An Alarm first; the answer only after the host acknowledged it.
    AlarmFirst,
}

impl Fault {
    pub const NAMES: &'static [&'static str] =
        &["bad-checksum", "wrong-sequence", "truncated", "drop-connection", "alarm-first"];
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(text: &str) -> Result<Fault, String> {
        Ok(match text {
            "bad-checksum" => Fault::BadChecksum,
            "wrong-sequence" => Fault::WrongSequence,
            "truncated" => Fault::Truncated,
            "drop-connection" => Fault::DropConnection,
            "alarm-first" => Fault::AlarmFirst,
            _ => return Err(format!("unknown fault `{text}` (one of: {})", Fault::NAMES.join(", "))),
        })
    }
}

#[derive(Debug, Clone)]
pub struct CspConfig {
    pub checksum: ExsChecksum,
    /// Poll interval; None sends no Polls.
    pub poll_interval: Option<Duration>,
    /// The TFTP server port (69 on a real network; tests use a free port).
    pub tftp_port: u16,
    pub tftp: TftpOptions,
    /// Answer like the page's response trace (no More Status, values in the
    /// query's Action ICB) instead of the documented layout.
    pub layout: ResponseLayout,
    pub faults: Vec<Fault>,
    /// How long to wait for an Alarm's acknowledgment before sending it again
    /// once (5 s on a real controller).
    pub alarm_wait: Duration,
    /// The adjacent controller's load timestamp, to compare a new one with.
    pub adjacent_timestamp: Option<Vec<u8>>,
    /// How long the controller takes to answer a TFTP Manage message (it
    /// keeps polling meanwhile).
    pub answer_delay: Duration,
    pub events: Option<UnboundedSender<CspEvent>>,
}

impl Default for CspConfig {
    fn default() -> CspConfig {
        CspConfig {
            checksum: ExsChecksum::Sum8Twos,
            poll_interval: Some(Duration::from_secs(2)),
            tftp_port: 69,
            tftp: TftpOptions::default(),
            layout: ResponseLayout::Documented,
            faults: Vec::new(),
            alarm_wait: Duration::from_secs(5),
            adjacent_timestamp: None,
            answer_delay: Duration::ZERO,
            events: None,
        }
    }
}

/// What the simulator did, for logs and test assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum CspEvent {
    Connected { peer: String },
    Replaced { peer: String },
    Closed { peer: String },
    Request { seq: u8, icbs: Vec<String> },
    Answered { seq: u8, status: Status, more_status: u8 },
    Download { server: String, filename: String, result: String },
    PollSent { seq: u8 },
    AlarmSent { seq: u8 },
    HostAnswered { message: String, seq: u8 },
    AlarmUnanswered { seq: u8 },
    FaultInjected { fault: Fault, seq: u8 },
    BadFrame { error: String },
}

impl fmt::Display for CspEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CspEvent::Connected { peer } => write!(f, "host connected from {peer}"),
            CspEvent::Replaced { peer } => write!(f, "new connection replaces the one from {peer}"),
            CspEvent::Closed { peer } => write!(f, "connection from {peer} closed"),
            CspEvent::Request { seq, icbs } => write!(f, "TFTP Manage seq {seq}: {}", icbs.join("; ")),
            CspEvent::Answered { seq, status, more_status } => {
                write!(f, "answered seq {seq}: status {status}, more status {more_status:#04x}")
            }
            CspEvent::Download { server, filename, result } => write!(f, "TFTP {filename} from {server}: {result}"),
            CspEvent::PollSent { seq } => write!(f, "poll seq {seq} sent"),
            CspEvent::AlarmSent { seq } => write!(f, "alarm seq {seq} sent"),
            CspEvent::HostAnswered { message, seq } => write!(f, "host answered {message} seq {seq}"),
            CspEvent::AlarmUnanswered { seq } => write!(f, "alarm seq {seq} not acknowledged; answer withheld"),
            CspEvent::FaultInjected { fault, seq } => {
                write!(f, "fault {fault:?} injected into the answer to seq {seq}")
            }
            CspEvent::BadFrame { error } => write!(f, "unreadable frame from the host: {error}"),
        }
    }
}

/// A load the controller knows (from the last configuration file).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Load {
    filename: String,
    version: Vec<u8>,
    save: bool,
}

/// The controller's TFTP settings and loads, kept across connections.
#[derive(Debug, Default)]
struct Controller {
    local_config: Option<Filename>,
    local_server: Option<Ipv4Addr>,
    adjacent_config: Option<Filename>,
    adjacent_server: Option<Ipv4Addr>,
    timestamp: Option<Vec<u8>>,
    loads: Vec<Load>,
    faults: VecDeque<Fault>,
}

/// What a TFTP Manage request gets.
struct Answer {
    status: Status,
    more: u8,
    icbs: Vec<Icb>,
}

impl Answer {
    fn status(status: StatusCode, more: u8) -> Answer {
        Answer { status: status.into(), more, icbs: Vec::new() }
    }
}

struct Shared {
    config: CspConfig,
    framing: Framing,
    controller: Mutex<Controller>,
}

impl Shared {
    fn emit(&self, event: CspEvent) {
        tracing::info!("csp: {event}");
        if let Some(events) = &self.config.events {
            let _ = events.send(event);
        }
    }

    fn controller(&self) -> std::sync::MutexGuard<'_, Controller> {
        // A panic elsewhere cannot leave the settings half-written in a way
        // that matters to a simulator: keep serving.
        lock(&self.controller)
    }
}

/// Serves host connections on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: CspConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        framing: Framing {
            checksum: config.checksum,
            // The escaping rule is not published; the simulator sends raw
            // bytes and readers go by Length.
            marker_rule: ExsMarkerRule::SendRaw,
        },
        controller: Mutex::new(Controller { faults: config.faults.iter().copied().collect(), ..Controller::default() }),
        config,
    });
    tokio::pin!(shutdown);
    let mut session: Option<(tokio::task::JoinHandle<()>, String)> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!("csp: accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if let Some((old, old_peer)) = session.take()
                    && !old.is_finished()
                {
                    old.abort();
                    shared.emit(CspEvent::Replaced { peer: old_peer });
                }
                shared.emit(CspEvent::Connected { peer: peer.to_string() });
                let task = tokio::spawn(run_session(stream, peer, shared.clone()));
                session = Some((task, peer.to_string()));
            }
        }
    }
    if let Some((task, _)) = session {
        task.abort();
    }
    Ok(())
}

struct Session {
    connection: Connection<TcpStream>,
    shared: Arc<Shared>,
    poll_seq: u8,
    next_poll: Option<Instant>,
    alarm_seq: u8,
}

/// What the host sent.
enum Incoming {
    Frame(Frame),
    BadChecksum { msg_type: u16, seq: u8 },
}

/// Why a session ends.
enum End {
    Closed,
    Dropped,
}

async fn run_session(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut session = Session {
        connection: Connection::new(stream, shared.framing),
        shared: shared.clone(),
        poll_seq: 0,
        next_poll: shared.config.poll_interval.map(|i| Instant::now() + i),
        alarm_seq: 0,
    };
    let _ = session.run().await;
    shared.emit(CspEvent::Closed { peer: peer.to_string() });
}

impl Session {
    async fn run(&mut self) -> Result<End, std::io::Error> {
        loop {
            while let Some(frame) = self.next_frame()? {
                if let Some(end) = self.handle(frame).await? {
                    return Ok(end);
                }
            }
            if self.pump(None).await? {
                return Ok(End::Closed);
            }
        }
    }

    /// Reads what the host sends into the buffer and sends Polls when they are
    /// due, until some bytes came or `until` passed. True when the host closed.
    async fn pump(&mut self, until: Option<Instant>) -> std::io::Result<bool> {
        let deadline = async {
            match until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        loop {
            let poll_due = async {
                match self.next_poll {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = self.connection.read_more() => return Ok(!read?),
                _ = poll_due => {
                    let seq = self.poll_seq;
                    self.poll_seq = next_seq(seq);
                    self.send(&Frame::new(POLL, seq, 0xFF, Vec::new())).await?;
                    self.shared.emit(CspEvent::PollSent { seq });
                    self.next_poll = self.shared.config.poll_interval.map(|i| Instant::now() + i);
                }
                _ = &mut deadline => return Ok(false),
            }
        }
    }

    /// The next frame from the host. A frame with a bad checksum is skipped
    /// (its Length is fine); other garbage ends the session, since without a
    /// Length to trust there is no way to resynchronise.
    fn next_frame(&mut self) -> Result<Option<Incoming>, std::io::Error> {
        match self.connection.parse_frame() {
            Ok(None) => Ok(None),
            Ok(Some(frame)) => Ok(Some(Incoming::Frame(frame))),
            Err(FrameError::BadChecksum { msg_type, seq, frame_len, .. }) => {
                self.connection.skip(frame_len);
                self.shared.emit(CspEvent::BadFrame {
                    error: format!("bad checksum in {} seq {seq}", message_type::describe(msg_type)),
                });
                Ok(Some(Incoming::BadChecksum { msg_type, seq }))
            }
            Err(error) => {
                let buffered = self.connection.buffered();
                self.shared.emit(CspEvent::BadFrame {
                    error: format!("{error}; bytes: {}", hex(&buffered[..buffered.len().min(32)])),
                });
                Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()))
            }
        }
    }

    async fn send(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.connection.write_frame(frame).await.map_err(|error| match error {
            WriteError::Io(error) => error,
            WriteError::Encode(error) => std::io::Error::new(std::io::ErrorKind::InvalidInput, error.to_string()),
        })
    }

    fn wire(&self, frame: &Frame) -> std::io::Result<Vec<u8>> {
        let mut wire = Vec::new();
        self.connection
            .framing()
            .encode(frame, &mut wire)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(wire)
    }

    async fn handle(&mut self, incoming: Incoming) -> std::io::Result<Option<End>> {
        let frame = match incoming {
            Incoming::Frame(frame) => frame,
            // Answered with the general status for it, status only.
            Incoming::BadChecksum { msg_type, seq } => {
                let body = StatusCode::BadChecksum.code().to_be_bytes().to_vec();
                self.send(&Frame::new(msg_type, seq, 0xFF, body)).await?;
                return Ok(None);
            }
        };
        match frame.msg_type {
            POLL | ALARM => {
                self.shared
                    .emit(CspEvent::HostAnswered { message: message_type::describe(frame.msg_type), seq: frame.seq });
                Ok(None)
            }
            TFTP_MANAGE => self.tftp_manage(frame).await,
            other => {
                let body = StatusCode::NegativeAck.code().to_be_bytes().to_vec();
                self.send(&Frame::new(other, frame.seq, frame.node, body)).await?;
                Ok(None)
            }
        }
    }

    async fn tftp_manage(&mut self, request: Frame) -> std::io::Result<Option<End>> {
        let answer = match TftpManageRequest::decode(&request.body) {
            Ok(decoded) => {
                self.shared.emit(CspEvent::Request {
                    seq: request.seq,
                    icbs: decoded.icbs.iter().map(RequestIcb::describe).collect(),
                });
                self.answer(&decoded).await
            }
            Err(error) => {
                let (status, more) = refusal(&error, request.body.len());
                self.shared.emit(CspEvent::Request { seq: request.seq, icbs: vec![format!("invalid: {error}")] });
                Answer::status(status, more)
            }
        };
        let ready = Instant::now() + self.shared.config.answer_delay;
        while Instant::now() < ready {
            if self.pump(Some(ready)).await? {
                return Ok(Some(End::Closed));
            }
        }
        let layout = self.shared.config.layout;
        let body = TftpManageResponse::encode(answer.status, answer.more, &answer.icbs, layout)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut response = Frame::new(TFTP_MANAGE, request.seq, request.node, body);
        let fault = self.shared.controller().faults.pop_front();
        if let Some(fault) = fault {
            self.shared.emit(CspEvent::FaultInjected { fault, seq: request.seq });
        }
        match fault {
            Some(Fault::WrongSequence) => response.seq = next_seq(response.seq),
            Some(Fault::DropConnection) => return Ok(Some(End::Dropped)),
            Some(Fault::AlarmFirst) if !self.alarm_acknowledged().await? => {
                return Ok(None);
            }
            _ => {}
        }
        let mut wire = self.wire(&response)?;
        match fault {
            Some(Fault::BadChecksum) => {
                if let Some(last) = wire.last_mut() {
                    *last ^= 0xFF;
                }
            }
            Some(Fault::Truncated) => {
                wire.truncate(wire.len() / 2);
                self.connection.write_bytes(&wire).await?;
                return Ok(Some(End::Dropped));
            }
            _ => {}
        }
        self.connection.write_bytes(&wire).await?;
        self.shared.emit(CspEvent::Answered { seq: request.seq, status: answer.status, more_status: answer.more });
        Ok(None)
    }

    /// Sends an Alarm (TFTP alarm 0x1E) and waits for its acknowledgment,
    /// sending it once more if none comes, as a controller does.
    async fn alarm_acknowledged(&mut self) -> std::io::Result<bool> {
        let seq = self.alarm_seq;
        self.alarm_seq = next_seq(seq);
        // Severity, alarm type (TFTP), alarm number, data length, data: one
        // byte each here (their widths are not published).
        let alarm = Frame::new(ALARM, seq, 0xFF, vec![0x01, 0x1E, 0x01, 0x01, MoreStatus::NoStatus.code()]);
        for _ in 0..2 {
            self.send(&alarm).await?;
            self.shared.emit(CspEvent::AlarmSent { seq });
            let deadline = Instant::now() + self.shared.config.alarm_wait;
            loop {
                while let Some(incoming) = self.next_frame()? {
                    let Incoming::Frame(frame) = incoming else {
                        continue;
                    };
                    if frame.msg_type == ALARM && frame.seq == seq {
                        self.shared.emit(CspEvent::HostAnswered { message: message_type::describe(ALARM), seq });
                        return Ok(true);
                    }
                    self.shared.emit(CspEvent::BadFrame {
                        error: format!(
                            "{} seq {} while waiting for the alarm's acknowledgment",
                            message_type::describe(frame.msg_type),
                            frame.seq
                        ),
                    });
                }
                match timeout_at(deadline, self.connection.read_more()).await {
                    Err(_) => break,
                    Ok(Ok(false)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(Ok(true)) => {}
                    Ok(Err(error)) => return Err(error),
                }
            }
        }
        self.shared.emit(CspEvent::AlarmUnanswered { seq });
        Ok(false)
    }

    async fn answer(&mut self, request: &TftpManageRequest) -> Answer {
        let layout = self.shared.config.layout;
        // Values the queries return, checked against the 249-byte limit.
        let mut begin_download = false;
        let mut queries = Vec::new();
        {
            let mut controller = self.shared.controller();
            for icb in &request.icbs {
                match icb {
                    RequestIcb::Data(value) => controller.assign(value),
                    RequestIcb::Action { subtype: ActionSubtype::BeginDownload, .. } => begin_download = true,
                    RequestIcb::Action { subtype, load } => queries.push((*subtype, *load)),
                }
            }
        }
        if begin_download && let Some(failure) = self.download().await {
            return failure;
        }
        let controller = self.shared.controller();
        let mut icbs = Vec::new();
        for (subtype, load) in queries {
            match controller.value(subtype, load) {
                Ok(Some(value)) => {
                    let mut icb = value.to_icb();
                    if layout == ResponseLayout::NoMoreStatus {
                        // As in the page's trace: the value in the query's Action ICB.
                        icb.kind = ACTION;
                        icb.subtype = subtype.code();
                    }
                    icbs.push(icb);
                }
                Ok(None) => {}
                Err(answer) => return answer,
            }
        }
        let size: usize = icbs.iter().map(Icb::encoded_len).sum();
        if size > 249 {
            return Answer::status(StatusCode::ResponseTooLong, 0);
        }
        Answer { status: Status::POSITIVE, more: 0, icbs }
    }

    /// Fetches and checks the configuration file; None when it is accepted.
    async fn download(&mut self) -> Option<Answer> {
        let (server, filename, message_timestamp) = {
            let controller = self.shared.controller();
            (controller.local_server, controller.local_config.clone(), controller.timestamp.clone())
        };
        let failed = |reason: MoreStatus| Some(Answer::status(StatusCode::TftpFailed, reason.code()));
        let Some(server) = server else {
            return failed(MoreStatus::NoServerAddress);
        };
        let Some(filename) = filename else {
            return failed(MoreStatus::NoFilename);
        };
        let address = SocketAddr::from((server, self.shared.config.tftp_port));
        let fetched = tftp_client::fetch(address, filename.as_str(), &self.shared.config.tftp).await;
        let result = match &fetched {
            Ok(bytes) => format!("{} bytes", bytes.len()),
            Err(error) => error.to_string(),
        };
        self.shared.emit(CspEvent::Download { server: address.to_string(), filename: filename.to_string(), result });
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(TftpError::Remote { .. }) => return failed(MoreStatus::ProtocolError),
            Err(TftpError::Timeout { .. }) => return failed(MoreStatus::TimedOut),
            Err(TftpError::Protocol { .. }) => return failed(MoreStatus::OutOfSync),
            Err(TftpError::TooLarge { .. }) => return failed(MoreStatus::BufferOverflow),
            Err(TftpError::Io(_)) => return failed(MoreStatus::OsIoError),
        };
        let text = String::from_utf8_lossy(&bytes);
        let report = config_file::check(&text, &ConfigRules::default(), Some(message_timestamp.is_some()));
        if let Some(problem) = report.first_error() {
            let status = problem.status.unwrap_or(StatusCode::TftpFailed.into());
            let more = problem.more_status.as_ref().map_or(0, |m| m.value);
            return Some(Answer { status, more, icbs: Vec::new() });
        }
        let supplied =
            message_timestamp.or_else(|| report.timestamp.as_ref().map(|t| t.as_bytes().to_vec())).unwrap_or_default();
        if let Some(adjacent) = &self.shared.config.adjacent_timestamp {
            match supplied.cmp(adjacent) {
                std::cmp::Ordering::Less => return Some(Answer::status(StatusCode::OldTimestamp, 0)),
                std::cmp::Ordering::Equal => return Some(Answer::status(StatusCode::TimestampEqual, 0)),
                std::cmp::Ordering::Greater => {}
            }
        }
        self.shared.controller().loads = report
            .loads
            .iter()
            .map(|load| Load { filename: load.path.clone(), version: supplied.clone(), save: load.save_load })
            .collect();
        None
    }
}

impl Controller {
    fn assign(&mut self, value: &DataValue) {
        match value {
            DataValue::LocalConfig(name) => self.local_config = Some(name.clone()),
            DataValue::LocalServer(ip) => self.local_server = Some(*ip),
            DataValue::AdjacentConfig(name) => self.adjacent_config = Some(name.clone()),
            DataValue::AdjacentServer(ip) => self.adjacent_server = Some(*ip),
            DataValue::Timestamp(bytes) => self.timestamp = Some(bytes.clone()),
            // CSP-initiated values: a host cannot set them; a controller
            // ignores them (nothing in the page says it refuses them).
            DataValue::SaveOptions(_) | DataValue::LoadVersion(_) | DataValue::LoadFilename(_) => {}
        }
    }

    /// The answer to one query: a value, nothing (not set), or a refusal.
    fn value(&self, query: ActionSubtype, load: Option<u8>) -> Result<Option<DataValue>, Answer> {
        let pick_load = || -> Result<Option<&Load>, Answer> {
            match load {
                // Without a load number: the first load, if any.
                None => Ok(self.loads.first()),
                Some(n) if n >= 1 && usize::from(n) <= self.loads.len() => Ok(self.loads.get(usize::from(n) - 1)),
                Some(n) => Err(Answer::status(StatusCode::UnknownLoadNumber, n)),
            }
        };
        let Some(answer) = query.answer() else {
            return Ok(None);
        };
        Ok(match answer {
            DataSubtype::LocalConfig => self.local_config.clone().map(DataValue::LocalConfig),
            DataSubtype::LocalServer => self.local_server.map(DataValue::LocalServer),
            DataSubtype::AdjacentConfig => self.adjacent_config.clone().map(DataValue::AdjacentConfig),
            DataSubtype::AdjacentServer => self.adjacent_server.map(DataValue::AdjacentServer),
            DataSubtype::Timestamp => self.timestamp.clone().map(DataValue::Timestamp),
            DataSubtype::SaveOptions => (!self.loads.is_empty())
                .then(|| DataValue::SaveOptions(self.loads.iter().map(|l| u8::from(l.save)).collect())),
            DataSubtype::LoadVersion => pick_load()?.map(|l| DataValue::LoadVersion(l.version.clone())),
            DataSubtype::LoadFilename => match pick_load()? {
                Some(l) => Filename::new(&l.filename).ok().map(DataValue::LoadFilename),
                None => None,
            },
        })
    }
}

/// The Status and More Status a controller answers to a request it cannot
/// read (codes from the TFTP Manage page). Controller behaviour, so it lives
/// here and not in the codec.
fn refusal(error: &TftpManageError, body_len: usize) -> (StatusCode, u8) {
    let clamp = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
    match error {
        TftpManageError::UnknownIcbType { kind, .. } => (StatusCode::IncorrectIcbType, *kind),
        TftpManageError::UnknownSubtype { subtype, .. } => (StatusCode::IncorrectIcbSubtype, *subtype),
        TftpManageError::BadLength { subtype, .. } => (StatusCode::IncorrectIcbLength, *subtype),
        TftpManageError::FilenameEmpty => (StatusCode::IncorrectIcbLength, 0),
        TftpManageError::FilenameTooLong { len } => (StatusCode::FilenameTooLong, clamp(*len)),
        _ => (StatusCode::InvalidMessageLength, clamp(body_len)),
    }
}

/// Sequence numbers the simulator originates skip the frame marker value.
fn next_seq(seq: u8) -> u8 {
    match seq.wrapping_add(1) {
        0xFE => 0xFF,
        next => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal_of(body: &[u8]) -> (StatusCode, u8) {
        refusal(&TftpManageRequest::decode(body).unwrap_err(), body.len())
    }

    #[test]
    fn unreadable_requests_get_the_pages_status_codes() {
        assert_eq!(refusal_of(&[1, 4, 1, 0]), (StatusCode::IncorrectIcbType, 4));
        assert_eq!(refusal_of(&[1, 1, 9, 0]), (StatusCode::IncorrectIcbSubtype, 9));
        assert_eq!(refusal_of(&[1, 2, 0x38, 3, 1, 2, 3]), (StatusCode::IncorrectIcbLength, 0x38));
        assert_eq!(refusal_of(&[1, 1, 0x01, 1, 5]), (StatusCode::IncorrectIcbLength, 0x01));
        assert_eq!(refusal_of(&[2, 1, 1, 0]), (StatusCode::InvalidMessageLength, 4));
        assert_eq!(refusal_of(&[1, 2, 0x37, 1, 0]).0, StatusCode::IncorrectIcbLength);
        let long = TftpManageError::FilenameTooLong { len: 300 };
        assert_eq!(refusal(&long, 10), (StatusCode::FilenameTooLong, 255));
    }
}
