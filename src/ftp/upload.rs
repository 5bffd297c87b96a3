//! The upload itself: one FTP session per file (or one for all), the
//! credential candidates in order, binary type always, files streamed in
//! fixed-size chunks (memory does not grow with the file) and hashed on the
//! way, retries after a dropped connection (resuming with REST when the
//! server offers it), verification, and the wait for the device to restart.
//!
//! Success is reported only after verification; a file is never reported
//! sent because the data connection closed.
//!
//! Every wait has a deadline: the TCP connection and a passive or active data
//! connection `connect_timeout`, the greeting, each reply and a stalled data
//! connection `reply_timeout`. A refusal names the command the server refused
//! (`EPSV`, `PASV`, `PORT`, `TYPE I`, `STOR`...), so a file is blamed only
//! when its own STOR was refused. The data connection mode (`auto`: EPSV,
//! then PASV, then PORT) is in [`super::data_mode`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError as SuppaError, Mode, ReplyTooLarge, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::data_mode::{DataModes, PassiveProbe};
use super::{Credential, FtpError, UploadFile};
use super::{FtpMode, FtpVerify};
use crate::digest::hex;
use crate::net::report::{Investigation, investigate};
use crate::net::wait::{WaitSpec, wait_for};
use crate::net::{PortState, ProbeMethod, ProbeOptions, Prober};
use crate::progress::{Progress, ProgressEvent, Silent, TaskKind};

/// The kind of every task an upload reports.
const FILE: TaskKind = TaskKind::FtpFile;

/// Read and write in chunks this big: large enough for full speed on a
/// LAN, small enough that memory stays flat whatever the file size.
const CHUNK: usize = 256 * 1024;

/// What to upload where, and how.
#[derive(Debug, Clone)]
pub struct UploadSpec {
    pub host: Ipv4Addr,
    pub port: u16,
    /// Candidates, tried in order until one logs in.
    pub credentials: Vec<Credential>,
    pub mode: FtpMode,
    pub verify: FtpVerify,
    pub files: Vec<UploadFile>,
    /// Close the session after each file (NET+OS writes flash then).
    pub session_per_file: bool,
    /// After each session, wait for the device to go down and come back.
    pub wait_for_restart: bool,
    pub restart_timeout: Duration,
    /// Extra attempts after a dropped connection.
    pub retries: u32,
    /// The TCP connection, and a data connection in either direction.
    pub connect_timeout: Duration,
    /// The greeting, each reply, and a data connection that stops moving.
    pub reply_timeout: Duration,
    /// How to probe for the restart and for the diagnosis of a refusal.
    pub probe_method: ProbeMethod,
    /// Explicit TLS (FTPS), when set.
    pub tls: Option<TlsSettings>,
    /// Compute each file's SHA-256 while sending (always done for
    /// `readback`, which compares it). Off by default: the hash of the local
    /// file says nothing about the device's copy, and on a 2-core station it
    /// costs a quarter of the upload rate.
    pub hash: bool,
}

/// What to trust for FTPS.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// PEM file of the CA or the device's own certificate; None uses the
    /// system's CA bundle.
    pub ca_file: Option<std::path::PathBuf>,
    /// The name the certificate must carry; None means the device's address.
    pub name: Option<String>,
}

/// The system's CA bundle on Debian and its kin.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

impl TlsSettings {
    fn connector(&self) -> Result<AsyncRustlsConnector, FtpError> {
        use rustls_pki_types::pem::PemObject;
        let path = self.ca_file.clone().unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
        let certificates = rustls_pki_types::CertificateDer::pem_file_iter(&path)
            .and_then(|items| items.collect::<Result<Vec<_>, _>>())
            .map_err(|e| FtpError::LocalFile {
                path: path.clone(),
                error: format!("not a PEM certificate file: {e}"),
            })?;
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certificates);
        if added == 0 {
            return Err(FtpError::LocalFile { path, error: "holds no usable certificate".into() });
        }
        let config =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| FtpError::Protocol { what: "TLS set-up".into(), reply: e.to_string() })?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(AsyncRustlsConnector::from(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))))
    }
}

/// What was uploaded and how it was verified.
#[derive(Debug, Clone, Serialize)]
pub struct UploadReport {
    pub host: String,
    pub port: u16,
    /// The user that logged in.
    pub user: String,
    pub files: Vec<FileReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub local: String,
    pub remote: String,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// How it was verified, e.g. `size 1048576 matches` or `sha256 of a read-back matches`.
    pub verified: String,
    pub attempts: u32,
    /// The data connection that carried the file: `epsv`, `passive` (PASV)
    /// or `active` (PORT).
    pub mode: FtpMode,
    /// Modes given up before this one, and why (`mode: auto`), e.g.
    /// `PASV refused: 550 Permission denied.`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// Offset a retry resumed from, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
    /// The address a PASV reply named when it was not the control
    /// connection's peer: ignored, the data went to the peer at that port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pasv_address_ignored: Option<String>,
    pub seconds: f64,
    /// Seconds the device took to restart after the session, when waited for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_seconds: Option<f64>,
}

