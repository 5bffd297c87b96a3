//! A simulated manufacturing line for `flashline demo --station`: N fixtures
//! (a PTY each, the cable a unit is plugged into) and M simulated NET+OS
//! units, each with its own random MAC and serial number, plugged into the
//! fixtures one after another with short random gaps. A unit is unplugged
//! (its console falls silent) once the station says it is done with it.
//!
//! The PTY stays open across units, as a fixture's cable does: a bridge
//! task carries bytes between it and whichever unit is plugged in.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, watch};

use super::bench::{Scenario, serve_ftp_when_configured, write_images};
use super::firmware::Firmware;
use super::netos::{NetosConfig, NetosDevice, NvMemory};
use super::netos_ftp::{FtpBehaviour, FtpScenario};

/// The station profile the demo line runs.
pub const LINE_PROFILE: &str = include_str!("../../profiles/sim-netos-line.yaml");

/// What to build.
#[derive(Debug, Clone)]
pub struct LineSpec {
    pub fixtures: usize,
    pub units: usize,
    /// Applied to every fourth unit (the 4th, 8th...).
    pub scenario: Option<Scenario>,
    /// The pool the station file gives; `None`: a /24 of loopback of this line's own.
    pub ip_pool: Option<String>,
    /// The database URL the station file names; `None`: its default.
    pub database: Option<String>,
    pub key_window: Duration,
    /// Longest random gap before a unit is plugged in.
    pub max_gap: Duration,
}

/// A running line. Dropping it stops every unit.
pub struct SimLine {
    pub station_file: PathBuf,
    /// The MACs of the units, in the order they are plugged.
    pub units: Vec<String>,
    done: Vec<mpsc::UnboundedSender<()>>,
    fixture_names: Vec<String>,
    stop: watch::Sender<bool>,
}

impl Drop for SimLine {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl SimLine {
    /// The station is done with the unit on `fixture`: unplug it.
    pub fn unit_done(&self, fixture: &str) {
        if let Some(index) = self.fixture_names.iter().position(|f| f == fixture) {
            let _ = self.done[index].send(());
        }
    }
}

/// Builds the line in `workdir`: images, the profile, the station file, the
/// fixtures and their queues of units. Must run inside a tokio runtime.
pub async fn start(workdir: &Path, spec: &LineSpec) -> std::io::Result<SimLine> {
    if matches!(spec.scenario, Some(Scenario::CspMissingFile)) {
        return Err(std::io::Error::other("a line has no CSP controller: csp-missing-file does not apply"));
    }
    write_images(workdir)?;
    std::fs::write(workdir.join("sim-netos-line.yaml"), LINE_PROFILE)?;
    let (stop, stopped) = watch::channel(false);
    let random = random_bytes(4 + 6 * spec.units);
    let pool = spec.ip_pool.clone().unwrap_or_else(|| {
        let (a, b) = (1 + random[0] % 254, random[1]);
        format!("127.{a}.{b}.10-127.{a}.{b}.250")
    });
    let units: Vec<(String, String)> = (0..spec.units)
        .map(|i| {
            let r = &random[4 + 6 * i..4 + 6 * (i + 1)];
            let mac = format!("00:40:9D:{:02X}:{:02X}:{:02X}", r[0], r[1], r[2]);
            let serial = format!("N{:08}", u32::from_le_bytes([r[3], r[4], r[5], 0]) % 100_000_000);
            (mac, serial)
        })
        .collect();
    let mut fixtures_yaml = String::new();
    let mut done = Vec::new();
    let mut fixture_names = Vec::new();
    for index in 0..spec.fixtures {
        let name = format!("f{}", index + 1);
        let (controller, far_end) = tokio_serial::SerialStream::pair().map_err(std::io::Error::other)?;
        let port =
            tokio_serial::SerialPort::name(&far_end).ok_or_else(|| std::io::Error::other("the PTY has no name"))?;
        fixtures_yaml.push_str(&format!("  - name: {name}\n    port: {port}\n"));
        // This fixture's units: every `fixtures`-th one.
        let queue: Vec<(usize, String, String)> = units
            .iter()
            .enumerate()
            .filter(|(i, _)| i % spec.fixtures == index)
            .map(|(i, (mac, serial))| (i, mac.clone(), serial.clone()))
            .collect();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        done.push(done_tx);
        fixture_names.push(name);
        let (plug_tx, plug_rx) = mpsc::unbounded_channel::<Option<DuplexStream>>();
        tokio::spawn(bridge(controller, far_end, plug_rx, stopped.clone()));
        tokio::spawn(feed(queue, plug_tx, done_rx, spec.clone(), workdir.to_path_buf(), stopped.clone()));
    }
    let database = spec.database.as_ref().map(|db| format!("database: \"{db}\"\n")).unwrap_or_default();
    let station = format!(
        "format: 1\nstation: demo-line\nprofile: sim-netos-line.yaml\noperator: demo\n{database}\
         ip_pool:\n  addresses: {pool}\n  mask: 255.0.0.0\n  gateway: 127.0.0.1\n\
         arrival:\n  gone_after: 1500ms\nfixtures:\n{fixtures_yaml}"
    );
    let station_file = workdir.join("station.yaml");
    std::fs::write(&station_file, station)?;
    Ok(SimLine { station_file, units: units.into_iter().map(|(mac, _)| mac).collect(), done, fixture_names, stop })
}

/// Carries bytes between the fixture's PTY and the unit plugged in (none:
/// what the station sends goes nowhere, and nothing comes back).
async fn bridge(
    mut pty: tokio_serial::SerialStream,
    // The station opens this end by name; it must stay open, or the line hangs up.
    _far_end: tokio_serial::SerialStream,
    mut plugs: mpsc::UnboundedReceiver<Option<DuplexStream>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut unit: Option<DuplexStream> = None;
    let mut from_pty = [0u8; 4096];
    let mut from_unit = [0u8; 4096];
    loop {
        tokio::select! {
            plug = plugs.recv() => match plug {
                Some(next) => unit = next,
                // Every unit was plugged: the cable stays until the line stops.
                None => {
                    let _ = stopped.changed().await;
                    return;
                }
            },
            read = pty.read(&mut from_pty) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if let Some(stream) = unit.as_mut() && stream.write_all(&from_pty[..n]).await.is_err() {
                    unit = None;
                },
            },
            read = async { match unit.as_mut() { Some(s) => s.read(&mut from_unit).await, None => std::future::pending().await } } => match read {
                Ok(0) | Err(_) => unit = None,
                Ok(n) => if pty.write_all(&from_unit[..n]).await.is_err() { return },
            },
            _ = stopped.changed() => return,
        }
    }
}

