//! `flashline sim line`: a simulated manufacturing line for stations in
//! other processes (`flashline station`). Writes one station file per
//! station (the fixtures split between them, one shared address pool and
//! database), then plugs the units in one after another; a unit is taken
//! out once it holds both images and restarted (or after --unit-timeout).
//! Exits when every unit has been in and out.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CommandResult, Context, Outcome};
use crate::profile::HumanDuration;
use crate::sim::bench::Scenario;
use crate::sim::line::{self, LineSpec, Unplug};

#[derive(Debug, Args)]
pub struct LineArgs {
    /// Folder for the images, the profile and the station files.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Fixtures on the line (a PTY each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    fixtures: u16,
    /// Units to plug in, spread over the fixtures.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=10000))]
    units: u16,
    /// Station files to write; the fixtures are split between them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    stations: u16,
    /// The database the station files name.
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// The address pool the station files share (FIRST-LAST or CIDR).
    #[arg(long, value_name = "RANGE")]
    ip_pool: Option<String>,
    /// A field failure on every fourth unit: no-ftp-server, late-ftp, wrong-password, backup-image.
    #[arg(long, value_name = "NAME", value_parser = parse_scenario)]
    scenario: Option<Scenario>,
    /// Take a unit out after this long even when nobody flashed it.
    #[arg(long, default_value = "120s")]
    unit_timeout: HumanDuration,
    /// The console's key window of each unit (5 s on a real unit).
    #[arg(long, default_value = "5s")]
    key_window: HumanDuration,
}

fn parse_scenario(name: &str) -> Result<Scenario, String> {
    Scenario::parse(name).ok_or_else(|| format!("unknown scenario `{name}`; one of: {}", Scenario::NAMES.join(", ")))
}

pub fn run(args: LineArgs, context: &Context) -> CommandResult {
    if let Err(error) = std::fs::create_dir_all(&args.dir) {
        return Err(context.fail(format!("cannot create {}: {error}", args.dir.display()), Outcome::Environment));
    }
    let runtime = context.runtime()?;
    let spec = LineSpec {
        fixtures: usize::from(args.fixtures),
        units: usize::from(args.units),
        scenario: args.scenario,
        ip_pool: args.ip_pool.clone(),
        database: args.db.clone(),
        key_window: args.key_window.0,
        max_gap: Duration::from_millis(600),
        stations: usize::from(args.stations),
        unplug: Unplug::WhenFlashed { at_most: args.unit_timeout.0 },
        link: None,
    };
    runtime.block_on(async {
        let mut line = match line::start(&args.dir, &spec).await {
            Ok(line) => line,
            Err(error) => {
                return Err(context.fail(format!("cannot start the simulated line: {error}"), Outcome::Environment));
            }
        };
        for file in &line.station_files {
            eprintln!("station file {}", file.display());
        }
        eprintln!("line ready: {} unit(s) on {} fixture(s)", line.units.len(), args.fixtures);
        let mut events = std::mem::replace(&mut line.events, tokio::sync::mpsc::unbounded_channel().1);
        let printer = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                eprintln!("{event}");
            }
        });
        line.all_units_done().await;
        printer.abort();
        eprintln!("every unit has been in and out");
        Ok(Outcome::Success)
    })
}
