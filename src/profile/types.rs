//! The profile format, version 1, as serde types.
//!
//! One YAML file describes one kind of device: its serial settings, its network
//! settings and the ordered steps that provision it (each step kind in its own
//! file under `steps`, re-exported here). These types only describe
//! the format (with `deny_unknown_fields` everywhere, so a misspelt key is an
//! error, not a silently ignored option); whether the values make sense together
//! is decided by `validate`, and `${...}` variables are filled in by `vars`.
//!
//! Strings that may hold variables are [`Template`]s; passwords are [`Secret`]s,
//! which serialize as `***` so a resolved profile can be printed or reported
//! without leaking them (both in `template`, with [`HumanDuration`]).

use std::collections::BTreeMap;

pub use crate::exs::frame::{ExsChecksum, ExsMarkerRule};
pub use crate::exs::tftp_manage::TftpQuery;
pub use crate::ftp::{FtpMode, FtpVerify};
pub use crate::net::{PortState, ProbeMethod};
pub use crate::serial::settings::{FlowControl, Parity, SerialSettings};
pub use crate::serial::xmodem::TransferProtocol;

pub use crate::family::Family;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::steps::{
    AddpConfigure, AddressCheck, ConfigureNetwork, ConsoleCommand, ConsoleCommands, Credential, DialogEntry, FtpFile,
    FtpUpload, LineEnding, LoadImage, PortWanted, Step, TftpManage, WaitForNetwork,
};
pub use super::template::{HumanDuration, Secret, Template};

/// The only profile format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// A device profile: everything flashline needs to provision one kind of device.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "flashline device profile")]
pub struct Profile {
    /// Profile format version; must be 1.
    pub format: u32,
    /// Short name of the device kind, e.g. `digi-connectme-9210`.
    pub name: String,
    /// What the profile is for, shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The firmware family the device runs: it chooses how the console is
    /// read, what it adds to a diagnosis and how an image is checked.
    /// `netos` (the default, and the one family today).
    // `profile show` leaves the default out: its output is as before the key.
    #[serde(default, skip_serializing_if = "Family::is_default")]
    pub family: Family,
    /// Per-device variables used as `${name}` in the profile, besides the built-in
    /// device fields `name`, `port`, `ip`, `mask` and `gateway`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, VariableSpec>,
    /// Serial line settings for the console and image loads.
    #[serde(default)]
    pub serial: SerialSettings,
    /// The network settings the console dialog gives the device.
    #[serde(default)]
    pub network: NetworkSettings,
    /// The steps, run in order.
    pub steps: Vec<Step>,
}

impl Profile {
    /// The ports of the `ftp_upload` steps, in order, each once: what a
    /// diagnosis checks for an FTP server.
    pub fn ftp_ports(&self) -> Vec<u16> {
        let mut ports = Vec::new();
        for step in &self.steps {
            if let Step::FtpUpload(ftp) = step
                && !ports.contains(&ftp.port)
            {
                ports.push(ftp.port);
            }
        }
        ports
    }
}

/// A declared per-device variable.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    /// What the variable means, for people filling in an inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Value used when the device does not set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The value is a secret: it is shown as `***` everywhere.
    #[serde(default, skip_serializing_if = "super::steps::is_false")]
    pub secret: bool,
}

/// The network settings given to the device by `configure_network` and used as
/// the default target of the network steps.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// Obtain the address by DHCP (true) or use the static ip/mask/gateway (false).
    #[serde(default)]
    pub dhcp: bool,
    /// Static IPv4 address, usually `${ip}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Template>,
    /// Subnet mask, usually `${mask}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Template>,
    /// Default gateway, usually `${gateway}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Template>,
}