struct Session {
    /// Plain until `AUTH TLS`; the same type either way.
    ftp: AsyncRustlsFtpStream,
    user: String,
    /// The server offers `REST STREAM`.
    resumable: bool,
    /// What the passive data connection of the last transfer did.
    passive: Arc<PassiveProbe>,
    /// The server accepted a PORT in this session: a later refusal of the
    /// transfer is the STOR's, not the PORT's.
    port_accepted: bool,
}

/// Uploads every file of `spec`, verified, reporting each file as a
/// [`TaskKind::FtpFile`] task to `progress`.
pub async fn upload(spec: &UploadSpec, progress: &dyn Progress) -> Result<UploadReport, FtpError> {
    upload_with(spec, progress, &|_, _| {}).await
}

/// [`upload`], calling `confirmed` with each file's index in `spec.files`
/// and its report once the device has confirmed it: verified, its session
/// closed (when that is the last of the session) and its restart waited for
/// (when `wait_for_restart`). A journal records it there, so that a run
/// killed before the next file does not send this one again.
pub async fn upload_with(
    spec: &UploadSpec,
    progress: &dyn Progress,
    confirmed: &(dyn Fn(usize, &FileReport) + Send + Sync),
) -> Result<UploadReport, FtpError> {
    // Every local file is opened and its first byte read before any
    // connection: an unreadable, empty or wrong file must not become a STOR
    // of 0 bytes (on NET+OS, an emptied image.bin), nor the second file's
    // problem leave the first half-done.
    let mut sizes = Vec::new();
    for file in &spec.files {
        sizes.push(crate::input_file::probe(&file.local, &crate::input_file::IMAGE)?);
    }
    let mut session: Option<Session> = None;
    let mut modes = DataModes::new(spec.mode);
    let mut user = String::new();
    let mut reports: Vec<FileReport> = Vec::new();
    // Files before this index were handed to `confirmed`.
    let mut confirmed_up_to = 0;
    for (index, (file, &size)) in spec.files.iter().zip(&sizes).enumerate() {
        let started = Instant::now();
        let mut attempts = 0;
        let mut resumed_from = None;
        let mut pasv_address_ignored = None;
        let digest = loop {
            attempts += 1;
            if session.is_none() {
                session = Some(open_session(spec, &modes, progress).await?);
            }
            let current = session.as_mut().expect("opened above");
            user = current.user.clone();
            if attempts == 1 {
                progress.report(ProgressEvent::Started { kind: FILE, label: file.remote.clone(), total: Some(size) });
            }
            let offset = if attempts > 1 && current.resumable {
                match current.ftp.size(&file.remote).await {
                    Ok(n) if (n as u64) <= size => n as u64,
                    _ => 0,
                }
            } else {
                0
            };
            if offset > 0 {
                resumed_from = Some(offset);
            }
            let hash = spec.hash || spec.verify == FtpVerify::Readback;
            match send_file(current, spec, &mut modes, file, size, offset, hash, progress).await {
                Ok(digest) => {
                    if let Some(named) = current.passive.elsewhere() {
                        let text = format!(
                            "{}: the PASV reply named {named}, not the control connection's peer {}: \
                             the data went to {}:{} (a PASV reply's address is never followed)",
                            file.remote,
                            spec.host,
                            spec.host,
                            named.port()
                        );
                        progress.report(ProgressEvent::Note { kind: FILE, text });
                        pasv_address_ignored = Some(named.to_string());
                    }
                    break digest;
                }
                Err(SendError::Refused { command, reply }) => {
                    return Err(FtpError::FileRefused { command, remote: file.remote.clone(), reply });
                }
                Err(SendError::Fatal(error)) => return Err(error),
                Err(SendError::Local(error)) => return Err(local_error(&file.local, error)),
                Err(SendError::Broken(error)) => {
                    // The connection is gone or unusable: start a new one.
                    session = None;
                    if attempts > spec.retries {
                        return Err(FtpError::Transfer { remote: file.remote.clone(), attempts, error });
                    }
                    let detail = format!("{}: attempt {} after: {error}", file.remote, attempts + 1);
                    progress.report(ProgressEvent::Retried { kind: FILE, detail });
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts))).await;
                }
            }
        };
        progress.report(ProgressEvent::Finished { kind: FILE, done: size, elapsed: started.elapsed() });
        let current = session.as_mut().expect("the file was sent on it");
        let verified = verify(current, spec, file, size, digest.as_deref()).await?;
        progress.report(ProgressEvent::Note { kind: FILE, text: format!("{}: verified ({verified})", file.remote) });
        let last = index + 1 == spec.files.len();
        let mut restart_seconds = None;
        if spec.session_per_file || last {
            if let Some(mut done) = session.take() {
                // Closing the control connection is what makes NET+OS write
                // the flash; a failed QUIT still closes it.
                let _ = tokio::time::timeout(spec.reply_timeout, done.ftp.quit()).await;
            }
            if spec.wait_for_restart {
                let took = wait_for_restart(spec, progress).await?;
                restart_seconds = Some(took.as_secs_f64());
            }
        }
        let report = FileReport {
            local: file.local.display().to_string(),
            remote: file.remote.clone(),
            bytes: size,
            sha256: digest.as_deref().map(hex),
            verified,
            attempts,
            mode: modes.current(),
            fallback: modes.given_up().to_vec(),
            resumed_from,
            pasv_address_ignored,
            seconds: started.elapsed().as_secs_f64(),
            restart_seconds,
        };
        // With one session for several files, a file is confirmed only when
        // the session that carried it closed (NET+OS writes flash then).
        if spec.session_per_file || last {
            for (earlier, done) in reports.iter().enumerate().skip(confirmed_up_to) {
                confirmed(earlier, done);
            }
            confirmed(index, &report);
            confirmed_up_to = index + 1;
        }
        reports.push(report);
    }
    Ok(UploadReport { host: spec.host.to_string(), port: spec.port, user, files: reports })
}

