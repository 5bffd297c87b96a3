//! Reads NET+OS console output (a raw capture or a flashline transcript)
//! into a [`BootLog`]: every line with its time and what it says, and the
//! facts of the last boot (version, PLATFORM, APPLICATION, the network
//! block, MAC, serial number, start-up delay, and what the application
//! printed after the `Press any key` window).
//!
//! Pure: bytes in, a value out, no I/O. Feed it in pieces with
//! [`BootLogReader::feed`] (a live console) or all at once with
//! [`BootLog::parse`] (a saved file). Cutting the bytes into lines with
//! their times (and a transcript's marks) is generic and lives in
//! [`crate::serial::console_lines`]; this module only reads them. Unknown
//! lines are kept as [`LineKind::Other`]; nothing here is an error, because
//! a console log is whatever the unit printed, noise included.
//!
//! The banner wording is confirmed from real NET+OS 7.4 and 7.4.2 boots and
//! the NET+OS 5.0 manuals (docs/netos.md). The texts of the boot loader's
//! backup-image and CRC messages and of the reset line are not published:
//! they are matched by tolerant substrings (`backup` with `image`/`.bin`,
//! `CRC` with `fail`/`bad`/`error`, `reset` as a word at the start) so a
//! different wording still counts.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use crate::serial::console_lines::{ConsoleLine, LineReader};

/// What one console line says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum LineKind {
    /// `NET+OS Version 7.4` (7.4.2 prints the copyright on the same line).
    Version(String),
    /// `PLATFORM: connectme9210 2M/8M [Sep 19 2008 12:23:35]`.
    Platform(Labelled),
    /// `APPLICATION: Ram-based FTP Server Application [Sep 19 2008 14:38:08]`.
    Application(Labelled),
    /// `The board will obtain IP configuration parameters from the network.`
    DhcpConfigured,
    /// `IP address on LAN is 132.74.179.148`.
    StaticIp(Ipv4Addr),
    /// `LAN interface's subnet mask is 255.255.255.0`.
    SubnetMask(Ipv4Addr),
    /// `IP address of default gateway to other networks is 132.74.179.1`.
    Gateway(Ipv4Addr),
    /// `This board's serial number is N99999999` (may be empty).
    SerialNumber(String),
    /// `This board's Ethernet MAC Address is 00:40:9D:57:2E:44`.
    Mac(String),
    /// `After board is reset, start-up code will wait 5 seconds`.
    StartupDelay(u32),
    /// `Press any key in 5 seconds to change these settings.`
    KeyWindow(u32),
    /// An address the application got: `IAM:Got DHCP IPv4 address ...`,
    /// `... AUTOIP ...`, or a plain `IP address is ...`.
    Address { source: AddressSource, address: Ipv4Addr },
    /// `Network IP configured.`
    NetworkConfigured,
    /// `CLI Started.`
    CliStarted,
    /// `FTP download server is ready.`
    FtpReady,
    /// `FTP Server not started` (with or without a reason after it).
    FtpNotStarted,
    /// `FTP: Flash download complete.`
    FlashDownloadComplete,
    /// `Resetting system in 10 seconds.`, `Resetting...` (the seconds when given).
    Resetting(Option<u32>),
    /// `Starting TFTP recovery...`
    TftpRecovery,
    /// `Starting serial recovery...`
    SerialRecovery,
    /// The boot loader runs the backup image (`backup.bin`).
    BackupImage,
    /// The boot loader found the main image's CRC wrong.
    ImageCrcFailed,
    /// A line sent by us or a note in a flashline transcript: not the console's.
    Ours,
    /// Anything else (kept as it was printed).
    Other,
}

/// A `NAME [build date]` value, as PLATFORM and APPLICATION print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Labelled {
    pub name: String,
    pub build: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressSource {
    Dhcp,
    Autoip,
    /// A line naming the address without saying where it came from.
    Unstated,
}

