//! Evidence (ICMP, port states, what the service said) to one finding, with a
//! plain-language summary and advice from the NET+OS notes.
//!
//! The finding codes are a contract other tools read: `ready`,
//! `host-unreachable`, `icmp-blocked`, `no-listener`, `filtered`, `no-banner`,
//! `service-busy`, `auth-failed`, `address-in-use` (from the address-conflict
//! check, [`address_in_use`]), `wrong-subnet` and `wrong-address` (a unit
//! that does not answer at its address but answers ADDP, [`unit_on_the_wire`]);
//! with the console's evidence, [`crate::netos::console_findings`] adds
//! `app-without-ftp`, `ftp-not-started`, `backup-image`, `address-mismatch`,
//! `in-reset-window` and `still-booting`. Pure: no I/O, so every rule is
//! unit-tested.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::service::{LoginOutcome, ServiceCheck};
use super::{IcmpResult, IcmpState, PortResult, PortState, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    Ready,
    HostUnreachable,
    IcmpBlocked,
    NoListener,
    Filtered,
    NoBanner,
    ServiceBusy,
    AuthFailed,
    /// Another host answered ARP probes for the address a unit was to get.
    AddressInUse,
    // With the console's evidence (`netos::console_findings`):
    /// The application booted, printed no FTP ready line, and port 21 answers RST.
    AppWithoutFtp,
    /// The console says the FTP server did not start.
    FtpNotStarted,
    /// The boot loader ran the backup image or found the main image's CRC wrong.
    BackupImage,
    /// The console shows another address (or DHCP) than the one probed.
    AddressMismatch,
    /// A flash download completed and the unit is resetting.
    InResetWindow,
    /// The banner is there, the network not yet configured.
    StillBooting,
    /// The unit answers ADDP on the wire with an address outside the
    /// station's subnet: IP cannot reach it.
    WrongSubnet,
    /// The unit answers ADDP on the station's subnet, at another address
    /// than the one asked for.
    WrongAddress,
}

impl FindingCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::Ready => "ready",
            FindingCode::HostUnreachable => "host-unreachable",
            FindingCode::IcmpBlocked => "icmp-blocked",
            FindingCode::NoListener => "no-listener",
            FindingCode::Filtered => "filtered",
            FindingCode::NoBanner => "no-banner",
            FindingCode::ServiceBusy => "service-busy",
            FindingCode::AuthFailed => "auth-failed",
            FindingCode::AddressInUse => "address-in-use",
            FindingCode::AppWithoutFtp => "app-without-ftp",
            FindingCode::FtpNotStarted => "ftp-not-started",
            FindingCode::BackupImage => "backup-image",
            FindingCode::AddressMismatch => "address-mismatch",
            FindingCode::InResetWindow => "in-reset-window",
            FindingCode::StillBooting => "still-booting",
            FindingCode::WrongSubnet => "wrong-subnet",
            FindingCode::WrongAddress => "wrong-address",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: FindingCode,
    /// The port the finding is about, when it is about one.
    pub port: Option<u16>,
    pub summary: String,
    pub advice: Vec<String>,
}

/// The finding of an address-conflict check that got an answer: `mac`
/// holds `address`, so giving it to the unit would put two hosts on it.
pub fn address_in_use(address: Ipv4Addr, mac: &str) -> Finding {
    Finding {
        code: FindingCode::AddressInUse,
        port: None,
        summary: format!("{address} is already in use by the host with MAC {mac}: the unit was not configured"),
        advice: vec![
            "give the unit another address (the inventory's `ip`), or free this one on the host that holds it".into(),
            format!("find the holder: `ip neigh | grep -i {mac}`, the switch's MAC table, or the DHCP server's leases"),
            "if that MAC is the unit itself (it already has the address), set the device's `mac` value so the check knows it, or `address_check: {enabled: false}`".into(),
        ],
    }
}

