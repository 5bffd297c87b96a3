//! `flashline demo`: a simulated bench (NET+OS devices on PTYs with their FTP
//! servers, a CSP controller) and the real batch pipeline run against it, end
//! to end, with no hardware. `--scenario` puts a field failure on one device
//! to show its diagnosis.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::batch_view::{ReportArgs, run_jobs_in};
use super::{CommandResult, Context, Outcome};
use crate::pipeline::batch::BatchOptions;
use crate::pipeline::device::{DeviceJob, ProfileCache};
use crate::profile::{CheckOptions, Inventory};
use crate::progress::Progress;
use crate::sim::bench::{self, BenchSpec, Scenario};
use crate::sim::line::{self, LineSpec, SimLine, Unplug};
use crate::station::pool::AddressPool;
use crate::station::{self, StationEvent, StationObserver, StationOptions};
use crate::store::DbUrl;
use std::sync::Arc;
use tokio::sync::watch;

use super::station_view::EventLines;
use crate::sync::lock;

/// The example profile for the simulator, built in so the demo runs from
/// anywhere.
const SIM_PROFILE: &str = include_str!("../../profiles/sim-netos.yaml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated NET+OS devices.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=150))]
    devices: u16,
    /// A field failure on the last device: no-ftp-server, late-ftp, wrong-password, backup-image, csp-missing-file.
    #[arg(long, value_name = "NAME", value_parser = parse_scenario)]
    scenario: Option<Scenario>,
    /// Devices run at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    /// Keep the bench's files (images, profile, inventory, journal) in this folder.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// A simulated line instead of a bench: units plugged into fixtures one
    /// after another, taken by a station and recorded in the unit database.
    #[arg(long)]
    station: bool,
    /// With --station: the fixtures.
    #[arg(long, default_value_t = 2, requires = "station", value_parser = clap::value_parser!(u16).range(1..=64))]
    fixtures: u16,
    /// With --station: the units to plug in (the demo ends when all are done).
    #[arg(long, default_value_t = 6, requires = "station", value_parser = clap::value_parser!(u16).range(1..=1000))]
    units: u16,
    /// With --station: the unit database (default: flashline.db in the work folder).
    #[arg(long, value_name = "URL", requires = "station", env = "FLASHLINE_DB", hide_env_values = true)]
    db: Option<String>,
    /// With --station: the address pool (FIRST-LAST or CIDR; default: a loopback range of its own).
    #[arg(long, value_name = "RANGE", requires = "station")]
    ip_pool: Option<String>,

    #[command(flatten)]
    reports: ReportArgs,
}

fn parse_scenario(name: &str) -> Result<Scenario, String> {
    Scenario::parse(name).ok_or_else(|| format!("unknown scenario `{name}`; one of: {}", Scenario::NAMES.join(", ")))
}

pub fn run(args: DemoArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.reports.json);
    // The simulated firmware's passwords, where the sim profile reads them.
    for var in ["FLASHLINE_SIM_ROOT_PASSWORD", "FLASHLINE_SIM_FTP_PASSWORD"] {
        if std::env::var_os(var).is_none() {
            // SAFETY: no other thread exists yet; the runtime starts below.
            unsafe { std::env::set_var(var, bench::SIM_ROOT_PASSWORD) };
        }
    }
    let temporary;
    let workdir = match &args.keep {
        Some(dir) => {
            if let Err(error) = std::fs::create_dir_all(dir) {
                return Err(context.fail(format!("cannot create {}: {error}", dir.display()), Outcome::Environment));
            }
            // Absolute: the bench writes these paths into its inventory, whose
            // relative paths start from the inventory's own folder (a relative
            // `kept` would become `kept/kept/...`).
            match std::path::absolute(dir) {
                Ok(dir) => dir,
                Err(error) => {
                    return Err(
                        context.fail(format!("cannot resolve {}: {error}", dir.display()), Outcome::Environment)
                    );
                }
            }
        }
        None => match tempfile::Builder::new().prefix("flashline-demo-").tempdir() {
            Ok(dir) => {
                temporary = dir;
                temporary.path().to_path_buf()
            }
            Err(error) => {
                return Err(context.fail(format!("cannot make a work folder: {error}"), Outcome::Environment));
            }
        },
    };
    if args.station {
        return run_line(&args, &workdir, context);
    }
    let profile = workdir.join("sim-netos.yaml");
    if let Err(error) = std::fs::write(&profile, SIM_PROFILE) {
        return Err(context.fail(format!("cannot write {}: {error}", profile.display()), Outcome::Environment));
    }
    let runtime = context.runtime()?;
    let spec = BenchSpec {
        devices: usize::from(args.devices),
        scenario: args.scenario,
        profile: profile.clone(),
        with_csp: true,
        key_window: Duration::from_secs(2),
        link: None,
    };
    let bench = match runtime.block_on(bench::start(&workdir, &spec)) {
        Ok(bench) => bench,
        Err(error) => {
            return Err(context.fail(format!("cannot start the simulated bench: {error}"), Outcome::Environment));
        }
    };
    if !context.quiet && !args.reports.json {
        eprintln!(
            "simulated bench: {} NET+OS device(s) on PTYs ({} refuses passive FTP: only PORT works), a CSP controller at {}; inventory {}",
            bench.devices.len(),
            bench.devices.get(bench::NO_PASV_DEVICE).map_or("none", |d| d.name.as_str()),
            bench.csp.map(|a| a.to_string()).unwrap_or_default(),
            bench.inventory.display()
        );
    }
    let inventory = match Inventory::load(&bench.inventory) {
        Ok(inventory) => inventory,
        Err(error) => return Err(context.fail_profile(&error)),
    };
    let mut profiles = ProfileCache::new(CheckOptions::default());
    let devices: Vec<DeviceJob> = inventory
        .devices
        .iter()
        .map(|d| DeviceJob::from_inventory(&inventory, d, profiles.get(d.profile.as_ref().unwrap_or(&profile))))
        .collect();
    let options =
        BatchOptions { jobs: args.jobs, journal: Some(workdir.join("journal.jsonl")), resume: false, database: None };
    let outcome = run_jobs_in(&runtime, devices, &options, &args.reports, context);
    drop(bench);
    Ok(outcome)
}

