//! The `wait_for_network` step kind, as the profile writes it: what to poll
//! for (ICMP, ports and their states) and how often, and its checks. How it
//! runs is the pipeline's (`pipeline/steps`), over `net::wait`.

use std::collections::BTreeSet;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CheckScope, NETWORK_ORDER_HELP, StepKind, TemplateVisitor, check_target};
use crate::net::{PortState, ProbeMethod};
use crate::profile::problem::Problems;
use crate::profile::template::TemplateRole;
use crate::profile::template::{HumanDuration, Template};

/// `wait_for_network`: poll until the device answers as wanted.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForNetwork {
    /// Address to poll; defaults to `network.ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Template>,
    /// Wait for an ICMP echo reply.
    #[serde(default = "super::default_true")]
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

impl StepKind for WaitForNetwork {
    /// A network step: after the address is set.
    fn phase(&self) -> Option<u8> {
        Some(2)
    }

    fn order_help(&self) -> &'static str {
        NETWORK_ORDER_HELP
    }

    fn check(&self, scope: &CheckScope<'_>, base: &str, problems: &mut Problems<'_>) {
        check_target(scope, problems, base, self.host.is_some());
        if !self.icmp && self.ports.is_empty() {
            problems
                .error(base, "nothing to wait for: icmp is off and no ports are listed")
                .help("list ports such as `ports: [{port: 21}]` or set `icmp: true`");
        }
        let mut seen = BTreeSet::new();
        for (j, port) in self.ports.iter().enumerate() {
            if port.port == 0 {
                problems.error(&format!("{base}.ports[{j}].port"), "port 0 cannot be probed");
            }
            if !seen.insert(port.port) {
                problems.error(&format!("{base}.ports[{j}].port"), format!("port {} is listed twice", port.port));
            }
        }
        if self.interval > self.max_interval {
            problems.error(
                &format!("{base}.interval"),
                format!("interval {} is longer than max_interval {}", self.interval, self.max_interval),
            );
        }
        if self.interval.is_zero() {
            problems.error(&format!("{base}.interval"), "interval must be above zero");
        }
        if self.timeout.is_zero() {
            problems.error(&format!("{base}.timeout"), "timeout must be above zero");
        }
    }

    fn visit(&mut self, base: &str, visit: TemplateVisitor<'_>) {
        super::visit_optional(visit, base, "host", TemplateRole::Text, &mut self.host);
    }

    /// It sends no files.
    fn files(&self) -> Vec<String> {
        Vec::new()
    }
}
