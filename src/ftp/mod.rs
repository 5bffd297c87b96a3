//! Verified uploads of firmware (`rom.bin`, `image.bin`) to a device's FTP
//! flash server, with suppaftp over tokio.
//!
//! - [`upload`]: sessions, credential candidates, binary type (suppaftp's
//!   default ASCII would corrupt firmware), streaming with progress, retries
//!   with REST resume, verification, and the wait for the device's restart.
//! - Failures are classified ([`FtpError::class`]): refused credentials,
//!   refused file, busy server, unreachable (with the network diagnosis
//!   attached), broken transfer, failed verification.
//!
//! Passwords are used, never shown: errors and reports name users only.

pub mod upload;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::net::diagnose::Finding;

pub use upload::{TlsSettings, UploadReport, UploadSpec, upload};

pub use crate::net::service::Credential;

/// One file to upload.
#[derive(Debug, Clone)]
pub struct UploadFile {
    pub local: PathBuf,
    pub remote: String,
}

/// Who is to blame for a failure: decides the exit code and the advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    /// The device said no, timed out, or answered wrongly.
    Device,
    /// Bad arguments or profile.
    Input,
    /// This machine: a missing local file, no permission.
    Environment,
}

impl FailureClass {
    /// The name reports use (`device`, `input`, `environment`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Device => "device",
            FailureClass::Input => "input",
            FailureClass::Environment => "environment",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FtpError {
    #[error("{host}:{port} refused the credentials ({reply}) for user(s) tried: {}", users.join(", "))]
    CredentialsRefused { host: String, port: u16, users: Vec<String>, reply: String },
    #[error("the server refused `{remote}`: {reply}")]
    FileRefused { remote: String, reply: String },
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
    #[error("{what}: unexpected answer {reply}")]
    Protocol { what: String, reply: String },
    #[error("TLS with {host}:{port} failed: {error}")]
    Tls { host: String, port: u16, error: String },
    #[error("{host} did not {what} within {} s after the upload", timeout.as_secs())]
    Restart { host: String, what: &'static str, timeout: Duration },
}

impl FtpError {
    pub fn class(&self) -> FailureClass {
        match self {
            FtpError::LocalFile { .. } => FailureClass::Environment,
            _ => FailureClass::Device,
        }
    }

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
            FtpError::Unreachable { finding, .. } => return finding.as_deref().cloned(),
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
            FtpError::CredentialsRefused { host, .. } | FtpError::Busy { host, .. } => host.parse().ok()?,
            _ => return None,
        };
        crate::net::diagnose::service_problem(host, &check)
    }
}

/// What the uploader reports while it works (the CLI draws progress bars).
#[derive(Debug, Clone, PartialEq)]
pub enum FtpEvent {
    Connected { host: String, port: u16, banner: String },
    LoggedIn { user: String },
    FileStarted { remote: String, total: u64 },
    Bytes { remote: String, sent: u64, total: u64 },
    Retrying { remote: String, attempt: u32, resume_from: u64, reason: String },
    FileDone { remote: String, bytes: u64 },
    Verified { remote: String, how: String },
    WaitingForRestart { host: String },
    Restarted { host: String, after: Duration },
}
