//! Verified uploads of firmware (`rom.bin`, `image.bin`) to a device's FTP
//! flash server, with suppaftp over tokio.
//!
//! - [`upload`]: what to upload where ([`UploadSpec`]) and the order of
//!   things: files checked, sent with retries, verified, sessions closed,
//!   restarts waited for, files confirmed and reported; a deadline on every
//!   wait. Its parts: `session` (connection, greeting, TLS, credential
//!   candidates, binary type: suppaftp's default ASCII would corrupt
//!   firmware), `data` (the data connection and STOR, and what a failure to
//!   open one means), `send` (streaming in chunks, hashing on the way),
//!   `verify` (SIZE or read-back), `restart` (retries with REST resume, the
//!   wait for the device's restart).
//! - [`data_mode`]: the data connection mode, and `auto`'s fallback from
//!   EPSV and PASV to PORT.
//! - Failures are classified ([`FtpError::class`]): refused credentials,
//!   a refused command (named: PASV, PORT, STOR of a file...), no data
//!   connection in any mode, busy server, unreachable (with the network
//!   diagnosis attached), no greeting (`no-banner`), no reply in time, a
//!   peer that does not speak FTP (quoted), broken transfer, failed
//!   verification.
//!
//! Passwords are used, never shown: errors and reports name users only.

mod data;
pub mod data_mode;
mod restart;
mod send;
mod session;
mod spec;
pub mod upload;
mod verify;

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::failure::{Classify, FailureClass};
use crate::net::diagnose::{Finding, FindingCode};
use crate::progress::TaskKind;

pub use spec::{TlsSettings, UploadSpec};
pub use upload::{FileReport, UploadReport, upload, upload_with};

pub use crate::net::service::Credential;

/// The kind of every task an upload reports.
const FILE: TaskKind = TaskKind::FtpFile;

/// The FTP data connection (a profile's `mode`, `--mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FtpMode {
    /// EPSV, then PASV; when the server refuses passive mode (a 5xx reply)
    /// or its data connection does not come up within the connect timeout,
    /// PORT (active) for the rest of the upload.
    #[default]
    Auto,
    /// Passive (PASV).
    Passive,
    /// Extended passive (EPSV).
    Epsv,
    /// Active (PORT): the server connects back to this station.
    Active,
}

impl FtpMode {
    /// The command that opens a data connection in this mode (`EPSV`,
    /// `PASV`, `PORT`); `auto` is not one mode.
    pub fn command(self) -> &'static str {
        match self {
            FtpMode::Auto => "EPSV/PASV/PORT",
            FtpMode::Passive => "PASV",
            FtpMode::Epsv => "EPSV",
            FtpMode::Active => "PORT",
        }
    }
}

/// How an upload is verified (a profile's `verify`, `--verify`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FtpVerify {
    /// SIZE on the server equals the local size.
    #[default]
    Size,
    /// Download the file again and compare SHA-256.
    Readback,
    /// No check (only when the server cannot do either).
    None,
}

/// One file to upload.
#[derive(Debug, Clone)]
pub struct UploadFile {
    pub local: PathBuf,
    pub remote: String,
}

