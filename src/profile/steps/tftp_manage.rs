//! The `tftp_manage` step kind, as the profile writes it: the EXS API
//! options of a TFTP Manage exchange, its checks (the controller's rules are
//! kept with the job, [`crate::exs::job::check_rules`]; this builds their
//! input) and its templates. How it runs is the pipeline's
//! (`pipeline/steps`), over `exs::job`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CheckScope, NETWORK_ORDER_HELP, StepKind, TemplateVisitor, check_target};
use crate::exs::frame::{ExsChecksum, ExsMarkerRule};
use crate::exs::tftp_manage::TftpQuery;
use crate::profile::problem::Problems;
use crate::profile::template::TemplateRole;
use crate::profile::template::{HumanDuration, Template};
use crate::profile::validate::literal;

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
    #[serde(default, skip_serializing_if = "super::is_false")]
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

impl StepKind for TftpManage {
    /// None: it talks to another device (the controller) and may go anywhere.
    fn phase(&self) -> Option<u8> {
        None
    }

    /// Never shown: a step without a phase is never out of order.
    fn order_help(&self) -> &'static str {
        NETWORK_ORDER_HELP
    }

    fn check(&self, scope: &CheckScope<'_>, base: &str, problems: &mut Problems<'_>) {
        check_target(scope, problems, base, self.host.is_some());
        // The controller's rules live with the TFTP Manage job; here
        // they see the values written literally (a `${...}` value is
        // checked once the device's values fill it in).
        for broken in crate::exs::job::check_rules(&self.rule_fields(&|t| literal(t.as_str()))) {
            let problem = problems.error(&format!("{base}.{}", broken.field), broken.message);
            if let Some(help) = broken.help {
                problem.help(help);
            }
        }
    }

    fn visit(&mut self, base: &str, visit: TemplateVisitor<'_>) {
        use super::visit_optional as opt;
        opt(visit, base, "host", TemplateRole::Text, &mut self.host);
        opt(visit, base, "local_config", TemplateRole::Text, &mut self.local_config);
        opt(visit, base, "local_server", TemplateRole::Text, &mut self.local_server);
        opt(visit, base, "adjacent_config", TemplateRole::Text, &mut self.adjacent_config);
        opt(visit, base, "adjacent_server", TemplateRole::Text, &mut self.adjacent_server);
        opt(visit, base, "timestamp", TemplateRole::Text, &mut self.timestamp);
        opt(visit, base, "config_file", TemplateRole::Path, &mut self.config_file);
        // A folder, not a file: its existence is checked by validate.
        opt(visit, base, "serve", TemplateRole::Text, &mut self.serve);
    }

    /// It sends no files of its own (a `serve` folder is fetched by the controller).
    fn files(&self) -> Vec<String> {
        Vec::new()
    }
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
