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

use clap::ValueEnum;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::failure::{Classify, FailureClass};
use crate::net::diagnose::Finding;

pub use upload::{TlsSettings, UploadReport, UploadSpec, upload};

pub use crate::net::service::Credential;

/// The FTP data connection (a profile's `mode`, `--mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FtpMode {
    #[default]
    Passive,
    /// Extended passive (EPSV).
    Epsv,
    Active,
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

impl Classify for FtpError {
    fn class(&self) -> FailureClass {
        match self {
            FtpError::LocalFile { .. } => FailureClass::Environment,
            FtpError::CredentialsRefused { .. }
            | FtpError::FileRefused { .. }
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
