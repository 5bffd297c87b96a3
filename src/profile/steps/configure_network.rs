//! The `configure_network` step kind, as the profile writes it: the console
//! dialog as data (its entries, line ending and the address-conflict check
//! before it), its checks, its templates and the masking of its secret
//! answers. How it runs is the pipeline's (`pipeline/steps`), over
//! `serial::dialog`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CheckScope, StepKind, TemplateVisitor, check_regex, check_template_regex};
use crate::profile::problem::Problems;
use crate::profile::template::TemplateRole;
use crate::profile::template::{HumanDuration, Template};

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
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub echo_check: bool,
    #[serde(default)]
    pub line_ending: LineEnding,
    /// Answer every prompt the dialog does not list that offers a default
    /// (see `default_prompt`) with a bare line ending, which keeps the
    /// device's value. Listed prompts take priority; a prompt without a
    /// default is never answered: the step fails quoting it.
    #[serde(default, skip_serializing_if = "super::is_false")]
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
    #[serde(default = "super::default_true")]
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
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub secret: bool,
    /// The prompt may not come (firmware differences); skip it if the next
    /// prompt comes first.
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub optional: bool,
    /// Send the answer without the line ending (single-key prompts).
    #[serde(default, skip_serializing_if = "super::is_false")]
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

impl StepKind for ConfigureNetwork {
    /// After the serial load, before the network steps that use its address.
    fn phase(&self) -> Option<u8> {
        Some(1)
    }

    fn order_help(&self) -> &'static str {
        "the console sets the address the network steps use: put configure_network before them"
    }

    fn check(&self, _scope: &CheckScope<'_>, base: &str, problems: &mut Problems<'_>) {
        if self.dialog.is_empty() {
            problems.error(&format!("{base}.dialog"), "the dialog has no prompts");
        }
        if let Some(entry) = &self.interrupt {
            check_regex(problems, &format!("{base}.interrupt.expect"), Some(&entry.expect));
        }
        for (j, entry) in self.dialog.iter().enumerate() {
            check_regex(problems, &format!("{base}.dialog[{j}].expect"), Some(&entry.expect));
            if !entry.candidates.is_empty() && !entry.send.as_str().is_empty() {
                problems
                    .error(&format!("{base}.dialog[{j}].candidates"), "both `send` and `candidates` are set")
                    .help("list every answer under `candidates`, in the order to try them");
            }
        }
        if let Some(entry) = &self.after_done {
            check_regex(problems, &format!("{base}.after_done.expect"), Some(&entry.expect));
            if !entry.candidates.is_empty() {
                problems.error(&format!("{base}.after_done.candidates"), "`after_done` takes one answer: `send`");
            }
        }
        check_regex(problems, &format!("{base}.default_prompt"), Some(&self.default_prompt));
        if self.keep_defaults && self.max_kept_defaults == 0 {
            problems
                .error(&format!("{base}.max_kept_defaults"), "keep_defaults is on but no default may be kept")
                .help("set max_kept_defaults to at least the number of questions the device asks (32 by default)");
        }
        self.address_check.check(problems, &format!("{base}.address_check"));
        check_regex(problems, &format!("{base}.done"), Some(&self.done));
        for (j, reject) in self.reject.iter().enumerate() {
            check_regex(problems, &format!("{base}.reject[{j}]"), Some(reject));
        }
        check_template_regex(problems, &format!("{base}.skip_if"), self.skip_if.as_ref());
        if self.char_delay.0 > std::time::Duration::from_secs(1) {
            problems
                .warning(&format!("{base}.char_delay"), format!("char_delay {} is unusually long", self.char_delay));
        }
    }

    fn visit(&mut self, base: &str, visit: TemplateVisitor<'_>) {
        super::visit_optional(visit, base, "skip_if", TemplateRole::Regex, &mut self.skip_if);
        if let Some(entry) = &mut self.interrupt {
            visit(&format!("{base}.interrupt.send"), entry.role(), &mut entry.send);
        }
        for (j, entry) in self.dialog.iter_mut().enumerate() {
            let role = entry.role();
            visit(&format!("{base}.dialog[{j}].send"), role, &mut entry.send);
            for (k, candidate) in entry.candidates.iter_mut().enumerate() {
                visit(&format!("{base}.dialog[{j}].candidates[{k}]"), role, candidate);
            }
        }
        if let Some(entry) = &mut self.after_done {
            visit(&format!("{base}.after_done.send"), entry.role(), &mut entry.send);
        }
    }

    /// It sends no files.
    fn files(&self) -> Vec<String> {
        Vec::new()
    }

    /// Replaces the answers of entries marked `secret` by `***`: they are
    /// plain [`Template`]s, which would otherwise serialize as written.
    fn mask_secrets(&mut self) {
        for entry in self.interrupt.iter_mut().chain(self.dialog.iter_mut()).chain(self.after_done.iter_mut()) {
            if entry.secret {
                entry.send = Template("***".into());
                entry.candidates.iter_mut().for_each(|c| *c = Template("***".into()));
            }
        }
    }
}

impl DialogEntry {
    fn role(&self) -> TemplateRole {
        if self.secret { TemplateRole::Secret } else { TemplateRole::Text }
    }
}

impl AddressCheck {
    fn check(&self, problems: &mut Problems<'_>, base: &str) {
        if !(1..=20).contains(&self.probes) {
            problems.error(&format!("{base}.probes"), format!("{} probes: send 1 to 20", self.probes));
        }
        if self.interval_max.0 < self.interval_min.0 {
            problems
                .error(&format!("{base}.interval_max"), "interval_max is shorter than interval_min")
                .help("RFC 5227 waits 1 s to 2 s between probes: interval_min: 1s, interval_max: 2s");
        }
        if self.interval_max.0 > std::time::Duration::from_secs(60) || self.wait.0 > std::time::Duration::from_secs(60)
        {
            problems.error(&format!("{base}.wait"), "the check would wait over a minute between probes or after them");
        }
        if self.interval_min.0 < crate::net::arp::PROBE_MIN && self.enabled {
            problems
                .warning(&format!("{base}.interval_min"), "probes closer than RFC 5227's 1 s may miss a slow host")
                .help("shorter intervals are meant for tests on virtual links");
        }
    }
}