fn local_error(path: &Path, error: std::io::Error) -> FtpError {
    FtpError::LocalFile { path: path.to_path_buf(), error: error.to_string() }
}

/// The server's reply as it sent it, e.g. `530 Login incorrect.`
fn reply_text(response: &suppaftp::types::Response) -> String {
    let body = String::from_utf8_lossy(&response.body).trim().to_string();
    let code = response.status.code().to_string();
    if body.starts_with(&code) { body } else { format!("{code} {body}").trim().to_string() }
}

/// Connects, logs in with the first candidate that works, sets binary type
/// and the data connection mode.
async fn open_session(spec: &UploadSpec, modes: &DataModes, progress: &dyn Progress) -> Result<Session, FtpError> {
    let host = spec.host.to_string();
    let mut tried = Vec::new();
    let mut last_reply = String::new();
    let mut candidates = spec.credentials.iter().peekable();
    'connect: loop {
        let mut ftp = connect(spec).await?;
        let banner = ftp.get_welcome_msg().unwrap_or("").trim().to_string();
        progress
            .report(ProgressEvent::Note { kind: FILE, text: format!("connected to {host}:{}: {banner}", spec.port) });
        while let Some(candidate) = candidates.next() {
            tried.push(candidate.user.clone());
            // USER and PASS: two replies, and servers delay a refused PASS.
            let login = ftp.login(candidate.user.as_str(), candidate.password.as_str());
            let answer = tokio::time::timeout(spec.reply_timeout * 2, login).await.map_err(|_| FtpError::NoReply {
                host: host.clone(),
                port: spec.port,
                command: format!("USER/PASS (login as {})", candidate.user),
                waited: spec.reply_timeout * 2,
            })?;
            match answer {
                Ok(()) => {
                    progress
                        .report(ProgressEvent::Note { kind: FILE, text: format!("logged in as {}", candidate.user) });
                    return finish_session(ftp, spec, modes, candidate.user.clone()).await;
                }
                Err(SuppaError::UnexpectedResponse(response)) if response.status == Status::NotLoggedIn => {
                    last_reply = reply_text(&response);
                }
                Err(SuppaError::UnexpectedResponse(response)) if response.status.code() == 421 => {
                    return Err(FtpError::Busy { host, port: spec.port, reply: reply_text(&response) });
                }
                Err(SuppaError::ConnectionError(_)) if candidates.peek().is_some() => {
                    // Some servers hang up after a refused login: reconnect for
                    // the next candidate.
                    continue 'connect;
                }
                Err(other) => {
                    return Err(FtpError::Protocol {
                        what: format!("login as {}", candidate.user),
                        reply: other.to_string(),
                    });
                }
            }
        }
        return Err(FtpError::CredentialsRefused { host, port: spec.port, users: tried, reply: last_reply });
    }
}

/// How much of a peer's first bytes an error quotes.
#[doc(hidden)]
pub const QUOTED: usize = 120;

