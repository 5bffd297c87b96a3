//! A simulated bench: N NET+OS devices, each a console on its own PTY (the
//! serial side, [`super::netos`]) with its FTP flash server attached on the
//! address its console sets ([`super::netos_ftp`]), plus a CSP matrix
//! controller ([`super::csp`]), and an inventory naming them all. `flashline
//! demo` runs the real batch pipeline against it; tests and the benchmark
//! build on it too.
//!
//! Device addresses are on loopback, 127.a.b.(100 + i) with a /24 picked per
//! bench, so every simulated FTP server uses the same port without root.
//!
//! The first device's FTP server refuses PASV and EPSV ([`NO_PASV_DEVICE`]),
//! as a NET+OS server may (only PORT is confirmed): every demo runs the
//! client's fallback to active mode.

use super::firmware::Firmware;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::netos::{NetosConfig, NetosDevice, NvMemory};
use super::netos_ftp::{FlashState, FtpBehaviour, FtpScenario, NetosFtp};
use crate::netos::boot_header as image;
use crate::sync::lock;

/// The FTP port of the simulated devices, as `profiles/sim-netos.yaml` says.
pub const SIM_FTP_PORT: u16 = 2121;

/// The index of the device whose FTP server refuses passive mode.
pub const NO_PASV_DEVICE: usize = 0;

/// The field failures a bench can show on one of its devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    NoFtpServer,
    LateFtp,
    WrongPassword,
    BackupImage,
    CspMissingFile,
}

impl Scenario {
    pub const NAMES: [&'static str; 5] =
        ["no-ftp-server", "late-ftp", "wrong-password", "backup-image", "csp-missing-file"];

    pub fn parse(name: &str) -> Option<Scenario> {
        Some(match name {
            "no-ftp-server" => Scenario::NoFtpServer,
            "late-ftp" => Scenario::LateFtp,
            "wrong-password" => Scenario::WrongPassword,
            "backup-image" => Scenario::BackupImage,
            "csp-missing-file" => Scenario::CspMissingFile,
            _ => return None,
        })
    }
}

/// One simulated NET+OS device.
pub struct SimDevice {
    pub name: String,
    pub ip: Ipv4Addr,
    /// The PTY flashline opens.
    pub port: PathBuf,
    /// The FTP side, once the console has set an address.
    ftp: Arc<Mutex<Option<NetosFtp>>>,
    // The PTY's far end must stay open, or the line hangs up.
    _pty: tokio_serial::SerialStream,
}

impl std::fmt::Debug for SimDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDevice")
            .field("name", &self.name)
            .field("ip", &self.ip)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SimDevice {
    /// What the device's flash holds (empty until its FTP server started).
    pub fn flash(&self) -> FlashState {
        lock(&self.ftp).as_ref().map(NetosFtp::flash).unwrap_or_default()
    }
}

/// A running simulated bench. Dropping it stops every device.
pub struct SimBench {
    pub devices: Vec<SimDevice>,
    pub inventory: PathBuf,
    /// The CSP controller's address, when the bench has one.
    pub csp: Option<SocketAddr>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for SimBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBench")
            .field("devices", &self.devices)
            .field("inventory", &self.inventory)
            .finish_non_exhaustive()
    }
}

impl Drop for SimBench {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub devices: usize,
    /// Applied to the last NET+OS device (or to the CSP controller).
    pub scenario: Option<Scenario>,
    /// The NET+OS profile the inventory names.
    pub profile: PathBuf,
    /// Add a CSP controller and its profile to the inventory.
    pub with_csp: bool,
    /// The console's key window; short keeps the demo quick.
    pub key_window: Duration,
    /// Put each console behind the serial link emulator (baud pacing,
    /// latency); None connects it straight to its PTY.
    pub link: Option<super::link::LinkConfig>,
}

/// Root password and FTP password of the simulated firmware; the demo puts
/// them in the environment variables `profiles/sim-netos.yaml` reads.
pub const SIM_ROOT_PASSWORD: &str = "Netsilicon";

