//! The `addp_configure` step kind, as the profile writes it: the unit's MAC
//! and ADDP password, the wait and retries, and its checks and templates.
//! How it runs is the pipeline's (`pipeline/steps`), over `addp`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CheckScope, StepKind, TemplateVisitor};
use crate::profile::problem::Problems;
use crate::profile::template::TemplateRole;
use crate::profile::template::{HumanDuration, Secret, Template};
use crate::profile::validate::literal;

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
    #[serde(default = "super::default_true")]
    pub reboot: bool,
}

fn default_addp_wait() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_addp_retries() -> u32 {
    2
}

impl StepKind for AddpConfigure {
    /// In place of `configure_network`: before the network steps.
    fn phase(&self) -> Option<u8> {
        Some(1)
    }

    fn order_help(&self) -> &'static str {
        "addp_configure sets the address the network steps use: put it before them"
    }

    fn check(&self, _scope: &CheckScope<'_>, base: &str, problems: &mut Problems<'_>) {
        // A MAC written literally must be one; a variable is checked per device.
        if let Some(mac) = literal(self.mac.as_str())
            && let Err(message) = mac.parse::<crate::net::arp::Mac>()
        {
            problems
                .error(&format!("{base}.mac"), message)
                .help("usually `mac: ${mac}`, with each unit's MAC in the inventory");
        }
        if self.mac.as_str().trim().is_empty() {
            problems
                .error(&format!("{base}.mac"), "the unit's MAC is required: ADDP addresses a unit by it")
                .help("usually `mac: ${mac}`, with each unit's MAC in the inventory");
        }
        if self.wait.is_zero() {
            problems.error(&format!("{base}.wait"), "wait must be above zero");
        }
        if self.retries > 100 {
            problems.error(&format!("{base}.retries"), format!("{} retries is more than 100", self.retries));
        }
    }

    fn visit(&mut self, base: &str, visit: TemplateVisitor<'_>) {
        visit(&format!("{base}.mac"), TemplateRole::Text, &mut self.mac);
        visit(&format!("{base}.password"), TemplateRole::Secret, &mut self.password.0);
    }

    /// It sends no files.
    fn files(&self) -> Vec<String> {
        Vec::new()
    }
}
