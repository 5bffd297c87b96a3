//! The serial side of the simulated NET+OS device (Digi Connect ME 9210): its
//! console over any byte stream (a PTY for `flashline sim netos --link PATH`).
//!
//! What it does, following docs/netos.md: the NET+OS 7.4 boot banner
//! (version, PLATFORM, APPLICATION, network parameters in the DHCP or the
//! static form, hardware parameters), the `Press any key in N seconds`
//! window, and the configuration dialog as the vendor's Programmer's Guide
//! prints it: accept/modify (a single key), the root password (echoed as
//! `*`), reset, DHCP, IP address, subnet mask, gateway, the root password
//! update, baud rate, serial number, MAC address, CPU delay and duplex, in
//! the wording of the [`Firmware`] release, each re-asked after a refused
//! answer with an error line. `Saving the changes in NV memory...Done.`
//! writes every setting to simulated NV memory; then the console asks again,
//! resets or goes on ([`AfterSave`]). Also serial recovery (`Starting serial
//! recovery...`, then a stream of `C`) receiving an image by XMODEM-CRC and
//! checking it with the `bootHdr` rule. Behaviour the vendor has not
//! published (refusal texts, the typed line ending, what follows saving) is
//! a switch in [`NetosConfig`].
//!
//! What it does not: the FTP flash server lives in `netos_ftp` and attaches
//! through the hooks of [`NetosDevice`]: [`NetosDevice::network`] publishes
//! the network settings each time the application starts its network, and
//! [`NetosDevice::console_line`] prints a line on the console (e.g. `FTP:
//! Flash download complete.`); [`NetosDevice::restart`] resets the device.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

pub use super::firmware::Firmware;
use crate::netos::boot_header::{self as image, ImageCheck};
use crate::serial::transfer;
use crate::serial::xmodem::{Check, ReceiverOptions};

/// The settings kept in NV memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvMemory {
    pub dhcp: bool,
    pub ip: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub baud: u32,
    pub serial_number: String,
    pub mac: String,
    /// Seconds of the `Press any key` window (the CPU start-up delay).
    pub wait_seconds: u32,
    /// Ethernet duplex used when autonegotiation fails.
    #[serde(default = "default_duplex")]
    pub duplex: String,
    /// A root password set through the dialog; `None`: the factory one
    /// (so the state printed never holds it unless someone changed it).
    #[serde(default)]
    pub root_password: Option<String>,
}

fn default_duplex() -> String {
    "Full Duplex".into()
}

impl Default for NvMemory {
    fn default() -> Self {
        NvMemory {
            dhcp: true,
            ip: Ipv4Addr::UNSPECIFIED,
            mask: Ipv4Addr::UNSPECIFIED,
            gateway: Ipv4Addr::UNSPECIFIED,
            baud: 9600,
            serial_number: "N99999999".into(),
            mac: "00:40:9D:31:41:59".into(),
            wait_seconds: 5,
            duplex: default_duplex(),
            root_password: None,
        }
    }
}

/// An image received by serial recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveredImage {
    pub bytes: usize,
    pub check: String,
    pub accepted: bool,
}

/// Everything a test may inspect.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetosState {
    pub nv: NvMemory,
    pub boots: u32,
    pub images: Vec<RecoveredImage>,
    /// Answers the dialog refused (e.g. `IP address: 300.1.2.3`).
    pub rejected: Vec<String>,
}

/// How the simulated device behaves.
#[derive(Debug, Clone)]
pub struct NetosConfig {
    /// NV memory at power-up.
    pub nv: NvMemory,
    /// How long the `Press any key in N seconds` window really lasts (the N
    /// printed is `nv.wait_seconds`); short in tests.
    pub key_window: Duration,
    /// Boot into serial recovery (recovery pins held at power-up).
    pub recovery: bool,
    /// Interval of the `C` stream in recovery.
    pub c_interval: Duration,
    /// The root password the dialog asks for; `None`: no password prompt.
    pub root_password: Option<String>,
    /// Write NV memory here (JSON) on every save.
    pub nv_file: Option<PathBuf>,
    /// When nobody interrupts the boot (or starts a recovery transfer),
    /// restart after this long, as a test rig that power-cycles would. `None`:
    /// run the application until restarted.
    pub cycle: Option<Duration>,
    /// Wait before the first boot (power-on).
    pub power_on_delay: Duration,
    /// Time a restart takes.
    pub restart_delay: Duration,
    /// Longest wait for an answer in the dialog before it gives up.
    pub answer_timeout: Duration,
    /// The NET+OS release: the dialog's wording and the banner's version.
    pub firmware: Firmware,
    /// What the console does after `Saving the changes in NV memory...Done.`
    /// (unconfirmed on 7.x: all three are offered).
    pub after_save: AfterSave,
    /// Which byte ends a typed line (unconfirmed: all three are offered).
    pub line_end: LineEnd,
    /// How the dialog words a refused answer (unconfirmed for NET+OS).
    pub refusal: Refusal,
    /// What the boot shows besides the banner: the field failures a
    /// console reveals (`diagnose --console`).
    pub boot_scenario: BootScenario,
}

