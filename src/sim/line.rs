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

use super::bench::{Scenario, demo_behaviour, serve_ftp_when_configured, write_images};
use super::firmware::Firmware;
use super::netos::{NetosConfig, NetosDevice, NvMemory};
use crate::sync::lock;

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
    /// Station files to split the fixtures over (one station each).
    pub stations: usize,
    /// When a unit is taken out.
    pub unplug: Unplug,
    /// Put each unit's console behind the serial link emulator (baud
    /// pacing, latency); None connects it straight.
    pub link: Option<super::link::LinkConfig>,
}

/// When the line takes a unit out of its fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unplug {
    /// When told ([`SimLine::unit_done`]): the station runs in this process.
    WhenTold,
    /// Once the unit holds both images and restarted, or after this long
    /// in any case: the stations run in other processes.
    WhenFlashed { at_most: Duration },
}

/// A running line. Dropping it stops every unit.
pub struct SimLine {
    /// The first station file (the only one unless `stations` > 1).
    pub station_file: PathBuf,
    pub station_files: Vec<PathBuf>,
    /// The MACs of the units, in the order they are plugged.
    pub units: Vec<String>,
    done: Vec<mpsc::UnboundedSender<()>>,
    fixture_names: Vec<String>,
    feeds: Vec<tokio::task::JoinHandle<()>>,
    /// What the line does, one line of text each (plugged, taken out).
    pub events: mpsc::UnboundedReceiver<String>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for SimLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimLine")
            .field("station_files", &self.station_files)
            .field("units", &self.units)
            .finish_non_exhaustive()
    }
}