/// The finding for a unit that did not answer at `target` but whose ADDP
/// discovery reply (MAC `mac`) says it is on the wire with `ip` / `mask`;
/// `other_subnet`: that address is outside the subnet of the station's
/// interface it answered on. `None` when the reply explains nothing (the
/// unit has `target` on the station's subnet).
pub fn unit_on_the_wire(
    target: Ipv4Addr,
    mac: &str,
    ip: Ipv4Addr,
    mask: Ipv4Addr,
    other_subnet: bool,
) -> Option<Finding> {
    let set_ip = format!(
        "give it the address it should have: `flashline addp set-ip {mac} --ip {target} --mask MASK`, then `flashline addp reboot {mac}` (the password is its root password)"
    );
    if other_subnet {
        return Some(Finding {
            code: FindingCode::WrongSubnet,
            port: None,
            summary: format!(
                "{target} does not answer, but the unit {mac} is on the wire with address {ip} / mask {mask} (its ADDP reply): that is outside this station's subnet, so IP cannot reach it."
            ),
            advice: vec![
                set_ip,
                "or check the profile or inventory row: the unit may have been set up for another bench's subnet"
                    .into(),
            ],
        });
    }
    (ip != target).then(|| Finding {
        code: FindingCode::WrongAddress,
        port: None,
        summary: format!(
            "{target} does not answer, but the unit {mac} is on the wire at {ip} / mask {mask} (its ADDP reply): it has another address than the one expected."
        ),
        advice: vec![
            set_ip,
            format!("or, if {ip} is right, fix the inventory's `ip` for this unit"),
            "a unit set by DHCP gets its address from the server: look up its lease by MAC".into(),
        ],
    })
}

/// What was observed of one target.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub icmp: Option<IcmpResult>,
    /// Ports in order of importance: the first problem found decides.
    pub ports: Vec<PortResult>,
    /// What the FTP service said, when a port was open and checked.
    pub service: Option<ServiceCheck>,
    /// Ports that are the device's FTP flash server besides 21 (a profile's
    /// `ftp_upload.port`), so a refusal there gets the FTP advice.
    pub ftp_ports: Vec<u16>,
}

/// Decides the one finding for `evidence` about `target`.
///
/// Order: nothing answers at all; then each port in turn (closed, filtered,
/// then what its service said); then ICMP alone; else ready.
pub fn diagnose(target: Ipv4Addr, evidence: &Evidence) -> Finding {
    let pings = evidence.icmp.as_ref().map(|i| i.state == IcmpState::Reply);
    let any_tcp_answer =
        evidence.ports.iter().any(|p| matches!(p.reason, Reason::SynAck | Reason::Rst | Reason::Refused));
    if pings != Some(true) && !any_tcp_answer && (pings.is_some() || !evidence.ports.is_empty()) {
        return host_unreachable(target, evidence);
    }
    for port in &evidence.ports {
        match port.state {
            PortState::Closed => {
                return no_listener(target, port, pings, port.port == 21 || evidence.ftp_ports.contains(&port.port));
            }
            PortState::Filtered => return filtered(target, port, pings),
            PortState::Open => {
                if let Some(service) = evidence.service.as_ref().filter(|s| s.port == port.port)
                    && let Some(finding) = service_problem(target, service)
                {
                    return finding;
                }
            }
        }
    }
    if pings == Some(false) {
        return Finding {
            code: FindingCode::IcmpBlocked,
            port: None,
            summary: format!(
                "{target} answers TCP but not ICMP echo ({}): ping is blocked or disabled on the path or the device, while its services are reachable.",
                evidence.icmp.as_ref().map_or("", |i| i.evidence.as_str())
            ),
            advice: vec![
                "Do not gate on ping for this device: set `icmp: false` in the wait_for_network step and wait for the port instead.".into(),
                "If ping should work, look for a rule dropping ICMP on the station (`nft list ruleset`) or on the path.".into(),
            ],
        };
    }
    ready(target, evidence)
}

fn host_unreachable(target: Ipv4Addr, evidence: &Evidence) -> Finding {
    let icmp =
        evidence.icmp.as_ref().map(|i| format!("ICMP: {}", i.evidence)).unwrap_or_else(|| "ICMP not tried".into());
    Finding {
        code: FindingCode::HostUnreachable,
        port: None,
        summary: format!(
            "Nothing answers at {target}: no echo reply and no TCP answer on any port ({icmp}). The device is not on the network at this address."
        ),
        advice: vec![
            "Check the Ethernet link (cable, switch port, link LED on the device).".into(),
            format!("Check the address the console set (the boot banner's network block shows it): is it {target}?"),
            "Check the device and this station are in the same subnet, or that the device's gateway routes back."
                .into(),
            "Check the device finished booting: the network starts only after the `Press any key` window closes."
                .into(),
        ],
    }
}

