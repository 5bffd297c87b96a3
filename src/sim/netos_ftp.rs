//! The network side of the simulated NET+OS device: its FTP flash server.
//!
//! libunftp serves each control connection; this module owns the accept loop
//! so it can apply the NET+OS rules around it:
//! - the replies of the vendor's transcript (`220 NET+OS 7.4.2 FTP server
//!   ready.` with the firmware's version, `331 User root OK, send
//!   password.`, `230 Password OK.`, `200 Type set to I.`, `200 PORT command
//!   Ok.`, `221 Goodbye.`) through the relay in [`super::netos_ftp_control`],
//!   which also makes active-mode data connections from the device's address
//!   and, with `no_pasv`, refuses PASV and EPSV;
//! - credentials per firmware (root/Netsilicon on 6.x, root/password on 7.x);
//! - at most two sessions; a third connection gets `421` and is closed;
//! - only `rom.bin`, `spi_rom.bin`, `romzip.bin` and `image.bin` reach flash
//!   (other names are accepted and ignored), and only when the control
//!   connection closes and only files whose transfer finished; then the console prints `FTP: Flash download
//!   complete.` and `Resetting system in N seconds.`, and the device restarts
//!   (its FTP port goes away for the boot time, then comes back);
//! - `rom.bin` and `image.bin` in one session leave the device in serial
//!   recovery: FTP does not come back;
//! - `RETR id` answers `NETARM-FTPDL-V100`.
//!
//! Scenario switches reproduce the field failures: an image without the FTP
//! server, a server that starts late, a changed password, the backup image
//! booted. The serial side of the simulator subscribes to [`NetosFtp::console`]
//! and starts this server on the address set through the console.

pub use super::firmware::Firmware;
use super::netos_ftp_control::{ControlConfig, relay};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sync::lock;
use async_trait::async_trait;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, Principal};

/// File names the NET+OS flash server stores (from the application source).
pub const FLASH_NAMES: [&str; 4] = ["rom.bin", "spi_rom.bin", "romzip.bin", "image.bin"];

/// Field failures the simulated device can reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpScenario {
    /// The FTP server runs normally.
    Normal,
    /// The application was built without the FTP server: the port answers RST.
    NoFtpServer,
    /// The server starts this long after boot, or when `NetosFtp::start_ftp_now`
    /// is called if that comes first (a test that must order events).
    LateFtp(Duration),
    /// Someone changed the root password: factory credentials get 530.
    WrongPassword,
    /// image.bin failed its CRC, the backup image runs, and it has no FTP server.
    BackupImage,
}

/// How the simulated device behaves.
#[derive(Debug, Clone)]
pub struct FtpBehaviour {
    pub firmware: Firmware,
    pub scenario: FtpScenario,
    /// The `Resetting system in N seconds` delay (10 s on the real device).
    pub reset_delay: Duration,
    /// How long the device is down while it boots again.
    pub boot_time: Duration,
    /// Sessions served at once (two on NET+OS).
    pub max_sessions: usize,
    /// Refuse PASV and EPSV (`502 Command not implemented.`): only active
    /// mode works, as only PORT is confirmed on a real device.
    pub no_pasv: bool,
}

impl Default for FtpBehaviour {
    fn default() -> Self {
        FtpBehaviour {
            firmware: Firmware::Netos6,
            scenario: FtpScenario::Normal,
            reset_delay: Duration::from_secs(10),
            boot_time: Duration::from_secs(2),
            max_sessions: 2,
            no_pasv: false,
        }
    }
}

/// One image in the simulated flash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlashedImage {
    pub bytes: u64,
    pub sha256: String,
    /// How many times it was written: a finished unit must never be flashed twice.
    pub writes: u32,
}

/// What the simulated flash holds, for tests and the demo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlashState {
    pub images: BTreeMap<String, FlashedImage>,
    /// Boots completed (the first one included).
    pub boots: u32,
    /// The device fell into serial recovery (both images in one session).
    pub recovery: bool,
}

/// A running simulated FTP side. Dropping it stops the server.
pub struct NetosFtp {
    state: Arc<Mutex<FlashState>>,
    console: broadcast::Sender<String>,
    stop: watch::Sender<bool>,
    start_ftp: Arc<tokio::sync::Notify>,
    /// Subscribed before the device's task started: every line since boot.
    boot_console: Mutex<Option<broadcast::Receiver<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NetosFtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetosFtp").finish_non_exhaustive()
    }
}

impl Drop for NetosFtp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

