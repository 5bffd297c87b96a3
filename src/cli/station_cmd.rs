//! `flashline station STATION.yaml`: a long-running line station. The
//! station file is checked first (every problem with its place, exit 2,
//! nothing opened); then each fixture takes unit after unit until Ctrl-C,
//! which lets the running units finish. Output: one line per event for the
//! technician (with the day's counts on each run's end), or with `--json`
//! one JSON event per line for an MES or a script.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{Context, Outcome};
use crate::failure::Classify;
use crate::progress::{Progress, Silent};
use crate::station::{self, StationEvent, StationObserver, StationOptions};
use crate::store::DbUrl;

#[derive(Debug, Args)]
pub struct StationArgs {
    /// The station file (profile, fixtures, address pool, database).
    station: PathBuf,
    /// The unit database, overriding the file's: `sqlite:PATH` or `postgres://USER@HOST/DB`.
    #[arg(long, value_name = "URL", env = "FLASHLINE_DB", hide_env_values = true)]
    db: Option<String>,
    /// Who runs the station (recorded with each run), overriding the file's.
    #[arg(long, value_name = "NAME")]
    operator: Option<String>,
    /// Take units that passed before (rework) instead of refusing them.
    #[arg(long)]
    reflash: bool,
    /// Treat the profile's warnings as errors.
    #[arg(long)]
    strict: bool,
    /// One JSON event per line on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: StationArgs, context: &Context) -> Outcome {
    let loaded = match station::file::load(&args.station) {
        Ok(loaded) => loaded,
        Err(error) => return context.fail_profile(&error),
    };
    let database = match args.db.as_deref().map(|db| DbUrl::parse(db, &std::env::current_dir().unwrap_or_default())) {
        None => None,
        Some(Ok(url)) => Some(url),
        Some(Err(error)) => return context.fail(error.to_string(), Outcome::BadInput),
    };
    let options = StationOptions { operator: args.operator, database, reflash: args.reflash, strict: args.strict };
    let runtime = match context.runtime() {
        Ok(runtime) => runtime,
        Err(outcome) => return outcome,
    };
    let observer = Arc::new(EventLines { json: args.json, quiet: context.quiet, counts: Default::default() });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let result = runtime.block_on(async {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop.send(true);
            }
        });
        station::run_station(loaded, options, observer, stopped).await
    });
    match result {
        Ok(counts) if counts.failed == 0 => Outcome::Success,
        Ok(_) => Outcome::DeviceFailure,
        Err(station::StationError::Profile(error)) => context.fail_profile(&error),
        Err(error) => context.fail(error.to_string(), Outcome::from(error.class())),
    }
}

/// Prints each event as a line (or JSON).
struct EventLines {
    json: bool,
    quiet: bool,
    counts: std::sync::Mutex<(u64, u64, u64)>,
}

impl StationObserver for EventLines {
    fn event(&self, event: &StationEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let line = match event {
            StationEvent::Started { station, fixtures, database, profile } => format!(
                "station {station}: profile {profile}, {} fixture(s) ({}), database {database}",
                fixtures.len(),
                fixtures.join(", ")
            ),
            StationEvent::Recovered { runs, leases } => {
                format!(
                    "recovered: {runs} run(s) left running by an earlier process marked interrupted, {leases} address(es) freed"
                )
            }
            StationEvent::Idle { fixture } => format!("{fixture}: idle, waiting for a unit"),
            StationEvent::Arrived { fixture, mac, serial_number } => format!(
                "{fixture}: unit {mac}{}",
                serial_number.as_ref().map(|s| format!(" (serial number {s})")).unwrap_or_default()
            ),
            StationEvent::Refused { fixture, mac, reason, detail } => {
                counts.2 += 1;
                format!("{fixture}: refused {} ({reason}): {detail}", mac.as_deref().unwrap_or("a unit"))
            }
            StationEvent::RunStarted { fixture, mac, ip, .. } => format!(
                "{fixture}: {mac} running{}",
                ip.as_ref().map(|ip| format!(" with address {ip}")).unwrap_or_default()
            ),
            StationEvent::StepEnded { fixture, mac, kind, outcome, duration_ms, detail, .. } => {
                format!("{fixture}: {mac} {kind} {outcome} in {:.1} s: {detail}", *duration_ms as f64 / 1000.0)
            }
            StationEvent::RunEnded { fixture, mac, outcome, finding, error, .. } => {
                if outcome == "passed" {
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
                format!(
                    "{fixture}: {mac} {}{}{} [today: {} passed, {} failed, {} refused]",
                    outcome.to_uppercase(),
                    finding.as_ref().map(|f| format!(" ({f})")).unwrap_or_default(),
                    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default(),
                    counts.0,
                    counts.1,
                    counts.2
                )
            }
            StationEvent::Gone { fixture, mac } => format!("{fixture}: {mac} removed"),
            StationEvent::PortTrouble { fixture, error } => format!("{fixture}: port trouble, retrying: {error}"),
            StationEvent::DatabaseLost { error } => {
                format!("DATABASE UNAVAILABLE: no new unit is taken on any fixture; running units finish ({error})")
            }
            StationEvent::DatabaseBack { .. } => "database back: spooled records delivered, taking units again".into(),
            StationEvent::Reaped { stations, runs, leases } => format!(
                "released what {stations} silent station(s) held: {runs} run(s) marked interrupted, {leases} address(es) freed"
            ),
            StationEvent::Stopping => "stopping: no new unit; running units finish".into(),
            StationEvent::Stopped { passed, failed, refused } => {
                format!("station stopped: {passed} passed, {failed} failed, {refused} refused")
            }
        };
        if !self.quiet || matches!(event, StationEvent::RunEnded { .. } | StationEvent::DatabaseLost { .. }) {
            eprintln!("{line}");
        }
    }

    fn progress(&self, _fixture: &str) -> Arc<dyn Progress> {
        Arc::new(Silent)
    }
}