/// Builds the bench in `workdir`: images, devices, the CSP controller and the
/// inventory (`workdir/inventory.csv`). Must run inside a tokio runtime.
pub async fn start(workdir: &Path, spec: &BenchSpec) -> std::io::Result<SimBench> {
    let (stop, stopped) = watch::channel(false);
    write_images(workdir)?;
    // A /24 of loopback of its own, so benches running at the same time
    // (parallel tests, two demos) never share an address and port.
    let random = std::collections::hash_map::RandomState::new();
    let pick = std::hash::BuildHasher::hash_one(&random, (std::process::id(), workdir));
    let (net_a, net_b) = (1 + (pick % 254) as u8, (pick >> 8) as u8);
    let mut devices = Vec::new();
    let mut rows = vec!["name,profile,port,ip,mask,gateway,rom_image,app_image".to_string()];
    for index in 0..spec.devices {
        let name = format!("unit-{:02}", index + 1);
        let ip = Ipv4Addr::new(127, net_a, net_b, 100 + (index % 150) as u8);
        let last = index + 1 == spec.devices;
        let scenario = if last { spec.scenario } else { None };
        let device = start_device(index, &name, ip, scenario, spec, workdir, stopped.clone())?;
        rows.push(format!(
            "{name},{},{},{ip},255.0.0.0,127.0.0.1,{},{}",
            spec.profile.display(),
            device.port.display(),
            workdir.join("rom.bin").display(),
            workdir.join("image.bin").display()
        ));
        devices.push(device);
    }
    let mut csp = None;
    if spec.with_csp || spec.scenario == Some(Scenario::CspMissingFile) {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let mut stop_csp = stopped.clone();
        let config = super::csp::CspConfig {
            poll_interval: Some(Duration::from_secs(2)),
            tftp_port: unused_udp_port()?,
            ..super::csp::CspConfig::default()
        };
        tokio::spawn(async move {
            let _ = super::csp::serve(listener, config, async move {
                let _ = stop_csp.changed().await;
            })
            .await;
        });
        let profile = workdir.join("sim-csp.yaml");
        std::fs::write(&profile, csp_profile(address.port(), spec.scenario == Some(Scenario::CspMissingFile)))?;
        rows.push(format!("csp-standby,{},,127.0.0.1,,,,", profile.display()));
        csp = Some(address);
    }
    let inventory = workdir.join("inventory.csv");
    std::fs::write(&inventory, rows.join("\n") + "\n")?;
    Ok(SimBench { devices, inventory, csp, stop })
}

/// A UDP port nothing listens on: the controller's TFTP requests to it go
/// unanswered, as they would to a server without the file's host.
fn unused_udp_port() -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

fn csp_profile(port: u16, missing_file: bool) -> String {
    let download = if missing_file {
        "      local_config: tftpboot/missing-load.cfg\n      local_server: 127.0.0.1\n      timestamp: \"01 02 03 04\"\n      begin_download: true\n"
    } else {
        ""
    };
    format!(
        "format: 1\nname: sim-csp\ndescription: The simulated CSP matrix controller (TFTP Manage queries)\nnetwork:\n  dhcp: false\n  ip: ${{ip}}\nsteps:\n  - tftp_manage:\n      port: {port}\n      query: [local-config, local-server, adjacent-config, adjacent-server, timestamp, save-options]\n{download}      timeout: 10s\n"
    )
}

/// rom.bin and image.bin with the bootHdr header and CRC the boot loader checks.
pub(super) fn write_images(workdir: &Path) -> std::io::Result<()> {
    let payload = |len: usize, seed: u32| -> Vec<u8> {
        (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 11) as u8).collect()
    };
    std::fs::write(workdir.join("rom.bin"), image::build(&payload(24 * 1024, 1), 0x0107_0000))?;
    std::fs::write(workdir.join("image.bin"), image::build(&payload(192 * 1024, 2), 0x0107_0001))?;
    Ok(())
}