/// The field failures the console shows (docs/diagnosis.md). Texts marked
/// inferred are not published by the vendor; the boot-log reader matches
/// them by tolerant substrings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BootScenario {
    /// The factory FTP server application; its FTP lines come from the FTP
    /// side (`netos_ftp`) through [`NetosDevice::console_line`].
    #[default]
    Normal,
    /// A custom application built without the FTP server: its own
    /// APPLICATION line, `CLI Started.`, and no FTP line.
    AppWithoutFtp,
    /// The application prints `FTP Server not started` (confirmed text: it
    /// cannot read the flash sector sizes).
    FtpNotStarted,
    /// The boot loader finds image.bin's CRC wrong and runs backup.bin
    /// (inferred text: `image.bin failed its CRC check: running backup.bin`).
    BackupImage,
    /// A flash download just completed: `FTP: Flash download complete.` and
    /// `Resetting system in 10 seconds.` (inferred), then the console is
    /// quiet: the unit is inside its reset window.
    ResetAfterDownload,
}

impl BootScenario {
    pub const NAMES: [&'static str; 5] =
        ["normal", "app-without-ftp", "ftp-not-started", "backup-image", "reset-after-download"];
    pub const ALL: [BootScenario; 5] = [
        BootScenario::Normal,
        BootScenario::AppWithoutFtp,
        BootScenario::FtpNotStarted,
        BootScenario::BackupImage,
        BootScenario::ResetAfterDownload,
    ];

    /// The APPLICATION line's name and build date.
    fn application(self) -> &'static str {
        match self {
            BootScenario::AppWithoutFtp => "Serial Bridge Application [Mar 02 2024 10:11:12]",
            BootScenario::BackupImage => "Backup Recovery Application [Sep 19 2008 14:38:08]",
            _ => "Ram-based FTP Server Application [Sep 19 2008 14:38:08]",
        }
    }

    /// What the boot loader prints before the banner.
    fn before_banner(self) -> &'static str {
        match self {
            BootScenario::BackupImage => "image.bin failed its CRC check: running backup.bin\r\n",
            _ => "",
        }
    }

    /// What the application prints once its network is up.
    fn after_network(self) -> &'static str {
        match self {
            BootScenario::Normal | BootScenario::BackupImage => "",
            BootScenario::AppWithoutFtp => "CLI Started.\r\n",
            BootScenario::FtpNotStarted => "CLI Started.\r\nFTP Server not started\r\n",
            BootScenario::ResetAfterDownload => {
                "FTP download server is ready.\r\nFTP: Flash download complete.\r\nResetting system in 10 seconds.\r\n"
            }
        }
    }
}

impl std::str::FromStr for BootScenario {
    type Err = String;
    fn from_str(text: &str) -> Result<BootScenario, String> {
        BootScenario::NAMES
            .iter()
            .position(|n| *n == text)
            .map(|i| BootScenario::ALL[i])
            .ok_or_else(|| format!("unknown boot scenario `{text}`; one of: {}", BootScenario::NAMES.join(", ")))
    }
}

/// What the console does once the settings are saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AfterSave {
    /// Print the settings again and ask `Press A to Accept ...` once more
    /// (the pSOSystem ancestor; older NET+OS manuals).
    #[default]
    Ask,
    /// Reset: a new boot, banner and key window.
    Reset,
    /// Go on booting: the application starts with the new settings.
    Continue,
}

impl AfterSave {
    pub const NAMES: [&'static str; 3] = ["ask", "reset", "continue"];
    pub const ALL: [AfterSave; 3] = [AfterSave::Ask, AfterSave::Reset, AfterSave::Continue];
}

impl std::str::FromStr for AfterSave {
    type Err = String;
    fn from_str(text: &str) -> Result<AfterSave, String> {
        match text {
            "ask" => Ok(AfterSave::Ask),
            "reset" => Ok(AfterSave::Reset),
            "continue" => Ok(AfterSave::Continue),
            _ => Err(format!("unknown after-save behaviour `{text}`; one of: ask, reset, continue")),
        }
    }
}

/// Which byte ends a line typed at the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LineEnd {
    /// CR or LF; the LF of a CR LF pair is part of the same ending.
    #[default]
    Any,
    /// CR only; LF is ignored.
    Cr,
    /// LF only; CR is ignored.
    Lf,
}

