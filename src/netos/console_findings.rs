//! The diagnosis with a NET+OS unit's console as evidence: the network
//! finding of [`crate::net::diagnose`] and a [`BootLog`] of the unit's
//! console together name the cause, quoting the console lines next to the
//! packet evidence. The finding codes are the generic contract's
//! ([`FindingCode`]); which console lines mean which code is NET+OS's.
//!
//! The codes it adds to the contract: `in-reset-window`,
//! `address-mismatch`, `backup-image`, `still-booting`, `ftp-not-started`,
//! `app-without-ftp`. A `ready` network finding stays `ready`, and a log
//! without a boot in it changes nothing: without console evidence the
//! findings are the network's. Pure: no I/O.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::net::PortState;
use crate::net::diagnose::{Evidence, Finding, FindingCode, diagnose};
use crate::netos::boot_log::{AddressSource, Boot, BootLog, LineKind, LogLine, NetworkBlock};

/// A finding decided with the console's help, and the console lines it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsoleVerdict {
    pub finding: Finding,
    /// The console lines quoted in the finding, in log order.
    pub quoted: Vec<LogLine>,
}

/// Decides the one finding for `evidence` about `target` with `log`, the
/// unit's console. Order: a reset in progress, another address, the backup
/// image, a boot not finished, the FTP server not started, an application
/// without FTP; else the network's finding.
pub fn diagnose_with_console(target: Ipv4Addr, evidence: &Evidence, log: &BootLog) -> ConsoleVerdict {
    let network = diagnose(target, evidence);
    let Some(boot) = log.last_boot() else {
        return ConsoleVerdict { finding: network, quoted: Vec::new() };
    };
    if network.code == FindingCode::Ready {
        return ConsoleVerdict { finding: network, quoted: Vec::new() };
    }
    let reading = Reading { target, evidence, log, boot, packets: packet_evidence(target, evidence), network };
    reading
        .in_reset_window()
        .or_else(|| reading.address_mismatch())
        .or_else(|| reading.backup_image())
        .or_else(|| reading.still_booting())
        .or_else(|| reading.ftp_not_started())
        .or_else(|| reading.app_without_ftp())
        .unwrap_or_else(|| reading.network_stands())
}

/// One diagnosis in progress: the evidence, the console's last boot, and
/// the network's finding; each rule below gives its verdict or None.
struct Reading<'a> {
    target: Ipv4Addr,
    evidence: &'a Evidence,
    log: &'a BootLog,
    boot: &'a Boot,
    /// What the packets showed, for the summaries.
    packets: String,
    network: Finding,
}

