//! `flashline serial send | dialog`: the `load_image` and `configure_network`
//! steps run alone, with a progress bar (bytes, rate, ETA) on a terminal and
//! plain lines otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::device_values::DeviceValueArgs;
use super::{Context, Outcome};
use crate::profile::{
    self, CheckOptions, HumanDuration, LoadImage, ResolveMode, SerialSettings, Step, Template, TransferProtocol,
};
use crate::progress::{Progress, ProgressEvent};
use crate::serial::console::Console;
use crate::serial::port::{self, PortError};
use crate::serial::steps::{self, StepError};

#[derive(Debug, Subcommand)]
pub enum SerialCommand {
    /// Send a file over XMODEM, XMODEM-1K or YMODEM (the `load_image` step).
    Send(SendArgs),
    /// Run a profile's console dialog (the `configure_network` step).
    Dialog(DialogArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProtocolArg {
    Xmodem,
    #[value(name = "xmodem-1k")]
    Xmodem1k,
    Ymodem,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The file to send.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Serial port, e.g. /dev/ttyUSB0.
    #[arg(long, value_name = "PATH")]
    port: PathBuf,
    #[arg(long, default_value_t = 9600, value_name = "B")]
    baud: u32,
    #[arg(long, value_enum, default_value_t = ProtocolArg::Xmodem)]
    protocol: ProtocolArg,
    /// Wait for this regex (e.g. `Starting serial recovery`) before sending.
    #[arg(long, value_name = "REGEX")]
    wait_for: Option<String>,
    /// How long to wait for --wait-for.
    #[arg(long, default_value = "60s")]
    wait_timeout: HumanDuration,
    /// Wait for this regex after the transfer.
    #[arg(long, value_name = "REGEX")]
    end_text: Option<String>,
    #[arg(long, default_value = "30s")]
    end_timeout: HumanDuration,
    /// Tries per block before giving up.
    #[arg(long, default_value_t = 10)]
    block_retries: u32,
    /// Write the console transcript (timestamps, passwords as ***) here.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DialogArgs {
    /// Serial port, e.g. /dev/ttyUSB0.
    #[arg(long, value_name = "PATH")]
    port: PathBuf,
    /// The profile with the `configure_network` step.
    #[arg(long, value_name = "P")]
    profile: PathBuf,
    #[command(flatten)]
    device: DeviceValueArgs,
    /// Write the console transcript (timestamps, passwords as ***) here.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
}

pub fn run(command: SerialCommand, context: &Context) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the async runtime: {error}", context.err.error("error"));
            return Outcome::Environment;
        }
    };
    match command {
        SerialCommand::Send(args) => runtime.block_on(send(args, context)),
        SerialCommand::Dialog(args) => runtime.block_on(dialog(args, context)),
    }
}

fn fail(context: &Context, message: impl std::fmt::Display, outcome: Outcome) -> Outcome {
    eprintln!("{}: {message}", context.err.error("error"));
    outcome
}

fn port_failure(context: &Context, error: PortError) -> Outcome {
    let help = match &error {
        PortError::InUse { .. } => "close the other program (minicom, screen, another flashline) or pick another port",
        PortError::NotFound { .. } => "check the cable and the port name (ls /dev/ttyUSB* /dev/ttyACM*)",
        _ => "check the port and your permissions",
    };
    fail(context, format!("{error}\n  help: {help}"), Outcome::Environment)
}

fn step_outcome(error: &StepError) -> Outcome {
    match error {
        StepError::BadPattern { .. } | StepError::ImageInvalid { .. } => Outcome::BadInput,
        StepError::ImageUnreadable { .. } => Outcome::Environment,
        _ => Outcome::DeviceFailure,
    }
}

fn write_transcript(path: Option<&PathBuf>, text: &str, context: &Context) {
    if let Some(path) = path
        && let Err(error) = std::fs::write(path, text)
    {
        eprintln!("{}: cannot write the transcript to {}: {error}", context.err.warning("warning"), path.display());
    }
}

