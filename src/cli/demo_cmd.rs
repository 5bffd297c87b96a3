//! `flashline demo`: a simulated bench (NET+OS devices on PTYs with their FTP
//! servers, a CSP controller) and the real batch pipeline run against it, end
//! to end, with no hardware. `--scenario` puts a field failure on one device
//! to show its diagnosis.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::batch_view::{ReportArgs, run_jobs_in};
use super::{Context, Outcome};
use crate::pipeline::batch::BatchOptions;
use crate::pipeline::device::DeviceJob;
use crate::profile::Inventory;
use crate::sim::bench::{self, BenchSpec, Scenario};

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
    #[command(flatten)]
    reports: ReportArgs,
}

fn parse_scenario(name: &str) -> Result<Scenario, String> {
    Scenario::parse(name).ok_or_else(|| format!("unknown scenario `{name}`; one of: {}", Scenario::NAMES.join(", ")))
}

pub fn run(args: DemoArgs, context: &Context) -> Outcome {
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
                return context.fail(format!("cannot create {}: {error}", dir.display()), Outcome::Environment);
            }
            dir.clone()
        }
        None => match tempfile::Builder::new().prefix("flashline-demo-").tempdir() {
            Ok(dir) => {
                temporary = dir;
                temporary.path().to_path_buf()
            }
            Err(error) => {
                return context.fail(format!("cannot make a work folder: {error}"), Outcome::Environment);
            }
        },
    };
    let profile = workdir.join("sim-netos.yaml");
    if let Err(error) = std::fs::write(&profile, SIM_PROFILE) {
        return context.fail(format!("cannot write {}: {error}", profile.display()), Outcome::Environment);
    }
    let runtime = match context.runtime() {
        Ok(runtime) => runtime,
        Err(outcome) => return outcome,
    };
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
            return context.fail(format!("cannot start the simulated bench: {error}"), Outcome::Environment);
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
        Err(error) => return context.fail_profile(&error),
    };
    let devices: Vec<DeviceJob> = inventory
        .devices
        .iter()
        .map(|d| DeviceJob::from_inventory(&inventory, d, d.profile.clone().unwrap_or_else(|| profile.clone()), false))
        .collect();
    let options = BatchOptions { jobs: args.jobs, journal: Some(workdir.join("journal.jsonl")), resume: false };
    let outcome = run_jobs_in(&runtime, devices, &options, &args.reports, context);
    drop(bench);
    outcome
}
