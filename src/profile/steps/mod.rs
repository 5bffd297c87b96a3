//! The step kinds of a profile, one file each: its options and their serde
//! defaults, its checks, its templates, the files it sends, its phase (where
//! it may stand in the order) and the help for a step out of order.
//!
//! Each kind's options implement [`StepKind`]; [`Step`], the list item, is
//! declared by one line per kind in `step_kinds!` below and forwards to it.
//! So a new kind is its file here, its `mod` line and its line in
//! `step_kinds!`. How a step runs is not here: that is `pipeline/steps`.

pub mod addp_configure;
pub mod configure_network;
pub mod console_commands;
pub mod ftp_upload;
pub mod load_image;
pub mod tftp_manage;
pub mod wait_for_network;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use addp_configure::AddpConfigure;
pub use configure_network::{AddressCheck, ConfigureNetwork, DialogEntry, LineEnding};
pub use console_commands::{ConsoleCommand, ConsoleCommands};
pub use ftp_upload::{Credential, FtpFile, FtpUpload};
pub use load_image::LoadImage;
pub use tftp_manage::TftpManage;
pub use wait_for_network::{PortWanted, WaitForNetwork};

use super::problem::Problems;
use super::template::Template;
use super::template::TemplateRole;

/// What [`Step::visit_templates`] calls with each template: its field path,
/// its role and the template itself.
pub type TemplateVisitor<'v> = &'v mut dyn FnMut(&str, TemplateRole, &mut Template);

/// What every step kind's options answer for the profile's checks and the
/// runner: where it may stand, its semantic checks, its templates, the files
/// it sends and the secrets it masks. Each kind's file implements it.
pub trait StepKind {
    /// Its place in the step order (serial work before network work);
    /// `None`: anywhere.
    fn phase(&self) -> Option<u8>;
    /// The help for a step of this kind out of order.
    fn order_help(&self) -> &'static str;
    /// The semantic checks on the literal values; `base` is the field path
    /// of the step (`steps[2].ftp_upload`).
    fn check(&self, scope: &CheckScope<'_>, base: &str, problems: &mut Problems<'_>);
    /// Every template of the step, for `${...}` resolution.
    fn visit(&mut self, base: &str, visit: TemplateVisitor<'_>);
    /// The files it sends (hashed before the run, journaled, resumed).
    fn files(&self) -> Vec<String> {
        Vec::new()
    }
    /// Replaces the secrets it holds with `***` (for the journal's inputs).
    fn mask_secrets(&mut self) {}
}

/// Declares [`Step`] from one line per kind: its variant, options type and
/// key. The key must be the variant's snake_case name (serde's); a unit test
/// checks it. Everything else forwards through [`StepKind`].
macro_rules! step_kinds {
    ($($(#[$doc:meta])* $variant:ident($options:ty) = $key:literal,)+) => {
        /// One step of the pipeline. Each list item has exactly one of these keys.
        #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Step {
            $($(#[$doc])* $variant($options),)+
        }

        impl Step {
            /// The keys of every step kind, in the order of [`Step`]'s variants.
            pub const KINDS: &'static [&'static str] = &[$($key),+];

            /// The key that names this step kind in a profile.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Step::$variant(_) => $key,)+
                }
            }

            fn options(&self) -> &dyn StepKind {
                match self {
                    $(Step::$variant(options) => options,)+
                }
            }

            fn options_mut(&mut self) -> &mut dyn StepKind {
                match self {
                    $(Step::$variant(options) => options,)+
                }
            }
        }
    };
}

step_kinds! {
    /// Load an image over the serial port (XMODEM / XMODEM-1K / YMODEM).
    LoadImage(LoadImage) = "load_image",
    /// Drive the console dialog that sets DHCP, IP, mask and gateway.
    ConfigureNetwork(ConfigureNetwork) = "configure_network",
    /// Poll ICMP echo and TCP ports until the device's services are up.
    WaitForNetwork(WaitForNetwork) = "wait_for_network",
    /// Upload files over FTP, verified.
    FtpUpload(FtpUpload) = "ftp_upload",
    /// Send EXS API TFTP Manage (0x003A) messages to a CSP matrix controller.
    TftpManage(TftpManage) = "tftp_manage",
    /// Give the unit the network block's settings over ADDP, by its MAC, then
    /// restart it: in place of `configure_network` when a unit has no serial cable.
    AddpConfigure(AddpConfigure) = "addp_configure",
    /// Type commands at a boot loader's prompt (U-Boot's `=> `), each waited
    /// for and checked, reading values from what they print.
    ConsoleCommands(ConsoleCommands) = "console_commands",
}

impl Step {
    /// Order in which step kinds may follow each other: serial work first
    /// (0), then setting the address (1), then the network (2). `None`: the
    /// step may go anywhere.
    pub fn phase(&self) -> Option<u8> {
        self.options().phase()
    }

