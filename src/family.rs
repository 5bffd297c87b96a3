//! The device-family seam: the few questions whose answer depends on what
//! firmware a unit runs, asked of one [`Family`] value (a profile's
//! `family:`, default NET+OS) instead of being spread through generic
//! modules.
//!
//! What a family decides:
//! - how its console reads: the boot-log grammar ([`Family::boot_log`]);
//! - what its console adds to a network diagnosis ([`Family::console_finding`]);
//! - where its banner names the unit: the MAC and serial-number patterns of
//!   a station's arrival ([`Family::identity_patterns`]) and of a run's
//!   report ([`Family::report_identity`]);
//! - whether an image file is sound before it is sent ([`Family::image_check`]);
//! - the FTP logins a unit has from the factory ([`Family::factory_logins`]);
//! - whether a unit that does not answer at its address is looked for over
//!   ADDP ([`Family::asks_addp_for_silent_unit`]).
//!
//! What stays generic (no family in it): the serial port and its line
//! splitting ([`crate::serial::console_lines`]), XMODEM/YMODEM, the expect
//! engine and dialogs, the probes and the network's own findings
//! ([`crate::net::diagnose`]), FTP, ADDP and EXS as protocols, the pipeline,
//! the journal and the reports.
//!
//! Each family is a folder beside this file ([`crate::netos`],
//! [`crate::uboot`]); a new one is a variant here, its arms, and its folder.
//! Pure: no I/O.

use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::net::diagnose::Evidence;
use crate::net::service::Credential;
use crate::netos::boot_header::ImageCheck;
use crate::netos::boot_log::BootLog;
use crate::netos::console_findings::ConsoleVerdict;
use crate::netos::identity::{BannerPatterns, ConsoleIdentity};
use crate::{netos, uboot};

/// The firmware family a unit runs: `netos` (the default) or `uboot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Digi NET+OS (Connect ME 9210 and kin).
    #[default]
    Netos,
    /// A board that boots U-Boot, driven at its prompt with `console_commands`.
    Uboot,
}

impl Family {
    /// True for the default family (serde leaves it out of a shown profile).
    pub fn is_default(&self) -> bool {
        *self == Family::default()
    }

    /// Reads a console capture or transcript with the family's grammar.
    pub fn boot_log(&self, bytes: &[u8]) -> BootLog {
        match self {
            Family::Netos => BootLog::parse(bytes),
            // No U-Boot boot grammar yet: a log of no boots, so the
            // network's finding stands.
            Family::Uboot => BootLog::default(),
        }
    }

    /// The one finding for `evidence` about `target`, with the unit's
    /// console `log` as more evidence (the network's finding when the log
    /// shows no boot).
    pub fn console_finding(&self, target: Ipv4Addr, evidence: &Evidence, log: &BootLog) -> ConsoleVerdict {
        match self {
            Family::Netos => netos::console_findings::diagnose_with_console(target, evidence, log),
            Family::Uboot => {
                ConsoleVerdict { finding: crate::net::diagnose::diagnose(target, evidence), quoted: Vec::new() }
            }
        }
    }

    /// The banner patterns a station recognises a unit by (the defaults of
    /// a station file's `arrival:`).
    pub fn identity_patterns(&self) -> BannerPatterns {
        match self {
            Family::Netos => netos::identity::ARRIVAL,
            Family::Uboot => uboot::identity::ARRIVAL,
        }
    }

    /// The MAC and serial number a run's report takes from the console
    /// transcript.
    pub fn report_identity(&self, console_text: &str) -> ConsoleIdentity {
        match self {
            Family::Netos => netos::identity::report_identity(console_text),
            Family::Uboot => uboot::identity::report_identity(console_text),
        }
    }

    /// Whether a unit that does not answer at its address (host
    /// unreachable) is looked for over ADDP, to tell a wrong address or
    /// subnet from a unit that is not there. NET+OS answers ADDP.
    pub fn asks_addp_for_silent_unit(&self) -> bool {
        match self {
            Family::Netos => true,
            Family::Uboot => false,
        }
    }

    /// Judges an image file before it is sent: NET+OS checks the `bootHdr`
    /// header's length and CRC; a file without the header is not judged.
    pub fn image_check(&self, data: &[u8]) -> ImageCheck {
        match self {
            Family::Netos => netos::boot_header::check(data),
            // Not judged before sending: U-Boot's own `crc32` judges what
            // arrived.
            Family::Uboot => ImageCheck::NoHeader,
        }
    }

