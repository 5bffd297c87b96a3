//! `flashline probe` and `flashline diagnose`: the same investigation, one
//! listing port states, the other explaining a device that will not serve.
//!
//! Exit codes: 0 ready (or `--wait-until` reached), 1 a problem was found,
//! 2 bad arguments or profile, 3 environment (no raw sockets with
//! `--method syn`, a name that does not resolve).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::progress_view::TaskView;
use super::{CommandResult, Context, Outcome};
use crate::family::Family;
use crate::net::capture::Capture;
use crate::net::diagnose::FindingCode;
use crate::net::report::{Investigation, NetReport, investigate};
use crate::net::service::Credential;
use crate::net::{PortState, ProbeMethod, ProbeOptions, Prober, resolve_ipv4};
use crate::netos::boot_log::BootLog;
use crate::profile::{self, CheckOptions, DeviceValues, HumanDuration, ResolveMode, SerialSettings, Step};
use crate::progress::Silent;
use crate::serial::boot_watch::{WatchEnd, WatchOptions, watch_boot};
use crate::serial::names::DevRoot;
use crate::serial::port;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WantedState {
    Open,
    Closed,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Device address (IPv4 or a name).
    host: String,
    /// Ports to probe, e.g. `21,23,80` or `1-1024`.
    #[arg(long, short = 'p', value_name = "LIST", default_value = "21", value_parser = parse_ports)]
    ports: PortList,
    /// `syn` (half-open, needs CAP_NET_RAW, takes no FTP session), `connect`, or `auto` (syn when allowed).
    #[arg(long, value_enum, default_value_t = ProbeMethod::Auto)]
    method: ProbeMethod,
    /// Keep polling until every port is in this state.
    #[arg(long, value_enum, value_name = "STATE")]
    wait_until: Option<WantedState>,
    /// How long `--wait-until` may take.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    timeout: HumanDuration,
    /// Wait for each answer this long before retrying (SYN) or giving up.
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    answer_timeout: HumanDuration,
    /// Skip the ICMP echo.
    #[arg(long)]
    no_icmp: bool,
    /// Print the report as JSON (a stable contract).
    #[arg(long)]
    json: bool,
    /// Write the packets to and from the host meanwhile as a pcap file (Wireshark, tshark); needs CAP_NET_RAW.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Device address (IPv4 or a name).
    host: String,
    /// Services to check, in order: `ftp`, `telnet` or a port number (repeatable).
    #[arg(long = "service", value_name = "SERVICE", value_parser = parse_service)]
    services: Vec<u16>,
    /// Take FTP credentials and ports from this profile.
    #[arg(long, value_name = "P")]
    profile: Option<PathBuf>,
    /// Variables for the profile (`--set k=v`), e.g. a password variable.
    #[arg(long = "set", value_name = "K=V", requires = "profile")]
    set: Vec<String>,
    /// How long to keep trying for the services to come up before concluding.
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    timeout: HumanDuration,
    /// `syn` (half-open, needs CAP_NET_RAW, takes no FTP session), `connect`, or `auto` (syn when allowed).
    #[arg(long, value_enum, default_value_t = ProbeMethod::Auto)]
    method: ProbeMethod,
    /// The unit's MAC: when nothing answers at HOST, ask ADDP where the unit is (`wrong-subnet`, `wrong-address`).
    #[arg(long, value_name = "MAC")]
    mac: Option<crate::mac::Mac>,
    /// Print the report as JSON (a stable contract).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    console: ConsoleArgs,
    /// Write the packets to and from the host meanwhile as a pcap file (Wireshark, tshark); needs CAP_NET_RAW.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
}

/// The console's evidence for `diagnose` (kept apart from the network flags).
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// A saved console log or flashline transcript of the unit's boot: the finding uses what the console said.
    #[arg(long, value_name = "FILE", conflicts_with = "console")]
    boot_log: Option<PathBuf>,
    /// Watch the unit's console on this serial port while it is power-cycled, and use its boot as evidence.
    #[arg(long, value_name = "PORT")]
    console: Option<String>,
    /// How long to wait for the unit's boot on --console.
    #[arg(long, default_value = "60s", value_name = "DURATION", requires = "console")]
    console_timeout: HumanDuration,
    /// Line speed of --console (8 data bits, no parity, 1 stop bit).
    #[arg(long, default_value_t = 9600, value_name = "B", requires = "console")]
    console_baud: u32,
}