fn start_device(
    index: usize,
    name: &str,
    ip: Ipv4Addr,
    scenario: Option<Scenario>,
    spec: &BenchSpec,
    workdir: &Path,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<SimDevice> {
    let key_window = spec.key_window;
    let (controller, far_end) = tokio_serial::SerialStream::pair().map_err(std::io::Error::other)?;
    let port = tokio_serial::SerialPort::name(&far_end)
        .map(PathBuf::from)
        .ok_or_else(|| std::io::Error::other("the PTY has no name"))?;
    // One release for the whole unit (its console's wording, its FTP
    // server's greeting, its factory password): 6.x, whose factory root
    // password is the demo's SIM_ROOT_PASSWORD.
    let firmware = Firmware::Netos6;
    let config = NetosConfig {
        firmware,
        nv: NvMemory {
            dhcp: true,
            mac: format!("00:40:9D:00:{:02X}:{:02X}", (index >> 8) & 0xFF, index & 0xFF),
            serial_number: format!("N{:08}", 20_000 + index),
            ..NvMemory::default()
        },
        key_window,
        recovery: true,
        c_interval: Duration::from_millis(200),
        root_password: Some(SIM_ROOT_PASSWORD.into()),
        ..NetosConfig::default()
    };
    let device = NetosDevice::new(config);
    let ftp: Arc<Mutex<Option<NetosFtp>>> = Arc::new(Mutex::new(None));
    let behaviour = FtpBehaviour { no_pasv: index == NO_PASV_DEVICE, ..demo_behaviour(scenario, firmware) };
    // The FTP side starts when the application brings the network up on the
    // address the console set, and prints on the same console.
    let ftp_dir = workdir.join(format!("ftp-{name}"));
    std::fs::create_dir_all(&ftp_dir)?;
    serve_ftp_when_configured(&device, Some(ip), behaviour, ftp_dir, ftp.clone(), stopped.clone());
    match spec.link {
        None => {
            tokio::spawn(async move {
                tokio::select! {
                    _ = device.run(controller) => {}
                    _ = stopped.changed() => {}
                }
            });
        }
        Some(config) => {
            // PTY <-> emulated wire <-> the device's console.
            let (console_end, wire_end) = tokio::io::duplex(1 << 16);
            let stats = Arc::new(Mutex::new(super::link::LinkStats::default()));
            tokio::spawn(super::link::bridge(controller, wire_end, config, stats));
            tokio::spawn(async move {
                tokio::select! {
                    _ = device.run(console_end) => {}
                    _ = stopped.changed() => {}
                }
            });
        }
    }
    Ok(SimDevice { name: name.to_string(), ip, port, ftp, _pty: far_end })
}

/// Starts the device's FTP flash server once its application brings the
/// network up with a static address (`only`, when given, is the one
/// address it may be), on that address; the server prints on the device's
/// console. The server goes into `slot`.
pub(super) fn serve_ftp_when_configured(
    device: &NetosDevice,
    only: Option<Ipv4Addr>,
    behaviour: FtpBehaviour,
    ftp_dir: PathBuf,
    slot: Arc<Mutex<Option<NetosFtp>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut network = device.network();
    let console = device.console_line();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = network.changed() => if changed.is_err() { return },
                _ = stopped.changed() => return,
            }
            let settings = network.borrow_and_update().clone();
            let Some(nv) = settings.filter(|nv| !nv.dhcp && only.is_none_or(|ip| nv.ip == ip)) else { continue };
            let mut slot = lock(&slot);
            if slot.is_none() {
                let server = NetosFtp::start(SocketAddr::from((nv.ip, SIM_FTP_PORT)), behaviour.clone(), &ftp_dir);
                let mut lines = server.console();
                let console = console.clone();
                tokio::spawn(async move {
                    while let Ok(line) = lines.recv().await {
                        if console.send(line).is_err() {
                            return;
                        }
                    }
                });
                *slot = Some(server);
            }
        }
    });
}

/// The FTP side of a demo unit: quick resets, and `scenario`'s field failure.
pub(super) fn demo_behaviour(scenario: Option<Scenario>, firmware: Firmware) -> FtpBehaviour {
    FtpBehaviour {
        scenario: match scenario {
            Some(Scenario::NoFtpServer) => FtpScenario::NoFtpServer,
            Some(Scenario::LateFtp) => FtpScenario::LateFtp(Duration::from_secs(3)),
            Some(Scenario::WrongPassword) => FtpScenario::WrongPassword,
            Some(Scenario::BackupImage) => FtpScenario::BackupImage,
            _ => FtpScenario::Normal,
        },
        reset_delay: Duration::from_millis(500),
        boot_time: Duration::from_millis(700),
        firmware,
        ..FtpBehaviour::default()
    }
}
