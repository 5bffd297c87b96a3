//! The investigation behind `flashline probe` and `flashline diagnose` (and
//! the pipeline's diagnosis of a refused upload): probe, optionally wait,
//! look at the FTP service, decide the finding, and collect it all in a
//! [`NetReport`] whose JSON form is a contract other tools read.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use super::diagnose::{Evidence, Finding, diagnose};
use super::icmp::Pinger;
use super::service::{Credential, ServiceCheck, check_ftp};
use super::wait::{TimelineEvent, WaitSpec, wait_for};
use super::{IcmpResult, NetError, PortResult, PortState, ProbeOptions, Prober, UsedMethod};
use crate::family::Family;
use crate::netos::boot_log::{BootLog, Labelled, LineKind, LogLine, NetworkBlock};
use crate::progress::{Progress, ProgressEvent, TaskKind};

/// Everything learnt about one target.
#[derive(Debug, Clone, Serialize)]
pub struct NetReport {
    pub target: String,
    pub method: UsedMethod,
    pub icmp: Option<IcmpResult>,
    pub ports: Vec<PortResult>,
    pub service: Option<ServiceCheck>,
    pub finding: Finding,
    pub timeline: Vec<TimelineEvent>,
    /// For `--wait-until`: whether every port reached the wanted state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached: Option<bool>,
    /// The console's evidence, when a boot log or console was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleReport>,
    /// The unit's ADDP discovery reply, when `diagnose --mac` asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addp: Option<crate::addp::Discovered>,
}

// Written here, not in `addp`: turning a reply into a finding is the
// diagnosis's business, and `addp` then needs nothing from `net`.
impl crate::addp::Discovered {
    /// What this reply says about a unit sought at `target` that did not
    /// answer there: `wrong-subnet` or `wrong-address`, or None when the
    /// unit has `target` on the station's subnet (or the reply lacks its
    /// address).
    pub fn finding_at(&self, target: Ipv4Addr, mac: &str) -> Option<Finding> {
        let (ip, mask) = (self.device.ip?, self.device.mask?);
        super::diagnose::unit_on_the_wire(target, mac, ip, mask, self.other_subnet)
    }
}

/// What the console showed, as `diagnose --boot-log/--console` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleReport {
    /// Where the log came from: a file's path or a port's name.
    pub source: String,
    pub lines: usize,
    pub boots: usize,
    pub version: Option<String>,
    pub application: Option<Labelled>,
    pub network: Option<NetworkBlock>,
    /// Addresses the application printed after the window.
    pub addresses: Vec<Ipv4Addr>,
    /// The lines the finding quotes.
    pub quoted: Vec<LogLine>,
}

impl NetReport {
    /// Decides the finding again with the console's evidence (`log`, read
    /// from `source`, by the unit's `family`); `ftp_ports` as the
    /// investigation had them.
    pub fn with_console(mut self, family: Family, source: &str, log: &BootLog, ftp_ports: &[u16]) -> NetReport {
        let target: Ipv4Addr = match self.target.parse() {
            Ok(target) => target,
            Err(_) => return self,
        };
        let evidence = Evidence {
            icmp: self.icmp.clone(),
            ports: self.ports.clone(),
            service: self.service.clone(),
            ftp_ports: ftp_ports.to_vec(),
        };
        let verdict = family.console_finding(target, &evidence, log);
        let version = log.last_boot().and_then(|b| b.version).and_then(|i| match &log.line(i).kind {
            LineKind::Version(v) => Some(v.clone()),
            _ => None,
        });
        self.console = Some(ConsoleReport {
            source: source.to_string(),
            lines: log.lines.len(),
            boots: log.boots.len(),
            version,
            application: log.application().cloned(),
            network: log.network(),
            addresses: log.addresses().into_iter().map(|(_, a)| a).collect(),
            quoted: verdict.quoted,
        });
        self.finding = verdict.finding;
        self
    }
}