/// Connects and reads the greeting, each within its deadline. A failed TCP
/// connection gets the network's diagnosis; once connected, the network is
/// fine and an error says what the server sent (or that it sent nothing).
async fn connect(spec: &UploadSpec) -> Result<AsyncRustlsFtpStream, FtpError> {
    let address = SocketAddr::from((spec.host, spec.port));
    let host = spec.host.to_string();
    let port = spec.port;
    let stream = match tokio::time::timeout(spec.connect_timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            let finding = diagnose(spec).await;
            return Err(FtpError::Unreachable { host, port, error: error.to_string(), finding });
        }
        Err(_) => {
            let finding = diagnose(spec).await;
            let error = format!("no connection within {} s", spec.connect_timeout.as_secs_f64());
            return Err(FtpError::Unreachable { host, port, error, finding });
        }
    };
    // The first bytes, kept (not consumed) to quote when they are not a
    // greeting: an application stuck before its FTP server starts may
    // accept and stay silent, another service may answer on the port.
    let mut first = [0u8; QUOTED + 1];
    let waited = spec.reply_timeout;
    let seen = match tokio::time::timeout(waited, stream.peek(&mut first)).await {
        Err(_) => return Err(FtpError::NoGreeting { host, port, waited, closed: false }),
        Ok(Ok(0)) | Ok(Err(_)) => return Err(FtpError::NoGreeting { host, port, waited, closed: true }),
        Ok(Ok(n)) => n,
    };
    let sent = quote(&first[..seen]);
    let not_ftp =
        |what: &str| FtpError::NotFtp { host: host.clone(), port, what: what.to_string(), sent: sent.clone() };
    let ftp = match tokio::time::timeout(waited, AsyncRustlsFtpStream::connect_with_stream(stream)).await {
        Err(_) => {
            return Err(not_ftp(&format!("no complete greeting within {} s", waited.as_secs_f64())));
        }
        Ok(Ok(ftp)) => ftp,
        Ok(Err(SuppaError::UnexpectedResponse(response))) if matches!(response.status.code(), 421 | 120) => {
            return Err(FtpError::Busy { host, port, reply: reply_text(&response) });
        }
        Ok(Err(SuppaError::UnexpectedResponse(response))) => {
            return Err(FtpError::Protocol { what: format!("greeting from {address}"), reply: reply_text(&response) });
        }
        Ok(Err(SuppaError::BadResponse)) => return Err(not_ftp("its greeting is not an FTP reply")),
        Ok(Err(SuppaError::ConnectionError(error)))
            if error.get_ref().is_some_and(|inner| inner.is::<ReplyTooLarge>()) =>
        {
            return Err(not_ftp(&format!("its greeting is longer than the limit ({error})")));
        }
        Ok(Err(SuppaError::ConnectionError(error))) => {
            return Err(not_ftp(&format!("the connection ended during the greeting ({error})")));
        }
        Ok(Err(other)) => return Err(not_ftp(&other.to_string())),
    };
    let Some(tls) = &spec.tls else { return Ok(ftp) };
    let connector = tls.connector()?;
    let name = tls.name.clone().unwrap_or_else(|| host.clone());
    // AUTH TLS's reply, then the handshake.
    match tokio::time::timeout(waited * 2, ftp.into_secure(connector, &name)).await {
        Err(_) => {
            Err(FtpError::NoReply { host, port, command: "AUTH TLS (and its handshake)".into(), waited: waited * 2 })
        }
        Ok(Ok(ftp)) => Ok(ftp),
        Ok(Err(e)) => Err(FtpError::Tls {
            host,
            port,
            // suppaftp wraps its own prefix twice.
            error: e.to_string().replace("Secure error: ", ""),
        }),
    }
}

/// Bytes a peer sent, as an error quotes them: printable ASCII as is, the
/// rest escaped (`\r`, `\n`, `\x00`), at most [`QUOTED`] bytes. `pub` for
/// the fuzz targets only.
#[doc(hidden)]
pub fn quote(bytes: &[u8]) -> String {
    let mut text: String =
        bytes.iter().take(QUOTED).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    if bytes.len() > QUOTED {
        text.push_str("...");
    }
    text
}

/// The network's view of why a connection failed.
async fn diagnose(spec: &UploadSpec) -> Option<Box<crate::net::diagnose::Finding>> {
    let prober = Prober::new(spec.probe_method).ok()?;
    let investigation = Investigation {
        target: spec.host,
        ports: vec![spec.port],
        ftp_ports: vec![spec.port],
        credentials: Vec::new(),
        icmp: true,
        wait_until: None,
        timeout: Duration::ZERO,
        probe: ProbeOptions::default(),
    };
    let report = investigate(&investigation, &prober, &Silent).await.ok()?;
    Some(Box::new(report.finding))
}