/// One console line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// 1-based line number in the input.
    pub number: usize,
    /// Since the capture started, when the input carries times (a
    /// transcript, or a live console).
    #[serde(serialize_with = "seconds")]
    pub at: Option<Duration>,
    /// The text, CR dropped, control bytes as `\xNN`.
    pub text: String,
    /// False for a last line cut before its end: its facts are not used.
    pub complete: bool,
    #[serde(flatten)]
    pub kind: LineKind,
}

fn seconds<S: serde::Serializer>(at: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_some(&((at.as_secs_f64() * 1000.0).round() / 1000.0)),
        None => serializer.serialize_none(),
    }
}

impl LogLine {
    /// `line 12 (at 3.204 s): "text"`: how findings quote it.
    pub fn quote(&self) -> String {
        let mut out = format!("line {}", self.number);
        if let Some(at) = self.at {
            let _ = write!(out, " at {:.3} s", at.as_secs_f64());
        }
        let _ = write!(out, ": `{}`", self.text.trim());
        out
    }
}

/// The network block of the banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum NetworkBlock {
    Dhcp,
    Static { ip: Ipv4Addr, mask: Option<Ipv4Addr>, gateway: Option<Ipv4Addr> },
}

/// The facts of one boot: indexes into [`BootLog::lines`] for the lines that
/// said them, so a finding can quote the console.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Boot {
    /// The line the boot starts at (a boot loader line or the version line).
    pub first_line: usize,
    pub version: Option<usize>,
    pub platform: Option<usize>,
    pub application: Option<usize>,
    /// The network block's lines (DHCP, or the static address).
    pub network: Vec<usize>,
    pub mac: Option<usize>,
    pub serial_number: Option<usize>,
    pub startup_delay: Option<usize>,
    pub key_window: Option<usize>,
    /// Address lines after the window (DHCP, AUTOIP, plain).
    pub addresses: Vec<usize>,
    pub network_configured: Option<usize>,
    pub cli_started: Option<usize>,
    pub ftp_ready: Option<usize>,
    pub ftp_not_started: Option<usize>,
    pub flash_complete: Option<usize>,
    pub resetting: Option<usize>,
    pub recovery: Option<usize>,
    pub backup_image: Option<usize>,
    pub crc_failed: Option<usize>,
}

/// A console log: its lines and the boots found in them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BootLog {
    pub lines: Vec<LogLine>,
    /// Each boot in order; the last is what the unit is doing now.
    pub boots: Vec<Boot>,
}

impl BootLog {
    /// Reads a whole capture or transcript.
    pub fn parse(bytes: &[u8]) -> BootLog {
        let mut reader = BootLogReader::default();
        reader.feed(None, bytes);
        reader.finish()
    }

    /// The last boot, if the log shows any.
    pub fn last_boot(&self) -> Option<&Boot> {
        self.boots.last()
    }

    pub fn line(&self, index: usize) -> &LogLine {
        &self.lines[index]
    }

    /// The network block of the last boot, from the banner.
    pub fn network(&self) -> Option<NetworkBlock> {
        let boot = self.last_boot()?;
        let mut ip = None;
        let (mut mask, mut gateway) = (None, None);
        for &index in &boot.network {
            match self.lines[index].kind {
                LineKind::DhcpConfigured => return Some(NetworkBlock::Dhcp),
                LineKind::StaticIp(a) => ip = Some(a),
                LineKind::SubnetMask(a) => mask = Some(a),
                LineKind::Gateway(a) => gateway = Some(a),
                _ => {}
            }
        }
        ip.map(|ip| NetworkBlock::Static { ip, mask, gateway })
    }

    /// The application's name in the last boot.
    pub fn application(&self) -> Option<&Labelled> {
        match &self.lines[self.last_boot()?.application?].kind {
            LineKind::Application(app) => Some(app),
            _ => None,
        }
    }

