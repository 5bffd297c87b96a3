//! `flashline station STATION.yaml`: a long-running line station. The
//! station file is checked first (every problem with its place, exit 2,
//! nothing opened); then each fixture takes unit after unit until Ctrl-C,
//! which lets the running units finish. Output: one line per event for the
//! technician (with the day's counts on each run's end), or with `--json`
//! one JSON event per line for an MES or a script.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::station_view::EventLines;
use super::{CommandResult, Context, Outcome};
use crate::failure::Classify;
use crate::station::{self, StationOptions};
use crate::store::DbUrl;

#[derive(Debug, Args)]
pub struct StationArgs {
    /// The station file (profile, fixtures, address pool, database).
    #[arg(required_unless_present_any = ["schema", "check"])]
    station: Option<PathBuf>,
    /// Print the JSON Schema of the station file (for editor completion) and exit.
    #[arg(long, conflicts_with_all = ["station", "check"])]
    schema: bool,
    /// Check the station file (and its profile) and exit: 0 when it is valid, 2 with every problem.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
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

pub fn run(args: StationArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    if args.schema {
        context.print_json(&station::file::schema());
        return Ok(Outcome::Success);
    }
    let Some(path) = args.check.as_ref().or(args.station.as_ref()) else {
        return Err(context.fail("give a station file", Outcome::BadInput));
    };
    let loaded = match station::file::load(path) {
        Ok(loaded) => loaded,
        Err(error) => return Err(context.fail_profile(&error)),
    };
    if args.check.is_some() {
        return match crate::profile::load(&loaded.profile_path(), crate::profile::CheckOptions { strict: args.strict })
        {
            Ok(_) => {
                if !context.quiet {
                    eprintln!("{}: valid ({} fixture(s))", path.display(), loaded.file.fixtures.len());
                }
                Ok(Outcome::Success)
            }
            Err(error) => Err(context.fail_profile(&error)),
        };
    }
    let database = match args.db.as_deref().map(|db| DbUrl::parse(db, &std::env::current_dir().unwrap_or_default())) {
        None => None,
        Some(Ok(url)) => Some(url),
        Some(Err(error)) => return Err(context.fail(error.to_string(), Outcome::BadInput)),
    };
    let options = StationOptions { operator: args.operator, database, reflash: args.reflash, strict: args.strict };
    let runtime = context.runtime()?;
    let observer = Arc::new(EventLines::new(args.json, context.quiet));
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
        Ok(counts) if counts.failed == 0 => Ok(Outcome::Success),
        Ok(_) => Ok(Outcome::DeviceFailure),
        Err(station::StationError::Profile(error)) => Err(context.fail_profile(&error)),
        Err(error) => Err(context.fail(error.to_string(), Outcome::from(error.class()))),
    }
}
