//! `flashline serial send | dialog`: the `load_image` and `configure_network`
//! steps run alone, with a progress bar (bytes, rate, ETA) on a terminal and
//! plain lines otherwise. `serial tap | monitor`: a transparent relay between
//! two ports and a read-only recorder of one, with a timestamped record.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tokio::io::{AsyncRead, AsyncWrite};

use super::device_values::DeviceValueArgs;
use super::progress_view::TaskView;
use super::{CommandResult, Context, Outcome};
use crate::failure::Classify;
use crate::pipeline::steps::{configure_network, load_image};
use crate::profile::{
    self, CheckOptions, HumanDuration, LoadImage, Parity, ResolveMode, SerialSettings, Step, Template,
    TransferProtocol, ValueSource,
};
use crate::serial::console::Console;
use crate::serial::names::DevRoot;
use crate::serial::port;
use crate::serial::tap::{self, LogOptions, TapError};

#[derive(Debug, Subcommand)]
pub enum SerialCommand {
    /// Send a file over XMODEM, XMODEM-1K or YMODEM (the `load_image` step).
    Send(SendArgs),
    /// Run a profile's console dialog (the `configure_network` step).
    Dialog(DialogArgs),
    /// Relay between two serial ports unchanged (a controller's side and a module's side), recording both directions.
    Tap(TapArgs),
    /// Record what one serial port receives, read-only.
    Monitor(MonitorArgs),
}

#[derive(Debug, Args)]
pub struct TapArgs {
    /// One side (e.g. the production controller's cable).
    #[arg(value_name = "PORT_A")]
    port_a: String,
    /// The other side (e.g. the module's console).
    #[arg(value_name = "PORT_B")]
    port_b: String,
    #[command(flatten)]
    record: RecordArgs,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The port to listen to (nothing is ever written to it).
    #[arg(value_name = "PORT")]
    port: String,
    #[command(flatten)]
    record: RecordArgs,
}

/// Line settings and the record, shared by `tap` and `monitor`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Line speed in bits per second, on every port.
    #[arg(long, default_value_t = 9600, value_name = "B")]
    baud: u32,
    /// Data bits: 5, 6, 7 or 8.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u8).range(5..=8))]
    data_bits: u8,
    /// Parity: none, odd or even.
    #[arg(long, default_value = "none", value_name = "none|odd|even", value_parser = parse_parity)]
    parity: Parity,
    /// Stop bits: 1 or 2.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=2))]
    stop_bits: u8,
    /// Write the record here instead of standard output.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Add each chunk's bytes in hex under its text.
    #[arg(long)]
    hex: bool,
    /// A pause at least this long gets its own `idle` line in the record.
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    idle: HumanDuration,
    /// Stop after this long (default: until Ctrl-C or a port closes).
    #[arg(long = "for", value_name = "DURATION")]
    duration: Option<HumanDuration>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The file to send.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Serial port: a path (/dev/ttyUSB0), usb-serial:SERIAL[:INTERFACE], usb-path:PATH, rfc2217://HOST:PORT or tcp://HOST:PORT.
    #[arg(long, value_name = "PORT")]
    port: String,
    /// Line speed in bits per second (8 data bits, no parity, 1 stop bit).
    #[arg(long, default_value_t = 9600, value_name = "B")]
    baud: u32,
    /// `xmodem` (128-byte blocks, CRC-16 with checksum fallback), `xmodem-1k` or `ymodem` (with file name and size).
    #[arg(long, value_enum, default_value_t = TransferProtocol::Xmodem)]
    protocol: TransferProtocol,
    /// Wait for this regex (e.g. `Starting serial recovery`) before sending.
    #[arg(long, value_name = "REGEX")]
    wait_for: Option<String>,
    /// How long to wait for --wait-for.
    #[arg(long, default_value = "60s")]
    wait_timeout: HumanDuration,
    /// Wait for this regex after the transfer.
    #[arg(long, value_name = "REGEX")]
    end_text: Option<String>,
    /// How long to wait for --end-text.
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
    /// Serial port: a path (/dev/ttyUSB0), usb-serial:SERIAL[:INTERFACE], usb-path:PATH, rfc2217://HOST:PORT or tcp://HOST:PORT.
    #[arg(long, value_name = "PORT")]
    port: String,
    /// The profile with the `configure_network` step.
    #[arg(long, value_name = "P")]
    profile: PathBuf,
    #[command(flatten)]
    device: DeviceValueArgs,
    /// Write the console transcript (timestamps, passwords as ***) here.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
}

