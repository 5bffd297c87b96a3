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

use super::console::{Console, ConsoleError, SendOptions};
use super::image::{self, ImageCheck};
use super::transcript::printable;
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
    /// Environment: the image file.
    #[error("cannot read image {path}: {message}")]
    ImageUnreadable { path: String, message: String },
    /// Bad input: the image fails its own check.
    #[error("image {path} is not loadable: {check}")]
    ImageInvalid { path: String, check: ImageCheck },
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error("image transfer failed: {0}")]
    Transfer(#[from] TransferRunError),
    #[error("the device rejected the answer `{answer}` to `{prompt}`: it printed `{line}`")]
    Rejected { prompt: String, answer: String, line: String },
}

impl Classify for StepError {
    fn class(&self) -> FailureClass {
        match self {
            // A regex from the profile or the arguments, or an image that
            // fails its own bootHdr check: the user gave the wrong input, and
            // nothing was sent.
            StepError::BadPattern { .. } | StepError::ImageInvalid { .. } => FailureClass::Input,
            StepError::ImageUnreadable { .. } => FailureClass::Environment,
            StepError::Console(error) => error.class(),
            StepError::Transfer(error) => error.class(),
            StepError::Rejected { .. } => FailureClass::Device,
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, StepError> {
    Regex::new(pattern).map_err(|e| StepError::BadPattern { pattern: pattern.to_string(), message: e.to_string() })
}

/// Reads an image for `load_image`, refusing a `bootHdr` image that fails
/// its length or CRC check (it would be flashed and fail at boot).
pub fn read_image(path: &Path) -> Result<Outgoing, StepError> {
    let shown = path.display().to_string();
    let data =
        std::fs::read(path).map_err(|e| StepError::ImageUnreadable { path: shown.clone(), message: e.to_string() })?;
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
}

/// `configure_network`: the dialog from the profile.
pub async fn configure_network<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    step: &ConfigureNetwork,
    progress: &dyn Progress,
) -> Result<DialogOutcome, StepError> {
    let kind = TaskKind::ConsoleDialog;
    let rejects = step.reject.iter().map(|p| compile(p)).collect::<Result<Vec<_>, _>>()?;
    let prompts = step.dialog.iter().map(|e| compile(&e.expect)).collect::<Result<Vec<_>, _>>()?;
    let done = compile(&step.done)?;
    let mut outcome = DialogOutcome::default();
    let send_options = |entry: &DialogEntry| SendOptions {
        secret: entry.secret,
        char_delay: step.char_delay.0,
        // An echoed password may be masked: no echo check for secrets.
        echo_timeout: (step.echo_check && !entry.secret).then_some(entry.timeout.unwrap_or(step.timeout).0),
    };
    let ending = |entry: &DialogEntry| if entry.no_line_ending { "" } else { step.line_ending.as_str() };

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
            console.send(entry.send.as_str(), ending(entry), send_options(entry)).await?;
        }
    }

    let mut last_answer: Option<(String, String)> = None;
    let rejected = |found_line: &[u8], last: &Option<(String, String)>| {
        let (prompt, answer) = last.clone().unwrap_or_else(|| ("(no prompt yet)".into(), String::new()));
        StepError::Rejected { prompt, answer, line: printable(found_line).trim().to_string() }
    };
    let mut index = 0;
    while index < step.dialog.len() {
        // This prompt, and when it is optional the ones after it up to the
        // first required one: whichever the device prints first.
        let mut candidates = vec![index];
        while step.dialog[*candidates.last().unwrap()].optional && candidates.last().unwrap() + 1 < step.dialog.len() {
            candidates.push(candidates.last().unwrap() + 1);
        }
        let all_optional = candidates.iter().all(|&i| step.dialog[i].optional);
        let mut patterns: Vec<&Regex> = candidates.iter().map(|&i| &prompts[i]).collect();
        let reject_start = patterns.len();
        patterns.extend(rejects.iter());
        if all_optional {
            patterns.push(&done);
        }
        let what = format!("the prompt `{}`", step.dialog[index].expect);
        let timeout = step.dialog[index].timeout.unwrap_or(step.timeout).0;
        let found = console.expect(&patterns, timeout, &what).await?;
        if found.pattern >= reject_start && found.pattern < reject_start + rejects.len() {
            return Err(rejected(&found.line, &last_answer));
        }
        if found.pattern >= reject_start {
            // `done` came: the remaining optional prompts did not.
            outcome.missed_optional.extend(candidates.iter().map(|&i| step.dialog[i].expect.clone()));
            return finish(console, outcome, step, progress);
        }
        let chosen = candidates[found.pattern];
        outcome.missed_optional.extend(candidates[..found.pattern].iter().map(|&i| step.dialog[i].expect.clone()));
        let entry = &step.dialog[chosen];
        console.send(entry.send.as_str(), ending(entry), send_options(entry)).await?;
        let shown = if entry.secret { "***".to_string() } else { entry.send.as_str().to_string() };
        progress.report(ProgressEvent::Note { kind, text: format!("answered `{}` with `{shown}`", entry.expect) });
        outcome.answered.push(entry.expect.clone());
        last_answer = Some((entry.expect.clone(), shown));
        index = chosen + 1;
    }
    let patterns: Vec<&Regex> = std::iter::once(&done).chain(rejects.iter()).collect();
    let found = console.expect(&patterns, step.timeout.0, &format!("`{}`", step.done)).await?;
    if found.pattern > 0 {
        return Err(rejected(&found.line, &last_answer));
    }
    finish(console, outcome, step, progress)
}

fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    outcome: DialogOutcome,
    step: &ConfigureNetwork,
    progress: &dyn Progress,
) -> Result<DialogOutcome, StepError> {
    console.note(&format!("`{}` seen: settings saved", step.done));
    progress.report(ProgressEvent::Note { kind: TaskKind::ConsoleDialog, text: "settings saved".into() });
    Ok(outcome)
}
