//! The profile format, version 1, as serde types.
//!
//! One YAML file describes one kind of device: its serial settings, its network
//! settings and the ordered steps that provision it. These types only describe
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
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    #[serde(default, skip_serializing_if = "is_false")]
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

/// One step of the pipeline. Each list item has exactly one of these keys.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Load an image over the serial port (XMODEM / XMODEM-1K / YMODEM).
    LoadImage(LoadImage),
    /// Drive the console dialog that sets DHCP, IP, mask and gateway.
    ConfigureNetwork(ConfigureNetwork),
    /// Poll ICMP echo and TCP ports until the device's services are up.
    WaitForNetwork(WaitForNetwork),
    /// Upload files over FTP, verified.
    FtpUpload(FtpUpload),
    /// Send EXS API TFTP Manage (0x003A) messages to a CSP matrix controller.
    TftpManage(TftpManage),
    /// Give the unit the network block's settings over ADDP, by its MAC, then
    /// restart it: in place of `configure_network` when a unit has no serial cable.
    AddpConfigure(AddpConfigure),
}

impl Step {
    /// The key that names this step kind in a profile.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::LoadImage(_) => "load_image",
            Step::ConfigureNetwork(_) => "configure_network",
            Step::WaitForNetwork(_) => "wait_for_network",
            Step::FtpUpload(_) => "ftp_upload",
            Step::TftpManage(_) => "tftp_manage",
            Step::AddpConfigure(_) => "addp_configure",
        }
    }
}

/// `load_image`: wait for the boot loader, send the image, wait for its end text.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadImage {
    /// The image file, relative to the profile's folder.
    pub file: Template,
    #[serde(default)]
    pub protocol: TransferProtocol,
    /// Regex the boot loader prints when it is ready to receive, e.g.
    /// `Starting serial recovery`. Without it the transfer starts at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<String>,
    /// Text sent to start the transfer (after `wait_for`), for boot loaders that
    /// need a command; NET+OS recovery needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_command: Option<Template>,
    /// How long to wait for `wait_for`.
    #[serde(default = "default_boot_wait")]
    pub wait_timeout: HumanDuration,
    /// Regex the device prints when it has taken the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_text: Option<String>,
    /// How long to wait for `end_text` after the transfer.
    #[serde(default = "default_end_wait")]
    pub end_timeout: HumanDuration,
    /// Tries per block before the transfer is abandoned.
    #[serde(default = "default_block_retries")]
    pub block_retries: u32,
}

fn default_boot_wait() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_end_wait() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_block_retries() -> u32 {
    10
}

/// `configure_network`: the console dialog, as data.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigureNetwork {
    /// Get into the configuration dialog, e.g. expect `Press any key in \d+
    /// seconds` and send a space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupt: Option<DialogEntry>,
    /// The prompts and answers, in order.
    pub dialog: Vec<DialogEntry>,
    /// Regex the device prints when it has saved the settings, e.g.
    /// `Saving the changes in NV memory`.
    pub done: String,
    /// Regexes the device prints when it rejects an answer (e.g. `Invalid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reject: Vec<String>,
    /// Skip the whole dialog when the console already shows this regex, e.g.
    /// `IP address.*${ip}` in the boot banner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_if: Option<Template>,
    /// Default time to wait for each prompt.
    #[serde(default = "default_prompt_wait")]
    pub timeout: HumanDuration,
    /// Pause between characters sent, for consoles that drop characters.
    #[serde(default, skip_serializing_if = "HumanDuration::is_zero")]
    pub char_delay: HumanDuration,
    /// Check that the console echoes each answer back.
    #[serde(default, skip_serializing_if = "is_false")]
    pub echo_check: bool,
    #[serde(default)]
    pub line_ending: LineEnding,
    /// Answer every prompt the dialog does not list that offers a default
    /// (see `default_prompt`) with a bare line ending, which keeps the
    /// device's value. Listed prompts take priority; a prompt without a
    /// default is never answered: the step fails quoting it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_defaults: bool,
    /// Regex for a prompt that offers a default, tried on the line the
    /// device is printing. The default matches text ending in `[...]?` or
    /// `? [...]`.
    #[serde(default = "default_default_prompt")]
    pub default_prompt: String,
    /// How many defaults may be kept before the dialog is taken for a loop.
    #[serde(default = "default_max_kept_defaults")]
    pub max_kept_defaults: u32,
    /// A prompt the device may ask after `done` (e.g. `Accept or Modify`
    /// again), answered once. A device that resets or goes on instead is
    /// fine: the step ends when the console is quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_done: Option<DialogEntry>,
    /// Before a static `network.ip` is given, check that no other host
    /// holds it (RFC 5227 ARP probes); on by default.
    #[serde(default)]
    pub address_check: Box<AddressCheck>,
}