pub fn run(command: SerialCommand, context: &Context) -> CommandResult {
    let runtime = context.runtime()?;
    match command {
        SerialCommand::Send(args) => runtime.block_on(send(args, context)),
        SerialCommand::Dialog(args) => runtime.block_on(dialog(args, context)),
        SerialCommand::Tap(args) => runtime.block_on(tap(args, context)),
        SerialCommand::Monitor(args) => runtime.block_on(monitor(args, context)),
    }
}

fn parse_parity(text: &str) -> Result<Parity, String> {
    match text {
        "none" => Ok(Parity::None),
        "odd" => Ok(Parity::Odd),
        "even" => Ok(Parity::Even),
        other => Err(format!("`{other}` is not none, odd or even")),
    }
}

/// Where the record goes: a file (created) or standard output.
async fn record_sink(
    args: &RecordArgs,
    context: &Context,
) -> Result<Box<dyn tokio::io::AsyncWrite + Unpin + Send>, Outcome> {
    match &args.log {
        Some(path) => match tokio::fs::File::create(path).await {
            Ok(file) => Ok(Box::new(tokio::io::BufWriter::new(file))),
            Err(error) => {
                Err(context.fail(format!("cannot create the record {}: {error}", path.display()), Outcome::Environment))
            }
        },
        // A duplicate of standard output's descriptor: tokio's own stdout
        // needs a feature this crate does not otherwise use.
        None => match std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned() {
            Ok(fd) => Ok(Box::new(tokio::fs::File::from_std(std::fs::File::from(fd)))),
            Err(error) => Err(context.fail(format!("cannot write to standard output: {error}"), Outcome::Environment)),
        },
    }
}

fn record_settings(args: &RecordArgs) -> (SerialSettings, LogOptions) {
    let settings = SerialSettings {
        baud: args.baud,
        data_bits: args.data_bits,
        parity: args.parity,
        stop_bits: args.stop_bits,
        ..SerialSettings::default()
    };
    (settings, LogOptions { hex: args.hex, idle: args.idle.0 })
}

/// Ends at Ctrl-C, SIGTERM or after `--for`.
async fn stop_signal(duration: Option<HumanDuration>) {
    let limit = async {
        match duration {
            Some(d) => tokio::time::sleep(d.0).await,
            None => std::future::pending().await,
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = limit => {}
    }
}

/// The outcome of a tap or monitor: stopped on purpose is success.
fn tap_outcome(
    result: Result<(), TapError>,
    written: Result<(), TapError>,
    summary: String,
    context: &Context,
) -> Outcome {
    if !context.quiet {
        eprintln!("{summary}");
    }
    match (result, written) {
        (Err(error), _) | (Ok(()), Err(error)) => context.fail_with(&error),
        (Ok(()), Ok(())) => Outcome::Success,
    }
}

async fn tap(args: TapArgs, context: &Context) -> CommandResult {
    let (settings, options) = record_settings(&args.record);
    let sink = record_sink(&args.record, context).await?;
    let dev_root = DevRoot::from_env();
    let a = match port::open_named(&args.port_a, &settings, &dev_root).await {
        Ok(port) => port,
        Err(error) => return Err(context.fail_with(&error)),
    };
    let b = match port::open_named(&args.port_b, &settings, &dev_root).await {
        Ok(port) => port,
        Err(error) => return Err(context.fail_with(&error)),
    };
    if !context.quiet {
        eprintln!("relaying {} (A) <-> {} (B) at {} baud; Ctrl-C stops", args.port_a, args.port_b, args.record.baud);
    }
    let (record, chunks) = tokio::sync::mpsc::channel(1024);
    let writer = tokio::spawn(tap::write_record(chunks, sink, options));
    let (stats, result) = tap::relay(a, b, record, stop_signal(args.record.duration)).await;
    let written = writer.await.unwrap_or_else(|e| Err(TapError::Record(std::io::Error::other(e))));
    let summary = format!("relayed {} bytes A>B and {} bytes B>A", stats.a_to_b, stats.b_to_a);
    Ok(tap_outcome(result, written, summary, context))
}

async fn monitor(args: MonitorArgs, context: &Context) -> CommandResult {
    let (settings, options) = record_settings(&args.record);
    let sink = record_sink(&args.record, context).await?;
    let port = match port::open_named(&args.port, &settings, &DevRoot::from_env()).await {
        Ok(port) => port,
        Err(error) => return Err(context.fail_with(&error)),
    };
    if !context.quiet {
        eprintln!("recording {} at {} baud; Ctrl-C stops", args.port, args.record.baud);
    }
    let (record, chunks) = tokio::sync::mpsc::channel(1024);
    let writer = tokio::spawn(tap::write_record(chunks, sink, options));
    let (count, result) = tap::monitor(port, record, stop_signal(args.record.duration)).await;
    let written = writer.await.unwrap_or_else(|e| Err(TapError::Record(std::io::Error::other(e))));
    Ok(tap_outcome(result, written, format!("recorded {count} bytes"), context))
}

/// Gives the console's transcript its file, written as the session goes
/// (memory keeps only the latest entries: a noisy line never ends).
fn start_transcript<S: AsyncRead + AsyncWrite + Unpin>(
    path: Option<&PathBuf>,
    console: &mut Console<S>,
    context: &Context,
) {
    let Some(path) = path else { return };
    match std::fs::File::create(path) {
        Ok(file) => console.transcript_mut().write_to(Box::new(std::io::BufWriter::new(file))),
        Err(error) => context.warn(format!("cannot write the transcript to {}: {error}", path.display())),
    }
}

/// Ends the transcript file with the line a timeout cut off, if any.
fn finish_transcript<S: AsyncRead + AsyncWrite + Unpin>(
    path: Option<&PathBuf>,
    console: &mut Console<S>,
    context: &Context,
) {
    if let Some(path) = path
        && let Err(error) = console.transcript_mut().finish(std::time::Instant::now())
    {
        context.warn(format!("cannot write the transcript to {}: {error}", path.display()));
    }
}

async fn send(args: SendArgs, context: &Context) -> CommandResult {
    let file = match load_image::read_image(&args.file, crate::family::Family::default()) {
        Ok(file) => file,
        Err(error) => return Err(context.fail_with(&error)),
    };
    let protocol = args.protocol;
    for pattern in args.wait_for.iter().chain(args.end_text.iter()) {
        if let Err(error) = regex::bytes::Regex::new(pattern) {
            return Err(context.fail(format!("`{pattern}` is not a valid regex: {error}"), Outcome::BadInput));
        }
    }
    let settings = SerialSettings { baud: args.baud, ..SerialSettings::default() };
    let port = match port::open_named(&args.port, &settings, &DevRoot::from_env()).await {
        Ok(port) => port,
        Err(error) => return Err(context.fail_with(&error)),
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
    let progress = TaskView::new(context.quiet);
    let mut console = Console::new(port);
    start_transcript(args.transcript.as_ref(), &mut console, context);
    let result = load_image::load(&mut console, &step, file, args.baud, &progress).await;
    progress.finish();
    finish_transcript(args.transcript.as_ref(), &mut console, context);
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
                if let Some(warning) = stats.warning() {
                    context.warn(warning);
                }
            }
            Ok(Outcome::Success)
        }
        Err(error) => Err(context.fail_with(&error)),
    }
}