impl NetosFtp {
    /// Boots the device's network side: its FTP server will listen on
    /// `address` (the IP set through the console) as `behaviour` says.
    /// `workdir` holds the per-session upload areas.
    pub fn start(address: SocketAddr, behaviour: FtpBehaviour, workdir: &Path) -> NetosFtp {
        let state = Arc::new(Mutex::new(FlashState::default()));
        let (console, boot_console) = broadcast::channel(256);
        let (stop, stopped) = watch::channel(false);
        let start_ftp = Arc::new(tokio::sync::Notify::new());
        let device = Device {
            address,
            behaviour,
            workdir: workdir.to_path_buf(),
            state: state.clone(),
            console: console.clone(),
            start_ftp: start_ftp.clone(),
        };
        let task = tokio::spawn(device.run(stopped));
        NetosFtp { state, console, stop, start_ftp, boot_console: Mutex::new(Some(boot_console)), task }
    }

    /// Ends a `LateFtp` delay now: the FTP server starts at once (or at the
    /// next boot if the delay has not begun yet).
    pub fn start_ftp_now(&self) {
        self.start_ftp.notify_one();
    }

    /// The flash as it is now.
    pub fn flash(&self) -> FlashState {
        lock(&self.state).clone()
    }

    /// Lines the device prints on its console from now on.
    pub fn console(&self) -> broadcast::Receiver<String> {
        self.console.subscribe()
    }

    /// Lines the device printed on its console since it started (the first
    /// call only; later calls get the lines from then on).
    pub fn console_since_start(&self) -> broadcast::Receiver<String> {
        lock(&self.boot_console).take().unwrap_or_else(|| self.console.subscribe())
    }
}

struct Device {
    address: SocketAddr,
    behaviour: FtpBehaviour,
    workdir: PathBuf,
    state: Arc<Mutex<FlashState>>,
    console: broadcast::Sender<String>,
    start_ftp: Arc<tokio::sync::Notify>,
}

/// What a finished session left behind.
struct SessionEnd {
    dir: PathBuf,
    /// Files whose STOR finished: a transfer cut part-way never reaches flash.
    completed: Vec<String>,
}

/// Names of the files a session stored completely (libunftp reports a `Put`
/// only when a STOR finished).
#[derive(Debug, Clone, Default)]
struct CompletedUploads(Arc<Mutex<Vec<String>>>);

impl CompletedUploads {
    fn names(&self) -> Vec<String> {
        lock(&self.0).clone()
    }
}

#[async_trait]
impl libunftp::notification::DataListener for CompletedUploads {
    async fn receive_data_event(
        &self,
        event: libunftp::notification::DataEvent,
        _meta: libunftp::notification::EventMeta,
    ) {
        if let libunftp::notification::DataEvent::Put { path, .. } = event {
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            lock(&self.0).push(name);
        }
    }
}

