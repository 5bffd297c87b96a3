//! The `load_image` step kind, as the profile writes it: its options and
//! their defaults, its checks, its templates and the file it sends. How it
//! runs is the pipeline's (`pipeline/steps`), over `serial::transfer`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CheckScope, StepKind, TemplateVisitor, check_regex};
use crate::profile::problem::Problems;
use crate::profile::template::TemplateRole;
use crate::profile::template::{HumanDuration, Template};
use crate::serial::xmodem::TransferProtocol;

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

impl StepKind for LoadImage {
    /// Serial work comes first: the image is loaded at power-up.
    fn phase(&self) -> Option<u8> {
        Some(0)
    }

    fn order_help(&self) -> &'static str {
        "an image is loaded over serial at power-up, before the console set-up and the network steps"
    }

    fn check(&self, _scope: &CheckScope<'_>, base: &str, problems: &mut Problems<'_>) {
        check_regex(problems, &format!("{base}.wait_for"), self.wait_for.as_deref());
        check_regex(problems, &format!("{base}.end_text"), self.end_text.as_deref());
        if self.block_retries == 0 {
            problems.error(&format!("{base}.block_retries"), "block_retries must be at least 1");
        }
    }

    fn visit(&mut self, base: &str, visit: TemplateVisitor<'_>) {
        visit(&format!("{base}.file"), TemplateRole::Path, &mut self.file);
        super::visit_optional(visit, base, "start_command", TemplateRole::Text, &mut self.start_command);
    }

    /// The image it sends.
    fn files(&self) -> Vec<String> {
        vec![self.file.to_string()]
    }
}
