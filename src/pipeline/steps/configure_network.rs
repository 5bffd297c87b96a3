//! `configure_network`: first, for a static address, the RFC 5227 check
//! that nobody else holds it (`net::arp`); then the console dialog as data
//! (`serial::dialog` is the state machine): interrupt the boot or skip when
//! the settings are in place, answer each listed prompt once, keep the
//! defaults of the others, wait for `done`.

use std::net::Ipv4Addr;
use std::time::Duration;

use regex::bytes::Regex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{StepContext, StepDone, StepError, compile};
use crate::net::arp;
use crate::net::diagnose::address_in_use;
use crate::pipeline::journal::StepOutcome;
use crate::profile::{ConfigureNetwork, DialogEntry, Profile};
use crate::progress::{Progress, ProgressEvent, TaskKind};
use crate::serial::console::{Console, ConsoleError, SendOptions};
use crate::serial::dialog::{self, Action, Dialog, DialogFailure, ReplyKind};

/// The step in a device's run: the address check before the unit is
/// touched, then the dialog on the unit's console.
pub async fn run(step: &ConfigureNetwork, cx: &mut StepContext<'_>) -> Result<StepDone, StepError> {
    check_address(cx.profile, cx.unit_mac(), step, cx.progress).await?;
    let progress = cx.progress;
    let console = cx.console().await?;
    let outcome = converse(console, step, progress).await?;
    if outcome.skipped {
        return Ok(StepDone {
            outcome: StepOutcome::Skipped,
            detail: "settings already in place".into(),
            retries: 0,
            sent: Vec::new(),
        });
    }
    Ok(StepDone::passed(outcome.detail()))
}

