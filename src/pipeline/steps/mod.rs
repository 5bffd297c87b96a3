//! How each step kind runs: one file per kind, each `run(options, cx)`
//! taking the step's resolved options (`profile::steps`) and a
//! [`StepContext`], and giving a [`StepDone`] or a typed [`StepError`].
//!
//! This is where the profile meets the protocols: a step file turns its
//! options into the protocol's own spec (an upload, a wait, a TFTP Manage
//! job), calls the protocol and writes the report's detail text. The
//! protocol modules never see the profile.
//!
//! Adding a step kind: its options in `profile/steps/<kind>.rs`, how it runs
//! in `pipeline/steps/<kind>.rs`, and one line in each dispatch (the `Step`
//! enum there, [`run`] here). The device runner (`pipeline::device`) knows no
//! kind: it resolves, hashes, resumes, journals and reports.

pub mod addp_configure;
pub mod configure_network;
pub mod console_commands;
pub mod ftp_upload;
pub mod load_image;
pub mod tftp_manage;
pub mod wait_for_network;

use std::net::Ipv4Addr;
use std::path::Path;

use super::journal::{ConfirmedFile, StepOutcome};
use super::report::ImageHash;
use crate::failure::{Classify, FailureClass};
use crate::input_file::InputFileError;
use crate::net::diagnose::Finding;
use crate::netos::boot_header::ImageCheck;
use crate::profile::{DeviceValues, Profile, Step, Template};
use crate::progress::Progress;
use crate::serial::console::{Console, ConsoleError};
use crate::serial::dialog::DialogFailure;
use crate::serial::names::DevRoot;
use crate::serial::port::{self, Port, PortError};
use crate::serial::transfer::TransferRunError;

/// What a step gets from the device runner.
pub struct StepContext<'a> {
    /// The profile with the device's values filled in.
    pub profile: &'a Profile,
    /// The profile's folder: relative paths start there.
    pub base_dir: &'a Path,
    /// The device's values (`mac`, `ip`...), for what a step checks
    /// against the unit itself.
    pub values: &'a DeviceValues,
    /// The device's serial port, for the console steps.
    pub port: Option<&'a Path>,
    /// The unit's console once a step opened it (or the station handed it
    /// over): it stays open for the next console step.
    pub console: &'a mut Option<Console<Port>>,
    pub progress: &'a dyn Progress,
    /// The files of this step the device already confirmed, and where a
    /// file it confirms now is recorded.
    pub files: StepFiles<'a>,
}

impl std::fmt::Debug for StepContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext")
            .field("profile", &self.profile.name)
            .field("base_dir", &self.base_dir)
            .field("values", self.values)
            .field("port", &self.port)
            .field("console_open", &self.console.is_some())
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// The files of a step the device already has, and where a file it
/// confirms now is recorded (the journal).
pub struct StepFiles<'a> {
    /// Confirmed in an earlier run with the same inputs: not sent again.
    pub confirmed: &'a [ConfirmedFile],
    pub record: &'a (dyn Fn(&ImageHash) + Send + Sync),
}

impl std::fmt::Debug for StepFiles<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepFiles").field("confirmed", &self.confirmed).finish_non_exhaustive()
    }
}

impl StepContext<'_> {
    /// The unit's console, opened on the device's port the first time a
    /// step needs it (exclusively, with the profile's line settings).
    pub async fn console(&mut self) -> Result<&mut Console<Port>, StepError> {
        if self.console.is_none() {
            let path = self.port.ok_or(StepError::NoPort)?;
            let opened = port::open_named(&path.to_string_lossy(), &self.profile.serial, &DevRoot::from_env()).await?;
            *self.console = Some(Console::new(opened));
        }
        Ok(self.console.as_mut().expect("opened above"))
    }

    /// The address a network step talks to: its `host`, else `network.ip`.
    pub fn target(&self, host: Option<&Template>) -> Result<Ipv4Addr, StepError> {
        let text = host.or(self.profile.network.ip.as_ref()).map(|t| t.to_string()).unwrap_or_default();
        text.trim().parse().map_err(|_| StepError::NotAnAddress { text, purpose: "to reach" })
    }

    /// The unit's own MAC (the device's `mac` value), when it is known.
    pub fn unit_mac(&self) -> Option<crate::net::arp::Mac> {
        self.values.get("mac").and_then(|mac| mac.parse().ok())
    }
}

/// How a step that did not fail ended.
#[derive(Debug)]
pub struct StepDone {
    pub outcome: StepOutcome,
    pub detail: String,
    pub retries: u32,
    /// The files sent, each with the SHA-256 of the bytes that went out.
    pub sent: Vec<ImageHash>,
}

impl StepDone {
    /// Passed, nothing sent, no retries.
    pub fn passed(detail: impl Into<String>) -> StepDone {
        StepDone { outcome: StepOutcome::Passed, detail: detail.into(), retries: 0, sent: Vec::new() }
    }
}