impl std::str::FromStr for LineEnd {
    type Err = String;
    fn from_str(text: &str) -> Result<LineEnd, String> {
        match text {
            "any" => Ok(LineEnd::Any),
            "cr" => Ok(LineEnd::Cr),
            "lf" => Ok(LineEnd::Lf),
            _ => Err(format!("unknown line end `{text}`; one of: any, cr, lf")),
        }
    }
}

/// The words of a refused answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Refusal {
    /// `Invalid subnet mask, please try again.`
    #[default]
    Invalid,
    /// The pSOSystem ancestor's `That is not a valid subnet mask`.
    Psos,
}

impl std::str::FromStr for Refusal {
    type Err = String;
    fn from_str(text: &str) -> Result<Refusal, String> {
        match text {
            "invalid" => Ok(Refusal::Invalid),
            "psos" => Ok(Refusal::Psos),
            _ => Err(format!("unknown refusal wording `{text}`; one of: invalid, psos")),
        }
    }
}

impl Refusal {
    fn text(self, what: &str) -> String {
        match self {
            Refusal::Invalid => format!("Invalid {what}, please try again."),
            Refusal::Psos => format!("That is not a valid {what}"),
        }
    }
}

impl Default for NetosConfig {
    fn default() -> Self {
        NetosConfig {
            nv: NvMemory::default(),
            key_window: Duration::from_secs(5),
            recovery: false,
            c_interval: Duration::from_secs(1),
            root_password: Some(Firmware::default().factory_password().into()),
            nv_file: None,
            cycle: None,
            power_on_delay: Duration::ZERO,
            restart_delay: Duration::from_millis(200),
            answer_timeout: Duration::from_secs(60),
            firmware: Firmware::default(),
            after_save: AfterSave::default(),
            line_end: LineEnd::default(),
            refusal: Refusal::default(),
            boot_scenario: BootScenario::default(),
        }
    }
}

/// The simulated device; clone the hooks out before running it.
pub struct NetosDevice {
    config: NetosConfig,
    state: Arc<Mutex<NetosState>>,
    network: watch::Sender<Option<NvMemory>>,
    console_tx: mpsc::UnboundedSender<String>,
    console_rx: mpsc::UnboundedReceiver<String>,
    restart: Arc<Notify>,
}

impl std::fmt::Debug for NetosDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetosDevice").finish_non_exhaustive()
    }
}

/// Why the console loop ended.
#[derive(Debug, thiserror::Error)]
pub enum NetosError {
    #[error("console line error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the console line closed")]
    Closed,
    #[error("cannot write NV memory to {path}: {message}")]
    NvFile { path: String, message: String },
}

/// What ended a wait for input.
enum Input {
    Byte(u8),
    Timeout,
    Restart,
}

impl NetosDevice {
    pub fn new(config: NetosConfig) -> NetosDevice {
        let state = NetosState { nv: config.nv.clone(), ..NetosState::default() };
        let (network, _) = watch::channel(None);
        let (console_tx, console_rx) = mpsc::unbounded_channel();
        NetosDevice {
            config,
            state: Arc::new(Mutex::new(state)),
            network,
            console_tx,
            console_rx,
            restart: Arc::new(Notify::new()),
        }
    }

    /// The device's state, shared: NV memory, boots, recovered images.
    pub fn state(&self) -> Arc<Mutex<NetosState>> {
        self.state.clone()
    }

    /// Network settings each time the application brings its network up;
    /// `None` while the device is down.
    pub fn network(&self) -> watch::Receiver<Option<NvMemory>> {
        self.network.subscribe()
    }

    /// Prints a line on the console while the application runs.
    pub fn console_line(&self) -> mpsc::UnboundedSender<String> {
        self.console_tx.clone()
    }

    /// Resets the device (it boots again).
    pub fn restart(&self) -> Arc<Notify> {
        self.restart.clone()
    }