#[derive(Debug, Clone)]
pub struct PortList(Vec<u16>);

fn parse_ports(text: &str) -> Result<PortList, String> {
    let mut ports = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| -> Result<u16, String> {
            match s.trim().parse::<u16>() {
                Ok(0) | Err(_) => Err(format!("`{s}` is not a port (1-65535)")),
                Ok(p) => Ok(p),
            }
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b {
                    return Err(format!("range `{part}` runs backwards"));
                }
                ports.extend(a..=b);
            }
            None => ports.push(number(part)?),
        }
    }
    if ports.is_empty() {
        return Err("no ports given".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    ports.retain(|p| seen.insert(*p));
    Ok(PortList(ports))
}

fn parse_service(text: &str) -> Result<u16, String> {
    match text {
        "ftp" => Ok(21),
        "telnet" => Ok(23),
        "http" => Ok(80),
        other => match other.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("`{other}` is not ftp, telnet, http or a port number")),
            Ok(port) => Ok(port),
        },
    }
}

pub fn probe(args: ProbeArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let spec = |target| Investigation {
        target,
        ports: args.ports.0.clone(),
        ftp_ports: Vec::new(),
        credentials: Vec::new(),
        icmp: !args.no_icmp,
        wait_until: args.wait_until.map(|w| match w {
            WantedState::Open => PortState::Open,
            WantedState::Closed => PortState::Closed,
        }),
        timeout: if args.wait_until.is_some() { args.timeout.0 } else { Duration::ZERO },
        probe: ProbeOptions { timeout: args.answer_timeout.0, retries: 1 },
    };
    let runtime = context.runtime()?;
    let live = TaskView::new(args.json || context.quiet || args.wait_until.is_none());
    let report = runtime.block_on(async {
        let target = resolve_ipv4(&args.host).await?;
        let prober = Prober::new(args.method)?;
        let capture = args.pcap.as_ref().map(|_| Capture::start(target)).transpose()?;
        let report = investigate(&spec(target), &prober, &live).await?;
        save_capture(capture, args.pcap.as_deref(), args.json || context.quiet).await?;
        Ok::<_, crate::net::NetError>(report)
    });
    let report = match report {
        Ok(report) => report,
        Err(error) => return Err(context.fail_with(&error)),
    };
    print_report(&report, args.json, context, false);
    Ok(match report.reached {
        Some(true) => Outcome::Success,
        Some(false) => Outcome::DeviceFailure,
        None if report.finding.code == FindingCode::Ready => Outcome::Success,
        None => Outcome::DeviceFailure,
    })
}

pub fn diagnose(args: DiagnoseArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let mut services = args.services.clone();
    let mut credentials = Vec::new();
    if let Some(path) = &args.profile {
        let (ports, creds) = profile_facts(path, &args.host, &args.set, context)?;
        if services.is_empty() {
            services = ports;
        }
        credentials = creds;
    }
    if services.is_empty() {
        services.push(21);
    }
    let runtime = context.runtime()?;
    let console = runtime.block_on(console_evidence(&args.console, context))?;
    let ftp_ports: Vec<u16> = services.iter().copied().filter(|&p| p == 21 || args.profile.is_some()).collect();
    let report = runtime.block_on(async {
        let target = resolve_ipv4(&args.host).await?;
        let prober = Prober::new(args.method)?;
        let spec = Investigation {
            target,
            ports: services.clone(),
            ftp_ports: ftp_ports.clone(),
            credentials,
            icmp: true,
            wait_until: None,
            timeout: args.timeout.0,
            probe: ProbeOptions::default(),
        };
        let capture = args.pcap.as_ref().map(|_| Capture::start(target)).transpose()?;
        let report = investigate(&spec, &prober, &Silent).await?;
        save_capture(capture, args.pcap.as_deref(), args.json || context.quiet).await?;
        Ok::<_, crate::net::NetError>(report)
    });
    let report = match report {
        Ok(report) => report,
        Err(error) => return Err(context.fail_with(&error)),
    };
    let mut report = match &console {
        Some((source, log)) => report.with_console(Family::default(), source, log, &ftp_ports),
        None => report,
    };
    if let Some(mac) = args.mac
        && report.finding.code == FindingCode::HostUnreachable
        && let Ok(target) = report.target.parse()
    {
        locate_by_addp(&mut report, target, mac, &runtime, context);
    }
    print_report(&report, args.json, context, true);
    Ok(if report.finding.code == FindingCode::Ready { Outcome::Success } else { Outcome::DeviceFailure })
}

