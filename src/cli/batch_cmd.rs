//! `flashline batch INVENTORY`: every device of an inventory through its
//! profile, `--jobs` at a time, journaled for `--resume`, with JSON and JUnit
//! reports.

use std::path::PathBuf;

use clap::Args;

use super::batch_view::{JournalArgs, ReportArgs, run_jobs};
use super::{CommandResult, Context, Outcome};
use crate::pipeline::batch::{BatchDatabase, BatchOptions};
use crate::pipeline::device::{DeviceJob, ProfileCache};
use crate::profile::Inventory;
use crate::store::DbUrl;

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Inventory of devices (YAML, or CSV with a header row).
    #[arg(value_name = "INVENTORY")]
    inventory: PathBuf,
    /// Devices run at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    #[command(flatten)]
    journal: JournalArgs,
    /// Record every device's run in this unit database (`sqlite:PATH` or
    /// `postgres://...`, as stations do); each device needs a `mac` value.
    #[arg(long, value_name = "URL", env = "FLASHLINE_DB", hide_env_values = true)]
    db: Option<String>,
    /// With --db: the name the runs are recorded under.
    #[arg(long, value_name = "NAME", default_value = "batch", requires = "db")]
    station: String,
    /// With --db: who runs the batch (recorded with each run).
    #[arg(long, value_name = "NAME", requires = "db")]
    operator: Option<String>,
    #[command(flatten)]
    reports: ReportArgs,
}

pub fn run(args: BatchArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.reports.json);
    let inventory = match Inventory::load(&args.inventory) {
        Ok(inventory) => inventory,
        Err(error) => return Err(context.fail_profile(&error)),
    };
    let mut devices = Vec::new();
    let mut profiles = ProfileCache::new(args.journal.check_options());
    for device in &inventory.devices {
        let Some(profile) = &device.profile else {
            let message =
                format!("{}:{}: device `{}` names no profile", inventory.path.display(), device.line, device.name);
            return Err(context.fail(message, Outcome::BadInput));
        };
        devices.push(DeviceJob::from_inventory(&inventory, device, profiles.get(profile)));
    }
    let database = match &args.db {
        None => None,
        Some(db) => match DbUrl::parse(db, &std::env::current_dir().unwrap_or_default()) {
            Err(error) => return Err(context.fail(error.to_string(), Outcome::BadInput)),
            Ok(url) => {
                // The spool sits beside the journal (or here without one).
                let beside =
                    args.journal.journal.as_ref().and_then(|j| j.parent()).filter(|d| !d.as_os_str().is_empty());
                let spool = beside.unwrap_or(std::path::Path::new(".")).join("flashline-batch.spool.db");
                Some(BatchDatabase { url, spool, station: args.station.clone(), operator: args.operator.clone() })
            }
        },
    };
    let options =
        BatchOptions { jobs: args.jobs, journal: args.journal.journal.clone(), resume: args.journal.resume, database };
    Ok(run_jobs(devices, &options, &args.reports, context))
}