/// The name a file is stored under when none is given: its own file name
/// (`images/rom.bin` lands as `rom.bin`); `None` for a path with none.
pub fn default_remote_name(local: &std::path::Path) -> Option<String> {
    local.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum FtpError {
    #[error("{host}:{port} refused the credentials ({reply}) for user(s) tried: {}", users.join(", "))]
    CredentialsRefused { host: String, port: u16, users: Vec<String>, reply: String },
    #[error("the server refused {command} `{remote}`: {reply}")]
    FileRefused {
        /// The command the server refused (`STOR`, `REST`...).
        command: &'static str,
        remote: String,
        reply: String,
    },
    /// A command that is not about a file was refused (`PASV`, `EPSV`,
    /// `PORT`, `TYPE I`...).
    #[error("{host}:{port} refused {command}: {reply}")]
    CommandRefused { host: String, port: u16, command: String, reply: String },
    /// No data connection in any mode the upload may use.
    #[error("no data connection with {host}:{port}: {}", tried.join("; "))]
    NoDataConnection {
        host: String,
        port: u16,
        /// Each mode tried and what happened, e.g. `PASV refused: 550 Permission denied.`
        tried: Vec<String>,
    },
    /// The server accepted the connection and sent no greeting (or closed).
    #[error("{host}:{port} accepted the connection but {}", if *closed { "closed it without an FTP greeting".to_string() } else { format!("sent no FTP greeting within {}", seconds(*waited)) })]
    NoGreeting { host: String, port: u16, waited: Duration, closed: bool },
    /// A command got no reply in time.
    #[error("no reply from {host}:{port} to {command} within {}", seconds(*waited))]
    NoReply { host: String, port: u16, command: String, waited: Duration },
    /// The peer answered with something that is not FTP (or too much of it).
    #[error("{host}:{port} does not answer like an FTP server: {what}; it sent `{sent}`")]
    NotFtp { host: String, port: u16, what: String, sent: String },
    #[error("{host}:{port} is busy: {reply}")]
    Busy { host: String, port: u16, reply: String },
    #[error("cannot connect to {host}:{port}: {error}{}", finding.as_ref().map(|f| format!(" [{}] {}", f.code.as_str(), f.summary)).unwrap_or_default())]
    Unreachable {
        host: String,
        port: u16,
        error: String,
        /// The network diagnosis of why.
        finding: Option<Box<Finding>>,
    },
    #[error("upload of `{remote}` failed after {attempts} attempt(s): {error}")]
    Transfer { remote: String, attempts: u32, error: String },
    #[error("verification of `{remote}` failed: {detail}")]
    VerifyFailed { remote: String, detail: String },
    #[error("cannot read {}: {error}", path.display())]
    LocalFile { path: PathBuf, error: String },
    /// A local file to upload: unreadable (environment), or not a regular
    /// file, empty or too large (bad input); found before any connection.
    #[error(transparent)]
    Image(#[from] crate::input_file::InputFileError),
    #[error("{what}: unexpected answer {reply}")]
    Protocol { what: String, reply: String },
    #[error("TLS with {host}:{port} failed: {error}")]
    Tls { host: String, port: u16, error: String },
    #[error("{host} did not {what} within {} s after the upload", timeout.as_secs())]
    Restart { host: String, what: &'static str, timeout: Duration },
}

impl Classify for FtpError {
    fn class(&self) -> FailureClass {
        match self {
            FtpError::LocalFile { .. } => FailureClass::Environment,
            FtpError::Image(error) => error.class(),
            FtpError::CredentialsRefused { .. }
            | FtpError::FileRefused { .. }
            | FtpError::CommandRefused { .. }
            | FtpError::NoDataConnection { .. }
            | FtpError::NoGreeting { .. }
            | FtpError::NoReply { .. }
            | FtpError::NotFtp { .. }
            | FtpError::Busy { .. }
            | FtpError::Unreachable { .. }
            | FtpError::Transfer { .. }
            | FtpError::VerifyFailed { .. }
            | FtpError::Protocol { .. }
            | FtpError::Tls { .. }
            | FtpError::Restart { .. } => FailureClass::Device,
        }
    }
}

impl FtpError {
    /// The finding for this failure: the network diagnosis of a refused
    /// connection, or what the server's answer means (`auth-failed`,
    /// `service-busy`).
    pub fn finding(&self) -> Option<Finding> {
        use crate::net::service::{LoginOutcome, LoginResult, ServiceCheck};
        let said = |port: u16, code: u16, banner: &str, login: Option<LoginResult>| ServiceCheck {
            port,
            banner: Some(banner.to_string()),
            banner_code: Some(code),
            login,
        };
        let check = match self {
            // A failed connection never carries `ready`: the network looked
            // fine, so the diagnosis has nothing to add.
            FtpError::Unreachable { finding, .. } => {
                return finding.as_deref().filter(|f| f.code != FindingCode::Ready).cloned();
            }
            FtpError::NoGreeting { port, .. } => {
                ServiceCheck { port: *port, banner: None, banner_code: None, login: None }
            }
            FtpError::CredentialsRefused { port, users, reply, .. } => said(
                *port,
                220,
                "220",
                Some(LoginResult {
                    result: LoginOutcome::Refused,
                    user: None,
                    tried: users.clone(),
                    reply: reply.clone(),
                }),
            ),
            FtpError::Busy { port, reply, .. } => {
                said(*port, reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(421), reply, None)
            }
            _ => return None,
        };
        let host = match self {
            FtpError::CredentialsRefused { host, .. }
            | FtpError::Busy { host, .. }
            | FtpError::NoGreeting { host, .. } => host.parse().ok()?,
            _ => return None,
        };
        crate::net::diagnose::service_problem(host, &check)
    }
}

/// `15 s`, `0.5 s`: a wait as error messages state it.
fn seconds(waited: Duration) -> String {
    let secs = waited.as_secs_f64();
    if secs.fract() == 0.0 { format!("{secs:.0} s") } else { format!("{secs} s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    #[test]
    fn the_default_remote_name_is_the_local_files_own() {
        assert_eq!(default_remote_name(Path::new("images/rom.bin")).as_deref(), Some("rom.bin"));
        assert_eq!(default_remote_name(Path::new("rom.bin")).as_deref(), Some("rom.bin"));
        assert_eq!(default_remote_name(Path::new("..")), None);
        assert_eq!(default_remote_name(Path::new("/")), None);
    }
}