/// `demo --station`: a simulated line and a station taking its units.
fn run_line(args: &DemoArgs, workdir: &std::path::Path, context: &Context) -> CommandResult {
    let runtime = context.runtime()?;
    let database = match args.db.as_deref().map(|db| DbUrl::parse(db, &std::env::current_dir().unwrap_or_default())) {
        None => None,
        Some(Ok(url)) => Some(url),
        Some(Err(error)) => return Err(context.fail(error.to_string(), Outcome::BadInput)),
    };
    if let Some(pool) = &args.ip_pool
        && let Err(error) = AddressPool::parse(pool)
    {
        return Err(context.fail(format!("--ip-pool: {error}"), Outcome::BadInput));
    }
    let spec = LineSpec {
        fixtures: usize::from(args.fixtures),
        units: usize::from(args.units),
        scenario: args.scenario,
        ip_pool: args.ip_pool.clone(),
        database: None,
        key_window: Duration::from_secs(2),
        max_gap: Duration::from_millis(600),
        stations: 1,
        unplug: Unplug::WhenTold,
        link: None,
    };
    let units = usize::from(args.units);
    let outcome = runtime.block_on(async {
        let line = match line::start(workdir, &spec).await {
            Ok(line) => Arc::new(line),
            Err(error) => {
                return Err(context.fail(format!("cannot start the simulated line: {error}"), Outcome::Environment));
            }
        };
        let loaded = match station::file::load(&line.station_file) {
            Ok(loaded) => loaded,
            Err(error) => return Err(context.fail_profile(&error)),
        };
        if !context.quiet && !args.reports.json {
            eprintln!(
                "simulated line: {} fixture(s), {} unit(s) to plug in; station file {}",
                args.fixtures,
                units,
                line.station_file.display()
            );
        }
        let (stop, stopped) = watch::channel(false);
        let observer = Arc::new(LineDemo {
            lines: EventLines::new(args.reports.json, context.quiet),
            line: line.clone(),
            finished: std::sync::Mutex::new(0),
            units,
            stop,
        });
        let options = StationOptions { database, operator: Some("demo".into()), ..StationOptions::default() };
        let result = station::run_station(loaded, options, observer, stopped).await;
        drop(line);
        Ok(result)
    });
    match outcome {
        Err(outcome) => Err(outcome),
        Ok(Ok(counts)) if counts.failed == 0 && counts.passed as usize == units => Ok(Outcome::Success),
        Ok(Ok(_)) => Ok(Outcome::DeviceFailure),
        Ok(Err(station::StationError::Profile(error))) => Err(context.fail_profile(&error)),
        Ok(Err(error)) => Err(context.fail(error.to_string(), Outcome::from(crate::failure::Classify::class(&error)))),
    }
}

/// Shows the station's events, unplugs each unit the station is done with,
/// and stops the station once every unit was run or refused.
struct LineDemo {
    lines: EventLines,
    line: Arc<SimLine>,
    finished: std::sync::Mutex<usize>,
    units: usize,
    stop: watch::Sender<bool>,
}

impl StationObserver for LineDemo {
    fn event(&self, event: &StationEvent) {
        self.lines.event(event);
        let fixture = match event {
            StationEvent::RunEnded { fixture, .. } | StationEvent::Refused { fixture, .. } => fixture,
            _ => return,
        };
        self.line.unit_done(fixture);
        let mut finished = lock(&self.finished);
        *finished += 1;
        if *finished >= self.units {
            let _ = self.stop.send(true);
        }
    }

    fn progress(&self, fixture: &str) -> Arc<dyn Progress> {
        self.lines.progress(fixture)
    }
}