async fn finish_session(
    ftp: AsyncRustlsFtpStream,
    spec: &UploadSpec,
    modes: &DataModes,
    user: String,
) -> Result<Session, FtpError> {
    let host = spec.host.to_string();
    let no_reply = |command: &str| FtpError::NoReply {
        host: host.clone(),
        port: spec.port,
        command: command.to_string(),
        waited: spec.reply_timeout,
    };
    let passive = Arc::new(PassiveProbe::default());
    // Active mode's wait for the server to connect back is the connect
    // timeout; the passive connection is made by `PassiveProbe`, bounded by
    // the same.
    // The data connection goes only to the host dialled: a passive one to
    // its address at the offered port (a PASV reply's address is never
    // followed), an active one is taken only from it.
    let peer = std::net::IpAddr::V4(spec.host);
    let mut ftp = ftp.active_mode(spec.connect_timeout).passive_stream_builder(PassiveProbe::builder(
        passive.clone(),
        spec.connect_timeout,
        peer,
    ));
    ftp.set_active_peer_check(suppaftp::ActivePeerCheck::ControlPeer);
    ftp.set_mode(suppa_mode(modes.current()));
    // suppaftp starts in ASCII, which would rewrite every LF in the image.
    match tokio::time::timeout(spec.reply_timeout, ftp.transfer_type(FileType::Binary)).await {
        Err(_) => return Err(no_reply("TYPE I")),
        Ok(Ok(())) => {}
        Ok(Err(SuppaError::UnexpectedResponse(response))) => {
            return Err(FtpError::CommandRefused {
                host,
                port: spec.port,
                command: "TYPE I (binary)".into(),
                reply: reply_text(&response),
            });
        }
        Ok(Err(e)) => return Err(FtpError::Protocol { what: "TYPE I (binary)".into(), reply: e.to_string() }),
    }
    let resumable = match tokio::time::timeout(spec.reply_timeout, ftp.feat()).await {
        Err(_) => return Err(no_reply("FEAT")),
        Ok(Ok(features)) => features.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("REST")
                && value.as_deref().is_some_and(|v| v.to_ascii_uppercase().contains("STREAM"))
        }),
        Ok(Err(_)) => false,
    };
    Ok(Session { ftp, user, resumable, passive, port_accepted: false })
}

/// suppaftp's mode for one of ours; `auto` is never current.
fn suppa_mode(mode: FtpMode) -> Mode {
    match mode {
        FtpMode::Epsv => Mode::ExtendedPassive,
        FtpMode::Active => Mode::Active,
        FtpMode::Passive | FtpMode::Auto => Mode::Passive,
    }
}

enum SendError {
    /// The server refused the file's own command (550 and kin to STOR).
    Refused {
        command: &'static str,
        reply: String,
    },
    /// The connection broke or timed out: worth a retry.
    Broken(String),
    /// A failure a retry would not mend (every data mode refused).
    Fatal(FtpError),
    Local(std::io::Error),
}

/// SHA-256 on its own thread, fed chunk by chunk: hashing as fast as the
/// network sends would otherwise halve the upload rate on a CPU without SHA
/// instructions. The bounded channel keeps memory flat.
struct ParallelHasher {
    chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
    thread: std::thread::JoinHandle<Vec<u8>>,
}

impl ParallelHasher {
    fn start() -> ParallelHasher {
        let (chunks, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let thread = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            while let Some(chunk) = receiver.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.finalize().to_vec()
        });
        ParallelHasher { chunks, thread }
    }

    async fn feed(&self, chunk: Vec<u8>) {
        // The thread only stops when the sender is dropped.
        let _ = self.chunks.send(chunk).await;
    }

    fn finish(self) -> Vec<u8> {
        drop(self.chunks);
        self.thread.join().unwrap_or_default()
    }
}

/// Streams `file` from `offset`, hashing the whole file on the way.
#[allow(clippy::too_many_arguments)]
async fn send_file(
    session: &mut Session,
    spec: &UploadSpec,
    modes: &mut DataModes,
    file: &UploadFile,
    size: u64,
    offset: u64,
    hash: bool,
    progress: &dyn Progress,
) -> Result<Option<Vec<u8>>, SendError> {
    let hasher = hash.then(ParallelHasher::start);
    if let Some(hasher) = &hasher {
        // A resumed upload still reports the hash of the whole file: hash the
        // part already on the server from the local copy.
        let mut prefix = read_ahead(&file.local, 0);
        let mut hashed = 0u64;
        while hashed < offset {
            let Some(chunk) = prefix.recv().await else { break };
            let mut chunk = chunk.map_err(SendError::Local)?;
            chunk.truncate(chunk.len().min((offset - hashed) as usize));
            hashed += chunk.len() as u64;
            hasher.feed(chunk).await;
        }
    }
    let mut stream = open_upload(session, spec, modes, &file.remote, offset, progress).await?;
    let mut sent = offset;
    // A stalled data connection (a cable pulled) must not hang the batch.
    let stall = spec.reply_timeout;
    let mut chunks = read_ahead(&file.local, offset);
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(SendError::Local)?;
        let n = chunk.len();
        match tokio::time::timeout(stall, stream.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(SendError::Broken(format!("data connection: {error} after {sent} bytes"))),
            Err(_) => {
                return Err(SendError::Broken(format!(
                    "data connection stalled for {} s after {sent} bytes",
                    stall.as_secs_f64()
                )));
            }
        }
        if let Some(hasher) = &hasher {
            hasher.feed(chunk).await;
        }
        sent += n as u64;
        progress.report(ProgressEvent::Advanced { kind: FILE, done: sent });
    }
    if sent != size {
        return Err(SendError::Local(std::io::Error::other(format!(
            "the file changed while it was sent ({sent} of {size} bytes)"
        ))));
    }
    match tokio::time::timeout(stall, stream.finish()).await {
        Ok(Ok(())) => Ok(hasher.map(ParallelHasher::finish)),
        Ok(Err(SuppaError::UnexpectedResponse(response))) if (500..600).contains(&response.status.code()) => {
            // 552/451 after the data: the server did not keep the file.
            Err(SendError::Refused { command: "STOR", reply: reply_text(&response) })
        }
        Ok(Err(error)) => Err(SendError::Broken(format!("closing the transfer: {error}"))),
        Err(_) => {
            Err(SendError::Broken(format!("no transfer-complete reply to STOR within {} s", stall.as_secs_f64())))
        }
    }
}

