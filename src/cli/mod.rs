//! The command line: clap types, dispatch, and the mapping of outcomes to exit
//! codes. One file per subcommand; this is the only module that prints.
//!
//! Exit codes (a contract for scripts and line systems):
//! 0 success, 1 a device or step failed, 2 bad input (profile, inventory,
//! arguments), 3 environment (a file that cannot be read, a busy port, no
//! permission).

mod addp_cmd;
mod arp_cmd;
mod batch_cmd;
mod batch_view;
mod context;
mod dashboard_cmd;
#[cfg(feature = "sim")]
mod demo_cmd;
mod device_values;
mod exs_cmd;
mod ftp_cmd;
mod net_cmd;
mod output;
mod ports_cmd;
mod profile_cmd;
mod progress_view;
mod run_cmd;
mod serial_cmd;
mod shell_cmd;
#[cfg(feature = "sim")]
mod sim_cmd;
#[cfg(feature = "sim")]
mod sim_line_cmd;
#[cfg(feature = "sim")]
mod sim_netos_cmd;
mod station_cmd;
mod station_view;
mod tftp_cmd;
mod units_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::failure::FailureClass;

pub use context::Context;
pub use output::Painter;

/// How an invocation ended, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A device or step failed.
    DeviceFailure,
    /// The profile, inventory or arguments are wrong.
    BadInput,
    /// The machine is not set up for the job (missing file, busy port, permissions).
    Environment,
}

/// How a command ends. `Err` is a failure already printed (through
/// [`Context`]), so a command returns it early with `?`; `Ok` is the outcome
/// of a command that ran to its end, which may still be a failure its report
/// tells (a device that refused).
pub type CommandResult = Result<Outcome, Outcome>;

impl From<FailureClass> for Outcome {
    fn from(class: FailureClass) -> Outcome {
        match class {
            FailureClass::Device => Outcome::DeviceFailure,
            FailureClass::Input => Outcome::BadInput,
            FailureClass::Environment => Outcome::Environment,
        }
    }
}

impl Outcome {
    /// The failure class, for every outcome but success.
    pub fn class(self) -> Option<FailureClass> {
        match self {
            Outcome::Success => None,
            Outcome::DeviceFailure => Some(FailureClass::Device),
            Outcome::BadInput => Some(FailureClass::Input),
            Outcome::Environment => Some(FailureClass::Environment),
        }
    }

    /// 0 for success, else the class's code (see [`FailureClass::exit_code`]).
    pub fn exit_code(self) -> u8 {
        self.class().map_or(0, FailureClass::exit_code)
    }