/// The address-conflict check before `configure_network` sets a static
/// address: ARP probes from 0.0.0.0 (RFC 5227). A host that answers fails
/// the step with `address-in-use`, naming its MAC, before the dialog runs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressCheck {
    /// Run the check (needs CAP_NET_RAW). Skipped when `network.dhcp` is on.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Probes sent (RFC 5227's PROBE_NUM, 3).
    #[serde(default = "default_arp_probes")]
    #[schemars(range(min = 1, max = 20))]
    pub probes: u32,
    /// The shortest gap between probes (PROBE_MIN, 1 s).
    #[serde(default = "default_arp_interval_min")]
    pub interval_min: HumanDuration,
    /// The longest gap between probes (PROBE_MAX, 2 s).
    #[serde(default = "default_arp_interval_max")]
    pub interval_max: HumanDuration,
    /// How long to listen after the last probe (ANNOUNCE_WAIT, 2 s).
    #[serde(default = "default_arp_wait")]
    pub wait: HumanDuration,
    /// The station's interface to probe from; default: the one that routes to the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

impl Default for AddressCheck {
    fn default() -> AddressCheck {
        AddressCheck {
            enabled: true,
            probes: default_arp_probes(),
            interval_min: default_arp_interval_min(),
            interval_max: default_arp_interval_max(),
            wait: default_arp_wait(),
            interface: None,
        }
    }
}

impl AddressCheck {
    /// The probe settings of `net::arp`.
    pub fn options(&self) -> crate::net::arp::ProbeOptions {
        crate::net::arp::ProbeOptions {
            probes: self.probes,
            interval_min: self.interval_min.0,
            interval_max: self.interval_max.0,
            final_wait: self.wait.0,
            interface: self.interface.clone(),
        }
    }
}

fn default_arp_probes() -> u32 {
    crate::net::arp::PROBE_NUM
}
fn default_arp_interval_min() -> HumanDuration {
    HumanDuration(crate::net::arp::PROBE_MIN)
}
fn default_arp_interval_max() -> HumanDuration {
    HumanDuration(crate::net::arp::PROBE_MAX)
}
fn default_arp_wait() -> HumanDuration {
    HumanDuration(crate::net::arp::ANNOUNCE_WAIT)
}

fn default_prompt_wait() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_default_prompt() -> String {
    crate::serial::dialog::DEFAULT_PROMPT.to_string()
}

fn default_max_kept_defaults() -> u32 {
    crate::serial::dialog::DEFAULT_MAX_KEPT as u32
}

/// One exchange of a console dialog: wait for `expect`, then send `send`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DialogEntry {
    /// Regex of the prompt.
    pub expect: String,
    /// The answer, line ending added. Empty keeps the device's default.
    #[serde(default)]
    pub send: Template,
    /// Answers to try in order instead of `send` (e.g. the factory root
    /// password of each firmware): when the device refuses one (a `reject`
    /// line, or the same prompt again), the next answers the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Template>,
    /// The answer is a secret (a password): written as `***` in transcripts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// The prompt may not come (firmware differences); skip it if the next
    /// prompt comes first.
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
    /// Send the answer without the line ending (single-key prompts).
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_line_ending: bool,
    /// Time to wait for this prompt, instead of the step's `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LineEnding {
    #[default]
    Cr,
    CrLf,
    Lf,
}

