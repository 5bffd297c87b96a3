//! The step kinds of a profile, one file each: its options and their serde
//! defaults, its checks, its templates, the files it sends, its phase (where
//! it may stand in the order) and the help for a step out of order.
//!
//! [`Step`] is the list item and forwards each of those to its kind, so a
//! new kind is one file here plus its arms below. How a step runs is not
//! here: that is `pipeline/steps`.

pub mod addp_configure;
pub mod configure_network;
pub mod ftp_upload;
pub mod load_image;
pub mod tftp_manage;
pub mod wait_for_network;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use addp_configure::AddpConfigure;
pub use configure_network::{AddressCheck, ConfigureNetwork, DialogEntry, LineEnding};
pub use ftp_upload::{Credential, FtpFile, FtpUpload};
pub use load_image::LoadImage;
pub use tftp_manage::TftpManage;
pub use wait_for_network::{PortWanted, WaitForNetwork};

use super::problem::Problems;
use super::template::Template;
use super::types::Profile;
use super::vars::TemplateRole;

/// What [`Step::visit_templates`] calls with each template: its field path,
/// its role and the template itself.
pub type TemplateVisitor<'v> = &'v mut dyn FnMut(&str, TemplateRole, &mut Template);

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
    /// The keys of every step kind, in the order of [`Step`]'s variants.
    pub const KINDS: [&'static str; 6] =
        ["load_image", "configure_network", "wait_for_network", "ftp_upload", "tftp_manage", "addp_configure"];

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

    /// Order in which step kinds may follow each other: serial work first
    /// (0), then setting the address (1), then the network (2). `None`: the
    /// step may go anywhere.
    pub fn phase(&self) -> Option<u8> {
        match self {
            Step::LoadImage(_) => LoadImage::phase(),
            Step::ConfigureNetwork(_) => ConfigureNetwork::phase(),
            Step::WaitForNetwork(_) => WaitForNetwork::phase(),
            Step::FtpUpload(_) => FtpUpload::phase(),
            Step::TftpManage(_) => TftpManage::phase(),
            Step::AddpConfigure(_) => AddpConfigure::phase(),
        }
    }

    /// The help for this step when it comes after a step of a later phase.
    pub fn order_help(&self) -> &'static str {
        match self {
            Step::LoadImage(_) => LoadImage::order_help(),
            Step::ConfigureNetwork(_) => ConfigureNetwork::order_help(),
            Step::WaitForNetwork(_) => WaitForNetwork::order_help(),
            Step::FtpUpload(_) => FtpUpload::order_help(),
            Step::TftpManage(_) => TftpManage::order_help(),
            Step::AddpConfigure(_) => AddpConfigure::order_help(),
        }
    }

    /// The checks of this step, `profile.steps[index]`, on its own and
    /// against the profile (a target address, the steps before it). The
    /// order of steps is checked by `validate`, not here.
    pub fn check(&self, profile: &Profile, index: usize, problems: &mut Problems<'_>) {
        let base = format!("steps[{index}].{}", self.kind());
        match self {
            Step::LoadImage(s) => s.check(profile, index, &base, problems),
            Step::ConfigureNetwork(s) => s.check(profile, index, &base, problems),
            Step::WaitForNetwork(s) => s.check(profile, index, &base, problems),
            Step::FtpUpload(s) => s.check(profile, index, &base, problems),
            Step::TftpManage(s) => s.check(profile, index, &base, problems),
            Step::AddpConfigure(s) => s.check(profile, index, &base, problems),
        }
    }

    /// Calls `visit` with every template of this step, `steps[index]`, in
    /// file order (the step's arm of `vars::visit_templates`).
    pub fn visit_templates(&mut self, index: usize, visit: TemplateVisitor<'_>) {
        let base = format!("steps[{index}].{}", self.kind());
        match self {
            Step::LoadImage(s) => s.visit(&base, visit),
            Step::ConfigureNetwork(s) => s.visit(&base, visit),
            Step::WaitForNetwork(s) => s.visit(&base, visit),
            Step::FtpUpload(s) => s.visit(&base, visit),
            Step::TftpManage(s) => s.visit(&base, visit),
            Step::AddpConfigure(s) => s.visit(&base, visit),
        }
    }

    /// The files the step sends, as the (resolved) profile names them, in
    /// order: `load_image`'s file, `ftp_upload`'s local files.
    pub fn files(&self) -> Vec<String> {
        match self {
            Step::LoadImage(s) => s.files(),
            Step::ConfigureNetwork(s) => s.files(),
            Step::WaitForNetwork(s) => s.files(),
            Step::FtpUpload(s) => s.files(),
            Step::TftpManage(s) => s.files(),
            Step::AddpConfigure(s) => s.files(),
        }
    }

    /// Replaces the secrets that would serialize as written by `***`, for
    /// a digest or a display. Passwords are [`super::Secret`]s, which
    /// serialize as `***` already; only `configure_network`'s answers marked
    /// `secret` are plain templates.
    pub fn mask_secrets(&mut self) {
        match self {
            Step::ConfigureNetwork(s) => s.mask_secrets(),
            Step::LoadImage(_)
            | Step::WaitForNetwork(_)
            | Step::FtpUpload(_)
            | Step::TftpManage(_)
            | Step::AddpConfigure(_) => {}
        }
    }
}

/// The order help of the network steps.
const NETWORK_ORDER_HELP: &str = "order steps as load_image, configure_network, then wait_for_network / ftp_upload";

/// A network step needs an address: its own `host` or `network.ip`.
fn check_target(profile: &Profile, problems: &mut Problems<'_>, base: &str, has_host: bool) {
    if !has_host && profile.network.ip.is_none() {
        let problem = problems.error(base, "no address to reach: neither `host` nor `network.ip` is set");
        if profile.network.dhcp {
            problem.help(
                "with dhcp the address is not known in advance: set `host: ${ip}` and give each device its address",
            );
        } else {
            problem.help("set `network.ip: ${ip}` or this step's `host`");
        }
    }
}

fn check_regex(problems: &mut Problems<'_>, path: &str, pattern: Option<&str>) {
    if let Some(pattern) = pattern
        && let Err(error) = regex::bytes::Regex::new(pattern)
    {
        let first_line = error.to_string();
        problems.error(path, format!("invalid regex `{pattern}`: {}", first_line.lines().last().unwrap_or("")));
    }
}

/// Visits `template` as `{base}.{field}` when it is given.
fn visit_optional(
    visit: TemplateVisitor<'_>,
    base: &str,
    field: &str,
    role: TemplateRole,
    template: &mut Option<Template>,
) {
    if let Some(t) = template {
        visit(&format!("{base}.{field}"), role, t);
    }
}

fn default_true() -> bool {
    true
}

pub(super) fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_keys_the_schema_offers() {
        let schema = crate::profile::schema();
        let keys: Vec<&str> = schema["$defs"]["Step"]["oneOf"]
            .as_array()
            .expect("Step is one of its variants")
            .iter()
            .map(|variant| variant["required"][0].as_str().expect("a variant names its key"))
            .collect();
        assert_eq!(keys, Step::KINDS);
    }
}