async fn dialog(args: DialogArgs, context: &Context) -> CommandResult {
    let loaded = context.load_profile(&args.profile, CheckOptions::default())?;
    let (_, mut values) = args.device.resolve(context)?;
    // The port opened is the device's `port`, unless `--set port=` says otherwise.
    if values.source("port") != Some(&ValueSource::CommandLine) {
        values.insert("port", args.port.clone(), ValueSource::CommandLine);
    }
    let Some(index) = loaded.profile.steps.iter().position(|s| matches!(s, Step::ConfigureNetwork(_))) else {
        return Err(
            context.fail(format!("{} has no configure_network step", args.profile.display()), Outcome::BadInput)
        );
    };
    // Only this step's variables are needed: no image paths, no FTP password.
    let resolved = match profile::resolve_step(&loaded, &values, ResolveMode::Use, index) {
        Ok(resolved) => resolved,
        Err(problems) => {
            context.print_problems(&problems);
            return Err(Outcome::BadInput);
        }
    };
    let Step::ConfigureNetwork(step) = &resolved.steps[index] else {
        unreachable!("step {index} is the configure_network step found above")
    };
    let port = match port::open_named(&args.port, &resolved.serial, &DevRoot::from_env()).await {
        Ok(port) => port,
        Err(error) => return Err(context.fail_with(&error)),
    };
    let progress = TaskView::new(context.quiet);
    let mut console = Console::new(port);
    start_transcript(args.transcript.as_ref(), &mut console, context);
    let result = configure_network::converse(&mut console, step, &progress).await;
    progress.finish();
    finish_transcript(args.transcript.as_ref(), &mut console, context);
    match result {
        Ok(outcome) if outcome.skipped => {
            if !context.quiet {
                println!("{}: the device already has these settings; dialog skipped", context.out.good("ok"));
            }
            Ok(Outcome::Success)
        }
        Ok(outcome) => {
            if !context.quiet {
                println!("{}: settings saved ({})", context.out.good("ok"), outcome.detail());
            }
            Ok(Outcome::Success)
        }
        Err(error) => Err(context.fail(format!("configure_network: {error}"), Outcome::from(error.class()))),
    }
}