impl LineEnding {
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Cr => "\r",
            LineEnding::CrLf => "\r\n",
            LineEnding::Lf => "\n",
        }
    }
}

/// `addp_configure`: the network block's static address (or DHCP on) sent
/// by ADDP to the unit with `mac`, then a reboot so it takes effect. A
/// `wait_for_network` after it waits for the unit at its new address.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddpConfigure {
    /// The unit's MAC address, usually `${mac}` from the inventory.
    pub mac: Template,
    /// The unit's ADDP password (NET+OS: its root password), e.g. `${env:ADDP_PASSWORD}`.
    pub password: Secret,
    /// Multicast on this interface only; default: every interface that is up and can multicast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// How long to wait for the unit's answer, per attempt.
    #[serde(default = "default_addp_wait")]
    pub wait: HumanDuration,
    /// Attempts after the first when nothing answers.
    #[serde(default = "default_addp_retries")]
    pub retries: u32,
    /// Restart the unit afterwards (its new settings take effect at boot).
    #[serde(default = "default_true")]
    pub reboot: bool,
}

fn default_addp_wait() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_addp_retries() -> u32 {
    2
}

/// `wait_for_network`: poll until the device answers as wanted.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForNetwork {
    /// Address to poll; defaults to `network.ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Template>,
    /// Wait for an ICMP echo reply.
    #[serde(default = "default_true")]
    pub icmp: bool,
    /// Ports and the state each must reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortWanted>,
    #[serde(default)]
    pub method: ProbeMethod,
    /// Give up after this long.
    #[serde(default = "default_net_wait")]
    pub timeout: HumanDuration,
    /// First polling interval; it backs off up to `max_interval`.
    #[serde(default = "default_poll_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_max_poll_interval")]
    pub max_interval: HumanDuration,
}

fn default_net_wait() -> HumanDuration {
    HumanDuration::from_secs(60)
}
// A SYN every 40 ms is nothing for a device's stack, and notices a service
// within tens of milliseconds of it starting: every second counts on a line.
fn default_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_millis(10))
}
fn default_max_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_millis(40))
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortWanted {
    pub port: u16,
    #[serde(default)]
    pub state: PortState,
}

/// `ftp_upload`: upload files to the device's FTP flash server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FtpUpload {
    /// Defaults to `network.ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Template>,
    #[serde(default = "default_ftp_port")]
    pub port: u16,
    /// Credential candidates, tried in order until one logs in.
    pub credentials: Vec<Credential>,
    #[serde(default)]
    pub mode: FtpMode,
    /// Explicit TLS (FTPS, AUTH TLS), data connections protected too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls: bool,
    /// PEM file of the CA (or the device's own certificate) to trust for
    /// TLS; defaults to the system's CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<Template>,
    /// Name the device's certificate must carry; defaults to its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_name: Option<String>,
    #[serde(default)]
    pub verify: FtpVerify,
    /// The files, uploaded in order.
    pub files: Vec<FtpFile>,
    /// One FTP session per file (NET+OS needs rom.bin and image.bin in separate
    /// sessions, with the device's restart in between).
    #[serde(default = "default_true")]
    pub session_per_file: bool,
    /// After each file, wait for the device to go down and come back.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wait_for_restart: bool,
    /// How long the restart may take.
    #[serde(default = "default_restart_wait")]
    pub restart_timeout: HumanDuration,
    /// Reserved: a regex the console prints when the flash is written. Not
    /// supported yet (the upload does not watch the console), so `profile
    /// check` refuses it rather than accept a check that never runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_done: Option<String>,
    /// Retries after a dropped connection.
    #[serde(default = "default_ftp_retries")]
    pub retries: u32,
    /// The TCP connection, and each data connection (passive or active).
    #[serde(default = "default_connect_wait")]
    pub connect_timeout: HumanDuration,
    /// The server's greeting, each reply, and a data connection that stops
    /// moving. A server that accepts and never greets fails with `no-banner`.
    #[serde(default = "default_reply_wait")]
    pub reply_timeout: HumanDuration,
}

