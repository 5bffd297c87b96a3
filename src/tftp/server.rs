//! The TFTP server (RFC 1350, with the blksize, tsize and timeout options of
//! RFC 2347-2349) over tokio UDP: `flashline tftp serve` and the
//! `tftp_manage` step's `serve:` folder.
//!
//! The well-known socket only takes requests; each transfer runs on its own
//! socket (its transfer ID), connected to the client, in its own task, at
//! most [`ServerConfig::max_transfers`] at once. A block not acknowledged in
//! time is sent again, [`ServerConfig::retries`] times at most; a duplicate
//! ACK is not answered with a duplicate block (the Sorcerer's Apprentice bug
//! of RFC 1350). Names are confined to the root ([`super::root`]); writes
//! are refused unless allowed. Each finished or refused transfer is one
//! progress note. It does not serve directories, `mail` mode or multicast.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use super::packet::{self, DEFAULT_BLOCK, ErrorCode, Packet, RequestKind};
use super::root::{PathRefusal, Root};
use crate::failure::{Classify, FailureClass};
use crate::progress::{Progress, ProgressEvent, TaskKind};
use crate::sync::lock;

/// The largest block RFC 2348 allows (an IP datagram's worth).
pub const MAX_BLKSIZE: usize = 65464;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub root: Root,
    /// Accept write requests (WRQ); off by default.
    pub allow_write: bool,
    /// How long a block waits for its acknowledgment when the client does
    /// not ask for another `timeout` (RFC 2349).
    pub timeout: Duration,
    /// How many times a packet is sent again before the transfer is given up.
    pub retries: u32,
    /// Transfers running at once; a request beyond gets an error.
    pub max_transfers: usize,
    /// The largest block the server agrees to (a client asks with `blksize`).
    pub max_blksize: usize,
    /// The largest file a client may write.
    pub max_write_size: u64,
    /// How many [`TransferRecord`]s [`serve`] keeps for its caller: the
    /// latest ones, older ones are dropped (each transfer is a progress note
    /// anyway), so a long-running server's memory does not grow per request.
    pub max_records: usize,
}

impl ServerConfig {
    pub fn new(root: Root) -> ServerConfig {
        ServerConfig {
            root,
            allow_write: false,
            timeout: Duration::from_secs(1),
            retries: 5,
            max_transfers: 64,
            max_blksize: MAX_BLKSIZE,
            max_write_size: 1 << 30,
            max_records: 1024,
        }
    }
}

/// Errors that stop the server itself (a single transfer's failure is
/// answered to its client and noted, and does not stop it).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot serve {path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("cannot listen on udp {address}: {source}{}", bind_hint(source))]
    Bind { address: SocketAddr, source: io::Error },
    #[error("udp socket: {0}")]
    Io(#[from] io::Error),
}

fn bind_hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::PermissionDenied => " (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
        io::ErrorKind::AddrInUse => " (another TFTP server, such as tftpd-hpa, holds the port)",
        _ => "",
    }
}

impl Classify for ServeError {
    fn class(&self) -> FailureClass {
        match self {
            ServeError::Root { .. } | ServeError::Bind { .. } | ServeError::Io(_) => FailureClass::Environment,
        }
    }
}

/// Binds the server's well-known socket.
pub async fn bind(address: SocketAddr) -> Result<UdpSocket, ServeError> {
    UdpSocket::bind(address).await.map_err(|source| ServeError::Bind { address, source })
}

/// One transfer as it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord {
    pub kind: RequestKind,
    pub filename: String,
    pub peer: SocketAddr,
    /// File bytes moved (before netascii conversion).
    pub bytes: u64,
    /// `None` when the whole file moved, else why not.
    pub failure: Option<String>,
}

/// The latest transfers' records, at most `limit` of them.
#[derive(Debug)]
struct Records {
    kept: VecDeque<TransferRecord>,
    limit: usize,
}

impl Records {
    fn new(limit: usize) -> Records {
        Records { kept: VecDeque::with_capacity(limit.min(64)), limit }
    }

    fn push(&mut self, record: TransferRecord) {
        if self.limit == 0 {
            return;
        }
        if self.kept.len() == self.limit {
            self.kept.pop_front();
        }
        self.kept.push_back(record);
    }
}

