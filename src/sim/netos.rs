//! The serial side of the simulated NET+OS device (Digi Connect ME 9210): its
//! console over any byte stream (a PTY for `flashline sim netos --link PATH`).
//!
//! What it does, following docs/netos.md: the boot banner (NET+OS version,
//! PLATFORM, APPLICATION, network and hardware parameters with a MAC
//! `00:40:9D:xx:xx:xx` and a serial number), the `Press any key in N seconds`
//! window, the configuration dialog (accept/modify, root password, reset,
//! DHCP, IP address, subnet mask, gateway) with input validation, saving to
//! simulated NV memory and restarting; and serial recovery (`Starting serial
//! recovery...`, then a stream of `C`) receiving an image by XMODEM-CRC and
//! checking it with the `bootHdr` rule.
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

use crate::serial::image::{self, ImageCheck};
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
    /// Seconds of the `Press any key` window.
    pub wait_seconds: u32,
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
}

impl Default for NetosConfig {
    fn default() -> Self {
        NetosConfig {
            nv: NvMemory::default(),
            key_window: Duration::from_secs(5),
            recovery: false,
            c_interval: Duration::from_secs(1),
            root_password: Some("Netsilicon".into()),
            nv_file: None,
            cycle: None,
            power_on_delay: Duration::ZERO,
            restart_delay: Duration::from_millis(200),
            answer_timeout: Duration::from_secs(60),
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
        let mut line = Line { stream, pending: VecDeque::new(), buf: vec![0u8; 4096] };
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
        line.write(banner(&nv).as_bytes()).await?;
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

    async fn run_application<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &mut Line<S>,
    ) -> Result<(), NetosError> {
        let nv = self.state.lock().expect("state lock").nv.clone();
        let address = if nv.dhcp { "169.254.0.10".to_string() } else { nv.ip.to_string() };
        line.write(format!("\r\nIP address is {address}\r\nNetwork IP configured.\r\n").as_bytes()).await?;
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

    /// The configuration dialog; true when settings were saved.
    async fn dialog<S: AsyncRead + AsyncWrite + Unpin>(&mut self, line: &mut Line<S>) -> Result<bool, NetosError> {
        let timeout = self.config.answer_timeout;
        let restart = self.restart.clone();
        loop {
            line.write(b"\r\nPress A to Accept the settings, or M to Modify? ").await?;
            let Some(answer) = line.read_line(timeout, false, &restart).await? else { return Ok(false) };
            match answer.trim().to_ascii_uppercase().as_str() {
                "A" => return Ok(false),
                "M" => break,
                _ => {}
            }
        }
        if let Some(password) = self.config.root_password.clone() {
            line.write(b"Enter the root password: ").await?;
            let Some(answer) = line.read_line(timeout, true, &restart).await? else { return Ok(false) };
            if answer != password {
                line.write(b"Invalid password.\r\n").await?;
                self.state.lock().expect("state lock").rejected.push("root password".into());
                return Ok(false);
            }
        }
        let mut nv = self.state.lock().expect("state lock").nv.clone();
        line.write(b"Reset configuration to default values [N]? ").await?;
        let Some(answer) = line.read_line(timeout, false, &restart).await? else { return Ok(false) };
        if answer.trim().eq_ignore_ascii_case("y") {
            nv = NvMemory { serial_number: nv.serial_number, mac: nv.mac, ..NvMemory::default() };
        }
        let default = if nv.dhcp { "Y" } else { "N" };
        let dhcp = loop {
            line.write(
                format!("Obtain IP settings automatically using DHCP for this interface [{default}]? ").as_bytes(),
            )
            .await?;
            let Some(answer) = line.read_line(timeout, false, &restart).await? else { return Ok(false) };
            match answer.trim().to_ascii_uppercase().as_str() {
                "" => break nv.dhcp,
                "Y" => break true,
                "N" => break false,
                other => self.reject(line, "DHCP", other, "Invalid answer, please enter Y or N.").await?,
            }
        };
        nv.dhcp = dhcp;
        if !dhcp {
            // (prompt label, the value kept in NV memory, the refusal text)
            type Field = (&'static str, fn(&NvMemory) -> Ipv4Addr, &'static str);
            let fields: [Field; 3] = [
                ("IP address", |nv| nv.ip, "Invalid IP address"),
                ("Subnet mask", |nv| nv.mask, "Invalid subnet mask"),
                ("Gateway address", |nv| nv.gateway, "Invalid gateway address"),
            ];
            for (index, (label, current, invalid)) in fields.into_iter().enumerate() {
                let value = loop {
                    line.write(format!("{label}  [{}]? ", current(&nv)).as_bytes()).await?;
                    let Some(answer) = line.read_line(timeout, false, &restart).await? else { return Ok(false) };
                    let answer = answer.trim();
                    if answer.is_empty() {
                        break current(&nv);
                    }
                    match answer.parse::<Ipv4Addr>() {
                        Ok(address) if valid_field(index, address, &nv) => break address,
                        _ => self.reject(line, label, answer, &format!("{invalid}, please try again.")).await?,
                    }
                };
                match index {
                    0 => nv.ip = value,
                    1 => nv.mask = value,
                    _ => nv.gateway = value,
                }
            }
        }
        line.write(b"Saving the changes in NV memory...\r\n").await?;
        self.save(&nv)?;
        line.write(b"Restarting the device.\r\n").await?;
        Ok(true)
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
        if let Some(path) = &self.config.nv_file {
            let failed =
                |e: std::io::Error| NetosError::NvFile { path: path.display().to_string(), message: e.to_string() };
            // Write, sync, rename: a reader never sees half a file.
            let text = serde_json::to_string_pretty(nv).expect("NV memory is JSON");
            let temporary = path.with_extension("tmp");
            let mut file = std::fs::File::create(&temporary).map_err(failed)?;
            std::io::Write::write_all(&mut file, text.as_bytes()).map_err(failed)?;
            file.sync_all().map_err(failed)?;
            std::fs::rename(&temporary, path).map_err(failed)?;
        }
        Ok(())
    }
}

/// Address checks as the device applies them: a usable host address, a
/// contiguous mask, a gateway inside the device's subnet.
fn valid_field(index: usize, address: Ipv4Addr, nv: &NvMemory) -> bool {
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

fn banner(nv: &NvMemory) -> String {
    let network = if nv.dhcp {
        "  IP address on LAN is obtained via DHCP\r\n".to_string()
    } else {
        format!(
            "  IP address on LAN is {}\r\n  LAN interface's subnet mask is {}\r\n  IP address of default gateway to other networks is {}\r\n",
            nv.ip, nv.mask, nv.gateway
        )
    };
    format!(
        "\r\nNET+OS Version 7.5.2\r\nCopyright (c) 2000-2013 Digi International Inc.\r\n\
         PLATFORM: connectme9210\r\nAPPLICATION: Simulated NET+OS application (flashline sim netos)\r\n\r\n\
         NETWORK INTERFACE PARAMETERS:\r\n{network}\r\nHARDWARE PARAMETERS:\r\n\
         \x20 Serial channels will use a baud rate of {}\r\n  This board's serial number is {}\r\n\
         \x20 This board's MAC Address is {}\r\n  After board is reset, start-up code will wait {} seconds\r\n\r\n",
        nv.baud, nv.serial_number, nv.mac, nv.wait_seconds
    )
}

/// The console line: buffered reads with timeouts.
struct Line<S> {
    stream: S,
    pending: VecDeque<u8>,
    buf: Vec<u8>,
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

    /// Reads a line ended by CR or LF, echoing it (`*` for a password);
    /// `None` when no answer comes in time or the device is restarted.
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
            match byte {
                b'\r' | b'\n' => {
                    // A CR LF ending: drop the LF if it is already here.
                    if byte == b'\r' && self.pending.front() == Some(&b'\n') {
                        self.pending.pop_front();
                    }
                    if text.is_empty() && byte == b'\n' {
                        continue;
                    }
                    self.write(b"\r\n").await?;
                    return Ok(Some(String::from_utf8_lossy(&text).into_owned()));
                }
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