    /// Runs the console on `stream` until the line closes.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(mut self, stream: S) -> Result<(), NetosError> {
        let mut line = Line {
            stream,
            pending: VecDeque::new(),
            buf: vec![0u8; 4096],
            line_end: self.config.line_end,
            skip_lf: false,
            skip_cr: false,
        };
        tokio::time::sleep(self.config.power_on_delay).await;
        let mut recovery = self.config.recovery;
        loop {
            self.state.lock().expect("state lock").boots += 1;
            self.network.send_replace(None);
            if recovery {
                recovery = !self.serial_recovery(&mut line).await?;
            } else {
                self.boot(&mut line).await?;
            }
            tokio::time::sleep(self.config.restart_delay).await;
        }
    }

    /// Returns true when an image was taken (the next boot is a normal one).
    async fn serial_recovery<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
    ) -> Result<bool, NetosError> {
        line.write(b"\r\nNET+OS boot loader\r\nStarting TFTP recovery...\r\nStarting serial recovery...\r\n").await?;
        line.pending.clear();
        let cycle = self.config.cycle.unwrap_or(Duration::from_secs(3600));
        let mut options = ReceiverOptions::for_baud(false, self.config.nv.baud.max(9600));
        options.check = Check::Crc16;
        options.request_interval = self.config.c_interval;
        options.request_limit = (cycle.as_secs_f64() / self.config.c_interval.as_secs_f64().max(0.001)).ceil() as u32;
        let result = transfer::receive(&mut line.stream, options, Duration::from_millis(300)).await;
        match result {
            Ok(report) => {
                line.pending.extend(report.leftover);
                let data = report.files.into_iter().next().map(|f| f.data).unwrap_or_default();
                let check = image::check(&data);
                let accepted = !matches!(check, ImageCheck::Truncated { .. } | ImageCheck::BadCrc { .. });
                let text = format!(
                    "\r\nSerial recovery: received {} bytes.\r\nImage check: {check}\r\n{}\r\n",
                    data.len(),
                    if accepted {
                        "Writing image to flash... done.\r\nRestarting."
                    } else {
                        "Image rejected: flash not written."
                    }
                );
                line.write(text.as_bytes()).await?;
                let mut state = self.state.lock().expect("state lock");
                state.images.push(RecoveredImage { bytes: data.len(), check: check.to_string(), accepted });
                Ok(accepted)
            }
            Err(transfer::TransferRunError::Closed) => Err(NetosError::Closed),
            Err(transfer::TransferRunError::Io(error)) => Err(error.into()),
            Err(error) => {
                line.write(format!("\r\nSerial recovery failed: {error}\r\n").as_bytes()).await?;
                Ok(false)
            }
        }
    }

    async fn boot<S: AsyncRead + AsyncWrite + Unpin>(&mut self, line: &mut Line<S>) -> Result<(), NetosError> {
        let nv = self.state.lock().expect("state lock").nv.clone();
        line.write(self.config.boot_scenario.before_banner().as_bytes()).await?;
        line.write(self.banner(&nv).as_bytes()).await?;
        line.write(format!("Press any key in {} seconds to change these settings.\r\n", nv.wait_seconds).as_bytes())
            .await?;
        line.pending.clear();
        let interrupted = match line.byte(Some(self.config.key_window), &self.restart).await? {
            Input::Byte(_) => true,
            Input::Timeout => false,
            Input::Restart => return Ok(()),
        };
        if interrupted {
            // Let the rest of a key sequence (a CR after the key) arrive and drop it.
            tokio::time::sleep(Duration::from_millis(20)).await;
            line.drain_ready();
            if self.dialog(line).await? {
                return Ok(()); // saved: restart
            }
        }
        self.run_application(line).await
    }

    fn banner(&self, nv: &NvMemory) -> String {
        banner_of(nv, self.config.firmware, self.config.boot_scenario.application())
    }

    async fn run_application<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
    ) -> Result<(), NetosError> {
        let nv = self.state.lock().expect("state lock").nv.clone();
        let address = if nv.dhcp { "169.254.0.10".to_string() } else { nv.ip.to_string() };
        line.write(format!("\r\nIP address is {address}\r\nNetwork IP configured.\r\n").as_bytes()).await?;
        line.write(self.config.boot_scenario.after_network().as_bytes()).await?;
        self.network.send_replace(Some(nv));
        let deadline = self.config.cycle.map(|c| Instant::now() + c);
        loop {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            tokio::select! {
                text = self.console_rx.recv() => {
                    if let Some(text) = text {
                        line.write(format!("{text}\r\n").as_bytes()).await?;
                    }
                }
                input = line.byte(remaining, &self.restart) => match input? {
                    Input::Byte(_) => {} // the application ignores the console
                    Input::Timeout | Input::Restart => return Ok(()),
                },
            }
        }
    }

    /// The configuration dialog, in the vendor's order; true when the
    /// device is to restart.
    async fn dialog<S: AsyncRead + AsyncWrite + Unpin>(&mut self, line: &mut Line<S>) -> Result<bool, NetosError> {
        loop {
            match self.accept_or_modify(line).await? {
                Some(true) => {}
                _ => return Ok(false),
            }
            let Some(nv) = self.questions(line).await? else { return Ok(false) };
            line.write(b"Saving the changes in NV memory...").await?;
            self.save(&nv)?;
            line.write(b"Done.\r\n").await?;
            match self.config.after_save {
                AfterSave::Reset => return Ok(true),
                AfterSave::Continue => return Ok(false),
                AfterSave::Ask => line.write(self.banner(&nv).as_bytes()).await?,
            }
        }
    }

    /// `Press A to Accept the settings, or M to Modify?`, a single key:
    /// `Some(true)` to modify, `Some(false)` to accept, `None` when no key came.
    async fn accept_or_modify<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
    ) -> Result<Option<bool>, NetosError> {
        for _ in 0..16 {
            line.write(b"\r\nPress A to Accept the settings, or M to Modify? ").await?;
            let Some(key) = line.read_key(self.config.answer_timeout, &self.restart).await? else { return Ok(None) };
            match key.to_ascii_uppercase() {
                b'A' => return Ok(Some(false)),
                b'M' => return Ok(Some(true)),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Reads one answer; `None` ends the dialog (no answer in time).
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
        prompt: &str,
        password: bool,
    ) -> Result<Option<String>, NetosError> {
        line.write(prompt.as_bytes()).await?;
        let answer = line.read_line(self.config.answer_timeout, password, &self.restart).await?;
        Ok(answer.map(|a| a.trim().to_string()))
    }

    /// Asks `prompt` until `parse` accepts the answer (an empty answer keeps
    /// `current`), printing `refusal` after each refused one.
    async fn ask<S: AsyncRead + AsyncWrite + Unpin, T: Clone>(
        &mut self,
        line: &mut Line<S>,
        prompt: &str,
        current: T,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, NetosError> {
        // Bounded: a script that keeps answering wrong ends the dialog.
        for _ in 0..8 {
            let Some(answer) = self.answer(line, prompt, false).await? else { return Ok(None) };
            if answer.is_empty() {
                return Ok(Some(current));
            }
            if let Some(value) = parse(&answer) {
                return Ok(Some(value));
            }
            let text = self.config.refusal.text(what);
            self.reject(line, what, &answer, &text).await?;
        }
        Ok(None)
    }

    /// Every question after accept/modify; the new NV memory, or `None`
    /// when the dialog was left. The sections come in the device's order.
    async fn questions<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
    ) -> Result<Option<NvMemory>, NetosError> {
        let mut nv = self.state.lock().expect("state lock").nv.clone();
        if self.root_login(line, &nv).await?.is_none() {
            return Ok(None);
        }
        let sections = [Section::Network, Section::Security, Section::Hardware];
        for section in sections {
            let answered = match section {
                Section::Network => self.network_questions(line, &mut nv).await?,
                Section::Security => self.security_questions(line, &mut nv).await?,
                Section::Hardware => self.hardware_questions(line, &mut nv).await?,
            };
            if answered.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(nv))
    }

    /// The root password, when the firmware asks it: three tries.
    async fn root_login<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
        nv: &NvMemory,
    ) -> Result<Option<()>, NetosError> {
        let Some(factory) = self.config.root_password.clone() else { return Ok(Some(())) };
        let password = nv.root_password.clone().unwrap_or(factory);
        for _ in 0..3 {
            let Some(answer) = self.answer(line, "Enter the root password: ", true).await? else {
                return Ok(None);
            };
            if answer == password {
                return Ok(Some(()));
            }
            line.write(b"Invalid password.\r\n").await?;
            self.state.lock().expect("state lock").rejected.push("root password".into());
        }
        Ok(None)
    }

    /// Reset to defaults, DHCP, and for a static address IP, mask, gateway.
    async fn network_questions<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
        nv: &mut NvMemory,
    ) -> Result<Option<()>, NetosError> {
        let guide = self.config.firmware.guide_wording();
        let reset = if guide {
            "Reset configuration to default values (Y/N)? "
        } else {
            "Reset configuration to default values [N]? "
        };
        let Some(reset) = self.ask(line, reset, false, "answer", yes_no).await? else { return Ok(None) };
        if reset {
            *nv = NvMemory { serial_number: nv.serial_number.clone(), mac: nv.mac.clone(), ..NvMemory::default() };
        }
        line.write(
            b"For each of the following questions, you can press <Return> to select the value shown in braces, \
              or you can enter a new value.\r\nNETWORK INTERFACE PARAMETERS:\r\n",
        )
        .await?;
        let yn = if nv.dhcp { "Y" } else { "N" };
        let dhcp = if guide {
            format!("Should this target obtain IP settings from the network? [{yn}] ")
        } else {
            format!("Obtain IP settings automatically using DHCP for this interface [{yn}]? ")
        };
        let Some(dhcp) = self.ask(line, &dhcp, nv.dhcp, "answer", yes_no).await? else { return Ok(None) };
        nv.dhcp = dhcp;
        if !dhcp {
            let address = |a: &str| a.parse::<Ipv4Addr>().ok();
            let prompt = format!("IP address  [{}]? ", nv.ip);
            let usable = |a: &str| address(a).filter(|ip| valid_field(0, *ip, &NvMemory::default()));
            let Some(ip) = self.ask(line, &prompt, nv.ip, "IP address", usable).await? else { return Ok(None) };
            nv.ip = ip;
            let prompt = format!("Subnet mask  [{}]? ", nv.mask);
            let mask = |a: &str| address(a).filter(|m| valid_field(1, *m, &NvMemory::default()));
            let Some(mask) = self.ask(line, &prompt, nv.mask, "subnet mask", mask).await? else { return Ok(None) };
            nv.mask = mask;
            let prompt = format!("Gateway address  [{}]? ", nv.gateway);
            let subnet = nv.clone();
            let gateway = |a: &str| address(a).filter(|g| valid_field(2, *g, &subnet));
            let Some(gateway) = self.ask(line, &prompt, nv.gateway, "gateway address", gateway).await? else {
                return Ok(None);
            };
            nv.gateway = gateway;
        }
        Ok(Some(()))
    }

    /// Whether to change the root password, and the new one twice.
    async fn security_questions<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
        nv: &mut NvMemory,
    ) -> Result<Option<()>, NetosError> {
        line.write(b"SECURITY PARAMETERS:\r\n").await?;
        let prompt = "Would you like to update the Root Password? [N] ";
        let Some(update) = self.ask(line, prompt, false, "answer", yes_no).await? else { return Ok(None) };
        if update {
            let Some(new) = self.answer(line, "Enter the new Root Password: ", true).await? else { return Ok(None) };
            let Some(again) = self.answer(line, "Re-enter the new Root Password: ", true).await? else {
                return Ok(None);
            };
            if new != again || new.is_empty() {
                line.write(b"The passwords do not match; the root password is not changed.\r\n").await?;
            } else {
                nv.root_password = Some(new);
            }
        }
        Ok(Some(()))
    }

    /// Baud rate, serial number, MAC address, start-up delay, duplex.
    async fn hardware_questions<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
        nv: &mut NvMemory,
    ) -> Result<Option<()>, NetosError> {
        let guide = self.config.firmware.guide_wording();
        line.write(b"HARDWARE PARAMETERS:\r\n").await?;
        let prompt = format!("Set the baud rate of Serial channels [{}]? ", nv.baud);
        let baud = |a: &str| a.parse::<u32>().ok().filter(|b| BAUD_RATES.contains(b));
        let what = match self.config.refusal {
            Refusal::Invalid => "baud rate".to_string(),
            // The ancestor lists the valid rates instead.
            Refusal::Psos => "baud rate. Valid baud rates are: 1200 2400 4800 9600 19200 38400 57600 115200".into(),
        };
        let Some(baud) = self.ask(line, &prompt, nv.baud, &what, baud).await? else { return Ok(None) };
        nv.baud = baud;
        line.write(
            format!(
                "The new baud rate is {baud}\r\nThe baud rate will be changed on next power up\r\n\
                 Please set the baud rate for your terminal accordingly\r\n\
                 Each development board must have a unique serial number\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let space = if guide { " " } else { "" };
        let prompt = format!("Set the board's serial number{space}[{}]? ", nv.serial_number);
        let serial = |a: &str| {
            let valid =
                a.len() == 9 && a.as_bytes()[0].is_ascii_alphabetic() && a[1..].bytes().all(|b| b.is_ascii_digit());
            valid.then(|| a.to_ascii_uppercase())
        };
        let current = nv.serial_number.clone();
        let Some(serial) = self.ask(line, &prompt, current, "serial number", serial).await? else { return Ok(None) };
        nv.serial_number = serial;
        line.write(
            format!(
                "The board's new serial number is {}\r\nEach development board must have a unique Ethernet MAC address.\r\n",
                nv.serial_number
            )
            .as_bytes(),
        )
        .await?;
        let prompt = format!("Set the board's Ethernet MAC Address [{}]? ", nv.mac);
        let current = nv.mac.clone();
        let Some(mac) = self.ask(line, &prompt, current, "MAC address", parse_mac).await? else { return Ok(None) };
        nv.mac = mac;
        line.write(format!("This board's new Ethernet MAC address is {}\r\n", nv.mac).as_bytes()).await?;
        let prompt = format!("How long (in seconds) should CPU delay before starting up [{}]? ", nv.wait_seconds);
        let delay = |a: &str| a.parse::<u32>().ok().filter(|d| *d <= 65535);
        let Some(delay) = self.ask(line, &prompt, nv.wait_seconds, "delay", delay).await? else { return Ok(None) };
        nv.wait_seconds = delay;
        line.write(
            b"Normally the board will automatically negotiate with the network hub (or switch) to determine the \
              Ethernet duplex setting; however some hubs do not support autonegotiation.\r\n",
        )
        .await?;
        let prompt = format!("What duplex setting should be used in this case (Full or Half)? [{}] ", nv.duplex);
        let duplex = |a: &str| match a.to_ascii_uppercase().chars().next() {
            Some('F') => Some("Full Duplex".to_string()),
            Some('H') => Some("Half Duplex".to_string()),
            _ => None,
        };
        let current = nv.duplex.clone();
        let Some(duplex) = self.ask(line, &prompt, current, "duplex setting", duplex).await? else {
            return Ok(None);
        };
        nv.duplex = duplex;
        Ok(Some(()))
    }

    async fn reject<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
        field: &str,
        answer: &str,
        message: &str,
    ) -> Result<(), NetosError> {
        self.state.lock().expect("state lock").rejected.push(format!("{field}: {answer}"));
        line.write(format!("{message}\r\n").as_bytes()).await
    }

    fn save(&mut self, nv: &NvMemory) -> Result<(), NetosError> {
        self.state.lock().expect("state lock").nv = nv.clone();
        match &self.config.nv_file {
            Some(path) => store_nv(path, nv),
            None => Ok(()),
        }
    }
}