impl Device {
    fn say(&self, line: impl Into<String>) {
        let _ = self.console.send(line.into());
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut session_number = 0u64;
        loop {
            lock(&self.state).boots += 1;
            self.say("Network IP configured.");
            match self.behaviour.scenario {
                FtpScenario::NoFtpServer => {
                    self.say("APPLICATION: custom application (no FTP server)");
                    let _ = stopped.changed().await;
                    return;
                }
                FtpScenario::BackupImage => {
                    self.say("image.bin failed its CRC check: running backup.bin");
                    let _ = stopped.changed().await;
                    return;
                }
                FtpScenario::LateFtp(delay) => {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.start_ftp.notified() => {}
                        _ = stopped.changed() => return,
                    }
                }
                FtpScenario::Normal | FtpScenario::WrongPassword => {}
            }
            let listener = match bind(self.address).await {
                Ok(listener) => listener,
                Err(error) => {
                    self.say(format!("FTP Server not started: {error}"));
                    let _ = stopped.changed().await;
                    return;
                }
            };
            self.say("FTP download server is ready.");
            let (ended_tx, mut ended) = mpsc::unbounded_channel::<SessionEnd>();
            let mut sessions = 0usize;
            let mut reset_at: Option<tokio::time::Instant> = None;
            loop {
                let reset = async {
                    match reset_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = reset => break,
                    accepted = listener.accept() => {
                        let Ok((mut stream, _)) = accepted else { continue };
                        if sessions >= self.behaviour.max_sessions {
                            // As the NET+OS server does beyond its two sessions.
                            let _ = stream.write_all(b"421 Too many sessions, try again later.\r\n").await;
                            continue;
                        }
                        sessions += 1;
                        session_number += 1;
                        // Several simulated devices may share one workdir.
                        let dir = self.workdir.join(format!("session-{}-{}-{session_number}", self.address.ip(), self.address.port()));
                        let completed = CompletedUploads::default();
                        let server = self.server(&dir, completed.clone());
                        let ended_tx = ended_tx.clone();
                        let device = match self.address.ip() {
                            std::net::IpAddr::V4(ip) => ip,
                            std::net::IpAddr::V6(_) => std::net::Ipv4Addr::LOCALHOST,
                        };
                        let control = ControlConfig { version: self.behaviour.firmware.version(), no_pasv: self.behaviour.no_pasv };
                        tokio::spawn(async move {
                            if let Ok(server) = server {
                                let service = |inner| tokio::spawn(async move {
                                    let _ = server.service(inner).await;
                                });
                                let _ = relay(stream, device, control, service).await;
                            }
                            let names = completed.names();
                            let _ = ended_tx.send(SessionEnd { dir, completed: names });
                        });
                    }
                    Some(end) = ended.recv() => {
                        sessions -= 1;
                        if self.commit(&end.dir, &end.completed) && reset_at.is_none() {
                            let seconds = self.behaviour.reset_delay.as_secs_f64();
                            self.say(format!("Resetting system in {seconds} seconds."));
                            reset_at = Some(tokio::time::Instant::now() + self.behaviour.reset_delay);
                        }
                        let _ = std::fs::remove_dir_all(&end.dir);
                    }
                }
            }
            drop(listener);
            self.say("Resetting...");
            if lock(&self.state).recovery {
                self.say("Starting serial recovery...");
                let _ = stopped.changed().await;
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.behaviour.boot_time) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// A libunftp server for one session, its uploads landing in `dir`.
    fn server(
        &self,
        dir: &Path,
        completed: CompletedUploads,
    ) -> std::io::Result<libunftp::Server<unftp_sbe_fs::Filesystem, unftp_core::auth::DefaultUser>> {
        std::fs::create_dir_all(dir)?;
        // What the NET+OS server answers to `RETR id` and `RETR errmsg`.
        std::fs::write(dir.join("id"), "NETARM-FTPDL-V100")?;
        std::fs::write(dir.join("errmsg"), "")?;
        let password = match self.behaviour.scenario {
            FtpScenario::WrongPassword => "changed-on-site".to_string(),
            _ => self.behaviour.firmware.factory_password().to_string(),
        };
        let root = dir.to_path_buf();
        let builder = libunftp::ServerBuilder::with_authenticator(
            Box::new(move || unftp_sbe_fs::Filesystem::new(root.clone()).expect("the session folder exists")),
            Arc::new(NetosAuthenticator { password }),
        )
        // The relay in front rewrites the greeting with the firmware's version.
        .greeting("NET+OS FTP server ready.")
        // PORT is the mode confirmed on NET+OS; the relay decides about PASV.
        .active_passive_mode(libunftp::options::ActivePassiveMode::ActiveAndPassive)
        .notify_data(completed)
        .passive_ports(49152..=65534)
        .idle_session_timeout(120);
        builder.build().map_err(std::io::Error::other)
    }

    /// Writes the flash images a finished session uploaded. True when any was.
    fn commit(&self, dir: &Path, completed: &[String]) -> bool {
        let mut written = Vec::new();
        for name in FLASH_NAMES {
            if !completed.iter().any(|c| c == name) {
                continue;
            }
            let Ok(bytes) = std::fs::read(dir.join(name)) else { continue };
            let sha256 = crate::digest::sha256_hex(&bytes);
            let mut state = lock(&self.state);
            let writes = state.images.get(name).map_or(0, |i| i.writes) + 1;
            state.images.insert(name.to_string(), FlashedImage { bytes: bytes.len() as u64, sha256, writes });
            written.push(name);
        }
        if written.is_empty() {
            return false;
        }
        self.say("FTP: Flash download complete.");
        if written.contains(&"rom.bin") && written.contains(&"image.bin") {
            // Reported on the vendor's forum: both in one session leave the
            // device in serial recovery.
            lock(&self.state).recovery = true;
        }
        true
    }
}

/// Binds, retrying briefly: the previous boot's socket may still be closing.
async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

/// root with the firmware's password; anyone else is refused (530).
#[derive(Debug)]
struct NetosAuthenticator {
    password: String,
}

#[async_trait]
impl Authenticator for NetosAuthenticator {
    async fn authenticate(&self, username: &str, creds: &Credentials) -> Result<Principal, AuthenticationError> {
        if username != "root" {
            return Err(AuthenticationError::BadUser);
        }
        if creds.password.as_deref() != Some(self.password.as_str()) {
            return Err(AuthenticationError::BadPassword);
        }
        Ok(Principal { username: username.to_string() })
    }
}