fn default_ftp_port() -> u16 {
    21
}
fn default_restart_wait() -> HumanDuration {
    HumanDuration::from_secs(90)
}
fn default_ftp_retries() -> u32 {
    3
}
fn default_connect_wait() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_reply_wait() -> HumanDuration {
    HumanDuration::from_secs(15)
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub user: Template,
    /// Use `${env:NAME}` or `${file:path}`; clear text is accepted with a warning.
    pub password: Secret,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FtpFile {
    /// Local file, relative to the profile's folder.
    pub local: Template,
    /// Name on the server; defaults to the local file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// `tftp_manage`: EXS API TFTP Manage (0x003A) to a CSP matrix controller.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TftpManage {
    /// The controller card's IP address; defaults to `network.ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Template>,
    /// EXS API host port (assumed 12610 = 0x3142).
    #[serde(default = "default_exs_port")]
    pub port: u16,
    /// Logical node ID.
    #[serde(default = "default_exs_node")]
    pub node: u8,
    #[serde(default)]
    pub checksum: ExsChecksum,
    #[serde(default)]
    pub marker_rule: ExsMarkerRule,
    /// Queries to send (each answered with its value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<TftpQuery>,
    /// Load number for the `load-version` and `load-filename` queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<u8>,
    /// Local matrix configuration file name on the TFTP server (at most 127 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_config: Option<Template>,
    /// Local matrix TFTP server IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_server: Option<Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjacent_config: Option<Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjacent_server: Option<Template>,
    /// Load timestamp as hex bytes (its encoding is not published), when the
    /// configuration file has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Template>,
    /// Send the Begin Download ICB.
    #[serde(default, skip_serializing_if = "is_false")]
    pub begin_download: bool,
    /// A local copy of the TFTP configuration file, checked before sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<Template>,
    /// How long to wait for each answer.
    #[serde(default = "default_exs_wait")]
    pub timeout: HumanDuration,
    /// A folder flashline serves over TFTP while the step runs, on
    /// `local_server`'s address: the controller fetches `local_config` and
    /// the loads it names from the station itself (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<Template>,
    /// The UDP port `serve` listens on: 69, the port a controller asks (needs
    /// root or CAP_NET_BIND_SERVICE); another only for simulators.
    #[serde(default = "default_serve_port")]
    pub serve_port: u16,
}

impl TftpManage {
    /// What the controller's rules ([`crate::exs::job::check_rules`]) read of
    /// this step. `known` gives a template's text, or `None` while it still
    /// holds a `${...}` variable.
    pub fn rule_fields<'a>(
        &'a self,
        known: &dyn Fn(&'a Template) -> Option<&'a str>,
    ) -> crate::exs::job::TftpManageFields<'a> {
        use crate::exs::job::FieldValue;
        let value = |template: &'a Option<Template>| match template {
            None => FieldValue::Unset,
            Some(template) => known(template).map_or(FieldValue::Pending, FieldValue::Known),
        };
        crate::exs::job::TftpManageFields {
            host: value(&self.host),
            port: self.port,
            node: self.node,
            query: &self.query,
            load: self.load,
            local_config: value(&self.local_config),
            local_server: value(&self.local_server),
            adjacent_config: value(&self.adjacent_config),
            adjacent_server: value(&self.adjacent_server),
            timestamp: value(&self.timestamp),
            begin_download: self.begin_download,
            serve: self.serve.is_some(),
            serve_port: self.serve_port,
        }
    }
}

fn default_serve_port() -> u16 {
    69
}

fn default_exs_port() -> u16 {
    12610
}
fn default_exs_node() -> u8 {
    0xFF
}
fn default_exs_wait() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_true() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !*value
}