/// Opens the data connection and sends STOR, in the current data mode;
/// with `auto`, a refused or unreachable passive mode gives way to the next
/// (EPSV, PASV, then PORT) for the rest of the upload.
async fn open_upload(
    session: &mut Session,
    spec: &UploadSpec,
    modes: &mut DataModes,
    remote: &str,
    offset: u64,
    progress: &dyn Progress,
) -> Result<suppaftp::tokio::TransferStream<suppaftp::tokio::AsyncRustlsStream>, SendError> {
    let stor = if offset > 0 { "REST/STOR" } else { "STOR" };
    // Each round either returns or gives a mode up: at most three rounds.
    for _ in 0..4 {
        let mode = modes.current();
        session.ftp.set_mode(suppa_mode(mode));
        if mode == FtpMode::Active && !session.port_accepted {
            match announce_port(session, spec).await {
                Ok(()) => session.port_accepted = true,
                Err(PortRefusal::Refused(reply)) => {
                    give_up(spec, modes, Abandoned::Refused(reply), progress)?;
                    continue;
                }
                Err(PortRefusal::Broken(error)) => return Err(SendError::Broken(error)),
            }
        }
        session.passive.reset();
        if offset > 0 {
            // Consumed by the next transfer command, even a failed one.
            let _ = session.ftp.resume_transfer(offset as usize).await;
        }
        // The mode's command and STOR (and REST) each get a reply, plus the
        // data connection.
        let limit = spec.reply_timeout * 3 + spec.connect_timeout;
        let opened = match tokio::time::timeout(limit, session.ftp.put_with_stream(remote)).await {
            Ok(opened) => opened,
            Err(_) => {
                let waiting_for = if mode == FtpMode::Active || session.passive.offered() {
                    format!("{stor} `{remote}` (over {})", mode.command())
                } else {
                    mode.command().to_string()
                };
                return Err(SendError::Broken(format!("no reply to {waiting_for} within {} s", limit.as_secs_f64())));
            }
        };
        let error = match opened {
            Ok(stream) => return Ok(stream),
            Err(error) => error,
        };
        let passive_mode = matches!(mode, FtpMode::Epsv | FtpMode::Passive);
        match error {
            // The server answered EPSV or PASV itself, and not with an
            // address to connect to.
            SuppaError::UnexpectedResponse(response) if passive_mode && !session.passive.offered() => {
                let reply = reply_text(&response);
                let code = response.status.code();
                if (500..600).contains(&code) {
                    give_up(spec, modes, Abandoned::Refused(reply), progress)?;
                    continue;
                }
                if code == 227 || code == 229 {
                    give_up(spec, modes, Abandoned::Unusable(format!("no address in `{reply}`")), progress)?;
                    continue;
                }
                return Err(SendError::Fatal(FtpError::CommandRefused {
                    host: spec.host.to_string(),
                    port: spec.port,
                    command: mode.command().into(),
                    reply,
                }));
            }
            SuppaError::BadResponse if passive_mode && !session.passive.offered() => {
                give_up(spec, modes, Abandoned::Unusable("the answer is not an FTP reply".into()), progress)?;
                continue;
            }
            // The passive data connection did not come up: another passive
            // command would not fare better.
            SuppaError::ConnectionError(_) if passive_mode && session.passive.failure().is_some() => {
                let why = session.passive.failure().unwrap_or_default();
                give_up(spec, modes, Abandoned::Unreachable(why), progress)?;
                continue;
            }
            SuppaError::UnexpectedResponse(response) if (500..600).contains(&response.status.code()) => {
                return Err(SendError::Refused { command: stor, reply: reply_text(&response) });
            }
            SuppaError::UnexpectedResponse(response) if response.status.code() == 421 => {
                return Err(SendError::Broken(reply_text(&response)));
            }
            SuppaError::ConnectionError(error)
                if mode == FtpMode::Active && error.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(SendError::Broken(format!(
                    "the server did not connect back within {} s after PORT and {stor}",
                    spec.connect_timeout.as_secs_f64()
                )));
            }
            other => return Err(SendError::Broken(other.to_string())),
        }
    }
    Err(SendError::Fatal(no_data_connection(spec, modes)))
}