/// Serves requests on `socket` until `shutdown` completes, then stops the
/// running transfers and returns what the latest
/// [`ServerConfig::max_records`] transfers did, oldest first.
pub async fn serve(
    socket: UdpSocket,
    config: ServerConfig,
    progress: Arc<dyn Progress>,
    shutdown: impl Future<Output = ()>,
) -> Result<Vec<TransferRecord>, ServeError> {
    let config = Arc::new(config);
    let records = Arc::new(Mutex::new(Records::new(config.max_records)));
    let local = socket.local_addr()?;
    let mut transfers = JoinSet::new();
    let mut buf = vec![0u8; MAX_BLKSIZE + 4];
    tokio::pin!(shutdown);
    loop {
        // Reap finished transfers so the count below is the running ones.
        while transfers.try_join_next().is_some() {}
        let (n, peer) = tokio::select! {
            () = &mut shutdown => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                // ICMP port unreachable from an earlier answer, and the like:
                // one client's trouble does not stop the server.
                Err(error) if is_transient(&error) => continue,
                Err(error) => return Err(error.into()),
            },
        };
        // A datagram "from" the server's own address and port is spoofed:
        // answering it would have the server answer itself forever.
        if is_own_address(peer, local) {
            continue;
        }
        let request = match packet::decode_datagram(&buf[..n]) {
            Ok(Packet::Request { kind, filename, mode, options }) => Request { kind, filename, mode, options },
            // An ERROR is never answered (RFC 1350 section 7): two servers,
            // or a server and a spoofed copy of itself, would otherwise
            // trade errors without end.
            Ok(Packet::Error { .. }) => continue,
            Ok(_) => {
                let answer = error_bytes(ErrorCode::IllegalOperation, "expected a read or write request");
                let _ = socket.send_to(&answer, peer).await;
                continue;
            }
            Err(error) => {
                let _ = socket.send_to(&error_bytes(ErrorCode::IllegalOperation, &error.to_string()), peer).await;
                continue;
            }
        };
        if transfers.len() >= config.max_transfers {
            let _ = socket.send_to(&error_bytes(ErrorCode::NotDefined, "server busy, try again"), peer).await;
            note(
                &*progress,
                format!("refused {} from {peer}: {} transfers running", shown(&request.filename), transfers.len()),
            );
            continue;
        }
        let (config, progress, records) = (config.clone(), progress.clone(), records.clone());
        transfers.spawn(async move {
            let record = transfer(local, peer, request, &config, &*progress).await;
            lock(&records).push(record);
        });
    }
    transfers.shutdown().await;
    let records = std::mem::take(&mut lock(&records).kept);
    Ok(records.into())
}

/// Whether `peer` is the socket at `local` itself: the same port on the
/// same address, or, for a socket on the unspecified address, on any
/// address of this host (one a socket can be bound to).
fn is_own_address(peer: SocketAddr, local: SocketAddr) -> bool {
    if peer.port() != local.port() {
        return false;
    }
    // An IPv4 peer of a dual-stack socket comes as ::ffff:a.b.c.d.
    let (ip, ours) = (peer.ip().to_canonical(), local.ip().to_canonical());
    if ip == ours {
        return true;
    }
    ours.is_unspecified()
        && (ip.is_loopback() || ip.is_unspecified() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok())
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    )
}

fn note(progress: &dyn Progress, text: String) {
    progress.report(ProgressEvent::Note { kind: TaskKind::TftpTransfer, text });
}

/// A name from the network as it may be printed: control characters (a
/// terminal's escape sequences) are escaped.
fn shown(name: &str) -> String {
    if name.chars().any(char::is_control) { name.escape_debug().to_string() } else { name.to_string() }
}

fn error_bytes(code: ErrorCode, message: &str) -> Vec<u8> {
    packet::to_bytes(&Packet::Error { code, message: message.to_string() })
}

struct Request {
    kind: RequestKind,
    filename: String,
    mode: String,
    options: Vec<(String, String)>,
}

/// What a transfer agreed on.
#[derive(Debug, Clone, Copy)]
struct Agreed {
    blksize: usize,
    timeout: Duration,
    netascii: bool,
}

/// Why a transfer stopped early: the error packet for the client (if one
/// is owed) and the text for the record.
struct Stop {
    tell: Option<(ErrorCode, String)>,
    why: String,
}

impl Stop {
    fn tell(code: ErrorCode, why: impl Into<String>) -> Stop {
        let why = why.into();
        Stop { tell: Some((code, why.clone())), why }
    }

    fn quiet(why: impl Into<String>) -> Stop {
        Stop { tell: None, why: why.into() }
    }
}

impl From<PathRefusal> for Stop {
    fn from(refusal: PathRefusal) -> Stop {
        let code = match refusal {
            PathRefusal::NotFound { .. } => ErrorCode::FileNotFound,
            PathRefusal::Absolute { .. } | PathRefusal::Escapes { .. } => ErrorCode::AccessViolation,
            PathRefusal::Io { ref source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                ErrorCode::AccessViolation
            }
            PathRefusal::Io { .. } => ErrorCode::NotDefined,
        };
        Stop::tell(code, refusal.to_string())
    }
}