/// Writes NV memory to its file (JSON): write, sync, rename, so a reader
/// never sees half a file. Also used by the ADDP responder's set commands.
pub fn store_nv(path: &std::path::Path, nv: &NvMemory) -> Result<(), NetosError> {
    let failed = |e: std::io::Error| NetosError::NvFile { path: path.display().to_string(), message: e.to_string() };
    let text = serde_json::to_string_pretty(nv).expect("NV memory is JSON");
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

/// The serial rates the dialog accepts.
const BAUD_RATES: [u32; 8] = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200];

/// The dialog's sections after accept/modify, in the device's order.
#[derive(Debug, Clone, Copy)]
enum Section {
    Network,
    Security,
    Hardware,
}

/// A yes/no answer as the console takes it (either case, a word or a letter).
fn yes_no(answer: &str) -> Option<bool> {
    match answer.to_ascii_uppercase().as_str() {
        "Y" | "YES" => Some(true),
        "N" | "NO" => Some(false),
        _ => None,
    }
}

fn parse_mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split(':').collect();
    let valid = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    valid.then(|| text.to_ascii_uppercase())
}

/// Address checks as the device applies them: a usable host address, a
/// contiguous mask, a gateway inside the device's subnet.
pub(crate) fn valid_field(index: usize, address: Ipv4Addr, nv: &NvMemory) -> bool {
    let bits = u32::from(address);
    match index {
        0 => !(address.is_unspecified() || address.is_broadcast() || address.is_multicast()),
        1 => bits != 0 && bits.leading_ones() + bits.trailing_zeros() == 32,
        _ => {
            let mask = u32::from(nv.mask);
            address.is_unspecified() || (bits & mask == u32::from(nv.ip) & mask && address != nv.ip)
        }
    }
}

