//! The profile's serial steps as library functions, each runnable alone:
//! [`load_image`] (wait for the boot loader, send the image, wait for its end
//! text) and [`configure_network`] (the console dialog as data: expect, send
//! with variables filled in, then wait for the save text).
//!
//! Both take a resolved profile step (variables already filled in) and a
//! [`Console`] over any stream; they do not open ports or read profiles.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use regex::bytes::Regex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::console::{Console, ConsoleError, SendOptions};
use super::dialog::{self, Action, Dialog, DialogFailure, ReplyKind};
use super::image::{self, ImageCheck};
use super::transfer::{self, SendReport, TransferRunError};
use super::xmodem::{Outgoing, Sender, SenderOptions};
use crate::failure::{Classify, FailureClass};
use crate::profile::{ConfigureNetwork, DialogEntry, LoadImage};
use crate::progress::{Progress, ProgressEvent, TaskKind};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Bad input: a regex in the profile or arguments.
    #[error("`{pattern}` is not a valid regex: {message}")]
    BadPattern { pattern: String, message: String },
    /// The image file: unreadable (environment), or not a regular file,
    /// empty or too large (bad input).
    #[error(transparent)]
    ImageUnreadable(#[from] crate::input_file::InputFileError),
    /// Bad input: the image fails its own check.
    #[error("image {path} is not loadable: {check}")]
    ImageInvalid { path: String, check: ImageCheck },
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error("image transfer failed: {0}")]
    Transfer(#[from] TransferRunError),
    /// The device answered the dialog otherwise than the profile expects.
    #[error(transparent)]
    Dialog(#[from] DialogFailure),
}

impl Classify for StepError {
    fn class(&self) -> FailureClass {
        match self {
            // A regex from the profile or the arguments, or an image that
            // fails its own bootHdr check: the user gave the wrong input, and
            // nothing was sent.
            StepError::BadPattern { .. } | StepError::ImageInvalid { .. } => FailureClass::Input,
            StepError::ImageUnreadable(error) => error.class(),
            StepError::Console(error) => error.class(),
            StepError::Transfer(error) => error.class(),
            StepError::Dialog(failure) => failure.class(),
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, StepError> {
    Regex::new(pattern).map_err(|e| StepError::BadPattern { pattern: pattern.to_string(), message: e.to_string() })
}

/// Reads an image for `load_image`, refusing an empty one, one that is not
/// a regular file or too large ([`crate::input_file::IMAGE`]), and a
/// `bootHdr` image that fails its length or CRC check (it would be flashed
/// and fail at boot).
pub fn read_image(path: &Path) -> Result<Outgoing, StepError> {
    let shown = path.display().to_string();
    let data = crate::input_file::read(path, &crate::input_file::IMAGE)?;
    let check = image::check(&data);
    if matches!(check, ImageCheck::Truncated { .. } | ImageCheck::BadCrc { .. }) {
        return Err(StepError::ImageInvalid { path: shown, check });
    }
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let name = path.file_name().map_or_else(|| "image.bin".into(), |n| n.to_string_lossy().into_owned());
    Ok(Outgoing { name, data, mtime })
}

/// `load_image`: waits for `wait_for`, sends `start_command`, transfers the
/// image, then waits for `end_text`.
pub async fn load_image<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    step: &LoadImage,
    file: Outgoing,
    baud: u32,
    progress: &dyn Progress,
) -> Result<SendReport, StepError> {
    let wait_for = step.wait_for.as_deref().map(compile).transpose()?;
    let end_text = step.end_text.as_deref().map(compile).transpose()?;
    if let Some(pattern) = &wait_for {
        let what = format!("`{}` from the boot loader", pattern.as_str());
        progress.report(ProgressEvent::Note { kind: TaskKind::ConsoleWait, text: format!("waiting for {what}") });
        console.expect(&[pattern], step.wait_timeout.0, &what).await?;
    }
    if let Some(command) = &step.start_command {
        console.send(command.as_str(), "\r", SendOptions::default()).await?;
    }
    let mut options = SenderOptions::for_baud(step.protocol, baud);
    options.block_retries = step.block_retries.max(1);
    // The boot loader is already asking: no long wait for its first `C`.
    options.start_timeout = options.start_timeout.min(step.wait_timeout.0.max(Duration::from_secs(10)));
    let label = file.name.clone();
    let size = file.data.len();
    console.note(&format!("sending {label} ({size} bytes) by {:?}", step.protocol));
    let sender = Sender::new(file, options, tokio::time::Instant::now().into_std());
    let (stream, pending) = console.take_for_transfer();
    let result = transfer::send(stream, sender, &label, pending, progress).await;
    match result {
        Ok(report) => {
            console.note(&format!(
                "sent {} bytes in {:.1}s ({} retransmissions)",
                report.stats.acked_bytes,
                report.elapsed.as_secs_f64(),
                report.stats.retransmissions
            ));
            console.give_back(&report.leftover);
            if let Some(pattern) = &end_text {
                let what = format!("`{}` after the transfer", pattern.as_str());
                console.expect(&[pattern], step.end_timeout.0, &what).await?;
            }
            Ok(report)
        }
        Err(error) => {
            console.note(&format!("transfer failed: {error}"));
            Err(error.into())
        }
    }
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

/// `configure_network`: the dialog from the profile.
pub async fn configure_network<S: AsyncRead + AsyncWrite + Unpin>(
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