    /// The help for this step when it comes after a step of a later phase.
    pub fn order_help(&self) -> &'static str {
        self.options().order_help()
    }

    /// The checks of this step, `profile.steps[index]`, on its own and
    /// against the profile (a target address, the steps before it). The
    /// order of steps is checked by `validate`, not here.
    pub fn check(&self, scope: &CheckScope<'_>, index: usize, problems: &mut Problems<'_>) {
        self.options().check(scope, &format!("steps[{index}].{}", self.kind()), problems);
    }

    /// Calls `visit` with every template of this step, `steps[index]`, in
    /// file order (the step's arm of `vars::visit_templates`).
    pub fn visit_templates(&mut self, index: usize, visit: TemplateVisitor<'_>) {
        let base = format!("steps[{index}].{}", self.kind());
        self.options_mut().visit(&base, visit);
    }

    /// The files the step sends, as the (resolved) profile names them, in
    /// order: `load_image`'s file, `ftp_upload`'s local files.
    pub fn files(&self) -> Vec<String> {
        self.options().files()
    }

    /// Replaces the secrets that would serialize as written by `***`, for
    /// a digest or a display. Passwords are [`super::Secret`]s, which
    /// serialize as `***` already; only `configure_network`'s answers marked
    /// `secret` are plain templates.
    pub fn mask_secrets(&mut self) {
        self.options_mut().mask_secrets();
    }
}

const NETWORK_ORDER_HELP: &str = "order steps as load_image, configure_network, then wait_for_network / ftp_upload";

/// A network step needs an address: its own `host` or `network.ip`.
/// What a step's checks know of the profile around it (given by
/// `validate`, so the step kinds need not know the profile's type).
#[derive(Debug, Clone, Copy)]
pub struct CheckScope<'a> {
    /// The profile sets `network.ip`.
    pub network_ip: bool,
    /// The profile sets `network.dhcp: true`.
    pub dhcp: bool,
    /// The steps before this one.
    pub earlier: &'a [Step],
}

fn check_target(scope: &CheckScope<'_>, problems: &mut Problems<'_>, base: &str, has_host: bool) {
    if !has_host && !scope.network_ip {
        let problem = problems.error(base, "no address to reach: neither `host` nor `network.ip` is set");
        if scope.dhcp {
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
/// Checks a regex template (`skip_if`, an `expect`) before its values are
/// known: each `${...}` becomes an escaped literal once expanded, so a
/// placeholder stands in for it.
fn check_template_regex(problems: &mut Problems<'_>, path: &str, template: Option<&Template>) {
    let sample = template.and_then(|t| super::template::parse(t.as_str()).ok()).map(|pieces| {
        pieces
            .iter()
            .map(|p| match p {
                super::template::Piece::Literal(text) => text.clone(),
                super::template::Piece::Reference(_) => "x".into(),
            })
            .collect::<String>()
    });
    check_regex(problems, path, sample.as_deref());
}

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