fn no_data_connection(spec: &UploadSpec, modes: &DataModes) -> FtpError {
    FtpError::NoDataConnection { host: spec.host.to_string(), port: spec.port, tried: modes.given_up().to_vec() }
}

/// Why the current data mode is given up.
enum Abandoned {
    /// Its command got this 5xx reply.
    Refused(String),
    /// Its command's answer cannot be used (no address in it, not FTP).
    Unusable(String),
    /// Its data connection did not come up: `ADDRESS: WHY`.
    Unreachable(String),
}

/// Gives the current mode up, or fails when it was the last one: with an
/// explicit mode, a refusal names the refused command and a data connection
/// that did not come up is retried like a dropped connection.
fn give_up(
    spec: &UploadSpec,
    modes: &mut DataModes,
    abandoned: Abandoned,
    progress: &dyn Progress,
) -> Result<(), SendError> {
    let command = modes.current().command();
    let why = match &abandoned {
        Abandoned::Refused(reply) => format!("{command} refused: {reply}"),
        Abandoned::Unusable(detail) => format!("{command}: {detail}"),
        Abandoned::Unreachable(detail) => format!("{command} data connection to {detail}"),
    };
    let passive_unreachable = matches!(abandoned, Abandoned::Unreachable(_));
    if passive_unreachable && !modes.is_auto() {
        // The one mode asked for: a failed data connection is worth a retry,
        // as a dropped connection is.
        return Err(SendError::Broken(why));
    }
    match modes.give_up(why.clone(), passive_unreachable) {
        Some(next) => {
            progress.report(ProgressEvent::Note { kind: FILE, text: format!("{why}; trying {}", next.command()) });
            Ok(())
        }
        None => match abandoned {
            Abandoned::Refused(reply) if !modes.is_auto() => Err(SendError::Fatal(FtpError::CommandRefused {
                host: spec.host.to_string(),
                port: spec.port,
                command: command.into(),
                reply,
            })),
            _ => Err(SendError::Fatal(no_data_connection(spec, modes))),
        },
    }
}

enum PortRefusal {
    Refused(String),
    Broken(String),
}

/// Sends PORT once in a session, for a listener of our own that nobody
/// uses, so that a refused PORT is named as such: suppaftp's transfer sends
/// PORT and STOR together and its error does not say which was refused.
async fn announce_port(session: &mut Session, spec: &UploadSpec) -> Result<(), PortRefusal> {
    let local = session.ftp.get_ref().await.local_addr().map_err(|e| PortRefusal::Broken(e.to_string()))?;
    let listener =
        tokio::net::TcpListener::bind((local.ip(), 0)).await.map_err(|e| PortRefusal::Broken(e.to_string()))?;
    let address = listener.local_addr().map_err(|e| PortRefusal::Broken(e.to_string()))?;
    let std::net::IpAddr::V4(ip) = address.ip() else {
        return Err(PortRefusal::Broken(format!(
            "PORT needs an IPv4 address, the control connection uses {ip}",
            ip = address.ip()
        )));
    };
    let [a, b, c, d] = ip.octets();
    let command = format!("PORT {a},{b},{c},{d},{},{}", address.port() >> 8, address.port() & 0xff);
    let sent = session.ftp.custom_command(command, &[Status::CommandOk]);
    let answer = tokio::time::timeout(spec.reply_timeout, sent).await;
    drop(listener);
    match answer {
        Err(_) => Err(PortRefusal::Broken(format!("no reply to PORT within {} s", spec.reply_timeout.as_secs_f64()))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(SuppaError::UnexpectedResponse(response))) if response.status.code() >= 400 => {
            Err(PortRefusal::Refused(reply_text(&response)))
        }
        Ok(Err(error)) => Err(PortRefusal::Broken(format!("PORT: {error}"))),
    }
}

/// Reads the file from `offset` on a thread of its own, a few chunks ahead
/// of the network: one blocking read per chunk instead of a hop to tokio's
/// blocking pool per read, and reading overlaps sending.
fn read_ahead(path: &Path, offset: u64) -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        use std::io::{Read, Seek};
        let mut file =
            match std::fs::File::open(&path).and_then(|mut f| f.seek(std::io::SeekFrom::Start(offset)).map(|_| f)) {
                Ok(file) => file,
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            };
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match file.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(error) => {
                        let _ = sender.blocking_send(Err(error));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            chunk.truncate(filled);
            // The receiver is gone when the transfer failed: stop reading.
            if sender.blocking_send(Ok(chunk)).is_err() || filled < CHUNK {
                return;
            }
        }
    });
    receiver
}