/// What to investigate.
#[derive(Debug, Clone)]
pub struct Investigation {
    pub target: Ipv4Addr,
    /// Ports in order of importance (the first problem decides the finding).
    pub ports: Vec<u16>,
    /// Ports whose FTP greeting and login are checked when open.
    pub ftp_ports: Vec<u16>,
    pub credentials: Vec<Credential>,
    /// Send an ICMP echo for evidence.
    pub icmp: bool,
    /// Keep polling until every port has this state (or the timeout passes);
    /// None probes once.
    pub wait_until: Option<PortState>,
    /// How long to wait (with `wait_until`) or to keep trying for the ports to
    /// open before concluding.
    pub timeout: Duration,
    pub probe: ProbeOptions,
}

/// Runs an investigation with `prober`; timeline events go to `progress` live.
pub async fn investigate(
    spec: &Investigation,
    prober: &Prober,
    progress: &dyn Progress,
) -> Result<NetReport, NetError> {
    let wanted = spec.wait_until.unwrap_or(PortState::Open);
    let wait = WaitSpec {
        target: spec.target,
        icmp: false,
        ports: spec.ports.iter().map(|&p| (p, wanted)).collect(),
        timeout: spec.timeout,
        interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(40),
        probe: spec.probe,
    };
    let (ports, mut timeline, reached) = if spec.ports.is_empty() {
        (Vec::new(), Vec::new(), None)
    } else {
        let outcome = wait_for(&wait, prober, progress).await?;
        (outcome.ports, outcome.timeline, Some(outcome.reached))
    };
    let icmp = if spec.icmp {
        // ICMP is evidence here, not a requirement: without permission for
        // ping sockets the ports still tell most of the story.
        let (result, what) = match Pinger::new(spec.target) {
            Ok(mut pinger) => {
                let result = pinger.ping(spec.probe.timeout.max(Duration::from_millis(500))).await?;
                let what = format!("ICMP echo: {}", result.evidence);
                (Some(result), what)
            }
            Err(NetError::PermissionDenied { .. }) => {
                (None, "ICMP echo skipped: this user may not open ping sockets".to_string())
            }
            Err(other) => return Err(other),
        };
        let event = TimelineEvent { t_ms: timeline.last().map_or(0, |e| e.t_ms), event: what };
        progress.report(ProgressEvent::Note { kind: TaskKind::NetworkWait, text: event.to_string() });
        timeline.push(event);
        result
    } else {
        None
    };
    let mut service = None;
    if let Some(port) = ports.iter().find(|p| p.state == PortState::Open && spec.ftp_ports.contains(&p.port)) {
        let check =
            check_ftp(spec.target, port.port, &spec.credentials, spec.probe.timeout.max(Duration::from_secs(2))).await;
        let what = match (&check.banner, &check.login) {
            (None, _) => format!("port {}: no FTP greeting", port.port),
            (Some(banner), None) => format!("port {}: greeting `{banner}`", port.port),
            (Some(banner), Some(login)) => {
                format!("port {}: greeting `{banner}`, login {:?} ({})", port.port, login.result, login.reply)
            }
        };
        let event = TimelineEvent { t_ms: timeline.last().map_or(0, |e| e.t_ms), event: what };
        progress.report(ProgressEvent::Note { kind: TaskKind::NetworkWait, text: event.to_string() });
        timeline.push(event);
        service = Some(check);
    }
    let evidence = Evidence {
        icmp: icmp.clone(),
        ports: ports.clone(),
        service: service.clone(),
        ftp_ports: spec.ftp_ports.clone(),
    };
    let finding = diagnose(spec.target, &evidence);
    Ok(NetReport {
        target: spec.target.to_string(),
        method: prober.method(),
        icmp,
        ports,
        service,
        finding,
        timeline,
        reached: spec.wait_until.and(reached),
        console: None,
        addp: None,
    })
}