/// The RFC 5227 check before the step gives a static address: a host that
/// answers for it fails the step with `address-in-use`. The unit itself
/// answering (its `mac` value) is no conflict. Loopback addresses (the
/// simulators') have no link to probe and are not checked.
async fn check_address(
    profile: &Profile,
    unit: Option<arp::Mac>,
    step: &ConfigureNetwork,
    progress: &dyn Progress,
) -> Result<(), StepError> {
    if !step.address_check.enabled || profile.network.dhcp {
        return Ok(());
    }
    let Some(ip) = profile.network.ip.as_ref() else { return Ok(()) };
    let address: Ipv4Addr = ip
        .to_string()
        .trim()
        .parse()
        .map_err(|_| StepError::NotAnAddress { text: ip.to_string(), purpose: "to check" })?;
    if address.is_loopback() {
        // A simulated unit on 127.0.0.0/8: no link, no ARP, nobody to ask.
        return Ok(());
    }
    let checked = match arp::check(address, &step.address_check.options(), progress).await {
        Ok(checked) => checked,
        // ARP reaches only this station's own links: an address on another
        // network (a unit set up for its final subnet) cannot be checked
        // from here, and no host on our links can hold it.
        Err(error @ (arp::ArpError::NoRoute { .. } | arp::ArpError::NotOnLink { .. })) => {
            let text = format!("address check skipped: {error}");
            progress.report(ProgressEvent::Note { kind: TaskKind::AddressCheck, text });
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let Some(holder) = checked.in_use_by else { return Ok(()) };
    if unit == Some(holder) {
        return Ok(());
    }
    let mac = holder.to_string();
    Err(StepError::AddressInUse { address, finding: address_in_use(address, &mac), mac, interface: checked.interface })
}

/// What the dialog did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialogOutcome {
    /// `skip_if` matched: nothing was sent.
    pub skipped: bool,
    /// The prompts answered, in order (regexes as written).
    pub answered: Vec<String>,
    /// Optional prompts that did not come.
    pub missed_optional: Vec<String>,
    /// Prompts the profile does not list whose default was kept (the
    /// device's own text), in order.
    pub kept_defaults: Vec<String>,
    /// The device asked the `after_done` prompt and it was answered.
    pub accepted_after_done: bool,
}

impl DialogOutcome {
    /// The step's report detail.
    pub fn detail(&self) -> String {
        let mut detail = format!("answered {} prompt(s)", self.answered.len());
        if !self.kept_defaults.is_empty() {
            detail.push_str(&format!("; kept defaults: {}", self.kept_defaults.join(", ")));
        }
        if self.accepted_after_done {
            detail.push_str("; accepted the settings after saving");
        }
        detail
    }
}

/// How long the console must be silent before a question left waiting is
/// judged (an unknown prompt fails; after `done`, the device is not asking
/// to accept again). At 9600 baud a line takes tens of milliseconds.
const QUIET: Duration = Duration::from_millis(1500);

fn compile_prompt(entry: &DialogEntry) -> Result<dialog::Prompt, StepError> {
    let mut answers: Vec<dialog::Answer> = entry
        .candidates
        .iter()
        .map(|c| dialog::Answer { text: c.as_str().to_string(), secret: entry.secret })
        .collect();
    if answers.is_empty() {
        answers.push(dialog::Answer { text: entry.send.as_str().to_string(), secret: entry.secret });
    }
    Ok(dialog::Prompt {
        expect: compile(&entry.expect)?,
        answers,
        optional: entry.optional,
        no_line_ending: entry.no_line_ending,
    })
}

/// The step's dialog as the state machine takes it.
pub fn script(step: &ConfigureNetwork) -> Result<dialog::Script, StepError> {
    Ok(dialog::Script {
        prompts: step.dialog.iter().map(compile_prompt).collect::<Result<_, _>>()?,
        done: compile(&step.done)?,
        rejects: step.reject.iter().map(|p| compile(p)).collect::<Result<_, _>>()?,
        keep_defaults: if step.keep_defaults {
            Some((compile(&step.default_prompt)?, step.max_kept_defaults as usize))
        } else {
            None
        },
        after_done: step.after_done.as_ref().map(compile_prompt).transpose()?,
        line_ending: step.line_ending.as_str(),
    })
}

/// The dialog from the profile, on any console (`serial dialog` runs it
/// alone): interrupt or skip, answer the listed prompts, wait for `done`.
pub async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    step: &ConfigureNetwork,
    progress: &dyn Progress,
) -> Result<DialogOutcome, StepError> {
    let kind = TaskKind::ConsoleDialog;
    let script = script(step)?;
    let mut outcome = DialogOutcome::default();
    let send_options = |secret: bool| SendOptions {
        secret,
        char_delay: step.char_delay.0,
        // An echoed password may be masked: no echo check for secrets.
        echo_timeout: (step.echo_check && !secret).then_some(step.timeout.0),
    };

    if step.interrupt.is_some() || step.skip_if.is_some() {
        let interrupt = step.interrupt.as_ref().map(|e| compile(&e.expect)).transpose()?;
        let skip = step.skip_if.as_ref().map(|t| compile(t.as_str())).transpose()?;
        let patterns: Vec<&Regex> = interrupt.iter().chain(skip.iter()).collect();
        let what = patterns.iter().map(|p| format!("`{}`", p.as_str())).collect::<Vec<_>>().join(" or ");
        let timeout = step.interrupt.as_ref().and_then(|e| e.timeout).unwrap_or(step.timeout).0;
        let found = console.expect(&patterns, timeout, &what).await?;
        let skipped = match (&interrupt, &skip) {
            (Some(_), Some(_)) => found.pattern == 1,
            (None, Some(_)) => true,
            _ => false,
        };
        if skipped {
            console.note("skip_if matched: the device already has these settings");
            progress.report(ProgressEvent::Note { kind, text: "settings already in place; dialog skipped".into() });
            outcome.skipped = true;
            return Ok(outcome);
        }
        if let Some(entry) = &step.interrupt {
            let ending = if entry.no_line_ending { "" } else { step.line_ending.as_str() };
            console.send(entry.send.as_str(), ending, send_options(entry.secret)).await?;
        }
    }

    // A prompt's own `timeout` applies while it is the next one the profile
    // needs; otherwise the step's.
    let wait_for = |dialog: &Dialog| {
        step.dialog.get(dialog.summary().answered.len()).and_then(|entry| entry.timeout).unwrap_or(step.timeout).0
    };
    let mut dialog = Dialog::new(script);
    dialog.push(&console.take_pending());
    let mut deadline = Instant::now() + wait_for(&dialog);
    let mut heard = Instant::now();
    let mut judged_quiet = false;
    loop {
        let action = dialog.next_action();
        match action {
            Action::Send(reply) => {
                if reply.kind == ReplyKind::KeptDefault {
                    console.note(&format!("keeping the default of `{}`", reply.prompt));
                }
                console.send(&reply.text, reply.line_ending, send_options(reply.secret)).await?;
                // What an echo check read past the echo belongs to the dialog.
                dialog.push(&console.take_pending());
                let text = match reply.kind {
                    ReplyKind::KeptDefault => format!("kept the default of `{}`", reply.prompt),
                    ReplyKind::AfterDone => {
                        format!("answered `{}` after saving with `{}`", reply.prompt, reply.shown())
                    }
                    ReplyKind::Listed { .. } => format!("answered `{}` with `{}`", reply.prompt, reply.shown()),
                };
                progress.report(ProgressEvent::Note { kind, text });
                deadline = Instant::now() + wait_for(&dialog);
                heard = Instant::now();
                judged_quiet = false;
            }
            Action::Done => break,
            Action::Failed(failure) => return Err(dialog_failed(console, failure)),
            Action::NeedMore => {
                let quiet_at = if judged_quiet { deadline } else { (heard + QUIET).min(deadline) };
                match console.read_chunk(quiet_at, &dialog.waiting_for()).await? {
                    Some(bytes) => {
                        dialog.push(&bytes);
                        heard = Instant::now();
                        judged_quiet = false;
                    }
                    None if Instant::now() >= deadline => match dialog.timed_out() {
                        Some(Action::Failed(failure)) => return Err(dialog_failed(console, failure)),
                        Some(_) => break,
                        None => {
                            return Err(ConsoleError::Timeout {
                                waiting_for: dialog.waiting_for(),
                                waited: wait_for(&dialog),
                                last_lines: console.last_lines(),
                            }
                            .into());
                        }
                    },
                    None => {
                        judged_quiet = true;
                        match dialog.quiet() {
                            Action::Failed(failure) => return Err(dialog_failed(console, failure)),
                            Action::Done => break,
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    let summary = dialog.summary().clone();
    outcome.answered = summary.answered;
    outcome.missed_optional = summary.missed_optional;
    outcome.kept_defaults = summary.kept_defaults;
    outcome.accepted_after_done = summary.accepted_after_done;
    console.note(&format!("`{}` seen: settings saved", step.done));
    progress.report(ProgressEvent::Note { kind, text: "settings saved".into() });
    Ok(outcome)
}

/// The failure in the transcript too, where the device's words are.
fn dialog_failed<S: AsyncRead + AsyncWrite + Unpin>(console: &mut Console<S>, failure: DialogFailure) -> StepError {
    console.note(&format!("dialog failed: {failure}"));
    failure.into()
}