impl Drop for SimLine {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl SimLine {
    /// Waits until every unit was plugged in and taken out again.
    pub async fn all_units_done(&mut self) {
        for feed in self.feeds.drain(..) {
            let _ = feed.await;
        }
    }

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
    let mut fixtures_yaml = vec![String::new(); spec.stations.max(1)];
    let per_station = spec.fixtures.div_ceil(spec.stations.max(1));
    let mut done = Vec::new();
    let mut feeds = Vec::new();
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut fixture_names = Vec::new();
    for index in 0..spec.fixtures {
        let name = format!("f{}", index + 1);
        let (controller, far_end) = tokio_serial::SerialStream::pair().map_err(std::io::Error::other)?;
        let port =
            tokio_serial::SerialPort::name(&far_end).ok_or_else(|| std::io::Error::other("the PTY has no name"))?;
        fixtures_yaml[index / per_station].push_str(&format!("  - name: {name}\n    port: {port}\n"));
        // This fixture's units: every `fixtures`-th one.
        let queue: Vec<(usize, String, String)> = units
            .iter()
            .enumerate()
            .filter(|(i, _)| i % spec.fixtures == index)
            .map(|(i, (mac, serial))| (i, mac.clone(), serial.clone()))
            .collect();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        done.push(done_tx);
        fixture_names.push(name.clone());
        let (plug_tx, plug_rx) = mpsc::unbounded_channel::<Option<DuplexStream>>();
        tokio::spawn(bridge(controller, far_end, plug_rx, stopped.clone()));
        let events = Events { fixture: name.clone(), sender: events_tx.clone() };
        feeds.push(tokio::spawn(feed(
            queue,
            plug_tx,
            done_rx,
            spec.clone(),
            workdir.to_path_buf(),
            events,
            stopped.clone(),
        )));
    }
    let database = spec.database.as_ref().map(|db| format!("database: \"{db}\"\n")).unwrap_or_default();
    // Silence means gone only when it outlasts the unit's own quiet start-up
    // window; a unit taken out when the station says so goes at once.
    let gone_after = match spec.unplug {
        Unplug::WhenTold => Duration::from_millis(1500),
        Unplug::WhenFlashed { .. } => spec.key_window + Duration::from_secs(2),
    };
    let mut station_files = Vec::new();
    for (index, fixtures) in fixtures_yaml.iter().enumerate().filter(|(_, f)| !f.is_empty()) {
        let (name, file) = if spec.stations <= 1 {
            ("demo-line".to_string(), workdir.join("station.yaml"))
        } else {
            (format!("line-{}", index + 1), workdir.join(format!("station-{}.yaml", index + 1)))
        };
        let station = format!(
            "format: 1\nstation: {name}\nprofile: sim-netos-line.yaml\noperator: demo\n{database}\
             ip_pool:\n  addresses: {pool}\n  mask: 255.0.0.0\n  gateway: 127.0.0.1\n\
             arrival:\n  gone_after: {}ms\nheartbeat:\n  interval: 1s\n  expiry: 5s\nfixtures:\n{fixtures}",
            gone_after.as_millis()
        );
        std::fs::write(&file, station)?;
        station_files.push(file);
    }
    Ok(SimLine {
        station_file: station_files[0].clone(),
        station_files,
        units: units.into_iter().map(|(mac, _)| mac).collect(),
        done,
        fixture_names,
        feeds,
        events,
        stop,
    })
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
    events: Events,
    stopped: watch::Receiver<bool>,
) {
    for (number, mac, serial) in queue {
        let gap = spec.max_gap.mul_f64(f64::from(random_bytes(1)[0]) / 255.0);
        tokio::time::sleep(gap).await;
        let (unit_end, line_end) = match spec.link {
            None => tokio::io::duplex(1 << 16),
            Some(config) => {
                // unit <-> emulated wire <-> the fixture's cable.
                let (unit_end, wire_a) = tokio::io::duplex(1 << 16);
                let (wire_b, line_end) = tokio::io::duplex(1 << 16);
                let stats = Arc::new(Mutex::new(super::link::LinkStats::default()));
                tokio::spawn(super::link::bridge(wire_a, wire_b, config, stats));
                (unit_end, line_end)
            }
        };
        let scenario = spec.scenario.filter(|_| number % 4 == 3);
        let (unit_stop, unit_stopped) = watch::channel(false);
        let Ok(slot) = start_unit(&mac, &serial, scenario, &spec, &workdir, unit_end, unit_stopped) else { continue };
        if plugs.send(Some(line_end)).is_err() {
            return;
        }
        events.say(format!("plugged {mac} in"));
        let mut stop = stopped.clone();
        match spec.unplug {
            Unplug::WhenTold => tokio::select! {
                _ = done.recv() => {}
                _ = stop.changed() => return,
            },
            Unplug::WhenFlashed { at_most } => tokio::select! {
                _ = flashed_and_restarted(&slot) => {
                    // Let the station see the restart and end the run
                    // before the cable goes.
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    events.say(format!("{mac} holds both images and restarted"));
                }
                // Bounded: a unit nobody takes goes after a while.
                _ = tokio::time::sleep(at_most) => events.say(format!("{mac} was not flashed within {at_most:?}")),
                _ = stop.changed() => return,
            },
        }
        events.say(format!("took {mac} out"));
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
) -> std::io::Result<FtpSlot> {
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
    let behaviour = demo_behaviour(scenario, firmware);
    let ftp_dir = workdir.join(format!("ftp-{}", mac.replace(':', "")));
    std::fs::create_dir_all(&ftp_dir)?;
    let slot: FtpSlot = Arc::new(Mutex::new(None));
    serve_ftp_when_configured(&device, None::<Ipv4Addr>, behaviour, ftp_dir, slot.clone(), stopped.clone());
    let unit_slot = slot.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = device.run(stream) => {}
            _ = stopped.changed() => {}
        }
        // Unplugged: its FTP server goes with it.
        drop(lock(&unit_slot).take());
    });
    Ok(slot)
}

/// Where a fixture's feed reports what it does.
struct Events {
    fixture: String,
    sender: mpsc::UnboundedSender<String>,
}

impl Events {
    fn say(&self, text: String) {
        let _ = self.sender.send(format!("{}: {text}", self.fixture));
    }
}

type FtpSlot = Arc<Mutex<Option<super::netos_ftp::NetosFtp>>>;

/// Returns once the unit holds rom.bin and image.bin and has restarted
/// after taking them.
async fn flashed_and_restarted(slot: &FtpSlot) {
    loop {
        let flashed = lock(slot).as_ref().map(|ftp| ftp.flash()).is_some_and(|flash| {
            flash.images.contains_key("rom.bin") && flash.images.contains_key("image.bin") && flash.boots >= 2
        });
        if flashed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = random.read_exact(&mut bytes);
    }
    bytes
}
