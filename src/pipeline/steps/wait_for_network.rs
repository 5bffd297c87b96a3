//! `wait_for_network`: poll ICMP and the ports until each reaches its
//! wanted state (`net::wait`). On timeout the evidence becomes a finding:
//! with the console's boot log when the unit's console is held (it names
//! the cause where the network alone cannot), and, for a silent unit whose
//! MAC is known, what ADDP hears of it on the wire (when the profile's
//! family answers ADDP). The family reads the console and decides.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{StepContext, StepDone, StepError};
use crate::net::ProbeOptions;
use crate::net::Prober;
use crate::net::arp::Mac;
use crate::net::diagnose::{Evidence, Finding, FindingCode, diagnose};
use crate::net::wait::{WaitSpec, wait_for};
use crate::profile::WaitForNetwork;
use crate::serial::console::Console;
use crate::serial::port::Port;

pub async fn run(step: &WaitForNetwork, cx: &mut StepContext<'_>) -> Result<StepDone, StepError> {
    let host = cx.target(step.host.as_ref())?;
    let prober = Prober::new(step.method)?;
    let spec = wait_spec(step, host);
    let outcome = wait_for(&spec, &prober, cx.progress).await?;
    if outcome.reached {
        return Ok(StepDone::passed(format!("up after {} ms", outcome.elapsed.as_millis())));
    }
    let evidence = Evidence {
        icmp: outcome.icmp.clone(),
        ports: outcome.ports.clone(),
        service: None,
        ftp_ports: cx.profile.ftp_ports(),
    };
    let family = cx.profile.family;
    let mut finding = match cx.console.as_mut() {
        // The console steps' boot log (and what the unit printed since)
        // names the cause where the network alone cannot.
        Some(console) => {
            drain_console(console).await;
            let log = family.boot_log(console.transcript().render().as_bytes());
            family.console_finding(host, &evidence, &log).finding
        }
        None => diagnose(host, &evidence),
    };
    if finding.code == FindingCode::HostUnreachable
        && family.asks_addp_for_silent_unit()
        && let Some(mac) = cx.unit_mac()
        && let Some(on_the_wire) = locate_by_addp(host, mac).await
    {
        finding = on_the_wire;
    }
    Err(StepError::NotReached { host, timeout_ms: spec.timeout.as_millis(), finding })
}

/// The wait a step asks for, aimed at `target` (the step's resolved
/// `host`, or the profile's `network.ip`).
fn wait_spec(step: &WaitForNetwork, target: Ipv4Addr) -> WaitSpec {
    WaitSpec {
        target,
        icmp: step.icmp,
        ports: step.ports.iter().map(|p| (p.port, p.state)).collect(),
        timeout: step.timeout.0,
        interval: step.interval.0,
        max_interval: step.max_interval.0,
        probe: ProbeOptions::default(),
    }
}

/// A unit that does not answer at `host` but whose MAC is known (the
/// inventory's `mac`): asked by ADDP, its reply may show it on the wire at
/// another address (`wrong-address`) or on another subnet (`wrong-subnet`).
async fn locate_by_addp(host: Ipv4Addr, mac: Mac) -> Option<Finding> {
    crate::addp::client::locate(host, mac).await.ok()??.finding_at(host, &mac.to_string())
}

/// Reads what the unit printed since the last console step into the
/// transcript: until 100 ms pass quietly, at most 64 reads.
async fn drain_console(console: &mut Console<Port>) {
    for _ in 0..64 {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        if !matches!(console.read_chunk(deadline, "the unit's boot lines").await, Ok(Some(_))) {
            return;
        }
    }
}
