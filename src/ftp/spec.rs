//! What an upload is asked to do: [`UploadSpec`] and its [`TlsSettings`],
//! read by every part of the upload (session, data connection, sending,
//! verification, the wait for the restart) and built by its callers.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{Credential, FtpMode, FtpVerify, UploadFile};
use crate::net::ProbeMethod;

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