/// Writes a `--pcap` capture and says so on stderr (unless quiet).
async fn save_capture(
    capture: Option<Capture>,
    path: Option<&std::path::Path>,
    quiet: bool,
) -> Result<(), crate::net::NetError> {
    let (Some(capture), Some(path)) = (capture, path) else { return Ok(()) };
    let captured = capture.save(path).await?;
    if !quiet {
        let dropped =
            if captured.dropped > 0 { format!(" ({} more not kept)", captured.dropped) } else { String::new() };
        eprintln!("capture: {} packets written to {}{dropped}", captured.packets.len(), path.display());
    }
    Ok(())
}

/// The boot log of `--boot-log` or `--console`, with where it came from.
async fn console_evidence(args: &ConsoleArgs, context: &Context) -> Result<Option<(String, BootLog)>, Outcome> {
    if let Some(path) = &args.boot_log {
        return match crate::input_file::read(path, &crate::input_file::BOOT_LOG) {
            Ok(bytes) => Ok(Some((path.display().to_string(), Family::default().boot_log(&bytes)))),
            Err(error) => Err(context.fail_with(&error)),
        };
    }
    let Some(name) = &args.console else { return Ok(None) };
    let settings = SerialSettings { baud: args.console_baud, ..SerialSettings::default() };
    let mut port = match port::open_named(name, &settings, &DevRoot::from_env()).await {
        Ok(port) => port,
        Err(error) => return Err(context.fail_with(&error)),
    };
    if !context.quiet {
        eprintln!("watching the console on {name}: power-cycle the unit now (waiting up to {})", args.console_timeout);
    }
    let options = WatchOptions { timeout: args.console_timeout.0, ..WatchOptions::default() };
    let (log, end) = watch_boot(&mut port, options).await;
    if end != WatchEnd::Settled && !context.quiet {
        let why = if end == WatchEnd::Closed { "the port closed" } else { "time is up" };
        eprintln!("console: {why} after {} lines; diagnosing with what it printed", log.lines.len());
    }
    Ok(Some((name.clone(), log)))
}

/// Asks ADDP for the unit with `mac` (multicast on every interface, and
/// unicast to `target`); its reply becomes the report's evidence and, when
/// it explains the silence, its finding.
fn locate_by_addp(
    report: &mut crate::net::report::NetReport,
    target: std::net::Ipv4Addr,
    mac: crate::mac::Mac,
    runtime: &tokio::runtime::Runtime,
    context: &Context,
) {
    let unit = match runtime.block_on(crate::addp::client::locate(target, mac)) {
        Ok(Some(unit)) => unit,
        Ok(None) => return,
        Err(error) => return context.warn(format!("cannot ask ADDP for {mac}: {error}")),
    };
    if let Some(finding) = unit.finding_at(target, &mac.to_string()) {
        report.finding = finding;
    }
    report.addp = Some(unit);
}

