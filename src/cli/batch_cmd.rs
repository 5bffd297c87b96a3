//! `flashline batch INVENTORY`: every device of an inventory through its
//! profile, `--jobs` at a time, journaled for `--resume`, with JSON and JUnit
//! reports.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio::sync::watch;

use super::batch_view::{BatchView, ReportArgs, conclude};
use super::profile_cmd::report_error;
use super::{Context, Outcome};
use crate::pipeline::batch::{BatchOptions, run_batch};
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
    /// Continue the journal: skip devices and steps already done.
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
        Err(error) => return report_error(&error, context),
    };
    let mut devices = Vec::new();
    for device in &inventory.devices {
        let Some(profile) = &device.profile else {
            eprintln!(
                "{}: {}:{}: device `{}` names no profile",
                context.err.error("error"),
                inventory.path.display(),
                device.line,
                device.name
            );
            return Outcome::BadInput;
        };
        devices.push(DeviceJob {
            name: device.name.clone(),
            profile_path: profile.clone(),
            values: device.values.clone(),
            port: device.port.as_ref().map(PathBuf::from),
            strict: args.strict,
        });
    }
    let options = BatchOptions { jobs: args.jobs, journal: args.journal.clone(), resume: args.resume };
    run_jobs(devices, &options, &args.reports, context)
}

/// Runs `devices` with Ctrl-C handling and concludes with the reports.
pub fn run_jobs(devices: Vec<DeviceJob>, options: &BatchOptions, reports: &ReportArgs, context: &Context) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    run_jobs_in(&runtime, devices, options, reports, context)
}

/// [`run_jobs`] on a runtime the caller owns (the demo's simulators run on it).
pub fn run_jobs_in(
    runtime: &tokio::runtime::Runtime,
    devices: Vec<DeviceJob>,
    options: &BatchOptions,
    reports: &ReportArgs,
    context: &Context,
) -> Outcome {
    let view = BatchView::new(devices.len(), reports.json, context);
    let result = runtime.block_on(async {
        let (cancel_tx, cancel) = watch::channel(false);
        let quiet = context.quiet;
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                if !quiet {
                    eprintln!("stopping: no new device starts; running devices stop before their next step (Ctrl-C again to abort)");
                }
                let _ = cancel_tx.send(true);
                // A second Ctrl-C ends at once, as users expect.
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        run_batch(devices, options, view.clone() as Arc<_>, cancel).await
    });
    view.finish();
    match result {
        Ok(report) => conclude(&report, reports, context),
        Err(error) => {
            eprintln!("{}: {error}", context.err.error("error"));
            Outcome::BadInput
        }
    }
}