/// Plugs this fixture's units in one after another: a random gap, the unit
/// powers up, and stays until the station is done with it.
async fn feed(
    queue: Vec<(usize, String, String)>,
    plugs: mpsc::UnboundedSender<Option<DuplexStream>>,
    mut done: mpsc::UnboundedReceiver<()>,
    spec: LineSpec,
    workdir: PathBuf,
    stopped: watch::Receiver<bool>,
) {
    for (number, mac, serial) in queue {
        let gap = spec.max_gap.mul_f64(f64::from(random_bytes(1)[0]) / 255.0);
        tokio::time::sleep(gap).await;
        let (unit_end, line_end) = tokio::io::duplex(1 << 16);
        let scenario = spec.scenario.filter(|_| number % 4 == 3);
        let (unit_stop, unit_stopped) = watch::channel(false);
        if start_unit(&mac, &serial, scenario, &spec, &workdir, unit_end, unit_stopped).is_err() {
            continue;
        }
        if plugs.send(Some(line_end)).is_err() {
            return;
        }
        // Bounded: a station that never finishes the unit still ends with the line.
        let mut stop = stopped.clone();
        tokio::select! {
            _ = done.recv() => {}
            _ = stop.changed() => return,
        }
        let _ = plugs.send(None);
        let _ = unit_stop.send(true);
    }
}

fn start_unit(
    mac: &str,
    serial: &str,
    scenario: Option<Scenario>,
    spec: &LineSpec,
    workdir: &Path,
    stream: DuplexStream,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let firmware = Firmware::Netos6;
    let config = NetosConfig {
        firmware,
        nv: NvMemory { dhcp: true, mac: mac.into(), serial_number: serial.into(), ..NvMemory::default() },
        key_window: spec.key_window,
        recovery: false,
        root_password: Some(super::bench::SIM_ROOT_PASSWORD.into()),
        ..NetosConfig::default()
    };
    let device = NetosDevice::new(config);
    let behaviour = FtpBehaviour {
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
    };
    let ftp_dir = workdir.join(format!("ftp-{}", mac.replace(':', "")));
    std::fs::create_dir_all(&ftp_dir)?;
    let slot = Arc::new(Mutex::new(None));
    serve_ftp_when_configured(&device, None::<Ipv4Addr>, behaviour, ftp_dir, slot.clone(), stopped.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = device.run(stream) => {}
            _ = stopped.changed() => {}
        }
        // Unplugged: its FTP server goes with it.
        drop(slot.lock().unwrap_or_else(|p| p.into_inner()).take());
    });
    Ok(())
}

fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = random.read_exact(&mut bytes);
    }
    bytes
}