/// Why a step failed: a protocol's own error, or what the step itself
/// judged. Each variant's class is decided here, where it is written.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A console step, and the device has no `port` value.
    #[error("the profile has serial steps but the device has no `port`")]
    NoPort,
    #[error(transparent)]
    Port(#[from] PortError),
    /// A resolved address field that is not an IPv4 address (`purpose`
    /// says what it was for: `to reach`, `to check`, `for ADDP`).
    #[error("`{text}` is not an IPv4 address {purpose}")]
    NotAnAddress { text: String, purpose: &'static str },
    /// The step's `mac` is not a MAC address.
    #[error("{0}")]
    NotAMac(String),
    /// A regex from the profile or the arguments.
    #[error("`{pattern}` is not a valid regex: {message}")]
    BadPattern { pattern: String, message: String },
    /// The image file: unreadable (environment), or not a regular file,
    /// empty or too large (bad input).
    #[error(transparent)]
    ImageUnreadable(#[from] InputFileError),
    /// The image fails its own check.
    #[error("image {path} is not loadable: {check}")]
    ImageInvalid { path: String, check: ImageCheck },
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error("image transfer failed: {0}")]
    Transfer(#[from] TransferRunError),
    /// The device answered the dialog otherwise than the profile expects.
    #[error(transparent)]
    Dialog(#[from] DialogFailure),
    /// Another host answered the ARP probes for the unit's address.
    #[error("{address} is already in use by {mac} (it answered an ARP probe on {interface})")]
    AddressInUse { address: Ipv4Addr, mac: String, interface: String, finding: Finding },
    #[error(transparent)]
    Arp(#[from] crate::net::arp::ArpError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// `wait_for_network` timed out; the finding says why.
    #[error("{host} did not reach the wanted states in {timeout_ms} ms")]
    NotReached { host: Ipv4Addr, timeout_ms: u128, finding: Finding },
    #[error(transparent)]
    Ftp(#[from] crate::ftp::FtpError),
    #[error(transparent)]
    Exs(#[from] crate::exs::job::ExsError),
    /// The controller answered a TFTP Manage message with a negative Status.
    #[error("the controller refused: {answers}")]
    ControllerRefused { answers: String },
    #[error(transparent)]
    Addp(#[from] crate::addp::client::AddpError),
    /// A console command the unit did not carry out: an error line, an
    /// exit status, output without the text or value the profile wants.
    #[error("`{command}` failed: {reason}{}", printed(lines))]
    CommandFailed { command: String, reason: String, lines: Vec<String> },
}

impl Classify for StepError {
    fn class(&self) -> FailureClass {
        match self {
            // The profile or the device's values are wrong, and nothing was
            // sent: a missing port, an address or MAC that is none, a bad
            // regex, an image that fails its own bootHdr check.
            StepError::NoPort
            | StepError::NotAnAddress { .. }
            | StepError::NotAMac(_)
            | StepError::BadPattern { .. }
            | StepError::ImageInvalid { .. } => FailureClass::Input,
            // What the network or the unit answered.
            StepError::AddressInUse { .. }
            | StepError::NotReached { .. }
            | StepError::ControllerRefused { .. }
            | StepError::CommandFailed { .. } => FailureClass::Device,
            StepError::Port(error) => error.class(),
            StepError::ImageUnreadable(error) => error.class(),
            StepError::Console(error) => error.class(),
            StepError::Transfer(error) => error.class(),
            StepError::Dialog(failure) => failure.class(),
            StepError::Arp(error) => error.class(),
            StepError::Net(error) => error.class(),
            StepError::Ftp(error) => error.class(),
            StepError::Exs(error) => error.class(),
            StepError::Addp(error) => error.class(),
        }
    }
}

impl StepError {
    /// The diagnosis that goes with the failure, where there is one.
    pub fn finding(&self) -> Option<Finding> {
        match self {
            StepError::AddressInUse { finding, .. } | StepError::NotReached { finding, .. } => Some(finding.clone()),
            StepError::Ftp(error) => error.finding(),
            _ => None,
        }
    }
}

/// Runs one step: the dispatch over the kinds.
pub async fn run(step: &Step, cx: &mut StepContext<'_>) -> Result<StepDone, StepError> {
    match step {
        Step::LoadImage(options) => load_image::run(options, cx).await,
        Step::ConfigureNetwork(options) => configure_network::run(options, cx).await,
        Step::WaitForNetwork(options) => wait_for_network::run(options, cx).await,
        Step::FtpUpload(options) => ftp_upload::run(options, cx).await,
        Step::TftpManage(options) => tftp_manage::run(options, cx).await,
        Step::AddpConfigure(options) => addp_configure::run(options, cx).await,
        Step::ConsoleCommands(options) => console_commands::run(options, cx).await,
    }
}

/// A command's output quoted under its error, when it printed any.
fn printed(lines: &[String]) -> String {
    lines.iter().map(|line| format!("\n  | {line}")).collect()
}

/// A regex from the profile, compiled (bytes: the console is not UTF-8).
pub(crate) fn compile(pattern: &str) -> Result<regex::bytes::Regex, StepError> {
    regex::bytes::Regex::new(pattern)
        .map_err(|e| StepError::BadPattern { pattern: pattern.to_string(), message: e.to_string() })
}