async fn transfer(
    local: SocketAddr,
    peer: SocketAddr,
    request: Request,
    config: &ServerConfig,
    progress: &dyn Progress,
) -> TransferRecord {
    let started = Instant::now();
    let mut record =
        TransferRecord { kind: request.kind, filename: request.filename.clone(), peer, bytes: 0, failure: None };
    // The transfer's own port on the address the request came to.
    let socket = match UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await {
        Ok(socket) => socket,
        Err(error) => {
            record.failure = Some(format!("no socket for the transfer: {error}"));
            note(progress, format!("failed {} for {peer}: no socket: {error}", shown(&request.filename)));
            return record;
        }
    };
    if let Err(error) = socket.connect(peer).await {
        record.failure = Some(format!("cannot reach {peer}: {error}"));
        return record;
    }
    let mut link = Link { socket, retries: config.retries, sent: Vec::new(), buf: vec![0u8; MAX_BLKSIZE + 4] };
    let result = match request.kind {
        RequestKind::Read => send_file(&mut link, &request, config, &mut record.bytes).await,
        RequestKind::Write => receive_file(&mut link, &request, config, &mut record.bytes).await,
    };
    let (verb, direction) = match request.kind {
        RequestKind::Read => ("sent", "to"),
        RequestKind::Write => ("received", "from"),
    };
    match result {
        Ok(agreed) => {
            let elapsed = started.elapsed();
            let rate = record.bytes as f64 / elapsed.as_secs_f64().max(1e-6) / 1e6;
            note(
                progress,
                format!(
                    "{verb} {} {direction} {peer}: {} B in {:.2} s ({rate:.1} MB/s, blksize {})",
                    shown(&request.filename),
                    record.bytes,
                    elapsed.as_secs_f64(),
                    agreed.blksize
                ),
            );
        }
        Err(stop) => {
            if let Some((code, message)) = &stop.tell {
                let _ = link.socket.send(&error_bytes(*code, message)).await;
            }
            note(progress, format!("refused {} {direction} {peer}: {}", shown(&request.filename), stop.why));
            record.failure = Some(stop.why);
        }
    }
    record
}

/// The transfer's socket, with the last packet kept for retransmission.
struct Link {
    socket: UdpSocket,
    retries: u32,
    sent: Vec<u8>,
    buf: Vec<u8>,
}

/// What the peer answered.
enum Answer {
    Ack(u16),
    Data { block: u16, len: usize },
}

impl Link {
    async fn send_new(&mut self) -> Result<(), Stop> {
        self.socket.send(&self.sent).await.map_err(|error| Stop::quiet(format!("send failed: {error}")))?;
        Ok(())
    }

    /// Waits for an answer to the packet in `sent`, sending it again on
    /// each timeout. `wanted` says whether an answer moves the transfer on;
    /// stale answers (duplicates) are ignored without a retransmission.
    async fn exchange(&mut self, timeout: Duration, wanted: impl Fn(&Answer) -> bool) -> Result<Answer, Stop> {
        let mut tries = 0;
        // Stale packets are bounded too: a peer flooding duplicates cannot
        // keep the transfer alive forever.
        let mut stale = 0u32;
        loop {
            let received = tokio::time::timeout(timeout, self.socket.recv(&mut self.buf)).await;
            let n = match received {
                Err(_) => {
                    if tries >= self.retries {
                        return Err(Stop::quiet(format!("no answer after {} tries of {timeout:?}", tries + 1)));
                    }
                    tries += 1;
                    self.send_new().await?;
                    continue;
                }
                Ok(Err(error)) if is_transient(&error) => {
                    return Err(Stop::quiet(format!("the client went away: {error}")));
                }
                Ok(Err(error)) => return Err(Stop::quiet(format!("receive failed: {error}"))),
                Ok(Ok(n)) => n,
            };
            let answer = match packet::decode_datagram(&self.buf[..n]) {
                Ok(Packet::Ack { block }) => Answer::Ack(block),
                Ok(Packet::Data { block, data }) => Answer::Data { block, len: data.len() },
                Ok(Packet::Error { code, message }) => {
                    return Err(Stop::quiet(format!("the client sent error {code}: {message}")));
                }
                Ok(_) => return Err(Stop::tell(ErrorCode::IllegalOperation, "unexpected packet")),
                Err(error) => return Err(Stop::tell(ErrorCode::IllegalOperation, error.to_string())),
            };
            if wanted(&answer) {
                return Ok(answer);
            }
            stale += 1;
            if stale > 64 + 4 * self.retries {
                return Err(Stop::tell(ErrorCode::IllegalOperation, "too many out-of-order packets"));
            }
        }
    }
}