/// The boot banner of a NET+OS 7.4 connectme9210 as a real unit prints it
/// (the vendor's forum), with the static-address block of the NET+OS
/// manuals when DHCP is off.
pub fn banner(nv: &NvMemory, firmware: Firmware) -> String {
    banner_of(nv, firmware, BootScenario::Normal.application())
}

/// [`banner`] with another APPLICATION line (`NAME [build date]`).
fn banner_of(nv: &NvMemory, firmware: Firmware, application: &str) -> String {
    let network = if nv.dhcp {
        "The board will obtain IP configuration parameters from the network.\r\n".to_string()
    } else {
        format!(
            "IP address on LAN is {}\r\nLAN interface's subnet mask is {}\r\n\
             IP address of default gateway to other networks is {}\r\n",
            nv.ip, nv.mask, nv.gateway
        )
    };
    let duplex = if nv.duplex == default_duplex() { "default" } else { nv.duplex.as_str() };
    format!(
        "\r\nNET+OS Version {}\r\nCopyright (c) 1997-2008, Digi International, Inc.\r\n\
         PLATFORM: connectme9210 2M/8M [Sep 19 2008 12:23:35]\r\n\
         APPLICATION: {application}\r\n\
         NETWORK INTERFACE PARAMETERS:\r\n{network}HARDWARE PARAMETERS:\r\n\
         Serial channels will use a baud rate of {}\r\nThis board's serial number is {}\r\n\
         This board's Ethernet MAC Address is {}\r\nAfter board is reset, start-up code will wait {} seconds\r\n\
         Default duplex setting for Ethernet connection: {duplex}\r\n",
        firmware.banner_version(),
        nv.baud,
        nv.serial_number,
        nv.mac,
        nv.wait_seconds
    )
}

