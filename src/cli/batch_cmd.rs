//! `flashline batch INVENTORY`: every device of an inventory through its
//! profile, `--jobs` at a time, journaled for `--resume`, with JSON and JUnit
//! reports.

use std::path::PathBuf;

use clap::Args;

use super::batch_view::{ReportArgs, run_jobs};
use super::{Context, Outcome};
use crate::pipeline::batch::BatchOptions;
use crate::pipeline::device::DeviceJob;
use crate::profile::Inventory;

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Inventory of devices (YAML, or CSV with a header row).
    #[arg(value_name = "INVENTORY")]
    inventory: PathBuf,
    /// Devices run at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    /// Journal file (JSON lines, fsynced per step) for --resume.
    #[arg(long, value_name = "F")]
    journal: Option<PathBuf>,
    /// Continue the journal: skip the steps it holds as done with the same inputs (the step and its images' SHA-256); a changed image is sent again.
    #[arg(long, requires = "journal")]
    resume: bool,
    /// Treat profile warnings as errors.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    reports: ReportArgs,
}

pub fn run(args: BatchArgs, context: &Context) -> Outcome {
    let inventory = match Inventory::load(&args.inventory) {
        Ok(inventory) => inventory,
        Err(error) => return context.fail_profile(&error),
    };
    let mut devices = Vec::new();
    for device in &inventory.devices {
        let Some(profile) = &device.profile else {
            let message =
                format!("{}:{}: device `{}` names no profile", inventory.path.display(), device.line, device.name);
            return context.fail(message, Outcome::BadInput);
        };
        devices.push(DeviceJob::from_inventory(&inventory, device, profile.clone(), args.strict));
    }
    let options = BatchOptions { jobs: args.jobs, journal: args.journal.clone(), resume: args.resume };
    run_jobs(devices, &options, &args.reports, context)
}
