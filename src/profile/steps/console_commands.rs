//! The `console_commands` step kind, as the profile writes it: commands
//! typed one at a time at a boot loader's prompt (U-Boot's `=> `), each
//! waited for, failing on an error line, with values read from what they
//! print. How it runs is the pipeline's (`pipeline/steps`), over
//! `serial::console`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CheckScope, LineEnding, StepKind, TemplateVisitor, check_regex, check_template_regex, is_false};
use crate::profile::problem::Problems;
use crate::profile::template::TemplateRole;
use crate::profile::template::{HumanDuration, Template};

/// `console_commands`: reach the prompt, then send each command and wait for
/// the prompt to come back.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleCommands {
    /// The prompt as the console prints it at the start of a line (U-Boot's
    /// default `=> `; other boards print `U-Boot> ` or a product name).
    #[serde(default = "default_prompt")]
    pub prompt: String,
    /// Regex of the boot loader's countdown (e.g. `Hit any key to stop
    /// autoboot`): when it shows, `stop_key` is sent at once. Without it the
    /// step still pokes the console with a line ending until the prompt shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_autoboot: Option<String>,
    /// What is sent to stop the countdown.
    #[serde(default = "default_stop_key")]
    pub stop_key: String,
    /// How long to wait for the first prompt (the unit may still be booting).
    #[serde(default = "default_prompt_timeout")]
    pub prompt_timeout: HumanDuration,
    /// How long each command may take until the prompt is back, unless the
    /// command sets its own.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: HumanDuration,
    /// Regexes of a failed command's output lines. The default holds the
    /// shapes U-Boot prints (`Unknown command`, `## Error`, `Failed (1)`,
    /// `TFTP error`, `Retry count exceeded`, a line starting `ERROR`, `Wrong
    /// Image Format`, `Bad Magic Number`); `[]` turns the check off.
    #[serde(default = "default_errors")]
    pub errors: Vec<String>,
    /// After each command, ask the shell for its exit status (`echo $?`) and
    /// fail on anything but `0`. Needs a shell that has `$?` (U-Boot's hush).
    #[serde(default, skip_serializing_if = "is_false")]
    pub check_status: bool,
    #[serde(default)]
    pub line_ending: LineEnding,
    /// The commands, in order.
    pub commands: Vec<ConsoleCommand>,
}

/// One command typed at the prompt.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleCommand {
    /// The command line, e.g. `setenv ipaddr ${ip}` or `crc32 ${loadaddr} ${filesize}`.
    pub send: Template,
    /// A regex its output must match, e.g. `==> ${crc}` (a value in it is
    /// matched literally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Template>,
    /// Values read from its output: a name and a regex with one group, e.g.
    /// `ethaddr: 'ethaddr=(\S+)'`. Each must match; the report shows them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capture: BTreeMap<String, String>,
    /// How long until the prompt is back (default: the step's `command_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

fn default_prompt() -> String {
    crate::uboot::PROMPT.to_string()
}
fn default_stop_key() -> String {
    " ".to_string()
}
fn default_prompt_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_command_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// U-Boot's error shapes ([`crate::uboot::ERROR_SHAPES`]).
fn default_errors() -> Vec<String> {
    crate::uboot::ERROR_SHAPES.map(String::from).to_vec()
}

impl StepKind for ConsoleCommands {
    /// Anywhere: a boot loader is driven before, between and after loads.
    fn phase(&self) -> Option<u8> {
        None
    }

    fn order_help(&self) -> &'static str {
        "console commands may stand anywhere in the order"
    }

    fn check(&self, _scope: &CheckScope<'_>, base: &str, problems: &mut Problems<'_>) {
        if self.prompt.is_empty() {
            problems.error(&format!("{base}.prompt"), "the prompt is empty").help("U-Boot's is `=> `");
        }
        if self.commands.is_empty() {
            problems.error(&format!("{base}.commands"), "there are no commands");
        }
        check_regex(problems, &format!("{base}.stop_autoboot"), self.stop_autoboot.as_deref());
        for (j, error) in self.errors.iter().enumerate() {
            check_regex(problems, &format!("{base}.errors[{j}]"), Some(error));
        }
        for (j, command) in self.commands.iter().enumerate() {
            let at = format!("{base}.commands[{j}]");
            if command.send.as_str().trim().is_empty() {
                problems.error(&format!("{at}.send"), "the command is empty");
            }
            check_template_regex(problems, &format!("{at}.expect"), command.expect.as_ref());
            for (name, pattern) in &command.capture {
                let path = format!("{at}.capture.{name}");
                check_regex(problems, &path, Some(pattern));
                if let Ok(regex) = regex::bytes::Regex::new(pattern)
                    && regex.captures_len() != 2
                {
                    problems
                        .error(&path, format!("`{pattern}` must have exactly one group, around the value"))
                        .help(r"e.g. 'ethaddr=(\S+)'");
                }
            }
        }
    }

    fn visit(&mut self, base: &str, visit: TemplateVisitor<'_>) {
        for (j, command) in self.commands.iter_mut().enumerate() {
            visit(&format!("{base}.commands[{j}].send"), TemplateRole::Text, &mut command.send);
            if let Some(expect) = &mut command.expect {
                visit(&format!("{base}.commands[{j}].expect"), TemplateRole::Regex, expect);
            }
        }
    }
}
