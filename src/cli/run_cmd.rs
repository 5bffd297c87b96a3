//! `flashline run PROFILE`: one device through its profile's steps, its
//! values from an inventory row or `--port` and `--set`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use super::batch_cmd::{inventory_error, run_jobs};
use super::batch_view::ReportTargets;
use super::{Context, Outcome};
use crate::pipeline::batch::BatchOptions;
use crate::pipeline::device::DeviceJob;
use crate::profile::{self, Inventory};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The device's profile.
    #[arg(value_name = "PROFILE")]
    profile: PathBuf,
    /// Inventory to take the device's values from (with --device).
    #[arg(long, value_name = "F", requires = "device")]
    inventory: Option<PathBuf>,
    /// The device's name in the inventory.
    #[arg(long, value_name = "NAME", requires = "inventory")]
    device: Option<String>,
    /// Serial port of the device (overrides the inventory's).
    #[arg(long, value_name = "PATH")]
    port: Option<PathBuf>,
    /// Set a variable (repeatable), e.g. `--set ip=192.168.1.50`.
    #[arg(long = "set", value_name = "K=V")]
    set: Vec<String>,
    /// Journal file, so a rerun with --resume skips the steps done.
    #[arg(long, value_name = "F")]
    journal: Option<PathBuf>,
    #[arg(long, requires = "journal")]
    resume: bool,
    #[arg(long, value_name = "F.json")]
    report: Option<PathBuf>,
    #[arg(long, value_name = "F.xml")]
    junit: Option<PathBuf>,
    #[arg(long)]
    strict: bool,
    /// Print the JSON report on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: RunArgs, context: &Context) -> Outcome {
    let mut values = BTreeMap::new();
    let mut port = None;
    let mut name = "device".to_string();
    if let (Some(path), Some(device)) = (&args.inventory, &args.device) {
        let inventory = match Inventory::load(path) {
            Ok(inventory) => inventory,
            Err(error) => return inventory_error(&error, context),
        };
        let Some(found) = inventory.device(device) else {
            eprintln!("{}: no device `{device}` in {}", context.err.error("error"), path.display());
            return Outcome::BadInput;
        };
        values.extend(found.values.clone());
        port = found.port.as_ref().map(PathBuf::from);
        name = found.name.clone();
    }
    match profile::parse_set_pairs(&args.set) {
        Ok(set) => values.extend(set),
        Err(message) => {
            eprintln!("{}: {message}", context.err.error("error"));
            return Outcome::BadInput;
        }
    }
    if let Some(path) = &args.port {
        port = Some(path.clone());
        values.insert("port".into(), path.display().to_string());
    }
    if let Some(given) = values.get("name") {
        name = given.clone();
    }
    let job = DeviceJob { name, profile_path: args.profile.clone(), values, port, strict: args.strict };
    let options = BatchOptions { jobs: 1, journal: args.journal.clone(), resume: args.resume };
    let targets = ReportTargets { json_file: args.report.clone(), junit_file: args.junit.clone(), json_stdout: args.json };
    run_jobs(vec![job], &options, &targets, args.json, context)
}