async fn verify(
    session: &mut Session,
    spec: &UploadSpec,
    file: &UploadFile,
    size: u64,
    digest: Option<&[u8]>,
) -> Result<String, FtpError> {
    let failed = |detail: String| FtpError::VerifyFailed { remote: file.remote.clone(), detail };
    let waited = spec.reply_timeout;
    let late = |what: &str, waited: Duration| failed(format!("no reply to {what} within {} s", waited.as_secs_f64()));
    match spec.verify {
        FtpVerify::None => Ok("none (the profile says so)".into()),
        FtpVerify::Size => match tokio::time::timeout(waited, session.ftp.size(&file.remote)).await {
            Err(_) => Err(late("SIZE", waited)),
            Ok(Ok(n)) if n as u64 == size => Ok(format!("size {size} matches")),
            Ok(Ok(n)) => Err(failed(format!("the server has {n} bytes, the local file {size}"))),
            Ok(Err(error)) => Err(failed(format!(
                "SIZE failed ({error}); use verify: readback, or none if the server can do neither"
            ))),
        },
        FtpVerify::Readback => {
            // The mode's command and RETR, plus the data connection.
            let opening = waited * 2 + spec.connect_timeout;
            let mut stream = match tokio::time::timeout(opening, session.ftp.retr_as_stream(&file.remote)).await {
                Err(_) => return Err(late("RETR", opening)),
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    return Err(failed(format!(
                        "RETR failed ({e}); use verify: size or none if the server cannot send files back"
                    )));
                }
            };
            let mut hasher = Sha256::new();
            let mut buffer = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let n = match tokio::time::timeout(waited, stream.read(&mut buffer)).await {
                    Err(_) => {
                        return Err(failed(format!(
                            "reading back stalled for {} s after {total} bytes",
                            waited.as_secs_f64()
                        )));
                    }
                    Ok(read) => read.map_err(|e| failed(format!("reading back: {e}")))?,
                };
                if n == 0 {
                    break;
                }
                total += n as u64;
                hasher.update(&buffer[..n]);
            }
            match tokio::time::timeout(waited, stream.finish()).await {
                Err(_) => return Err(late("the end of RETR", waited)),
                Ok(result) => result.map_err(|e| failed(format!("closing the read-back: {e}")))?,
            }
            let back = hasher.finalize().to_vec();
            let Some(digest) = digest else {
                return Err(failed("no hash of the sent file to compare with".into()));
            };
            if back == digest {
                Ok(format!("sha256 of a read-back ({total} bytes) matches"))
            } else {
                Err(failed(format!("read back {total} bytes with sha256 {}, sent {}", hex(&back), hex(digest))))
            }
        }
    }
}

/// Waits for the FTP port to go away (the device resets) and to come back.
async fn wait_for_restart(spec: &UploadSpec, progress: &dyn Progress) -> Result<Duration, FtpError> {
    let host = spec.host.to_string();
    progress
        .report(ProgressEvent::Note { kind: TaskKind::NetworkWait, text: format!("waiting for {host} to restart") });
    let prober = Prober::new(spec.probe_method)
        .map_err(|e| FtpError::Protocol { what: "probe for the restart".into(), reply: e.to_string() })?;
    let started = Instant::now();
    let deadline = started + spec.restart_timeout;
    let options = ProbeOptions { timeout: Duration::from_millis(300), retries: 0 };
    loop {
        let results = prober
            .probe(spec.host, &[spec.port], options)
            .await
            .map_err(|e| FtpError::Protocol { what: "probe for the restart".into(), reply: e.to_string() })?;
        if results.first().is_some_and(|r| r.state != PortState::Open) {
            break;
        }
        if Instant::now() >= deadline {
            return Err(FtpError::Restart { host, what: "go down", timeout: spec.restart_timeout });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wait = WaitSpec {
        target: spec.host,
        icmp: false,
        ports: vec![(spec.port, PortState::Open)],
        timeout: deadline.saturating_duration_since(Instant::now()),
        interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(40),
        probe: ProbeOptions::default(),
    };
    let outcome = wait_for(&wait, &prober, &Silent)
        .await
        .map_err(|e| FtpError::Protocol { what: "wait for the restart".into(), reply: e.to_string() })?;
    if !outcome.reached {
        return Err(FtpError::Restart { host, what: "come back", timeout: spec.restart_timeout });
    }
    let took = started.elapsed();
    let text = format!("{host} is back after {:.1} s", took.as_secs_f64());
    progress.report(ProgressEvent::Note { kind: TaskKind::NetworkWait, text });
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_peer_sent_is_quoted_escaped_and_bounded() {
        assert_eq!(quote(b"SSH-2.0-OpenSSH_9.2\r\n"), "SSH-2.0-OpenSSH_9.2\\r\\n");
        assert_eq!(quote(&[0x16, 0x03, 0x01, b'A']), "\\x16\\x03\\x01A");
        let long = vec![b'a'; QUOTED + 1];
        assert_eq!(quote(&long), format!("{}...", "a".repeat(QUOTED)));
    }
}
