//! `flashline run PROFILE`: one device through its profile's steps, its
//! values from an inventory row or `--port` and `--set`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::batch_view::{JournalArgs, ReportArgs, run_jobs};
use super::device_values::DeviceValueArgs;
use super::{CommandResult, Context};
use crate::pipeline::batch::BatchOptions;

use crate::pipeline::device::{DeviceJob, JobProfile};
use crate::profile::ValueSource;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The device's profile.
    #[arg(value_name = "PROFILE")]
    profile: PathBuf,
    #[command(flatten)]
    device: DeviceValueArgs,
    /// Serial port of the device (overrides the inventory's): a path, usb-serial:SERIAL[:INTERFACE], usb-path:PATH, rfc2217://HOST:PORT or tcp://HOST:PORT.
    #[arg(long, value_name = "PORT")]
    port: Option<PathBuf>,
    #[command(flatten)]
    journal: JournalArgs,
    #[command(flatten)]
    reports: ReportArgs,
}

pub fn run(args: RunArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.reports.json);
    let (found, mut values) = args.device.resolve(context)?;
    let mut port = found.as_ref().and_then(|d| d.port.as_ref()).map(PathBuf::from);
    let mut name = found.map_or_else(|| "device".to_string(), |d| d.name);
    if let Some(path) = &args.port {
        port = Some(path.clone());
        values.insert("port", path.display().to_string(), ValueSource::CommandLine);
    }
    if let Some(given) = values.get("name") {
        name = given.to_string();
    }
    let profile = Arc::new(JobProfile::load(&args.profile, args.journal.check_options()));
    let job = DeviceJob { name, profile, values, port };
    let options =
        BatchOptions { jobs: 1, journal: args.journal.journal.clone(), resume: args.journal.resume, database: None };
    Ok(run_jobs(vec![job], &options, &args.reports, context))
}