async fn send(args: SendArgs, context: &Context) -> Outcome {
    let file = match steps::read_image(&args.file) {
        Ok(file) => file,
        Err(error) => return fail(context, &error, step_outcome(&error)),
    };
    let protocol = match args.protocol {
        ProtocolArg::Xmodem => TransferProtocol::Xmodem,
        ProtocolArg::Xmodem1k => TransferProtocol::Xmodem1k,
        ProtocolArg::Ymodem => TransferProtocol::Ymodem,
    };
    for pattern in args.wait_for.iter().chain(args.end_text.iter()) {
        if let Err(error) = regex::bytes::Regex::new(pattern) {
            return fail(context, format!("`{pattern}` is not a valid regex: {error}"), Outcome::BadInput);
        }
    }
    let settings = SerialSettings { baud: args.baud, ..SerialSettings::default() };
    let port = match port::open(&args.port, &settings) {
        Ok(port) => port,
        Err(error) => return port_failure(context, error),
    };
    let step = LoadImage {
        file: Template(args.file.display().to_string()),
        protocol,
        wait_for: args.wait_for,
        start_command: None,
        wait_timeout: args.wait_timeout,
        end_text: args.end_text,
        end_timeout: args.end_timeout,
        block_retries: args.block_retries,
    };
    let progress = CliProgress::new(context.quiet);
    let mut console = Console::new(port);
    let result = steps::load_image(&mut console, &step, file, args.baud, &progress).await;
    progress.finish();
    write_transcript(args.transcript.as_ref(), &console.transcript().render(), context);
    match result {
        Ok(report) => {
            if !context.quiet {
                let stats = report.stats;
                println!(
                    "{}: sent {} bytes in {:.1}s ({:.0} B/s), {} blocks, {} retransmissions{}",
                    context.out.good("ok"),
                    stats.acked_bytes,
                    report.elapsed.as_secs_f64(),
                    stats.acked_bytes as f64 / report.elapsed.as_secs_f64().max(1e-6),
                    stats.blocks,
                    stats.retransmissions,
                    if stats.checksum_mode { " (checksum mode)" } else { "" },
                );
            }
            Outcome::Success
        }
        Err(error) => fail(context, &error, step_outcome(&error)),
    }
}

async fn dialog(args: DialogArgs, context: &Context) -> Outcome {
    let loaded = match profile::load(&args.profile, CheckOptions::default()) {
        Ok(loaded) => loaded,
        Err(error @ profile::ProfileError::Read { .. }) => return fail(context, error, Outcome::Environment),
        Err(profile::ProfileError::Invalid { problems, path }) => {
            for problem in &problems {
                eprintln!("{}", context.err.problem(problem));
            }
            return fail(context, format!("{} is not a valid profile", path.display()), Outcome::BadInput);
        }
    };
    let (_, mut values) = match args.device.resolve(context) {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    // The port opened is the device's `port`, unless `--set port=` says otherwise.
    if !args.device.set.iter().any(|pair| pair.trim_start().starts_with("port=")) {
        values.insert("port".into(), args.port.display().to_string());
    }
    let resolved = match profile::resolve(&loaded, &values, ResolveMode::Use) {
        Ok(resolved) => resolved,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{}", context.err.problem(problem));
            }
            return Outcome::BadInput;
        }
    };
    let Some(step) = resolved.steps.iter().find_map(|s| match s {
        Step::ConfigureNetwork(step) => Some(step.clone()),
        _ => None,
    }) else {
        return fail(context, format!("{} has no configure_network step", args.profile.display()), Outcome::BadInput);
    };
    let port = match port::open(&args.port, &resolved.serial) {
        Ok(port) => port,
        Err(error) => return port_failure(context, error),
    };
    let progress = CliProgress::new(context.quiet);
    let mut console = Console::new(port);
    let result = steps::configure_network(&mut console, &step, &progress).await;
    progress.finish();
    write_transcript(args.transcript.as_ref(), &console.transcript().render(), context);
    match result {
        Ok(outcome) if outcome.skipped => {
            if !context.quiet {
                println!("{}: the device already has these settings; dialog skipped", context.out.good("ok"));
            }
            Outcome::Success
        }
        Ok(outcome) => {
            if !context.quiet {
                println!("{}: settings saved ({} prompts answered)", context.out.good("ok"), outcome.answered.len());
            }
            Outcome::Success
        }
        Err(error) => fail(context, format!("configure_network: {error}"), step_outcome(&error)),
    }
}

/// Renders progress: an indicatif bar for transfers on a terminal, plain
/// lines on stderr otherwise, nothing under --quiet.
struct CliProgress {
    terminal: bool,
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl CliProgress {
    fn new(quiet: bool) -> CliProgress {
        CliProgress { terminal: std::io::stderr().is_terminal(), quiet, bar: Mutex::new(None) }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("bar lock").take() {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: &str) {
        match self.bar.lock().expect("bar lock").as_ref() {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Progress for CliProgress {
    fn report(&self, event: ProgressEvent) {
        if self.quiet {
            return;
        }
        match event {
            ProgressEvent::Started { label, total, .. } => {
                if self.terminal {
                    let bar = ProgressBar::new(total.unwrap_or(0));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_message(label);
                    bar.enable_steady_tick(Duration::from_millis(200));
                    *self.bar.lock().expect("bar lock") = Some(bar);
                } else {
                    eprintln!("sending {label} ({} bytes)", total.unwrap_or(0));
                }
            }
            ProgressEvent::Advanced { done, .. } => {
                if let Some(bar) = self.bar.lock().expect("bar lock").as_ref() {
                    bar.set_position(done);
                }
            }
            ProgressEvent::Retried { detail, .. } => self.line(&format!("retry: {detail}")),
            ProgressEvent::Note { text, .. } => self.line(&text),
            ProgressEvent::Finished { done, elapsed, .. } => {
                self.finish();
                if !self.terminal {
                    eprintln!("transfer ended after {done} bytes acknowledged in {:.1}s", elapsed.as_secs_f64());
                }
            }
        }
    }
}