    /// The addresses the last boot's application reported after the window.
    pub fn addresses(&self) -> Vec<(AddressSource, Ipv4Addr)> {
        self.last_boot()
            .map(|boot| {
                boot.addresses
                    .iter()
                    .filter_map(|&i| match self.lines[i].kind {
                        LineKind::Address { source, address } => Some((source, address)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Reads console output in pieces (a live console) into a [`BootLog`].
#[derive(Debug, Default)]
pub struct BootLogReader {
    log: BootLog,
    lines: LineReader,
}

impl BootLogReader {
    /// Adds bytes received at `at` (None for a file without times).
    pub fn feed(&mut self, at: Option<Duration>, bytes: &[u8]) {
        let log = &mut self.log;
        self.lines.feed(at, bytes, |line| log.push(line));
    }

    /// The log so far (complete lines only).
    pub fn log(&self) -> &BootLog {
        &self.log
    }

    /// Ends the input: a pending line is kept, marked incomplete.
    pub fn finish(mut self) -> BootLog {
        if let Some(line) = self.lines.finish() {
            self.log.push(line);
        }
        self.log
    }
}

impl BootLog {
    fn push(&mut self, line: ConsoleLine) {
        let kind = if line.ours {
            LineKind::Ours
        } else if line.complete {
            classify(line.text.trim())
        } else {
            LineKind::Other
        };
        let index = self.lines.len();
        self.lines.push(LogLine { number: index + 1, at: line.at, text: line.text, complete: line.complete, kind });
        self.note(index);
    }

    /// Files the line under the current boot, starting a new boot where a
    /// boot starts.
    fn note(&mut self, index: usize) {
        let kind = self.lines[index].kind.clone();
        if matches!(kind, LineKind::Other | LineKind::Ours) {
            return;
        }
        let loader = matches!(
            kind,
            LineKind::BackupImage | LineKind::ImageCrcFailed | LineKind::TftpRecovery | LineKind::SerialRecovery
        );
        let starts = loader || matches!(kind, LineKind::Version(_));
        let open_new = match self.boots.last() {
            // Lines before any banner (an application already running when
            // the capture began) still tell what it does.
            None => true,
            Some(boot) => {
                let empty = *boot == Boot { first_line: boot.first_line, ..Boot::default() };
                // The boot loader's lines come before the application's
                // banner: they belong to the boot the banner then opens.
                let loader_only = boot.version.is_none()
                    && boot.application.is_none()
                    && (boot.backup_image.is_some() || boot.crc_failed.is_some() || boot.recovery.is_some())
                    && boot.addresses.is_empty()
                    && boot.flash_complete.is_none();
                starts && !empty && !loader_only
            }
        };
        if open_new {
            self.boots.push(Boot { first_line: index, ..Boot::default() });
        }
        self.note_in_last(index, &kind);
    }

    fn note_in_last(&mut self, index: usize, kind: &LineKind) {
        let Some(boot) = self.boots.last_mut() else { return };
        let slot = match kind {
            LineKind::Version(_) => &mut boot.version,
            LineKind::Platform(_) => &mut boot.platform,
            LineKind::Application(_) => &mut boot.application,
            LineKind::DhcpConfigured | LineKind::StaticIp(_) | LineKind::SubnetMask(_) | LineKind::Gateway(_) => {
                boot.network.push(index);
                return;
            }
            LineKind::Address { .. } => {
                boot.addresses.push(index);
                return;
            }
            LineKind::SerialNumber(_) => &mut boot.serial_number,
            LineKind::Mac(_) => &mut boot.mac,
            LineKind::StartupDelay(_) => &mut boot.startup_delay,
            LineKind::KeyWindow(_) => &mut boot.key_window,
            LineKind::NetworkConfigured => &mut boot.network_configured,
            LineKind::CliStarted => &mut boot.cli_started,
            LineKind::FtpReady => &mut boot.ftp_ready,
            LineKind::FtpNotStarted => &mut boot.ftp_not_started,
            LineKind::FlashDownloadComplete => &mut boot.flash_complete,
            LineKind::Resetting(_) => &mut boot.resetting,
            LineKind::TftpRecovery | LineKind::SerialRecovery => &mut boot.recovery,
            LineKind::BackupImage => &mut boot.backup_image,
            LineKind::ImageCrcFailed => &mut boot.crc_failed,
            LineKind::Ours | LineKind::Other => return,
        };
        // The last saying counts (a repeated banner after the dialog).
        *slot = Some(index);
    }
}

/// What a complete, trimmed console line says.
fn classify(line: &str) -> LineKind {
    let lower = line.to_ascii_lowercase();
    if let Some(rest) = line.strip_prefix("NET+OS Version ") {
        let version = rest.split_whitespace().next().unwrap_or("").to_string();
        return LineKind::Version(version);
    }
    if let Some(rest) = line.strip_prefix("PLATFORM:") {
        return LineKind::Platform(labelled(rest));
    }
    if let Some(rest) = line.strip_prefix("APPLICATION:") {
        return LineKind::Application(labelled(rest));
    }
    if line.starts_with("The board will obtain IP configuration parameters from the network") {
        return LineKind::DhcpConfigured;
    }
    if let Some(kind) = address_after(line, "IP address on LAN is ", LineKind::StaticIp)
        .or_else(|| address_after(line, "LAN interface's subnet mask is ", LineKind::SubnetMask))
        .or_else(|| address_after(line, "IP address of default gateway to other networks is ", LineKind::Gateway))
    {
        return kind;
    }
    if let Some(rest) = line.strip_prefix("This board's serial number is") {
        return LineKind::SerialNumber(rest.trim().to_string());
    }
    if let Some(rest) = line.strip_prefix("This board's Ethernet MAC Address is") {
        return LineKind::Mac(rest.trim().to_string());
    }
    if let Some(seconds) = number_between(line, "After board is reset, start-up code will wait ", " second") {
        return LineKind::StartupDelay(seconds);
    }
    if let Some(seconds) = number_between(line, "Press any key in ", " second") {
        return LineKind::KeyWindow(seconds);
    }
    if line.starts_with("IAM:Got ") || line.starts_with("IP address is ") {
        let source = if line.contains(" DHCP ") {
            AddressSource::Dhcp
        } else if line.contains(" AUTOIP ") {
            AddressSource::Autoip
        } else {
            AddressSource::Unstated
        };
        // The IPv6 lines have no IPv4 address in them: they stay `Other`.
        if let Some(address) = line.split_whitespace().find_map(|w| w.trim_end_matches('.').parse().ok()) {
            return LineKind::Address { source, address };
        }
        return LineKind::Other;
    }
    match line {
        "Network IP configured." => return LineKind::NetworkConfigured,
        "CLI Started." => return LineKind::CliStarted,
        "FTP download server is ready." => return LineKind::FtpReady,
        _ => {}
    }
    if lower.starts_with("ftp server not started") {
        return LineKind::FtpNotStarted;
    }
    if lower.starts_with("ftp: flash download complete") {
        return LineKind::FlashDownloadComplete;
    }
    if lower.starts_with("starting tftp recovery") {
        return LineKind::TftpRecovery;
    }
    if lower.starts_with("starting serial recovery") {
        return LineKind::SerialRecovery;
    }
    if lower.starts_with("resetting") || lower.starts_with("reset system") || lower.contains("module will reset") {
        return LineKind::Resetting(number_between(&lower, " in ", " second"));
    }
    // A backup line that also names the CRC failure says both; the backup
    // image running is what matters for the services.
    if lower.contains("backup") && (lower.contains("image") || lower.contains(".bin")) {
        return LineKind::BackupImage;
    }
    if lower.contains("crc") && ["fail", "bad", "error", "mismatch"].iter().any(|w| lower.contains(w)) {
        return LineKind::ImageCrcFailed;
    }
    LineKind::Other
}

fn labelled(rest: &str) -> Labelled {
    let rest = rest.trim();
    match rest.rfind('[') {
        Some(open) if rest.ends_with(']') => Labelled {
            name: rest[..open].trim().to_string(),
            build: Some(rest[open + 1..rest.len() - 1].trim().to_string()),
        },
        _ => Labelled { name: rest.to_string(), build: None },
    }
}

fn address_after(line: &str, prefix: &str, kind: fn(Ipv4Addr) -> LineKind) -> Option<LineKind> {
    let rest = line.strip_prefix(prefix)?;
    rest.trim().trim_end_matches('.').parse().ok().map(kind)
}

fn number_between(line: &str, prefix: &str, suffix: &str) -> Option<u32> {
    let start = line.find(prefix)? + prefix.len();
    let rest = &line[start..];
    let end = rest.find(suffix)?;
    rest[..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The NET+OS 7.4 boot posted on the vendor's forum (docs/netos.md).
    const REAL_74: &str = include_str!("../../docs/examples/netos-7.4-boot.log");

    /// The NET+OS 7.4.2 boot with corrupted NV memory (docs/netos.md).
    const REAL_742: &str = "NET+OS Version 7.4.2 Copyright (c) 1997-2008, Digi International, Inc.\n\
PLATFORM: connectme9210_esp 4M/8M [May 05 2010 10:32:19]\n\
APPLICATION: Intrasonics Real Time Encoder Manager [May 5 2010 10:33:19]\n\
-----------------------------------------------------------------------------\n\
NETWORK INTERFACE PARAMETERS:\n\
The board will obtain IP configuration parameters from the network.\n\
IPv6 static address on LAN is :: prefixlen 64\n\
Primary SNTP Server IP address is 0.0.250.164\n\
Secondary SNTP Server IP address is 0.0.205.204\n\
HARDWARE PARAMETERS:\n\
Serial channels will use a baud rate of 65535\n\
This board's serial number is\n\
This board's Ethernet MAC Address is 00:00:8B:8C:00:00\n\
After board is reset, start-up code will wait 65263 seconds\n\
Default duplex setting for Ethernet connection: Invalid Duplex Setting\n\
-----------------------------------------------------------------------------\n\
Press any key in 65263 seconds to change these settings.\n";

    fn kind_of(log: &BootLog, index: Option<usize>) -> &LineKind {
        &log.line(index.expect("line present")).kind
    }

    #[test]
    fn the_real_74_boot_reads_completely() {
        let log = BootLog::parse(REAL_74.as_bytes());
        assert_eq!(log.lines.len(), 19);
        assert_eq!(log.boots.len(), 1);
        let boot = log.last_boot().unwrap();
        assert_eq!(kind_of(&log, boot.version), &LineKind::Version("7.4".into()));
        assert_eq!(
            kind_of(&log, boot.platform),
            &LineKind::Platform(Labelled {
                name: "connectme9210 2M/8M".into(),
                build: Some("Sep 19 2008 12:23:35".into())
            })
        );
        let app = log.application().unwrap();
        assert_eq!(app.name, "Ram-based FTP Server Application");
        assert_eq!(app.build.as_deref(), Some("Sep 19 2008 14:38:08"));
        assert_eq!(log.network(), Some(NetworkBlock::Dhcp));
        assert_eq!(kind_of(&log, boot.mac), &LineKind::Mac("00:40:9D:57:2E:44".into()));
        assert_eq!(kind_of(&log, boot.serial_number), &LineKind::SerialNumber("N99999999".into()));
        assert_eq!(kind_of(&log, boot.startup_delay), &LineKind::StartupDelay(5));
        assert_eq!(kind_of(&log, boot.key_window), &LineKind::KeyWindow(5));
        assert_eq!(
            log.addresses(),
            vec![
                (AddressSource::Dhcp, Ipv4Addr::new(192, 168, 1, 152)),
                (AddressSource::Autoip, Ipv4Addr::new(169, 254, 230, 125))
            ]
        );
        assert!(boot.network_configured.is_some() && boot.cli_started.is_some() && boot.ftp_ready.is_some());
        assert_eq!(log.line(boot.ftp_ready.unwrap()).number, 19);
        assert!(log.lines.iter().all(|l| l.complete && l.at.is_none()));
        // The IPv6 line names no IPv4 address: kept as it is.
        assert_eq!(log.lines[13].kind, LineKind::Other);
    }

    #[test]
    fn the_real_742_boot_with_corrupted_nv_memory() {
        let log = BootLog::parse(REAL_742.as_bytes());
        let boot = log.last_boot().unwrap();
        assert_eq!(kind_of(&log, boot.version), &LineKind::Version("7.4.2".into()));
        assert_eq!(log.application().unwrap().name, "Intrasonics Real Time Encoder Manager");
        assert_eq!(log.network(), Some(NetworkBlock::Dhcp));
        assert_eq!(kind_of(&log, boot.serial_number), &LineKind::SerialNumber(String::new()));
        assert_eq!(kind_of(&log, boot.startup_delay), &LineKind::StartupDelay(65263));
        assert_eq!(kind_of(&log, boot.key_window), &LineKind::KeyWindow(65263));
        assert!(boot.network_configured.is_none() && boot.ftp_ready.is_none());
        assert_eq!(log.lines[3].kind, LineKind::Other, "the dashed separator is kept");
    }

    #[test]
    fn the_static_block_and_the_simulators_lines() {
        let text = "NET+OS Version 6.3\r\nAPPLICATION: Ram-based FTP Server Application [Sep 19 2008 14:38:08]\r\n\
IP address on LAN is 132.74.179.148\r\nLAN interface's subnet mask is 255.255.255.0\r\n\
IP address of default gateway to other networks is 132.74.179.1\r\n\
Press any key in 5 seconds to change these settings.\r\n\r\nIP address is 132.74.179.148\r\nNetwork IP configured.\r\n\
FTP: Flash download complete.\r\nResetting system in 10 seconds.\r\n";
        let log = BootLog::parse(text.as_bytes());
        assert_eq!(
            log.network(),
            Some(NetworkBlock::Static {
                ip: Ipv4Addr::new(132, 74, 179, 148),
                mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                gateway: Some(Ipv4Addr::new(132, 74, 179, 1)),
            })
        );
        assert_eq!(log.addresses(), vec![(AddressSource::Unstated, Ipv4Addr::new(132, 74, 179, 148))]);
        let boot = log.last_boot().unwrap();
        assert_eq!(kind_of(&log, boot.resetting), &LineKind::Resetting(Some(10)));
        assert!(boot.flash_complete.is_some());
    }

    #[test]
    fn a_new_banner_opens_a_new_boot_and_the_boot_loader_lines_join_it() {
        let text = "NET+OS Version 7.4\nFTP: Flash download complete.\nResetting system in 10 seconds.\n\
image.bin failed its CRC check: running backup.bin\nNET+OS Version 7.4\nAPPLICATION: Backup [x]\n\
FTP Server not started: no sectors\n";
        let log = BootLog::parse(text.as_bytes());
        assert_eq!(log.boots.len(), 2);
        let boot = log.last_boot().unwrap();
        assert_eq!(boot.first_line, 3);
        assert!(boot.backup_image.is_some() && boot.flash_complete.is_none() && boot.ftp_not_started.is_some());
        let crc = BootLog::parse(b"Image CRC error\nNET+OS Version 7.4\n");
        assert_eq!(crc.boots.len(), 1);
        assert!(crc.last_boot().unwrap().crc_failed.is_some());
    }

    #[test]
    fn a_transcript_reads_with_its_times_and_our_lines_apart() {
        let text = "[   0.000] # waiting for `Press any key`\n[   1.250] < NET+OS Version 7.4\n\
[   2.500] < Press any key in 5 seconds to change these settings.\n[   2.510] > \n\
[   9.125] < Network IP configured.\n";
        let log = BootLog::parse(text.as_bytes());
        assert_eq!(log.lines.len(), 5);
        assert_eq!(log.lines[0].kind, LineKind::Ours);
        assert_eq!(log.lines[3].kind, LineKind::Ours);
        let configured = log.line(log.last_boot().unwrap().network_configured.unwrap());
        assert_eq!(configured.at, Some(Duration::from_millis(9125)));
        assert_eq!(configured.quote(), "line 5 at 9.125 s: `Network IP configured.`");
    }

    #[test]
    fn a_log_cut_mid_line_keeps_the_piece_without_its_facts() {
        let cut = &REAL_74[..REAL_74.find("192.168.1.15").unwrap() + "192.168.1.15".len()];
        let log = BootLog::parse(cut.as_bytes());
        let last = log.lines.last().unwrap();
        assert!(!last.complete);
        assert_eq!(last.kind, LineKind::Other);
        assert!(log.addresses().is_empty(), "a cut address is not an address");
        assert_eq!(log.application().unwrap().name, "Ram-based FTP Server Application");
    }

    #[test]
    fn pieces_read_like_the_whole_and_times_are_the_lines_first_byte() {
        let mut reader = BootLogReader::default();
        for (i, chunk) in REAL_74.as_bytes().chunks(7).enumerate() {
            reader.feed(Some(Duration::from_millis(i as u64)), chunk);
        }
        let pieces = reader.finish();
        let whole = BootLog::parse(REAL_74.as_bytes());
        assert_eq!(pieces.boots, whole.boots);
        assert_eq!(
            pieces.lines.iter().map(|l| &l.kind).collect::<Vec<_>>(),
            whole.lines.iter().map(|l| &l.kind).collect::<Vec<_>>()
        );
        assert_eq!(pieces.lines[1].at, Some(Duration::from_millis(2)), "line 2 starts in the third chunk");
    }

    #[cfg(feature = "sim")]
    #[test]
    fn the_simulators_banner_reads_in_every_firmware() {
        use crate::sim::netos::{Firmware, NvMemory};
        for firmware in Firmware::ALL {
            let nv = NvMemory::default();
            // The window line is printed by the boot after the banner.
            let text = crate::sim::netos::banner(&nv, firmware)
                + &format!("Press any key in {} seconds to change these settings.\r\n", nv.wait_seconds);
            let log = BootLog::parse(text.as_bytes());
            let boot = log.last_boot().unwrap();
            assert_eq!(kind_of(&log, boot.version), &LineKind::Version(firmware.banner_version().into()));
            assert_eq!(log.network(), Some(NetworkBlock::Dhcp), "{firmware}");
            assert!(boot.mac.is_some() && boot.serial_number.is_some() && boot.key_window.is_some());
        }
    }

    proptest! {
        #[test]
        fn any_bytes_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), split in 0usize..2048) {
            let log = BootLog::parse(&bytes);
            let mut reader = BootLogReader::default();
            let split = split.min(bytes.len());
            reader.feed(Some(Duration::ZERO), &bytes[..split]);
            reader.feed(Some(Duration::from_secs(1)), &bytes[split..]);
            let pieces = reader.finish();
            prop_assert_eq!(log.lines.len(), pieces.lines.len());
            prop_assert!(log.lines.iter().all(|l| l.text.len() <= crate::serial::console_lines::MAX_LINE * 4));
            let _ = (log.network(), log.application(), log.addresses());
        }

        #[test]
        fn banner_lines_among_noise_still_read(noise in proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..64)) {
            let mut bytes = noise.clone();
            bytes.push(b'\n');
            bytes.extend_from_slice(REAL_74.as_bytes());
            bytes.extend_from_slice(&noise);
            let log = BootLog::parse(&bytes);
            prop_assert_eq!(log.application().map(|a| a.name.as_str()), Some("Ram-based FTP Server Application"));
            prop_assert!(log.last_boot().unwrap().ftp_ready.is_some());
        }
    }
}
