//! `flashline sim csp`: run the simulated CSP matrix controller (EXS API
//! server) on a TCP address, printing what it does, one line per event.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

use super::{CommandResult, Context, Outcome};
use crate::exs::tftp_manage::ResponseLayout;
use crate::exs::trace;
use crate::profile::HumanDuration;
use crate::sim::csp::{self, CspConfig, Fault};
use crate::sim::tftp_client::TftpOptions;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A simulated CSP matrix controller: TFTP Manage, Poll, Alarm, real TFTP
    /// downloads of the configuration file, injected faults.
    ///
    /// Prints `listening on ADDR` first, then one line per event. Runs until
    /// killed, or for --exit-after.
    Csp(CspArgs),
    /// A simulated NET+OS device's serial console on a PTY: boot banner,
    /// configuration dialog, NV memory, serial recovery by XMODEM-CRC.
    Netos(super::sim_netos_cmd::NetosArgs),
    /// A simulated manufacturing line for `flashline station` processes:
    /// station files, fixtures on PTYs, units plugged in one after another.
    Line(super::sim_line_cmd::LineArgs),
}

#[derive(Debug, Args)]
pub struct CspArgs {
    /// Address to listen on, e.g. 127.0.0.1:12610 (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:12610")]
    listen: SocketAddr,
    /// Poll interval (`0s` sends no polls).
    #[arg(long, default_value = "2s")]
    poll_interval: HumanDuration,
    /// Port of the TFTP server named in Local Matrix Server IP Address.
    #[arg(long, default_value_t = 69)]
    tftp_port: u16,
    /// Wait per TFTP packet before sending again (3 tries).
    #[arg(long, default_value = "1s")]
    tftp_timeout: HumanDuration,
    /// Inject a fault into the next TFTP Manage answer (repeatable, used in
    /// order): bad-checksum, wrong-sequence, truncated, drop-connection, alarm-first.
    #[arg(long = "fault", value_name = "FAULT")]
    faults: Vec<Fault>,
    /// Answer like the page's trace: no More Status, values in Action ICBs.
    #[arg(long)]
    trace_layout: bool,
    /// The adjacent controller's load timestamp (hex), for the old / equal
    /// timestamp answers.
    #[arg(long, value_name = "HEX")]
    adjacent_timestamp: Option<String>,
    /// Wait for an Alarm's acknowledgment before sending it again.
    #[arg(long, default_value = "5s")]
    alarm_wait: HumanDuration,
    /// How long each TFTP Manage answer takes (polls go on meanwhile).
    #[arg(long, default_value = "0s")]
    answer_delay: HumanDuration,
    /// Stop after this long (for scripts and tests).
    #[arg(long)]
    exit_after: Option<HumanDuration>,
}

pub fn run(command: SimCommand, context: &Context) -> CommandResult {
    match command {
        SimCommand::Csp(args) => run_csp(args, context),
        SimCommand::Netos(args) => super::sim_netos_cmd::run(args, context),
        SimCommand::Line(args) => super::sim_line_cmd::run(args, context),
    }
}

fn run_csp(args: CspArgs, context: &Context) -> CommandResult {
    let adjacent_timestamp = match args.adjacent_timestamp.as_deref().map(trace::parse_hex).transpose() {
        Ok(value) => value,
        Err(error) => {
            return Err(context.fail(format!("--adjacent-timestamp: {error}"), Outcome::BadInput));
        }
    };
    let runtime = context.runtime()?;
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                return Err(context.fail(format!("cannot listen on {}: {error}", args.listen), Outcome::Environment));
            }
        };
        let address = listener.local_addr().map_or_else(|_| args.listen.to_string(), |a| a.to_string());
        println!("listening on {address}");
        let (events, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let config = CspConfig {
            poll_interval: Some(args.poll_interval.0).filter(|d| !d.is_zero()),
            tftp_port: args.tftp_port,
            tftp: TftpOptions { timeout: args.tftp_timeout.0, ..TftpOptions::default() },
            layout: if args.trace_layout { ResponseLayout::NoMoreStatus } else { ResponseLayout::Documented },
            faults: args.faults,
            alarm_wait: args.alarm_wait.0,
            adjacent_timestamp,
            answer_delay: args.answer_delay.0,
            events: Some(events),
            ..CspConfig::default()
        };
        let printer = tokio::spawn(async move {
            use std::io::Write;
            while let Some(event) = receiver.recv().await {
                println!("{event}");
                let _ = std::io::stdout().flush();
            }
        });
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let shutdown = async {
            match args.exit_after {
                Some(after) => tokio::time::sleep(after.0).await,
                None => std::future::pending().await,
            }
        };
        let result = csp::serve(listener, config, shutdown).await;
        printer.abort();
        match result {
            Ok(()) => Ok(Outcome::Success),
            Err(error) => Err(context.fail(error, Outcome::Environment)),
        }
    })
}