fn no_listener(target: Ipv4Addr, port: &PortResult, pings: Option<bool>, is_ftp: bool) -> Finding {
    let ping_part = match pings {
        Some(true) => format!("{target} answers ping, and its"),
        _ => format!("{target}'s"),
    };
    let evidence = match port.reason {
        Reason::Refused => "refused the connection (RST)".to_string(),
        _ => format!("answered the SYN with {}", port.evidence),
    };
    let mut advice = Vec::new();
    if is_ftp {
        advice.extend([
            "The loaded application may be built without the FTP server (the vendor's answer to exactly this report): check the image includes it.".to_string(),
            "The FTP server may have failed to start (the console prints `FTP Server not started`) or may start late: watch the console after boot, or wait longer.".to_string(),
            "The boot loader may be running the backup image (backup.bin), which may lack the service: check the console's APPLICATION: line.".to_string(),
            "Right after a flash download the device resets within 10 seconds: wait for the restart and try again.".to_string(),
            "The application may be stuck before starting its servers while the stack still answers ping: check where the console output stops.".to_string(),
        ]);
    } else {
        advice.push(format!(
            "Nothing listens on port {}: check the service is enabled in the loaded application and has started.",
            port.port
        ));
    }
    Finding {
        code: FindingCode::NoListener,
        port: Some(port.port),
        summary: format!(
            "{ping_part} TCP/IP stack {evidence} on port {}: the stack is up but nothing listens on that port.",
            port.port
        ),
        advice,
    }
}

/// What to try after a refused login. A server that refuses a plain-text
/// login because it wants TLS says so in its reply ("530 Anonymous sessions
/// must use encryption."): then no password will help, and TLS comes first.
fn auth_advice(reply: &str) -> Vec<String> {
    let mut advice = Vec::new();
    let lower = reply.to_ascii_lowercase();
    if ["encrypt", "tls", "ssl"].iter().any(|word| lower.contains(word)) {
        advice.push(format!(
            "The server wants TLS before a login (`{reply}`): use --tls (and --tls-ca for its certificate), or `tls: true` in the profile's ftp_upload step."
        ));
    }
    advice.push("The factory password differs by firmware: root/Netsilicon on NET+OS 6.x, root/password on 7.x; list both as credential candidates.".into());
    advice.push("The root password may have been changed in the console dialog: use the one set there.".into());
    advice
}

fn filtered(target: Ipv4Addr, port: &PortResult, pings: Option<bool>) -> Finding {
    let what = match port.reason {
        Reason::IcmpUnreachable => format!("an ICMP unreachable came back instead ({})", port.evidence),
        _ => format!("no reply at all, not even a RST ({})", port.evidence),
    };
    let ping_part = if pings == Some(true) { format!("{target} answers ping, but ") } else { String::new() };
    Finding {
        code: FindingCode::Filtered,
        port: Some(port.port),
        summary: format!(
            "{ping_part}a SYN to port {} got {what}: a filter or firewall on the path drops it, or the device's reply takes a wrong route.",
            port.port
        ),
        advice: vec![
            "Look for a firewall on this station or the path (`nft list ruleset`, a managed switch ACL).".into(),
            "Check the device's gateway and mask: with a wrong gateway its replies to another subnet are lost.".into(),
            "A capture (`tcpdump -n host <device>`) shows whether the SYN leaves and whether anything comes back."
                .into(),
        ],
    }
}

/// The finding for what an FTP server said (busy, refused login, no
/// greeting), or None when it is serving.
pub fn service_problem(target: Ipv4Addr, service: &ServiceCheck) -> Option<Finding> {
    let port = service.port;
    match (service.banner_code, &service.login) {
        (None, _) => Some(Finding {
            code: FindingCode::NoBanner,
            port: Some(port),
            summary: format!("Port {port} on {target} accepts the connection but sends no FTP greeting."),
            advice: vec![
                "The server may still be starting, or be inside the reset window after a flash download: wait and try again.".into(),
                "The application may be stuck before its FTP server starts, while the stack accepts connections: check where the console output stops.".into(),
                format!("Another service may be listening on port {port}: check which application the device runs."),
            ],
        }),
        (Some(421), _) | (Some(120), _) => Some(Finding {
            code: FindingCode::ServiceBusy,
            port: Some(port),
            summary: format!(
                "The FTP server on {target}:{port} is up but refuses new sessions: `{}`.",
                service.banner.as_deref().unwrap_or("")
            ),
            advice: vec![
                "NET+OS allows two FTP sessions at a time: close other FTP clients (netosprog, a browser, another station).".into(),
                "Sessions left open by a killed client time out after a while: wait, then try again.".into(),
                "Probe with the SYN method while uploading: a connect() probe takes a session.".into(),
            ],
        }),
        (Some(_), Some(login)) if login.result == LoginOutcome::Refused => Some(Finding {
            code: FindingCode::AuthFailed,
            port: Some(port),
            summary: format!(
                "The FTP server on {target}:{port} refused the credentials ({}) for user(s) tried: {}.",
                login.reply,
                login.tried.join(", ")
            ),
            advice: auth_advice(&login.reply),
        }),
        (Some(_), Some(login)) if login.result == LoginOutcome::Error => Some(Finding {
            code: FindingCode::ServiceBusy,
            port: Some(port),
            summary: format!(
                "The FTP server on {target}:{port} greets but does not complete a login ({}): it is up but not serving.",
                login.reply
            ),
            advice: vec![
                "The server may be busy writing flash or about to reset: wait for the device to settle and try again.".into(),
                "Close other FTP clients: NET+OS serves two sessions at a time.".into(),
            ],
        }),
        _ => None,
    }
}

