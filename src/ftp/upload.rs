//! The upload itself: what to upload where ([`UploadSpec`]), and the order
//! of things: every local file checked before any connection, one FTP
//! session per file (or one for all), each file sent with retries after a
//! dropped connection, verified, its session closed and the device's restart
//! waited for, then confirmed to the caller and reported.
//!
//! Success is reported only after verification; a file is never reported
//! sent because the data connection closed.
//!
//! The parts live beside it: [`super::session`] (connection, login with the
//! credential candidates, binary type), [`super::data`] (the data connection
//! and STOR; the mode's fallback is in [`super::data_mode`]),
//! [`super::send`] (streaming and hashing), [`super::verify`] and
//! [`super::restart`] (REST resume, the device's restart).
//!
//! Every wait has a deadline: the TCP connection and a passive or active data
//! connection `connect_timeout`, the greeting, each reply and a stalled data
//! connection `reply_timeout`. A refusal names the command the server refused
//! (`EPSV`, `PASV`, `PORT`, `TYPE I`, `STOR`...), so a file is blamed only
//! when its own STOR was refused.

use std::time::Instant;

use serde::Serialize;

use super::data::SendError;
use super::data_mode::DataModes;
use super::restart::{resume_offset, retry_delay, wait_for_restart};
use super::send::{Outgoing, send_file};
use super::session::{Session, open_session};
use super::spec::UploadSpec;
use super::verify::verify;
use super::{FILE, FtpError, UploadFile};
use super::{FtpMode, FtpVerify};
use crate::digest::hex;
use crate::progress::{Progress, ProgressEvent};

/// For the fuzz targets, which reach it by this path.
#[doc(hidden)]
pub use super::session::{QUOTED, quote};

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
        let sent = send_with_retries(spec, &mut session, &mut modes, file, size, progress).await?;
        progress.report(ProgressEvent::Finished { kind: FILE, done: size, elapsed: started.elapsed() });
        let current = session.as_mut().expect("the file was sent on it");
        user = current.user.clone();
        let verified = verify(current, spec, file, size, sent.digest.as_deref()).await?;
        progress.report(ProgressEvent::Note { kind: FILE, text: format!("{}: verified ({verified})", file.remote) });
        // With one session for several files, a file is confirmed only when
        // the session that carried it closed (NET+OS writes flash then).
        let closes_session = spec.session_per_file || index + 1 == spec.files.len();
        let mut restart_seconds = None;
        if closes_session {
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
            sha256: sent.digest.as_deref().map(hex),
            verified,
            attempts: sent.attempts,
            mode: modes.current(),
            fallback: modes.given_up().to_vec(),
            resumed_from: sent.resumed_from,
            pasv_address_ignored: sent.pasv_address_ignored,
            seconds: started.elapsed().as_secs_f64(),
            restart_seconds,
        };
        if closes_session {
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

/// A file on the server, not yet verified.
struct Sent {
    /// The whole file's SHA-256, when it was computed.
    digest: Option<Vec<u8>>,
    attempts: u32,
    resumed_from: Option<u64>,
    pasv_address_ignored: Option<String>,
}

/// Sends `file`, opening a session when there is none, and again after a
/// dropped connection (resuming where the server offers REST) until
/// `spec.retries` are spent. A refusal or a local problem ends it at once.
async fn send_with_retries(
    spec: &UploadSpec,
    session: &mut Option<Session>,
    modes: &mut DataModes,
    file: &UploadFile,
    size: u64,
    progress: &dyn Progress,
) -> Result<Sent, FtpError> {
    let mut attempts = 0;
    let mut resumed_from = None;
    let hash = spec.hash || spec.verify == FtpVerify::Readback;
    loop {
        attempts += 1;
        if session.is_none() {
            *session = Some(open_session(spec, modes, progress).await?);
        }
        let current = session.as_mut().expect("opened above");
        if attempts == 1 {
            progress.report(ProgressEvent::Started { kind: FILE, label: file.remote.clone(), total: Some(size) });
        }
        let offset = resume_offset(current, &file.remote, attempts, size).await;
        if offset > 0 {
            resumed_from = Some(offset);
        }
        let outgoing = Outgoing { file, size, offset, hash };
        let error = match send_file(current, spec, modes, &outgoing, progress).await {
            Ok(digest) => {
                let pasv_address_ignored = current.passive.elsewhere().map(|named| {
                    let text = format!(
                        "{}: the PASV reply named {named}, not the control connection's peer {}: \
                         the data went to {}:{} (a PASV reply's address is never followed)",
                        file.remote,
                        spec.host,
                        spec.host,
                        named.port()
                    );
                    progress.report(ProgressEvent::Note { kind: FILE, text });
                    named.to_string()
                });
                return Ok(Sent { digest, attempts, resumed_from, pasv_address_ignored });
            }
            Err(SendError::Refused { command, reply }) => {
                return Err(FtpError::FileRefused { command, remote: file.remote.clone(), reply });
            }
            Err(SendError::Fatal(error)) => return Err(error),
            Err(SendError::Local(error)) => {
                return Err(FtpError::LocalFile { path: file.local.clone(), error: error.to_string() });
            }
            Err(SendError::Broken(error)) => error,
        };
        // The connection is gone or unusable: start a new one.
        *session = None;
        let Some(delay) = retry_delay(attempts, spec.retries) else {
            return Err(FtpError::Transfer { remote: file.remote.clone(), attempts, error });
        };
        let detail = format!("{}: attempt {} after: {error}", file.remote, attempts + 1);
        progress.report(ProgressEvent::Retried { kind: FILE, detail });
        tokio::time::sleep(delay).await;
    }
}