/// FTP ports and credential candidates from a profile's steps.
fn profile_facts(
    path: &std::path::Path,
    host: &str,
    set: &[String],
    context: &Context,
) -> Result<(Vec<u16>, Vec<Credential>), Outcome> {
    let loaded = context.load_profile(path, CheckOptions::default())?;
    let mut values = DeviceValues::from([("ip", host)]);
    match DeviceValues::from_set_pairs(set) {
        Ok(pairs) => values.extend(pairs),
        Err(message) => {
            return Err(context.fail(message, Outcome::BadInput));
        }
    }
    // Only the steps' credentials and ports are needed: fill in the device
    // variables that are not given with placeholders would hide mistakes, so
    // a missing one is reported as it would be for a run.
    let resolved = match profile::resolve(&loaded, &values, ResolveMode::Use) {
        Ok(resolved) => resolved,
        Err(problems) => {
            context.print_problems(&problems);
            context.help("give the profile's variables with --set name=value");
            return Err(Outcome::BadInput);
        }
    };
    let credentials = resolved
        .steps
        .iter()
        .filter_map(|step| {
            if let Step::FtpUpload(ftp) = step {
                Some(crate::pipeline::steps::ftp_upload::credentials(ftp))
            } else {
                None
            }
        })
        .flatten()
        .collect();
    Ok((resolved.ftp_ports(), credentials))
}

fn print_report(report: &NetReport, json: bool, context: &Context, with_timeline: bool) {
    if json {
        context.print_json(report);
        return;
    }
    let out = &context.out;
    let method = match report.method {
        crate::net::UsedMethod::Syn => "syn",
        crate::net::UsedMethod::Connect => "connect",
    };
    println!("{} ({method} probe)", report.target);
    if let Some(icmp) = &report.icmp {
        println!("  icmp      {:<9} {}", format!("{:?}", icmp.state).to_lowercase(), out.dim(&icmp.evidence));
    }
    for port in &report.ports {
        let state = match port.state {
            PortState::Open => out.good("open"),
            PortState::Closed => out.error("closed"),
            PortState::Filtered => out.warning("filtered"),
        };
        let pad = 9usize.saturating_sub(match port.state {
            PortState::Open => 4,
            PortState::Closed => 6,
            PortState::Filtered => 8,
        });
        println!("  {:<9} {state}{} {}", format!("{}/tcp", port.port), " ".repeat(pad), out.dim(&port.evidence));
    }
    if let Some(service) = &report.service {
        match &service.banner {
            Some(banner) => println!("  ftp       greeting `{banner}`"),
            None => println!("  ftp       no greeting"),
        }
        if let Some(login) = &service.login {
            println!("  login     {:?}: {} (users tried: {})", login.result, login.reply, login.tried.join(", "));
        }
    }
    if let Some(unit) = &report.addp {
        let show = |a: Option<std::net::Ipv4Addr>| a.map_or_else(|| "-".into(), |a| a.to_string());
        println!(
            "  addp      {} answered from {}: address {} mask {} gateway {}",
            unit.device.mac.map_or_else(|| "-".into(), |m| m.to_string()),
            unit.from.ip(),
            show(unit.device.ip),
            show(unit.device.mask),
            show(unit.device.gateway)
        );
    }
    if with_timeline && report.timeline.len() > 2 {
        println!("  timeline:");
        for event in &report.timeline {
            println!("  {:>7} ms  {}", event.t_ms, event.event);
        }
    }
    if let Some(console) = &report.console {
        let application = console.application.as_ref().map_or("no APPLICATION: line", |a| a.name.as_str());
        println!("  console   {} ({} lines): {application}", console.source, console.lines);
        for line in &console.quoted {
            println!("  {}", out.dim(&line.quote()));
        }
    }
    let code = report.finding.code.as_str();
    let code = if report.finding.code == FindingCode::Ready { out.good(code) } else { out.error(code) };
    println!("finding: {code}");
    println!("  {}", report.finding.summary);
    for advice in &report.finding.advice {
        println!("  - {advice}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists() {
        assert_eq!(parse_ports("21,23,80").unwrap().0, vec![21, 23, 80]);
        assert_eq!(parse_ports("20-22,21").unwrap().0, vec![20, 21, 22]);
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("80-20").is_err());
        assert!(parse_ports("ftp").is_err());
        assert_eq!(parse_service("telnet"), Ok(23));
    }
}
