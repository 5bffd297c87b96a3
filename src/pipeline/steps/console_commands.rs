//! How a `console_commands` step runs: reach the prompt (stopping the boot
//! loader's countdown), then type each command and wait for the prompt to
//! come back, judging what the command printed: an error line, its exit
//! status when asked, the text it must show, the values it must name.

use std::time::Duration;

use regex::bytes::Regex;
use tokio::time::Instant;

use super::{StepContext, StepDone, StepError, compile};
use crate::profile::{ConsoleCommand, ConsoleCommands};
use crate::serial::console::{Console, ConsoleError, SendOptions};
use crate::serial::port::Port;

/// How often the console is poked with a line ending while no prompt
/// shows: a prompt answers an empty line with a new one, and a countdown
/// stops at any key. A unit still booting ignores it.
const POKE_EVERY: Duration = Duration::from_secs(1);

/// The silence that ends the wait for the first prompt: prompts that
/// answered earlier pokes arrive in it and are dropped, so none is taken
/// for the end of the first command.
const SETTLE: Duration = Duration::from_millis(300);

/// At most this many chunks are dropped while settling (a console that
/// never falls silent is not waited for forever).
const SETTLE_CHUNKS: usize = 64;

pub async fn run(options: &ConsoleCommands, cx: &mut StepContext<'_>) -> Result<StepDone, StepError> {
    let prompt = compile(&format!("(?m)^{}", regex::escape(&options.prompt)))?;
    let stop = options.stop_autoboot.as_deref().map(compile).transpose()?;
    let errors = options.errors.iter().map(|e| compile(e)).collect::<Result<Vec<_>, _>>()?;
    let ending = options.line_ending.as_str();
    let console = cx.console().await?;
    reach_prompt(console, &prompt, stop.as_ref(), options).await?;
    let mut values = Vec::new();
    for command in &options.commands {
        let sent = command.send.as_str();
        let timeout = command.timeout.map_or(options.command_timeout.0, |t| t.0);
        let lines = exchange(console, &prompt, sent, ending, timeout).await?;
        if let Some(line) = lines.iter().find(|line| errors.iter().any(|e| e.is_match(line.as_bytes()))) {
            return Err(failed(sent, format!("the console printed `{line}`"), &lines));
        }
        if options.check_status {
            check_status(console, &prompt, sent, ending, timeout, &lines).await?;
        }
        values.extend(judge(command, &lines)?);
    }
    let count = options.commands.len();
    let mut detail = format!("{count} command{} at `{}`", if count == 1 { "" } else { "s" }, options.prompt.trim());
    if !values.is_empty() {
        detail.push_str("; ");
        detail.push_str(&values.join(", "));
    }
    Ok(StepDone::passed(detail))
}

/// Waits for the prompt, poking the console and stopping the countdown.
async fn reach_prompt(
    console: &mut Console<Port>,
    prompt: &Regex,
    stop: Option<&Regex>,
    options: &ConsoleCommands,
) -> Result<(), StepError> {
    let waited = options.prompt_timeout.0;
    let deadline = Instant::now() + waited;
    let patterns: Vec<&Regex> = std::iter::once(prompt).chain(stop).collect();
    let what = format!("the prompt `{}`", options.prompt);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConsoleError::Timeout { waiting_for: what, waited, last_lines: console.last_lines() }.into());
        }
        match console.expect(&patterns, left.min(POKE_EVERY), &what).await {
            Ok(found) if found.pattern == 0 => break,
            Ok(_) => {
                console.note("stopping the countdown");
                console.send(&options.stop_key, "", SendOptions::default()).await?;
            }
            Err(ConsoleError::Timeout { .. }) => {
                console.send("", options.line_ending.as_str(), SendOptions::default()).await?
            }
            Err(error) => return Err(error.into()),
        }
    }
    for _ in 0..SETTLE_CHUNKS {
        if console.read_chunk(Instant::now() + SETTLE, &what).await?.is_none() {
            break;
        }
    }
    console.take_pending();
    Ok(())
}

/// Sends `command` and waits for the prompt; gives the lines it printed
/// (without its echo).
async fn exchange(
    console: &mut Console<Port>,
    prompt: &Regex,
    command: &str,
    ending: &str,
    timeout: Duration,
) -> Result<Vec<String>, StepError> {
    console.send(command, ending, SendOptions::default()).await?;
    let found = console.expect(&[prompt], timeout, &format!("the prompt after `{command}`")).await?;
    Ok(output_lines(&found.before, command))
}

/// The lines a command printed: its echo (the first line, when it is the
/// command) and blank lines left out, carriage returns and the countdown's
/// backspaces gone.
fn output_lines(bytes: &[u8], command: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|line| line.chars().filter(|c| !c.is_control()).collect::<String>().trim_end().to_string())
        .collect();
    if lines.first().is_some_and(|first| first.trim() == command.trim()) {
        lines.remove(0);
    }
    lines.retain(|line| !line.trim().is_empty());
    lines
}

/// Asks the shell for the command's exit status (`echo $?`).
async fn check_status(
    console: &mut Console<Port>,
    prompt: &Regex,
    command: &str,
    ending: &str,
    timeout: Duration,
    output: &[String],
) -> Result<(), StepError> {
    let answer = exchange(console, prompt, "echo $?", ending, timeout).await?;
    match answer.first().map(|line| line.trim()) {
        Some("0") => Ok(()),
        Some(status) if status.parse::<u32>().is_ok() => Err(failed(command, format!("exit status {status}"), output)),
        other => Err(failed(
            command,
            format!(
                "the shell did not give an exit status for `echo $?` (it printed `{}`): turn check_status off for this console",
                other.unwrap_or("")
            ),
            output,
        )),
    }
}

/// The command's `expect` and `capture`: the values it named, as `name=value`.
fn judge(command: &ConsoleCommand, lines: &[String]) -> Result<Vec<String>, StepError> {
    let sent = command.send.as_str();
    let text = lines.join("\n");
    if let Some(expect) = &command.expect {
        let pattern = compile(expect.as_str())?;
        if !pattern.is_match(text.as_bytes()) {
            return Err(failed(sent, format!("its output does not match `{}`", expect.as_str()), lines));
        }
    }
    let mut values = Vec::new();
    for (name, pattern) in &command.capture {
        let regex = compile(pattern)?;
        let value = regex
            .captures(text.as_bytes())
            .and_then(|c| c.get(1))
            .ok_or_else(|| failed(sent, format!("its output names no `{name}` (`{pattern}`)"), lines))?;
        values.push(format!("{name}={}", String::from_utf8_lossy(value.as_bytes())));
    }
    Ok(values)
}

fn failed(command: &str, reason: String, lines: &[String]) -> StepError {
    StepError::CommandFailed { command: command.to_string(), reason, lines: lines.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commands_output_is_its_lines_without_the_echo() {
        let before = b"printenv ethaddr\r\nethaddr=52:54:00:12:34:56\r\n\r\n";
        assert_eq!(output_lines(before, "printenv ethaddr"), ["ethaddr=52:54:00:12:34:56"]);
        // A console that does not echo: the first line is output.
        assert_eq!(output_lines(b"1\r\n", "echo $?"), ["1"]);
        assert!(output_lines(b"setenv ipaddr 198.18.0.2\r\n", "setenv ipaddr 198.18.0.2").is_empty());
        // The countdown's backspaces are gone.
        assert_eq!(output_lines(b"\x08\x08\x08 0 \r\n", "x"), [" 0"]);
    }
}
