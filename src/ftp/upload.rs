//! The upload itself: one FTP session per file (or one for all), the
//! credential candidates in order, binary type always, files streamed in
//! fixed-size chunks (memory does not grow with the file) and hashed on the
//! way, retries after a dropped connection (resuming with REST when the
//! server offers it), verification, and the wait for the device to restart.
//!
//! Success is reported only after verification; a file is never reported
//! sent because the data connection closed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError as SuppaError, Mode, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Credential, FtpError, UploadFile};
use super::{FtpMode, FtpVerify};
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
    pub connect_timeout: Duration,
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

impl UploadSpec {
    /// The spec of a resolved profile's `ftp_upload` step, aimed at `host`
    /// (the step's `host` or the profile's `network.ip`); local paths are
    /// taken from `base_dir`, the profile's folder.
    pub fn from_step(step: &crate::profile::FtpUpload, host: Ipv4Addr, base_dir: &Path) -> UploadSpec {
        UploadSpec {
            host,
            port: step.port,
            credentials: step.credentials.iter().map(Credential::from).collect(),
            mode: step.mode,
            verify: step.verify,
            files: step
                .files
                .iter()
                .map(|f| {
                    let local = base_dir.join(f.local.as_str());
                    let remote = f.remote.clone().unwrap_or_else(|| {
                        Path::new(f.local.as_str())
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    UploadFile { local, remote }
                })
                .collect(),
            session_per_file: step.session_per_file,
            wait_for_restart: step.wait_for_restart,
            restart_timeout: step.restart_timeout.0,
            retries: step.retries,
            connect_timeout: step.connect_timeout.0,
            probe_method: ProbeMethod::Auto,
            tls: step.tls.then(|| TlsSettings {
                ca_file: step.tls_ca.as_ref().map(|ca| base_dir.join(ca.as_str())),
                name: step.tls_name.clone(),
            }),
            hash: false,
        }
    }
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
    /// Offset a retry resumed from, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
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
}

/// Uploads every file of `spec`, verified, reporting each file as a
/// [`TaskKind::FtpFile`] task to `progress`.
pub async fn upload(spec: &UploadSpec, progress: &dyn Progress) -> Result<UploadReport, FtpError> {
    // Every local file is checked before anything is sent: nothing half-done
    // because the second file was missing.
    let mut sizes = Vec::new();
    for file in &spec.files {
        let meta = tokio::fs::metadata(&file.local).await.map_err(|e| local_error(&file.local, e))?;
        if !meta.is_file() {
            return Err(local_error(&file.local, std::io::Error::other("not a regular file")));
        }
        sizes.push(meta.len());
    }
    let mut session: Option<Session> = None;
    let mut user = String::new();
    let mut reports = Vec::new();
    for (index, (file, &size)) in spec.files.iter().zip(&sizes).enumerate() {
        let started = Instant::now();
        let mut attempts = 0;
        let mut resumed_from = None;
        let digest = loop {
            attempts += 1;
            if session.is_none() {
                session = Some(open_session(spec, progress).await?);
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
            match send_file(current, file, size, offset, hash, progress).await {
                Ok(digest) => break digest,
                Err(SendError::Refused(reply)) => {
                    return Err(FtpError::FileRefused { remote: file.remote.clone(), reply });
                }
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
        let verified = verify(current, spec.verify, file, size, digest.as_deref()).await?;
        progress.report(ProgressEvent::Note { kind: FILE, text: format!("{}: verified ({verified})", file.remote) });
        let last = index + 1 == spec.files.len();
        let mut restart_seconds = None;
        if spec.session_per_file || last {
            if let Some(mut done) = session.take() {
                // Closing the control connection is what makes NET+OS write
                // the flash; a failed QUIT still closes it.
                let _ = done.ftp.quit().await;
            }
            if spec.wait_for_restart {
                let took = wait_for_restart(spec, progress).await?;
                restart_seconds = Some(took.as_secs_f64());
            }
        }
        reports.push(FileReport {
            local: file.local.display().to_string(),
            remote: file.remote.clone(),
            bytes: size,
            sha256: digest.as_deref().map(hex),
            verified,
            attempts,
            resumed_from,
            seconds: started.elapsed().as_secs_f64(),
            restart_seconds,
        });
    }
    Ok(UploadReport { host: spec.host.to_string(), port: spec.port, user, files: reports })
}

fn local_error(path: &Path, error: std::io::Error) -> FtpError {
    FtpError::LocalFile { path: path.to_path_buf(), error: error.to_string() }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server's reply as it sent it, e.g. `530 Login incorrect.`
fn reply_text(response: &suppaftp::types::Response) -> String {
    let body = String::from_utf8_lossy(&response.body).trim().to_string();
    let code = response.status.code().to_string();
    if body.starts_with(&code) { body } else { format!("{code} {body}").trim().to_string() }
}

/// Connects, logs in with the first candidate that works, sets binary type
/// and the data connection mode.
async fn open_session(spec: &UploadSpec, progress: &dyn Progress) -> Result<Session, FtpError> {
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
            match ftp.login(candidate.user.as_str(), candidate.password.as_str()).await {
                Ok(()) => {
                    progress
                        .report(ProgressEvent::Note { kind: FILE, text: format!("logged in as {}", candidate.user) });
                    return finish_session(ftp, spec, candidate.user.clone()).await;
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

async fn connect(spec: &UploadSpec) -> Result<AsyncRustlsFtpStream, FtpError> {
    let address = SocketAddr::from((spec.host, spec.port));
    let host = spec.host.to_string();
    match AsyncRustlsFtpStream::connect_timeout(address, spec.connect_timeout).await {
        Ok(ftp) => match &spec.tls {
            None => Ok(ftp),
            Some(tls) => {
                let connector = tls.connector()?;
                let name = tls.name.clone().unwrap_or_else(|| host.clone());
                ftp.into_secure(connector, &name).await.map_err(|e| FtpError::Tls {
                    host: host.clone(),
                    port: spec.port,
                    // suppaftp wraps its own prefix twice.
                    error: e.to_string().replace("Secure error: ", ""),
                })
            }
        },
        Err(SuppaError::UnexpectedResponse(response)) if matches!(response.status.code(), 421 | 120) => {
            Err(FtpError::Busy { host, port: spec.port, reply: reply_text(&response) })
        }
        Err(SuppaError::ConnectionError(error)) => {
            let finding = diagnose(spec).await;
            Err(FtpError::Unreachable { host, port: spec.port, error: error.to_string(), finding })
        }
        Err(other) => Err(FtpError::Protocol { what: format!("greeting from {address}"), reply: other.to_string() }),
    }
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

async fn finish_session(mut ftp: AsyncRustlsFtpStream, spec: &UploadSpec, user: String) -> Result<Session, FtpError> {
    // suppaftp starts in ASCII, which would rewrite every LF in the image.
    ftp.transfer_type(FileType::Binary)
        .await
        .map_err(|e| FtpError::Protocol { what: "TYPE I (binary)".into(), reply: e.to_string() })?;
    let mut ftp = match spec.mode {
        FtpMode::Passive => {
            ftp.set_mode(Mode::Passive);
            ftp
        }
        FtpMode::Epsv => {
            ftp.set_mode(Mode::ExtendedPassive);
            ftp
        }
        FtpMode::Active => ftp.active_mode(spec.connect_timeout),
    };
    let resumable = match ftp.feat().await {
        Ok(features) => features.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("REST")
                && value.as_deref().is_some_and(|v| v.to_ascii_uppercase().contains("STREAM"))
        }),
        Err(_) => false,
    };
    Ok(Session { ftp, user, resumable })
}

enum SendError {
    /// The server refused the file (550 and kin).
    Refused(String),
    /// The connection broke or timed out: worth a retry.
    Broken(String),
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
async fn send_file(
    session: &mut Session,
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
    if offset > 0 {
        let _ = session.ftp.resume_transfer(offset as usize).await;
    }
    let mut stream = match session.ftp.put_with_stream(&file.remote).await {
        Ok(stream) => stream,
        Err(SuppaError::UnexpectedResponse(response)) if (500..600).contains(&response.status.code()) => {
            return Err(SendError::Refused(reply_text(&response)));
        }
        Err(SuppaError::UnexpectedResponse(response)) if response.status.code() == 421 => {
            return Err(SendError::Broken(reply_text(&response)));
        }
        Err(error) => return Err(SendError::Broken(error.to_string())),
    };
    let mut sent = offset;
    // A stalled data connection (a cable pulled) must not hang the batch.
    let stall = Duration::from_secs(30);
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
                    stall.as_secs()
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
            Err(SendError::Refused(reply_text(&response)))
        }
        Ok(Err(error)) => Err(SendError::Broken(format!("closing the transfer: {error}"))),
        Err(_) => Err(SendError::Broken("no transfer-complete reply".into())),
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
    how: FtpVerify,
    file: &UploadFile,
    size: u64,
    digest: Option<&[u8]>,
) -> Result<String, FtpError> {
    let failed = |detail: String| FtpError::VerifyFailed { remote: file.remote.clone(), detail };
    match how {
        FtpVerify::None => Ok("none (the profile says so)".into()),
        FtpVerify::Size => match session.ftp.size(&file.remote).await {
            Ok(n) if n as u64 == size => Ok(format!("size {size} matches")),
            Ok(n) => Err(failed(format!("the server has {n} bytes, the local file {size}"))),
            Err(error) => Err(failed(format!(
                "SIZE failed ({error}); use verify: readback, or none if the server can do neither"
            ))),
        },
        FtpVerify::Readback => {
            let mut stream = session.ftp.retr_as_stream(&file.remote).await.map_err(|e| {
                failed(format!("RETR failed ({e}); use verify: size or none if the server cannot send files back"))
            })?;
            let mut hasher = Sha256::new();
            let mut buffer = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let n = stream.read(&mut buffer).await.map_err(|e| failed(format!("reading back: {e}")))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                hasher.update(&buffer[..n]);
            }
            stream.finish().await.map_err(|e| failed(format!("closing the read-back: {e}")))?;
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