    /// The FTP logins a unit has from the factory, in the order to try them.
    pub fn factory_logins(&self) -> Vec<Credential> {
        match self {
            Family::Netos => netos::logins::factory_logins(),
            // U-Boot serves no FTP.
            Family::Uboot => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::diagnose::FindingCode;
    use crate::net::{IcmpResult, IcmpState, PortResult, PortState, Reason, UsedMethod};

    const REAL_74: &str = include_str!("../docs/examples/netos-7.4-boot.log");

    #[test]
    fn netos_is_the_default_and_is_written_netos() {
        assert_eq!(Family::default(), Family::Netos);
        assert_eq!(serde_json::to_string(&Family::Netos).unwrap(), r#""netos""#);
        assert_eq!(serde_json::from_str::<Family>(r#""netos""#).unwrap(), Family::Netos);
        assert_eq!(serde_json::from_str::<Family>(r#""uboot""#).unwrap(), Family::Uboot);
        assert!(serde_json::from_str::<Family>(r#""vxworks""#).is_err());
    }

    #[test]
    fn netos_reads_its_banner_and_names_the_unit() {
        let log = Family::Netos.boot_log(REAL_74.as_bytes());
        assert_eq!(log.application().map(|a| a.name.as_str()), Some("Ram-based FTP Server Application"));
        let identity = Family::Netos.report_identity(REAL_74);
        assert_eq!(identity.mac.as_deref(), Some("00:40:9D:57:2E:44"));
        // The report's serial pattern misses the banner's `serial number is ...`
        // form (pinned in netos::identity); the station's pattern reads it.
        assert_eq!(identity.serial_number, None);
        let patterns = Family::Netos.identity_patterns();
        for pattern in [patterns.banner, patterns.mac, patterns.serial_number] {
            assert!(regex::Regex::new(pattern).unwrap().is_match(REAL_74), "{pattern}");
        }
    }

    #[test]
    fn netos_diagnoses_with_its_console() {
        let target = Ipv4Addr::new(198, 18, 0, 2);
        let closed = Evidence {
            icmp: Some(IcmpResult { state: IcmpState::Reply, rtt: None, evidence: "echo reply".into() }),
            ports: vec![PortResult {
                port: 21,
                state: PortState::Closed,
                reason: Reason::Rst,
                rtt: None,
                evidence: "RST,ACK".into(),
                method: UsedMethod::Syn,
            }],
            service: None,
            ftp_ports: vec![],
        };
        let console = "NET+OS Version 7.4\r\nAPPLICATION: Custom Controller [Mar 2 2024 10:00:00]\r\n\
IP address on LAN is 198.18.0.2\r\nPress any key in 5 seconds to change these settings.\r\n\
Network IP configured.\r\nCLI Started.\r\n";
        let log = Family::Netos.boot_log(console.as_bytes());
        let verdict = Family::Netos.console_finding(target, &closed, &log);
        assert_eq!(verdict.finding.code, FindingCode::AppWithoutFtp);
        assert!(verdict.quoted.iter().any(|line| line.text.contains("Custom Controller")));
        // Without a boot in the log, the network's finding stands.
        let plain = Family::Netos.console_finding(target, &closed, &Family::Netos.boot_log(b""));
        assert_eq!(plain.finding, crate::net::diagnose::diagnose(target, &closed));
    }

    #[test]
    fn uboot_names_the_unit_by_printenv_asks_no_addp_and_leaves_the_network_finding() {
        let transcript = "U-Boot 2023.01+dfsg-2+deb12u3 (Jun 22 2026 - 08:38:07 +0000)\r\n=> printenv ethaddr\r\n\
ethaddr=52:54:00:12:34:56\r\n=> ";
        assert_eq!(Family::Uboot.report_identity(transcript).mac.as_deref(), Some("52:54:00:12:34:56"));
        assert!(regex::Regex::new(Family::Uboot.identity_patterns().banner).unwrap().is_match(transcript));
        assert!(!Family::Uboot.asks_addp_for_silent_unit());
        assert!(Family::Uboot.factory_logins().is_empty());
        // A NET+OS image is sent as it is: U-Boot's crc32 judges it after.
        let image = netos::boot_header::build(&[1u8; 64], 1);
        assert_eq!(Family::Uboot.image_check(&image[..50]), ImageCheck::NoHeader);
        let target = Ipv4Addr::new(198, 18, 0, 2);
        let silent = Evidence { icmp: None, ports: vec![], service: None, ftp_ports: vec![] };
        let verdict = Family::Uboot.console_finding(target, &silent, &Family::Uboot.boot_log(transcript.as_bytes()));
        assert_eq!(verdict.finding, crate::net::diagnose::diagnose(target, &silent));
    }

    #[test]
    fn netos_asks_addp_checks_boot_hdr_and_knows_its_factory_logins() {
        assert!(Family::Netos.asks_addp_for_silent_unit());
        let image = netos::boot_header::build(&[1u8; 64], 1);
        assert!(matches!(Family::Netos.image_check(&image), ImageCheck::Valid { payload_len: 64, .. }));
        assert!(matches!(Family::Netos.image_check(&image[..50]), ImageCheck::Truncated { .. }));
        assert_eq!(Family::Netos.image_check(b"rom.bin"), ImageCheck::NoHeader);
        let users: Vec<_> = Family::Netos.factory_logins().into_iter().map(|c| c.user).collect();
        assert_eq!(users, ["root", "root"]);
    }
}