impl Reading<'_> {
    fn verdict(&self, code: FindingCode, lines: &[usize], summary: String, advice: Vec<String>) -> ConsoleVerdict {
        let mut lines = lines.to_vec();
        lines.sort_unstable();
        lines.dedup();
        ConsoleVerdict {
            finding: Finding { code, port: self.network.port, summary, advice },
            quoted: lines.iter().map(|&i| self.log.line(i).clone()).collect(),
        }
    }

    fn quote(&self, index: usize) -> String {
        self.log.line(index).quote()
    }

    fn quotes(&self, lines: &[usize]) -> String {
        lines.iter().map(|&i| self.quote(i)).collect::<Vec<String>>().join("; ")
    }

    fn in_reset_window(&self) -> Option<ConsoleVerdict> {
        let (boot, packets) = (self.boot, &self.packets);
        let line = boot.resetting.or(boot.flash_complete)?;
        let lines: Vec<usize> = [boot.flash_complete, boot.resetting].into_iter().flatten().collect();
        let wait = match &self.log.line(line).kind {
            LineKind::Resetting(Some(seconds)) => format!("{seconds} seconds"),
            _ => "about 10 seconds".into(),
        };
        Some(self.verdict(
            FindingCode::InResetWindow,
            &lines,
            format!(
                "{packets}. The console shows a flash download completed and the unit resetting ({}), with no boot banner since: it is inside its reset window.",
                self.quotes(&lines)
            ),
            vec![
                format!("Wait for the reset ({wait}) and the next boot's banner, then try again; do not power the unit off while it writes flash."),
                "If no banner follows, watch the console: the boot loader may report the new image (CRC, backup image) or fall into serial recovery.".into(),
            ],
        ))
    }

    fn address_mismatch(&self) -> Option<ConsoleVerdict> {
        let (target, packets) = (self.target, &self.packets);
        let (lines, shown) = other_address(target, self.log, self.boot)?;
        Some(self.verdict(
            FindingCode::AddressMismatch,
            &lines,
            format!(
                "{packets}. The console shows the unit on {shown}, not {target} ({}): the probe went to the wrong address.",
                self.quotes(&lines)
            ),
            vec![
                format!("Probe the address the console shows, or set {target} in the console dialog (`configure_network`)."),
                "With DHCP on, the server decides the address: turn DHCP off in the dialog for a fixed one, or reserve the unit's MAC on the DHCP server.".into(),
            ],
        ))
    }

    fn backup_image(&self) -> Option<ConsoleVerdict> {
        let (boot, packets) = (self.boot, &self.packets);
        if boot.backup_image.is_none() && boot.crc_failed.is_none() {
            return None;
        }
        let lines: Vec<usize> = [boot.crc_failed, boot.backup_image, boot.application].into_iter().flatten().collect();
        Some(self.verdict(
            FindingCode::BackupImage,
            &lines,
            format!(
                "{packets}. The console shows the boot loader rejected the main image or ran the backup image ({}): the services are the backup application's, which may lack them.",
                self.quotes(&lines)
            ),
            vec![
                "Load image.bin again (serial recovery with `load_image`, or FTP if the backup serves it) and check the file first: flashline checks its bootHdr length and CRC before sending.".into(),
                "A download interrupted while flash was written leaves a main image with a wrong CRC: keep the unit powered until the console shows the reset after `FTP: Flash download complete.`".into(),
            ],
        ))
    }

    fn still_booting(&self) -> Option<ConsoleVerdict> {
        let (boot, log, packets) = (self.boot, self.log, &self.packets);
        // Still booting only when the banner was seen: a log that starts after
        // it (say, only `FTP Server not started`) is judged by its own lines.
        let banner_seen = boot.version.is_some() || boot.key_window.is_some();
        if !(banner_seen && boot.network_configured.is_none() && boot.addresses.is_empty() && boot.ftp_ready.is_none())
        {
            return None;
        }
        let last = log.lines.iter().rposition(|l| !l.text.trim().is_empty()).unwrap_or(boot.first_line);
        let lines: Vec<usize> = [boot.version, boot.key_window, Some(last)].into_iter().flatten().collect();
        let window = boot.key_window.map(|i| self.quote(i)).unwrap_or_else(|| "no `Press any key` line yet".into());
        Some(self.verdict(
            FindingCode::StillBooting,
            &lines,
            format!(
                "{packets}. The console shows the boot banner but no `Network IP configured.` line: the unit is still booting ({window}; the log ends at {}).",
                self.quote(last)
            ),
            vec![
                "Wait: the network starts only after the `Press any key` window closes, and DHCP can take seconds more.".into(),
                "If the console stays at that line, the application is stuck before starting its network, or a byte on the console holds it in the dialog: check nothing else writes to the console port.".into(),
            ],
        ))
    }

    fn ftp_not_started(&self) -> Option<ConsoleVerdict> {
        let (boot, packets) = (self.boot, &self.packets);
        let not_started = boot.ftp_not_started?;
        let lines: Vec<usize> = [boot.application, Some(not_started)].into_iter().flatten().collect();
        Some(self.verdict(
            FindingCode::FtpNotStarted,
            &lines,
            format!("{packets}. The console says the FTP server did not start ({}).", self.quote(not_started)),
            vec![
                "NET+OS prints `FTP Server not started` when it cannot read the flash sector sizes: check the platform's flash table matches the module's flash.".into(),
                "Power-cycle the unit and watch the console; if the line repeats, load a known good image by serial recovery.".into(),
            ],
        ))
    }

    fn app_without_ftp(&self) -> Option<ConsoleVerdict> {
        let (boot, network, packets) = (self.boot, &self.network, &self.packets);
        let ftp_port = network.code == FindingCode::NoListener
            && network.port.is_some_and(|p| p == 21 || self.evidence.ftp_ports.contains(&p));
        if !(ftp_port && boot.ftp_ready.is_none() && boot.application.is_some()) {
            return None;
        }
        let application = self.log.application().map(|a| a.name.clone()).unwrap_or_default();
        let lines: Vec<usize> =
            [boot.application, boot.network_configured, boot.addresses.last().copied()].into_iter().flatten().collect();
        Some(self.verdict(
            FindingCode::AppWithoutFtp,
            &lines,
            format!(
                "{packets}. The console shows the application `{application}` booted and its network up ({}), and no `FTP download server is ready.` line: this application runs without the FTP server.",
                self.quotes(&lines)
            ),
            vec![
                format!("`{application}` was built without the FTP server (the vendor's answer to exactly this report): load an image that includes it, or load images by serial recovery instead."),
                "If the server should start later, watch the console for `FTP download server is ready.` and probe again after it.".into(),
            ],
        ))
    }

    /// The console explains nothing more: the network's finding stands, with
    /// the application named so the reader knows what was running.
    fn network_stands(self) -> ConsoleVerdict {
        let (boot, log, target) = (self.boot, self.log, self.target);
        let mut finding = self.network;
        let mut quoted = Vec::new();
        if let Some(application) = boot.application {
            finding.advice.push(format!("The console shows {}.", log.line(application).quote()));
            quoted.push(log.line(application).clone());
        }
        if let Some(ready) = boot.ftp_ready {
            finding.advice.push(format!(
                "The console says the FTP server started ({}): if the port still refuses, another host may hold {target}.",
                log.line(ready).quote()
            ));
            quoted.push(log.line(ready).clone());
        }
        ConsoleVerdict { finding, quoted }
    }
}