fn ready(target: Ipv4Addr, evidence: &Evidence) -> Finding {
    let ports: Vec<String> = evidence.ports.iter().map(|p| format!("{} open ({})", p.port, p.evidence)).collect();
    let mut summary = if ports.is_empty() {
        format!("{target} answers ping.")
    } else {
        format!("{target}: port {}.", ports.join(", port "))
    };
    if let Some(service) = &evidence.service
        && let Some(banner) = &service.banner
    {
        summary.push_str(&format!(" The FTP server greets `{banner}`"));
        match service.login.as_ref().and_then(|l| l.user.as_ref()) {
            Some(user) => summary.push_str(&format!(" and accepts the login as {user}.")),
            None => summary.push('.'),
        }
    }
    Finding { code: FindingCode::Ready, port: evidence.ports.first().map(|p| p.port), summary, advice: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::UsedMethod;
    use crate::net::service::LoginResult;
    use std::time::Duration;

    const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn icmp(state: IcmpState) -> Option<IcmpResult> {
        Some(IcmpResult { state, rtt: None, evidence: format!("{state:?}") })
    }

    fn port(port: u16, state: PortState, reason: Reason, evidence: &str) -> PortResult {
        PortResult {
            port,
            state,
            reason,
            rtt: Some(Duration::from_micros(210)),
            evidence: evidence.into(),
            method: UsedMethod::Syn,
        }
    }

    fn service(banner_code: Option<u16>, login: Option<LoginOutcome>) -> Option<ServiceCheck> {
        Some(ServiceCheck {
            port: 21,
            banner: banner_code.map(|c| format!("{c} text")),
            banner_code,
            login: login.map(|result| LoginResult {
                result,
                user: (result == LoginOutcome::Accepted).then(|| "root".into()),
                tried: vec!["root".into(), "root".into()],
                reply: "530 Login incorrect.".into(),
            }),
        })
    }

    #[test]
    fn the_forum_case_pings_but_rst_on_21() {
        let evidence = Evidence {
            icmp: icmp(IcmpState::Reply),
            ports: vec![port(21, PortState::Closed, Reason::Rst, "RST,ACK win=0 ttl=64 0.21 ms")],
            service: None,
            ftp_ports: vec![],
        };
        let finding = diagnose(TARGET, &evidence);
        assert_eq!(finding.code, FindingCode::NoListener);
        assert_eq!(finding.port, Some(21));
        assert!(finding.summary.contains("answers ping"));
        assert!(finding.summary.contains("RST,ACK win=0"));
        assert!(finding.advice.iter().any(|a| a.contains("without the FTP server")));
        assert!(finding.advice.iter().any(|a| a.contains("backup image")));
    }

    #[test]
    fn every_code_has_its_evidence() {
        let cases = [
            (
                Evidence {
                    icmp: icmp(IcmpState::Timeout),
                    ports: vec![port(21, PortState::Filtered, Reason::NoResponse, "no answer")],
                    service: None,
                    ftp_ports: vec![],
                },
                FindingCode::HostUnreachable,
            ),
            (
                Evidence {
                    icmp: icmp(IcmpState::Reply),
                    ports: vec![port(21, PortState::Filtered, Reason::NoResponse, "no answer")],
                    service: None,
                    ftp_ports: vec![],
                },
                FindingCode::Filtered,
            ),
            (
                Evidence {
                    icmp: icmp(IcmpState::Timeout),
                    ports: vec![port(21, PortState::Open, Reason::SynAck, "SYN,ACK")],
                    service: service(Some(220), None),
                    ftp_ports: vec![],
                },
                FindingCode::IcmpBlocked,
            ),
            (
                Evidence {
                    icmp: icmp(IcmpState::Reply),
                    ports: vec![port(21, PortState::Open, Reason::SynAck, "SYN,ACK")],
                    service: service(None, None),
                    ftp_ports: vec![],
                },
                FindingCode::NoBanner,
            ),
            (
                Evidence {
                    icmp: icmp(IcmpState::Reply),
                    ports: vec![port(21, PortState::Open, Reason::SynAck, "SYN,ACK")],
                    service: service(Some(421), None),
                    ftp_ports: vec![],
                },
                FindingCode::ServiceBusy,
            ),
            (
                Evidence {
                    icmp: icmp(IcmpState::Reply),
                    ports: vec![port(21, PortState::Open, Reason::SynAck, "SYN,ACK")],
                    service: service(Some(220), Some(LoginOutcome::Refused)),
                    ftp_ports: vec![],
                },
                FindingCode::AuthFailed,
            ),
            (
                Evidence {
                    icmp: icmp(IcmpState::Reply),
                    ports: vec![port(21, PortState::Open, Reason::SynAck, "SYN,ACK")],
                    service: service(Some(220), Some(LoginOutcome::Accepted)),
                    ftp_ports: vec![],
                },
                FindingCode::Ready,
            ),
            (
                Evidence { icmp: icmp(IcmpState::Unreachable), ports: vec![], service: None, ftp_ports: vec![] },
                FindingCode::HostUnreachable,
            ),
            (
                Evidence { icmp: icmp(IcmpState::Reply), ports: vec![], service: None, ftp_ports: vec![] },
                FindingCode::Ready,
            ),
        ];
        for (evidence, code) in cases {
            let finding = diagnose(TARGET, &evidence);
            assert_eq!(finding.code, code, "{evidence:?} -> {finding:?}");
            assert!(!finding.summary.is_empty());
            if code != FindingCode::Ready {
                assert!(!finding.advice.is_empty(), "{code:?} gives advice");
            }
        }
    }

    #[test]
    fn auth_failure_names_users_not_passwords() {
        let evidence = Evidence {
            icmp: icmp(IcmpState::Reply),
            ports: vec![port(21, PortState::Open, Reason::SynAck, "SYN,ACK")],
            service: service(Some(220), Some(LoginOutcome::Refused)),
            ftp_ports: vec![],
        };
        let finding = diagnose(TARGET, &evidence);
        assert!(finding.summary.contains("user(s) tried: root, root"));
        assert!(finding.advice[0].contains("Netsilicon"), "advice names the public factory defaults");
    }

    #[test]
    fn a_login_refused_for_want_of_tls_says_use_tls_first() {
        let mut service = service(Some(220), Some(LoginOutcome::Refused));
        if let Some(login) = service.as_mut().and_then(|s| s.login.as_mut()) {
            login.reply = "530 Anonymous sessions must use encryption.".into();
        }
        let evidence = Evidence {
            icmp: icmp(IcmpState::Reply),
            ports: vec![port(21, PortState::Open, Reason::SynAck, "SYN,ACK")],
            service,
            ftp_ports: vec![],
        };
        let finding = diagnose(TARGET, &evidence);
        assert_eq!(finding.code, FindingCode::AuthFailed);
        assert_eq!(
            finding.advice[0],
            "The server wants TLS before a login (`530 Anonymous sessions must use encryption.`): use --tls (and --tls-ca for its certificate), or `tls: true` in the profile's ftp_upload step."
        );
    }

    #[test]
    fn addp_replies_explain_a_silent_unit() {
        let target = Ipv4Addr::new(198, 18, 0, 5);
        let mask = Ipv4Addr::new(255, 255, 255, 248);
        let mac = "00:40:9d:31:41:59";
        let elsewhere = unit_on_the_wire(target, mac, Ipv4Addr::new(10, 0, 0, 231), mask, true).unwrap();
        assert_eq!(elsewhere.code.as_str(), "wrong-subnet");
        assert!(elsewhere.summary.contains("address 10.0.0.231 / mask 255.255.255.248"), "{}", elsewhere.summary);
        assert!(elsewhere.advice[0].contains("flashline addp set-ip 00:40:9d:31:41:59 --ip 198.18.0.5"));
        let moved = unit_on_the_wire(target, mac, Ipv4Addr::new(198, 18, 0, 2), mask, false).unwrap();
        assert_eq!(moved.code, FindingCode::WrongAddress);
        assert!(moved.summary.contains("at 198.18.0.2"), "{}", moved.summary);
        assert_eq!(unit_on_the_wire(target, mac, target, mask, false), None);
    }
}