/// Agrees on the options a request asked for (RFC 2347: unknown options
/// and values out of range are left out of the OACK, not refused).
fn negotiate(
    request: &Request,
    config: &ServerConfig,
    file_size: Option<u64>,
) -> Result<(Agreed, Vec<(String, String)>), Stop> {
    let netascii = match request.mode.to_ascii_lowercase().as_str() {
        "octet" => false,
        "netascii" => true,
        other => return Err(Stop::tell(ErrorCode::IllegalOperation, format!("mode {other:?} is not supported"))),
    };
    // RFC 2347 gives each option once; a request naming one twice (names
    // are compared without case) is refused with error 8 rather than
    // guessed at.
    // A set, not pairwise: a datagram can carry thousands of options.
    let mut seen = std::collections::HashSet::with_capacity(request.options.len());
    for (name, _) in &request.options {
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(Stop::tell(
                ErrorCode::OptionRefused,
                format!("option {:?} is given more than once; request denied", shown(name)),
            ));
        }
    }
    let mut agreed = Agreed { blksize: DEFAULT_BLOCK, timeout: config.timeout, netascii };
    let mut answer = Vec::new();
    for (name, value) in &request.options {
        match name.to_ascii_lowercase().as_str() {
            "blksize" => {
                if let Ok(asked) = value.parse::<usize>()
                    && asked >= 8
                {
                    agreed.blksize = asked.min(config.max_blksize).min(MAX_BLKSIZE);
                    answer.push((name.clone(), agreed.blksize.to_string()));
                }
            }
            "timeout" => {
                if let Ok(seconds) = value.parse::<u64>()
                    && (1..=255).contains(&seconds)
                {
                    agreed.timeout = Duration::from_secs(seconds);
                    answer.push((name.clone(), seconds.to_string()));
                }
            }
            "tsize" => match (request.kind, file_size) {
                // netascii changes the size on the wire: not announced. Nor
                // is an empty file's: curl (7.88) refuses an OACK with tsize
                // 0 as invalid, so the option is ignored, as RFC 2347 allows.
                (RequestKind::Read, Some(size)) if !netascii && size > 0 => {
                    answer.push((name.clone(), size.to_string()))
                }
                (RequestKind::Write, _) => {
                    if let Ok(size) = value.parse::<u64>() {
                        if size > config.max_write_size {
                            return Err(Stop::tell(
                                ErrorCode::DiskFull,
                                format!("{size} bytes is over the limit of {}", config.max_write_size),
                            ));
                        }
                        answer.push((name.clone(), value.clone()));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok((agreed, answer))
}

async fn send_file(link: &mut Link, request: &Request, config: &ServerConfig, moved: &mut u64) -> Result<Agreed, Stop> {
    let path = config.root.file_to_read(&request.filename)?;
    let file = tokio::fs::File::open(&path).await.map_err(|error| {
        let code = if error.kind() == io::ErrorKind::PermissionDenied {
            ErrorCode::AccessViolation
        } else {
            ErrorCode::NotDefined
        };
        Stop::tell(code, format!("cannot open {}: {error}", shown(&request.filename)))
    })?;
    let metadata = file.metadata().await.map_err(|e| Stop::tell(ErrorCode::NotDefined, e.to_string()))?;
    if !metadata.is_file() {
        return Err(Stop::tell(ErrorCode::FileNotFound, format!("{} is not a file", shown(&request.filename))));
    }
    let (agreed, options) = negotiate(request, config, Some(metadata.len()))?;
    if !options.is_empty() {
        link.sent = packet::to_bytes(&Packet::OptionAck { options });
        link.send_new().await?;
        link.exchange(agreed.timeout, |answer| matches!(answer, Answer::Ack(0))).await?;
    }
    let mut reader = BlockReader::new(file, agreed.netascii);
    let mut block: u16 = 1;
    // Bounded by the file: each pass sends one block of it, the last short.
    loop {
        let data = reader.next_block(agreed.blksize).await.map_err(|error| {
            Stop::tell(ErrorCode::NotDefined, format!("cannot read {}: {error}", shown(&request.filename)))
        })?;
        link.sent.clear();
        packet::encode_data(block, data, &mut link.sent);
        let last = data.len() < agreed.blksize;
        link.send_new().await?;
        let this = block;
        link.exchange(agreed.timeout, |answer| matches!(answer, Answer::Ack(b) if *b == this)).await?;
        *moved = reader.file_bytes;
        if last {
            return Ok(agreed);
        }
        // Past 65535 blocks the number wraps to 0, as tftpd-hpa and most
        // clients expect.
        block = block.wrapping_add(1);
    }
}

async fn receive_file(
    link: &mut Link,
    request: &Request,
    config: &ServerConfig,
    moved: &mut u64,
) -> Result<Agreed, Stop> {
    if !config.allow_write {
        return Err(Stop::tell(ErrorCode::AccessViolation, "writing is not allowed (serve with --allow-write)"));
    }
    let path = config.root.file_to_write(&request.filename)?;
    let (agreed, options) = negotiate(request, config, None)?;
    // Written beside the target and renamed at the end: a transfer that
    // fails half-way leaves the old file as it was.
    let partial = path.with_file_name(format!(
        ".{}.flashline-partial-{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        link.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    ));
    let file = tokio::fs::File::create(&partial).await.map_err(|error| {
        Stop::tell(ErrorCode::AccessViolation, format!("cannot write {}: {error}", shown(&request.filename)))
    })?;
    let received = receive_into(link, file, agreed, options, config, moved).await;
    let renamed = match received {
        Ok(last) => tokio::fs::rename(&partial, &path)
            .await
            .map(|()| last)
            .map_err(|error| Stop::tell(ErrorCode::DiskFull, format!("cannot put the file in place: {error}"))),
        Err(stop) => Err(stop),
    };
    match renamed {
        Ok(last) => {
            // The final ACK (already in `sent`) says the file is in place.
            link.send_new().await?;
            dally(link, agreed.timeout, last).await;
            Ok(agreed)
        }
        Err(stop) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(stop)
        }
    }
}

async fn receive_into(
    link: &mut Link,
    mut file: tokio::fs::File,
    agreed: Agreed,
    options: Vec<(String, String)>,
    config: &ServerConfig,
    moved: &mut u64,
) -> Result<u16, Stop> {
    link.sent = if options.is_empty() {
        packet::to_bytes(&Packet::Ack { block: 0 })
    } else {
        packet::to_bytes(&Packet::OptionAck { options })
    };
    link.send_new().await?;
    let mut expected: u16 = 1;
    let mut decoder = NetasciiDecoder::default();
    let mut converted = Vec::new();
    loop {
        let want = expected;
        let answer = link
            .exchange(agreed.timeout, |answer| matches!(answer, Answer::Data { block, .. } if *block == want))
            .await?;
        let Answer::Data { len, .. } = answer else {
            return Err(Stop::tell(ErrorCode::IllegalOperation, "unexpected packet"));
        };
        if len > agreed.blksize {
            return Err(Stop::tell(
                ErrorCode::IllegalOperation,
                format!("block of {len} bytes, over {}", agreed.blksize),
            ));
        }
        let data = &link.buf[4..4 + len];
        *moved += len as u64;
        if *moved > config.max_write_size {
            return Err(Stop::tell(ErrorCode::DiskFull, format!("over the limit of {} bytes", config.max_write_size)));
        }
        let bytes = if agreed.netascii {
            converted.clear();
            decoder.decode(data, &mut converted);
            &converted[..]
        } else {
            data
        };
        file.write_all(bytes)
            .await
            .map_err(|error| Stop::tell(ErrorCode::DiskFull, format!("write failed: {error}")))?;
        link.sent = packet::to_bytes(&Packet::Ack { block: expected });
        if len < agreed.blksize {
            // The last block is acknowledged by the caller, once the file
            // is whole, on disk and in place.
            file.flush().await.map_err(|error| Stop::tell(ErrorCode::DiskFull, format!("write failed: {error}")))?;
            file.sync_all().await.map_err(|error| Stop::tell(ErrorCode::DiskFull, format!("write failed: {error}")))?;
            return Ok(expected);
        }
        link.send_new().await?;
        expected = expected.wrapping_add(1);
    }
}

/// After the last ACK of a write, answer a repeated last block once more
/// (our ACK may have been lost), for one timeout at most.
async fn dally(link: &mut Link, timeout: Duration, last: u16) {
    let deadline = tokio::time::Instant::now() + timeout;
    for _ in 0..4 {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, link.socket.recv(&mut link.buf)).await else { return };
        if let Ok(Packet::Data { block, .. }) = packet::decode_datagram(&link.buf[..n])
            && block == last
        {
            let _ = link.socket.send(&link.sent).await;
        }
    }
}

/// Reads a file in blocks through a large buffer (one blocking read per
/// buffer, not per block), converting to netascii when asked. A block is
/// handed out as a slice of the buffer: the only copy left is into the
/// DATA packet.
struct BlockReader {
    file: tokio::fs::File,
    netascii: bool,
    /// `buf[start..end]` is read and not yet handed out.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// netascii only: the file's bytes before conversion.
    raw: Vec<u8>,
    eof: bool,
    /// File bytes read so far (before conversion).
    file_bytes: u64,
}

const READ_CHUNK: usize = 1 << 20;

impl BlockReader {
    fn new(file: tokio::fs::File, netascii: bool) -> BlockReader {
        BlockReader {
            file,
            netascii,
            buf: Vec::new(),
            start: 0,
            end: 0,
            raw: if netascii { vec![0u8; READ_CHUNK] } else { Vec::new() },
            eof: false,
            file_bytes: 0,
        }
    }

    async fn next_block(&mut self, size: usize) -> io::Result<&[u8]> {
        // Each refill reads at most READ_CHUNK bytes and ends at EOF: bounded.
        while self.end - self.start < size && !self.eof {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let n = if self.netascii {
                let n = self.file.read(&mut self.raw).await?;
                self.buf.truncate(self.end);
                netascii_encode(&self.raw[..n], &mut self.buf);
                self.end = self.buf.len();
                n
            } else {
                // Straight into the buffer, after what is left of it.
                self.buf.resize(self.end + READ_CHUNK, 0);
                let n = self.file.read(&mut self.buf[self.end..]).await?;
                self.end += n;
                n
            };
            if n == 0 {
                self.eof = true;
            }
            self.file_bytes += n as u64;
        }
        let take = size.min(self.end - self.start);
        let block = &self.buf[self.start..self.start + take];
        self.start += take;
        Ok(block)
    }
}

/// RFC 764's netascii as TFTP uses it: LF becomes CR LF, CR becomes CR NUL.
/// `pub` for the fuzz targets only.
#[doc(hidden)]
pub fn netascii_encode(data: &[u8], out: &mut Vec<u8>) {
    for &byte in data {
        match byte {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            other => out.push(other),
        }
    }
}

/// The reverse of [`netascii_encode`], across block boundaries (what a
/// client writes with `mode netascii`). `pub` for the fuzz targets only.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct NetasciiDecoder {
    pending_cr: bool,
}

impl NetasciiDecoder {
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &byte in data {
            if self.pending_cr {
                self.pending_cr = false;
                match byte {
                    b'\n' => out.push(b'\n'),
                    b'\0' => out.push(b'\r'),
                    b'\r' => {
                        out.push(b'\r');
                        self.pending_cr = true;
                    }
                    other => out.extend_from_slice(&[b'\r', other]),
                }
            } else if byte == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(byte);
            }
        }
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::sim::tftp_client::{TftpOptions, fetch};

    type Started = (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Vec<TransferRecord>>);

    async fn start(config: ServerConfig) -> Started {
        start_with(config, Arc::new(Silent)).await
    }

    async fn start_with(config: ServerConfig, progress: Arc<dyn Progress>) -> Started {
        let socket = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = socket.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            serve(socket, config, progress, async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
        });
        (address, stop, handle)
    }

    /// The server's progress notes, as a channel the test waits on.
    fn notes() -> (Arc<dyn Progress>, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (send, receive) = tokio::sync::mpsc::unbounded_channel();
        let progress = move |event: ProgressEvent| {
            if let ProgressEvent::Note { text, .. } = event {
                let _ = send.send(text);
            }
        };
        (Arc::new(progress), receive)
    }

    /// Waits (5 s at most) for a note containing `part`.
    async fn note_containing(notes: &mut tokio::sync::mpsc::UnboundedReceiver<String>, part: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, notes.recv()).await {
                Ok(Some(text)) if text.contains(part) => return text,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("no progress note containing {part:?} within 5 s"),
            }
        }
    }

    /// One datagram, or a failed test after 5 s (a test never hangs on a
    /// server that stays silent).
    async fn recv(client: &UdpSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
        tokio::time::timeout(Duration::from_secs(5), client.recv_from(buf))
            .await
            .expect("an answer within 5 s")
            .expect("recv_from")
    }

    fn fast() -> TftpOptions {
        TftpOptions { timeout: Duration::from_millis(500), tries: 3, max_size: 1 << 20 }
    }

    #[tokio::test]
    async fn serves_files_to_the_simulators_client() {
        let dir = tempfile::tempdir().unwrap();
        for (name, size) in [("empty", 0usize), ("one", 10), ("exact", 1024), ("more", 3000)] {
            let content: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let (address, stop, handle) = start(ServerConfig::new(Root::new(dir.path()).unwrap())).await;
        for (name, size) in [("empty", 0usize), ("one", 10), ("exact", 1024), ("more", 3000)] {
            let got = fetch(address, name, &fast()).await.unwrap();
            assert_eq!(got.len(), size, "{name}");
            assert_eq!(got, std::fs::read(dir.path().join(name)).unwrap(), "{name}");
        }
        let error = fetch(address, "../etc/passwd", &fast()).await.unwrap_err().to_string();
        assert!(error.contains("error 2") && error.contains("leaves the served folder"), "{error}");
        let error = fetch(address, "missing", &fast()).await.unwrap_err().to_string();
        assert!(error.contains("error 1"), "{error}");
        stop.send(()).unwrap();
        let records = handle.await.unwrap();
        assert_eq!(records.iter().filter(|r| r.failure.is_none()).count(), 4, "{records:?}");
    }

    /// A raw client: options, a lost ACK (the block comes again), a duplicate
    /// ACK (no duplicate block), and a write refused without --allow-write.
    #[tokio::test]
    async fn options_retransmission_and_write_refusal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![5u8; 100]).unwrap();
        let mut config = ServerConfig::new(Root::new(dir.path()).unwrap());
        config.timeout = Duration::from_millis(200);
        let (address, stop, _handle) = start(config).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let request = Packet::Request {
            kind: RequestKind::Read,
            filename: "f".into(),
            mode: "octet".into(),
            options: vec![("blksize".into(), "64".into()), ("tsize".into(), "0".into()), ("x".into(), "1".into())],
        };
        client.send_to(&packet::to_bytes(&request), address).await.unwrap();
        let mut buf = [0u8; 600];
        let (n, server) = recv(&client, &mut buf).await;
        assert_ne!(server, address, "a transfer answers from its own port");
        assert_eq!(&buf[..n], b"\x00\x06blksize\x0064\x00tsize\x00100\x00");
        client.send_to(&packet::to_bytes(&Packet::Ack { block: 0 }), server).await.unwrap();
        let (n, _) = recv(&client, &mut buf).await;
        assert_eq!((&buf[..4], n), (&b"\x00\x03\x00\x01"[..], 68));
        // Say nothing: block 1 comes again after the timeout.
        let (n, _) = recv(&client, &mut buf).await;
        assert_eq!((&buf[..4], n), (&b"\x00\x03\x00\x01"[..], 68));
        client.send_to(b"\x00\x04\x00\x01", server).await.unwrap();
        let (n, _) = recv(&client, &mut buf).await;
        assert_eq!((&buf[..4], n), (&b"\x00\x03\x00\x02"[..], 40));
        // A duplicate ACK of block 1 gets nothing back.
        client.send_to(b"\x00\x04\x00\x01", server).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(100), client.recv_from(&mut buf)).await.is_err());
        client.send_to(b"\x00\x04\x00\x02", server).await.unwrap();

        let write =
            Packet::Request { kind: RequestKind::Write, filename: "new".into(), mode: "octet".into(), options: vec![] };
        client.send_to(&packet::to_bytes(&write), address).await.unwrap();
        let (n, _) = recv(&client, &mut buf).await;
        assert!(buf[..n].starts_with(b"\x00\x05\x00\x02writing is not allowed"), "{:?}", &buf[..n]);
        assert!(!dir.path().join("new").exists());
        stop.send(()).unwrap();
    }

    #[tokio::test]
    async fn writes_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(Root::new(dir.path()).unwrap());
        config.allow_write = true;
        config.timeout = Duration::from_millis(100);
        config.retries = 2;
        let (progress, mut notes) = notes();
        let (address, stop, handle) = start_with(config, progress).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let write =
            Packet::Request { kind: RequestKind::Write, filename: "up".into(), mode: "octet".into(), options: vec![] };
        client.send_to(&packet::to_bytes(&write), address).await.unwrap();
        let mut buf = [0u8; 600];
        let (n, server) = recv(&client, &mut buf).await;
        assert_eq!(&buf[..n], b"\x00\x04\x00\x00");
        let content: Vec<u8> = (0..700u32).map(|i| i as u8).collect();
        for (i, chunk) in content.chunks(512).enumerate() {
            let block = i as u16 + 1;
            let mut data = Vec::new();
            packet::encode_data(block, chunk, &mut data);
            client.send_to(&data, server).await.unwrap();
            let (n, _) = recv(&client, &mut buf).await;
            assert_eq!(&buf[..n], packet::to_bytes(&Packet::Ack { block }));
        }
        assert_eq!(std::fs::read(dir.path().join("up")).unwrap(), content);

        // A second upload that stops half-way leaves the first one in place.
        client.send_to(&packet::to_bytes(&write), address).await.unwrap();
        let (_, server) = recv(&client, &mut buf).await;
        let mut data = Vec::new();
        packet::encode_data(1, &[9u8; 512], &mut data);
        client.send_to(&data, server).await.unwrap();
        // Silence: the server gives up after its retries (3 x 100 ms).
        note_containing(&mut notes, "no answer").await;
        stop.send(()).unwrap();
        let records = handle.await.unwrap();
        assert!(records.iter().any(|r| r.failure.as_deref().is_some_and(|f| f.contains("no answer"))), "{records:?}");
        assert_eq!(std::fs::read(dir.path().join("up")).unwrap(), content);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("up")], "no partial file is left");
    }

    /// Issue 28 item 3: an ERROR datagram is never answered, whoever sent
    /// it; the server still serves after.
    #[tokio::test]
    async fn an_error_packet_gets_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"still served").unwrap();
        let (address, stop, _handle) = start(ServerConfig::new(Root::new(dir.path()).unwrap())).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = [0u8; 600];
        client.send_to(b"\x00\x05\x00\x04no such transfer\x00", address).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf)).await;
        assert!(answer.is_err(), "an ERROR was answered: {:?}", answer.map(|r| r.map(|(n, _)| buf[..n].to_vec())));
        // Anything else that is not a request still gets its error.
        client.send_to(b"\x00\x04\x00\x01", address).await.unwrap();
        let (n, _) = recv(&client, &mut buf).await;
        assert!(buf[..n].starts_with(b"\x00\x05\x00\x04expected a read or write request"), "{:?}", &buf[..n]);
        assert_eq!(fetch(address, "f", &fast()).await.unwrap(), b"still served");
        stop.send(()).unwrap();
    }

    #[test]
    fn the_servers_own_address_is_recognised() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(is_own_address(at("127.0.0.1:69"), at("127.0.0.1:69")));
        assert!(is_own_address(at("127.0.0.1:69"), at("0.0.0.0:69")));
        assert!(is_own_address(at("127.0.0.2:69"), at("0.0.0.0:69")), "all of 127/8 is this host's");
        assert!(is_own_address(at("[::ffff:127.0.0.1]:69"), at("[::]:69")));
        assert!(!is_own_address(at("127.0.0.1:70"), at("127.0.0.1:69")));
        assert!(!is_own_address(at("127.0.0.2:69"), at("127.0.0.1:69")), "another address of a bound socket");
        // TEST-NET-2 is nobody's address here: a socket cannot bind to it.
        assert!(!is_own_address(at("198.51.100.7:69"), at("0.0.0.0:69")));
    }

    /// Issue 28 item 17: a request naming an option twice (any case) is
    /// refused with error 8, no OACK, nothing sent.
    #[tokio::test]
    async fn a_duplicated_option_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![1u8; 3000]).unwrap();
        let (address, stop, handle) = start(ServerConfig::new(Root::new(dir.path()).unwrap())).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"\x00\x01f\x00octet\x00blksize\x00512\x00BlkSize\x001024\x00", address).await.unwrap();
        let mut buf = [0u8; 600];
        let (n, _) = recv(&client, &mut buf).await;
        assert_eq!(
            &buf[..n],
            b"\x00\x05\x00\x08option \"BlkSize\" is given more than once; request denied\x00",
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        // Nothing follows the error.
        assert!(tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf)).await.is_err());
        stop.send(()).unwrap();
        let records = handle.await.unwrap();
        assert_eq!(records.len(), 1);
        assert!(records[0].failure.as_deref().is_some_and(|f| f.contains("more than once")), "{records:?}");
        assert_eq!(records[0].bytes, 0);
    }

    /// Issue 28 item 6: the server keeps the latest `max_records` records,
    /// however many requests it served.
    #[tokio::test]
    async fn records_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let mut config = ServerConfig::new(Root::new(dir.path()).unwrap());
        config.max_records = 4;
        let (address, stop, handle) = start(config).await;
        for i in 0..40 {
            let name = if i % 2 == 0 { "f".to_string() } else { format!("missing-{i}") };
            let _ = fetch(address, &name, &fast()).await;
        }
        stop.send(()).unwrap();
        let records = handle.await.unwrap();
        // The latest four (each request ended before the next was sent).
        let mut names: Vec<&str> = records.iter().map(|r| r.filename.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["f", "f", "missing-37", "missing-39"]);
        assert!(records.iter().all(|r| r.failure.is_some() == r.filename.starts_with("missing")), "{records:?}");

        let mut kept = Records::new(3);
        for i in 0..10_000u64 {
            kept.push(TransferRecord {
                kind: RequestKind::Read,
                filename: i.to_string(),
                peer: address,
                bytes: i,
                failure: None,
            });
            assert!(kept.kept.len() <= 3 && kept.kept.capacity() < 64, "{} kept", kept.kept.len());
        }
        assert_eq!(kept.kept.iter().map(|r| r.bytes).collect::<Vec<_>>(), [9997, 9998, 9999]);
        let mut none = Records::new(0);
        none.push(records[0].clone());
        assert!(none.kept.is_empty());
    }

    #[test]
    fn netascii_both_ways() {
        let mut wire = Vec::new();
        netascii_encode(b"a\nb\rc", &mut wire);
        assert_eq!(wire, b"a\r\nb\r\0c");
        let mut decoder = NetasciiDecoder::default();
        let mut out = Vec::new();
        // Split inside the CR LF pair: the decoder carries the CR over.
        decoder.decode(&wire[..2], &mut out);
        decoder.decode(&wire[2..], &mut out);
        assert_eq!(out, b"a\nb\rc");
    }
}