/// The address the console gives the unit when it is not `target`: the
/// lines that show it and how to name it.
fn other_address(target: Ipv4Addr, log: &BootLog, boot: &Boot) -> Option<(Vec<usize>, String)> {
    let addresses = log.addresses();
    if addresses.iter().any(|&(_, a)| a == target) {
        return None;
    }
    match log.network()? {
        NetworkBlock::Static { ip, .. } if ip != target => Some((boot.network.clone(), ip.to_string())),
        NetworkBlock::Static { .. } => None,
        NetworkBlock::Dhcp => {
            let mut lines = boot.network.clone();
            lines.extend(&boot.addresses);
            let got: Vec<String> = addresses
                .iter()
                .map(|(source, address)| match source {
                    AddressSource::Dhcp => format!("{address} (DHCP)"),
                    AddressSource::Autoip => format!("{address} (AUTOIP)"),
                    AddressSource::Unstated => address.to_string(),
                })
                .collect();
            if !got.is_empty() {
                Some((lines, got.join(" and ")))
            } else if boot.network_configured.is_some() {
                lines.extend(boot.network_configured);
                Some((lines, "an address from DHCP (the console does not print which)".into()))
            } else {
                None // still asking DHCP: the boot is not finished
            }
        }
    }
}

/// What the packets showed, for the summary: ping and the first port's answer.
fn packet_evidence(target: Ipv4Addr, evidence: &Evidence) -> String {
    let ping = match &evidence.icmp {
        Some(icmp) => format!("ICMP echo: {}", icmp.evidence),
        None => "ICMP not tried".into(),
    };
    match evidence.ports.first() {
        Some(port) => {
            let state = match port.state {
                PortState::Open => "open",
                PortState::Closed => "closed",
                PortState::Filtered => "filtered",
            };
            format!("{target}: {ping}; port {} {state}: {}", port.port, port.evidence)
        }
        None => format!("{target}: {ping}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{IcmpResult, IcmpState, PortResult, Reason, UsedMethod};
    use std::time::Duration;

    const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn evidence(pings: bool, state: PortState) -> Evidence {
        let reason = match state {
            PortState::Open => Reason::SynAck,
            PortState::Closed => Reason::Rst,
            PortState::Filtered => Reason::NoResponse,
        };
        Evidence {
            icmp: Some(IcmpResult {
                state: if pings { IcmpState::Reply } else { IcmpState::Timeout },
                rtt: None,
                evidence: if pings { "echo reply ttl=64 0.08 ms".into() } else { "no reply".into() },
            }),
            ports: vec![PortResult {
                port: 21,
                state,
                reason,
                rtt: Some(Duration::from_micros(200)),
                evidence: match state {
                    PortState::Closed => "RST,ACK win=0 ttl=64 0.20 ms".into(),
                    PortState::Open => "SYN,ACK".into(),
                    PortState::Filtered => "no answer".into(),
                },
                method: UsedMethod::Syn,
            }],
            service: None,
            ftp_ports: vec![],
        }
    }

    const BANNER: &str = "NET+OS Version 7.4\r\nPLATFORM: connectme9210 2M/8M [Sep 19 2008 12:23:35]\r\n\
APPLICATION: Custom Controller [Mar 2 2024 10:00:00]\r\nNETWORK INTERFACE PARAMETERS:\r\n\
IP address on LAN is 198.18.0.2\r\nLAN interface's subnet mask is 255.255.0.0\r\n\
IP address of default gateway to other networks is 198.18.0.1\r\n\
Press any key in 5 seconds to change these settings.\r\n";

    fn log(after: &str) -> BootLog {
        BootLog::parse(format!("{BANNER}{after}").as_bytes())
    }

    #[test]
    fn each_code_from_its_console() {
        let closed = evidence(true, PortState::Closed);
        let down = evidence(false, PortState::Filtered);
        let cases = [
            (&closed, "Network IP configured.\r\nCLI Started.\r\n", FindingCode::AppWithoutFtp, "Custom Controller"),
            (
                &closed,
                "Network IP configured.\r\nFTP Server not started\r\n",
                FindingCode::FtpNotStarted,
                "FTP Server not started",
            ),
            (&down, "", FindingCode::StillBooting, "Press any key"),
            (
                &closed,
                "Network IP configured.\r\nFTP download server is ready.\r\nFTP: Flash download complete.\r\nResetting system in 10 seconds.\r\n",
                FindingCode::InResetWindow,
                "Resetting system in 10 seconds.",
            ),
        ];
        for (evidence, after, code, quoted) in cases {
            let verdict = diagnose_with_console(TARGET, evidence, &log(after));
            assert_eq!(verdict.finding.code, code, "{after:?}: {:?}", verdict.finding);
            assert!(verdict.finding.summary.contains(quoted), "{}", verdict.finding.summary);
            assert!(verdict.quoted.iter().any(|l| l.text.contains(quoted)));
            assert!(!verdict.finding.advice.is_empty());
        }
        let app = diagnose_with_console(TARGET, &closed, &log("Network IP configured.\r\n"));
        assert!(app.finding.summary.contains("RST,ACK win=0"), "packet evidence next to the console's");
        assert_eq!(app.finding.port, Some(21));
    }

    #[test]
    fn the_backup_image_and_a_crc_failure() {
        let closed = evidence(true, PortState::Closed);
        for loader in ["image.bin failed its CRC check: running backup.bin\r\n", "Image CRC error\r\n"] {
            let text = format!("{loader}{BANNER}Network IP configured.\r\n");
            let verdict = diagnose_with_console(TARGET, &closed, &BootLog::parse(text.as_bytes()));
            assert_eq!(verdict.finding.code, FindingCode::BackupImage, "{loader}");
            assert_eq!(verdict.quoted[0].number, 1);
        }
    }

    #[test]
    fn another_address_static_dhcp_or_unsaid() {
        let down = evidence(false, PortState::Filtered);
        let other = BANNER.replace("198.18.0.2", "198.18.7.7");
        let verdict = diagnose_with_console(TARGET, &down, &BootLog::parse(other.as_bytes()));
        assert_eq!(verdict.finding.code, FindingCode::AddressMismatch);
        assert!(verdict.finding.summary.contains("on 198.18.7.7, not 198.18.0.2"), "{}", verdict.finding.summary);

        let dhcp = "NET+OS Version 7.4\nThe board will obtain IP configuration parameters from the network.\n\
Press any key in 5 seconds to change these settings.\nIAM:Got DHCP IPv4 address 192.168.1.152 on interface eth0\n\
Network IP configured.\n";
        let verdict = diagnose_with_console(TARGET, &down, &BootLog::parse(dhcp.as_bytes()));
        assert_eq!(verdict.finding.code, FindingCode::AddressMismatch);
        assert!(verdict.finding.summary.contains("192.168.1.152 (DHCP)"));
        let same = dhcp.replace("192.168.1.152", "198.18.0.2");
        let verdict = diagnose_with_console(TARGET, &down, &BootLog::parse(same.as_bytes()));
        assert_ne!(verdict.finding.code, FindingCode::AddressMismatch, "DHCP gave the probed address");

        let unsaid = dhcp.replace("IAM:Got DHCP IPv4 address 192.168.1.152 on interface eth0\n", "");
        let verdict = diagnose_with_console(TARGET, &down, &BootLog::parse(unsaid.as_bytes()));
        assert_eq!(verdict.finding.code, FindingCode::AddressMismatch);
        let asking = unsaid.replace("Network IP configured.\n", "");
        let verdict = diagnose_with_console(TARGET, &down, &BootLog::parse(asking.as_bytes()));
        assert_eq!(verdict.finding.code, FindingCode::StillBooting, "DHCP not answered yet");
    }

    #[test]
    fn without_console_evidence_the_network_finding_stands() {
        let closed = evidence(true, PortState::Closed);
        let plain = diagnose(TARGET, &closed);
        assert_eq!(diagnose_with_console(TARGET, &closed, &BootLog::parse(b"")).finding, plain);
        assert_eq!(diagnose_with_console(TARGET, &closed, &BootLog::parse(b"noise\n\xff\xfe\n")).finding, plain);
        let open = evidence(true, PortState::Open);
        let verdict = diagnose_with_console(TARGET, &open, &log("Network IP configured.\r\n"));
        assert_eq!(verdict.finding.code, FindingCode::Ready);
        // FTP said ready yet the port refuses: the network finding, with the console quoted.
        let verdict =
            diagnose_with_console(TARGET, &closed, &log("Network IP configured.\r\nFTP download server is ready.\r\n"));
        assert_eq!(verdict.finding.code, FindingCode::NoListener);
        assert!(verdict.finding.advice.iter().any(|a| a.contains("FTP download server is ready.")));
    }
}