    /// The more serious of two outcomes (environment > input > device > ok).
    pub fn worst(self, other: Outcome) -> Outcome {
        if other.exit_code() > self.exit_code() { other } else { self }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "flashline",
    version,
    about = "Provision and diagnose networked embedded devices from one YAML profile per kind of device",
    long_about = None,
    after_help = "Exit codes: 0 success, 1 device or step failure, 2 bad input, 3 environment.\n\
                  Try it without hardware: `flashline demo`. Check profiles: `flashline profile check profiles/*.yaml`."
)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Colour in human output; `auto` honours NO_COLOR and plain pipes.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, show and describe device profiles.
    #[command(subcommand)]
    Profile(profile_cmd::ProfileCommand),
    /// Run one device through its profile's steps, with a report.
    Run(run_cmd::RunArgs),
    /// Run every device of an inventory, several at once, journaled and resumable.
    Batch(batch_cmd::BatchArgs),
    /// A line station: units arrive on fixtures one after another, each run and recorded in the unit database.
    Station(station_cmd::StationArgs),
    /// Run the whole pipeline against a simulated bench (no hardware needed).
    #[cfg(feature = "sim")]
    Demo(demo_cmd::DemoArgs),
    /// EXS API (CSP matrix controllers): TFTP Manage, decode frames, check TFTP configuration files.
    #[command(subcommand)]
    Exs(exs_cmd::ExsCommand),
    /// List the USB serial ports with vendor, product, serial number and the stable name for --port.
    Ports(ports_cmd::PortsArgs),
    /// Serial: send an image (XMODEM / XMODEM-1K / YMODEM), run the console dialog, tap or monitor a line.
    #[command(subcommand)]
    Serial(serial_cmd::SerialCommand),
    /// Run a simulated device: a NET+OS console on a PTY, or a CSP matrix controller's EXS API server.
    #[cfg(feature = "sim")]
    #[command(subcommand)]
    Sim(sim_cmd::SimCommand),
    /// Probe ICMP and TCP ports: open (SYN-ACK), closed (RST) or filtered (silence), with evidence.
    Probe(net_cmd::ProbeArgs),
    /// Upload firmware over FTP, verified, with retries.
    #[command(subcommand)]
    Ftp(ftp_cmd::FtpCommand),
    /// Check that an address is free before giving it to a unit (RFC 5227 ARP probes): exit 0 free, 1 in use.
    ArpCheck(arp_cmd::ArpCheckArgs),
    /// Serve files over TFTP (what a CSP controller fetches its configuration and loads from).
    #[command(subcommand)]
    Tftp(tftp_cmd::TftpCommand),
    /// Find NET+OS and Digi devices on the network with ADDP: MAC, address, mask, gateway, DHCP, firmware.
    Discover(addp_cmd::DiscoverArgs),
    /// ADDP: give a device a static address, switch DHCP, restart it, by its MAC (no serial cable needed).
    #[command(subcommand)]
    Addp(addp_cmd::AddpCommand),
    /// Explain why a device that pings refuses FTP (or another service), with advice; with its console, name the cause.
    Diagnose(net_cmd::DiagnoseArgs),
    /// The line dashboard: stations, fixtures, the shift and every unit on one live web page, with a JSON API and /metrics.
    Dashboard(dashboard_cmd::DashboardArgs),
    /// Traceability from the unit database: list runs, show a unit's history, export CSV or JSON.
    #[command(subcommand)]
    Units(units_cmd::UnitsCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(shell_cmd::CompletionsArgs),
    /// Write man pages (flashline.1 and one per subcommand) into a folder.
    Manpage(shell_cmd::ManpageArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // clap's own exit codes: 0 for --help/--version, 2 for usage errors,
            // which is also ours for bad input.
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    init_tracing(cli.verbose, cli.quiet);
    let context = Context {
        out: Painter::for_stream(cli.color, output::Stream::Stdout),
        err: Painter::for_stream(cli.color, output::Stream::Stderr),
        quiet: cli.quiet,
        verbose: cli.verbose,
        // Set by the commands that take `--json` (`Context::for_json`).
        json: false,
    };
    let ended = match cli.command {
        Command::Profile(command) => profile_cmd::run(command, &context),
        Command::Run(args) => run_cmd::run(args, &context),
        Command::Batch(args) => batch_cmd::run(args, &context),
        Command::Station(args) => station_cmd::run(args, &context),
        #[cfg(feature = "sim")]
        Command::Demo(args) => demo_cmd::run(args, &context),
        Command::Exs(command) => exs_cmd::run(command, &context),
        #[cfg(feature = "sim")]
        Command::Sim(command) => sim_cmd::run(command, &context),
        Command::Serial(command) => serial_cmd::run(command, &context),
        Command::Ports(args) => ports_cmd::run(args, &context),
        Command::Probe(args) => net_cmd::probe(args, &context),
        Command::Ftp(command) => ftp_cmd::run(command, &context),
        Command::Discover(args) => addp_cmd::discover(args, &context),
        Command::Addp(command) => addp_cmd::run(command, &context),
        Command::Diagnose(args) => net_cmd::diagnose(args, &context),
        Command::Tftp(command) => tftp_cmd::run(command, &context),
        Command::ArpCheck(args) => arp_cmd::run(args, &context),
        Command::Dashboard(args) => dashboard_cmd::run(args, &context),
        Command::Units(command) => units_cmd::run(command, &context),
        Command::Completions(args) => shell_cmd::completions(args),
        Command::Manpage(args) => shell_cmd::manpage(args, &context),
    };
    // A failure returned early was printed where it happened; both ways
    // end in an outcome.
    let outcome = ended.unwrap_or_else(|failed| failed);
    ExitCode::from(outcome.exit_code())
}

fn init_tracing(verbose: u8, quiet: bool) {
    // The simulators' own logs (and their FTP server library's: a client
    // that hangs up is a WARN there) sit one level below the user's: the demo
    // shows the bench's progress, not its servers' chatter, unless -v asks.
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,libunftp=error,unftp_sbe_fs=error,flashline::sim=error",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLASHLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // suppaftp traces every control command it sends, `PASS <password>`
    // included: its trace level never reaches our log, whatever is asked.
    let no_ftp_commands = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("suppaftp") && *meta.level() == tracing::Level::TRACE)
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter)
        .with_filter(no_ftp_commands);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every option and argument of every subcommand says what it is for
    /// (`run --help` once showed `--resume` and `--strict` bare).
    #[test]
    fn every_flag_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && arg.get_long_help().is_none() && id != "help" && id != "version" {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "flashline", &mut missing);
        assert!(missing.is_empty(), "options without help:\n{}", missing.join("\n"));
    }
}