/// The console line: buffered reads with timeouts.
struct Line<S> {
    stream: S,
    pending: VecDeque<u8>,
    buf: Vec<u8>,
    line_end: LineEnd,
    /// The last line ended with CR (or a single key was read): an LF next
    /// is part of that ending, not an empty answer.
    skip_lf: bool,
    /// A single key was read: a CR next is its harmless line ending.
    skip_cr: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Line<S> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), NetosError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn byte(&mut self, timeout: Option<Duration>, restart: &Notify) -> Result<Input, NetosError> {
        if let Some(byte) = self.pending.pop_front() {
            return Ok(Input::Byte(byte));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let read = async {
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)).await.ok(),
                None => Some(self.stream.read(&mut self.buf).await),
            }
        };
        tokio::select! {
            result = read => match result {
                None => Ok(Input::Timeout),
                Some(Ok(0)) => Err(NetosError::Closed),
                Some(Ok(n)) => {
                    self.pending.extend(&self.buf[..n]);
                    Ok(Input::Byte(self.pending.pop_front().expect("just filled")))
                }
                Some(Err(error)) => Err(error.into()),
            },
            _ = restart.notified() => Ok(Input::Restart),
        }
    }

    /// Drops bytes already received.
    fn drain_ready(&mut self) {
        self.pending.clear();
        let mut scratch = [0u8; 256];
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        loop {
            let mut read_buf = tokio::io::ReadBuf::new(&mut scratch);
            match std::pin::Pin::new(&mut self.stream).poll_read(&mut context, &mut read_buf) {
                std::task::Poll::Ready(Ok(())) if !read_buf.filled().is_empty() => continue,
                _ => break,
            }
        }
    }

    /// Reads a single key (echoed, then a new line); a line ending typed
    /// after it is dropped. `None` when no key comes in time.
    async fn read_key(&mut self, timeout: Duration, restart: &Notify) -> Result<Option<u8>, NetosError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let byte = match self.byte(Some(remaining), restart).await? {
                Input::Byte(byte) => byte,
                Input::Timeout | Input::Restart => return Ok(None),
            };
            if byte == b'\r' || byte == b'\n' || byte == b' ' {
                continue;
            }
            self.write(&[byte, b'\r', b'\n']).await?;
            self.skip_cr = true;
            self.skip_lf = true;
            return Ok(Some(byte));
        }
    }

    /// Reads a line ended as `line_end` says, echoing it (`*` for a
    /// password); `None` when no answer comes in time or the device is
    /// restarted.
    async fn read_line(
        &mut self,
        timeout: Duration,
        password: bool,
        restart: &Notify,
    ) -> Result<Option<String>, NetosError> {
        let deadline = Instant::now() + timeout;
        let mut text = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let byte = match self.byte(Some(remaining), restart).await? {
                Input::Byte(byte) => byte,
                Input::Timeout | Input::Restart => return Ok(None),
            };
            let (skip_cr, skip_lf) = (self.skip_cr, self.skip_lf);
            self.skip_cr = false;
            self.skip_lf = false;
            let ends = match (byte, self.line_end) {
                (b'\r', LineEnd::Lf) | (b'\n', LineEnd::Cr) => continue,
                (b'\r', _) if skip_cr && text.is_empty() => {
                    self.skip_lf = true;
                    continue;
                }
                (b'\n', _) if skip_lf && text.is_empty() => continue,
                (b'\r', _) => {
                    self.skip_lf = true;
                    true
                }
                (b'\n', _) => true,
                _ => false,
            };
            if ends {
                self.write(b"\r\n").await?;
                return Ok(Some(String::from_utf8_lossy(&text).into_owned()));
            }
            match byte {
                0x08 | 0x7F if text.pop().is_some() => {
                    self.write(b"\x08 \x08").await?;
                }
                byte if text.len() < 256 => {
                    text.push(byte);
                    self.write(if password { b"*" } else { std::slice::from_ref(&byte) }).await?;
                }
                _ => {}
            }
        }
    }
}
