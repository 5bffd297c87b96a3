//! One device through its profile's steps: resolve the profile for the
//! device, check the images before anything is sent, then run each step in
//! order (serial image load, console set-up, network wait, FTP upload, TFTP
//! Manage), journaling each result before the next starts. A failure stops
//! the device and carries its class and, for network refusals, the finding.
//!
//! Steps the journal already holds as done are skipped, so a finished unit is
//! never flashed twice.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::journal::{Journal, JournalRecord, StepOutcome, now};
use super::report::{DeviceOutcome, DeviceReport, ImageHash, StepRecord};
use crate::exs::job::{TftpManageJob, run_tftp_manage};
use crate::failure::{Classify, FailureClass};
use crate::ftp::{self, UploadSpec};
use crate::net::Prober;
use crate::net::arp;
use crate::net::diagnose::{Evidence, Finding, address_in_use, diagnose};
use crate::net::wait::{WaitSpec, wait_for};
use crate::profile::{self, CheckOptions, Device, DeviceValues, Inventory, Problem, Profile, ResolveMode, Step};
use crate::progress::{Progress, ProgressEvent, TaskKind};
use crate::serial::console::Console;
use crate::serial::names::DevRoot;
use crate::serial::port::{self, Port};
use crate::serial::steps as serial_steps;

/// One device of a run or a batch.
#[derive(Debug, Clone)]
pub struct DeviceJob {
    pub name: String,
    pub profile_path: PathBuf,
    /// Its variables: `name`, `port`, `ip`, `mask`, `gateway` and the rest,
    /// each with where it came from.
    pub values: DeviceValues,
    /// The serial port, for profiles with serial steps.
    pub port: Option<PathBuf>,
    pub strict: bool,
}

impl DeviceJob {
    /// A device of an inventory, run with `profile` (the row's own, or the
    /// caller's default).
    pub fn from_inventory(inventory: &Inventory, device: &Device, profile: PathBuf, strict: bool) -> DeviceJob {
        DeviceJob {
            name: device.name.clone(),
            profile_path: profile,
            values: DeviceValues::from_inventory(inventory, device),
            port: device.port.as_ref().map(PathBuf::from),
            strict,
        }
    }

    /// A report of this device with nothing run yet.
    pub fn report(&self, outcome: DeviceOutcome) -> DeviceReport {
        DeviceReport {
            name: self.name.clone(),
            profile: self.profile_path.display().to_string(),
            port: self.port.as_ref().map(|p| p.display().to_string()),
            ip: self.values.get("ip").map(str::to_string),
            mac: None,
            serial_number: None,
            images: Vec::new(),
            outcome,
            failure_class: None,
            error: None,
            problems: Vec::new(),
            finding: None,
            steps: Vec::new(),
        }
    }
}

/// What the runner needs from its caller.
pub struct RunContext<'a> {
    /// Where each step's result goes before the next starts.
    pub journal: Option<&'a Mutex<Journal>>,
    /// Steps an earlier run finished (from the journal).
    pub done: Vec<usize>,
    pub progress: &'a dyn Progress,
    /// Becomes true on Ctrl-C: no new step starts.
    pub cancel: watch::Receiver<bool>,
    /// Sees each step's record as it ends (for live display).
    pub on_step: &'a (dyn Fn(&str, &StepRecord) + Send + Sync),
}

/// Why a step failed, classified.
struct Failure {
    class: FailureClass,
    message: String,
    finding: Option<Finding>,
    /// The profile's or the values' problems, each placed in its file.
    problems: Vec<Problem>,
}

impl Failure {
    fn new(class: FailureClass, message: impl Into<String>) -> Failure {
        Failure { class, message: message.into(), finding: None, problems: Vec::new() }
    }

    /// Any module's error, with the class it gives itself.
    fn of<E: Classify + std::fmt::Display>(error: E) -> Failure {
        Failure::new(error.class(), error.to_string())
    }
}

/// Runs `job` to the end (or its first failure) and reports.
pub async fn run_device(job: &DeviceJob, context: RunContext<'_>) -> DeviceReport {
    run_device_on(job, context, None).await.0
}

/// [`run_device`] on a console that is already open (a station's fixture
/// watched it for the unit's banner; what it read and did not use stays for
/// the first step). Gives the console back for the next unit.
pub async fn run_device_on(
    job: &DeviceJob,
    context: RunContext<'_>,
    console: Option<Console<Port>>,
) -> (DeviceReport, Option<Console<Port>>) {
    let mut console = console;
    let report = run_steps(job, context, &mut console).await;
    (report, console)
}

async fn run_steps(job: &DeviceJob, context: RunContext<'_>, console: &mut Option<Console<Port>>) -> DeviceReport {
    let started = Instant::now();
    let mut report = job.report(DeviceOutcome::Passed);
    let fail = |report: &mut DeviceReport, failure: Failure| {
        report.outcome = DeviceOutcome::Failed;
        report.failure_class = Some(failure.class);
        report.error = Some(failure.message);
        report.finding = failure.finding;
        report.problems = failure.problems;
    };
    // Bad input stops the device before anything is sent.
    let (profile, base_dir) = match resolve(job) {
        Ok(found) => found,
        Err(failure) => {
            fail(&mut report, failure);
            return report;
        }
    };
    report.ip = profile.network.ip.as_ref().map(|t| t.to_string()).or(report.ip);
    match hash_images(&profile, &base_dir) {
        Ok(images) => report.images = images,
        Err(failure) => {
            fail(&mut report, failure);
            return report;
        }
    }
    for (index, step) in profile.steps.iter().enumerate() {
        if *context.cancel.borrow() {
            report.outcome = if report.steps.is_empty() { DeviceOutcome::NotRun } else { DeviceOutcome::Failed };
            report.error = Some("stopped by Ctrl-C before this step".into());
            report.failure_class = Some(FailureClass::Environment);
            break;
        }
        let step_started = Instant::now();
        let (outcome, detail, retries, failure) = if context.done.contains(&index) {
            (StepOutcome::Skipped, "done in an earlier run (journal)".to_string(), 0, None)
        } else {
            match run_step(job, &profile, &base_dir, step, console, context.progress).await {
                Ok(done) => (done.outcome, done.detail, done.retries, None),
                Err(failure) => (StepOutcome::Failed, failure.message.clone(), 0, Some(failure)),
            }
        };
        let record = StepRecord {
            index,
            kind: step.kind().to_string(),
            outcome,
            started_ms: step_started.duration_since(started).as_millis() as u64,
            duration_ms: step_started.elapsed().as_millis() as u64,
            retries,
            detail: detail.clone(),
        };
        if let Some(journal) = context.journal {
            let line = JournalRecord {
                device: job.name.clone(),
                step: index,
                kind: record.kind.clone(),
                outcome,
                at: now(),
                detail,
            };
            let written = journal.lock().unwrap_or_else(|p| p.into_inner()).append(&line);
            if let Err(error) = written {
                (context.on_step)(&job.name, &record);
                report.steps.push(record);
                fail(&mut report, Failure::of(error));
                break;
            }
        }
        (context.on_step)(&job.name, &record);
        report.steps.push(record);
        if let Some(failure) = failure {
            fail(&mut report, failure);
            break;
        }
    }
    if let Some(console) = console.as_ref() {
        let text = console.transcript().render();
        report.mac = find(&text, r"(?i)MAC address[^0-9A-F]*((?:[0-9A-F]{2}:){5}[0-9A-F]{2})");
        report.serial_number = find(&text, r"(?i)serial number[ .:=]*([A-Za-z0-9-]{4,})");
    }
    report
}

fn find(text: &str, pattern: &str) -> Option<String> {
    regex::Regex::new(pattern).ok()?.captures(text).map(|c| c[1].to_string())
}

fn resolve(job: &DeviceJob) -> Result<(Profile, PathBuf), Failure> {
    let loaded = profile::load(&job.profile_path, CheckOptions { strict: job.strict }).map_err(|error| {
        let problems = match &error {
            profile::ProfileError::Invalid { problems, .. } => {
                problems.iter().filter(|p| p.is_error()).cloned().collect()
            }
            profile::ProfileError::Read { .. } => Vec::new(),
        };
        Failure { problems, ..Failure::of(error) }
    })?;
    let resolved = profile::resolve(&loaded, &job.values, ResolveMode::Use).map_err(|problems| Failure {
        message: format!("{} problem(s) with this device's values", problems.len()),
        problems,
        ..Failure::new(FailureClass::Input, "")
    })?;
    Ok((resolved, loaded.base_dir().to_path_buf()))
}

/// SHA-256 of every image the steps will send, read and checked before
/// anything runs: a missing or unreadable image, or one that fails its own
/// `bootHdr` length or CRC check, stops the device before it is touched.
fn hash_images(profile: &Profile, base_dir: &Path) -> Result<Vec<ImageHash>, Failure> {
    let mut files = Vec::new();
    for step in &profile.steps {
        match step {
            Step::LoadImage(s) => files.push(s.file.to_string()),
            Step::FtpUpload(s) => files.extend(s.files.iter().map(|f| f.local.to_string())),
            _ => {}
        }
    }
    let mut images = Vec::new();
    for file in files {
        if images.iter().any(|i: &ImageHash| i.file == file) {
            continue;
        }
        let bytes = serial_steps::read_image(&base_dir.join(&file)).map_err(Failure::of)?.data;
        let sha256 = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        images.push(ImageHash { file, sha256, bytes: bytes.len() as u64 });
    }
    Ok(images)
}

struct StepDone {
    outcome: StepOutcome,
    detail: String,
    retries: u32,
}

fn passed(detail: impl Into<String>) -> StepDone {
    StepDone { outcome: StepOutcome::Passed, detail: detail.into(), retries: 0 }
}

/// The address a network step talks to.
fn target(host: Option<&profile::Template>, profile: &Profile) -> Result<Ipv4Addr, Failure> {
    let text = host.or(profile.network.ip.as_ref()).map(|t| t.to_string()).unwrap_or_default();
    text.trim()
        .parse()
        .map_err(|_| Failure::new(FailureClass::Input, format!("`{text}` is not an IPv4 address to reach")))
}

async fn run_step(
    job: &DeviceJob,
    profile: &Profile,
    base_dir: &Path,
    step: &Step,
    console: &mut Option<Console<Port>>,
    progress: &dyn Progress,
) -> Result<StepDone, Failure> {
    match step {
        Step::LoadImage(s) => {
            let console = open_console(job, profile, console).await?;
            let image = serial_steps::read_image(&base_dir.join(s.file.as_str())).map_err(Failure::of)?;
            let sent = serial_steps::load_image(console, s, image, profile.serial.baud, progress)
                .await
                .map_err(Failure::of)?;
            Ok(StepDone {
                outcome: StepOutcome::Passed,
                detail: format!(
                    "sent {} bytes in {:.1} s{}",
                    sent.stats.acked_bytes,
                    sent.elapsed.as_secs_f64(),
                    sent.stats.warning().map(|w| format!("; warning: {w}")).unwrap_or_default()
                ),
                retries: sent.stats.retransmissions as u32,
            })
        }
        Step::ConfigureNetwork(s) => {
            // Before the unit is touched: nobody else may hold its address.
            check_address(job, profile, s, progress).await?;
            let console = open_console(job, profile, console).await?;
            let outcome = serial_steps::configure_network(console, s, progress).await.map_err(Failure::of)?;
            if outcome.skipped {
                return Ok(StepDone {
                    outcome: StepOutcome::Skipped,
                    detail: "settings already in place".into(),
                    retries: 0,
                });
            }
            Ok(passed(outcome.detail()))
        }
        Step::WaitForNetwork(s) => {
            let host = target(s.host.as_ref(), profile)?;
            let prober = Prober::new(s.method).map_err(Failure::of)?;
            let spec = WaitSpec::from_step(s, host);
            let outcome = wait_for(&spec, &prober, progress).await.map_err(Failure::of)?;
            if outcome.reached {
                return Ok(passed(format!("up after {} ms", outcome.elapsed.as_millis())));
            }
            let ftp_ports = profile.ftp_ports();
            let evidence =
                Evidence { icmp: outcome.icmp.clone(), ports: outcome.ports.clone(), service: None, ftp_ports };
            let finding = diagnose(host, &evidence);
            let message = format!("{host} did not reach the wanted states in {} ms", spec.timeout.as_millis());
            Err(Failure { finding: Some(finding), ..Failure::new(FailureClass::Device, message) })
        }
        Step::FtpUpload(s) => {
            let host = target(s.host.as_ref(), profile)?;
            let spec = UploadSpec::from_step(s, host, base_dir);
            let uploaded = ftp::upload(&spec, progress)
                .await
                .map_err(|error| Failure { finding: error.finding(), ..Failure::of(error) })?;
            let retries = uploaded.files.iter().map(|f| f.attempts.saturating_sub(1)).sum();
            let detail = uploaded
                .files
                .iter()
                .map(|f| format!("{} ({} bytes via {}, {})", f.remote, f.bytes, f.mode.command(), f.verified))
                .collect::<Vec<_>>()
                .join(", ");
            // The modes given up are the same for every later file: say them once.
            let given_up = uploaded
                .files
                .iter()
                .map(|f| &f.fallback)
                .max_by_key(|f| f.len())
                .filter(|f| !f.is_empty())
                .map(|f| format!("; given up: {}", f.join("; ")))
                .unwrap_or_default();
            let detail = format!("as {}: {detail}{given_up}", uploaded.user);
            Ok(StepDone { outcome: StepOutcome::Passed, detail, retries })
        }
        Step::TftpManage(s) => {
            let default_host = profile.network.ip.as_ref().map(|t| t.to_string());
            let exs_job = TftpManageJob::from_step(s, default_host.as_deref(), base_dir).map_err(Failure::of)?;
            let done = run_tftp_manage(&exs_job, progress).await.map_err(Failure::of)?;
            let answers: Vec<String> =
                done.exchanges.iter().map(|e| format!("{}: {}", e.purpose, e.response.status)).collect();
            let served: Vec<String> = done
                .served
                .iter()
                .map(|f| match &f.failure {
                    None => format!("served {} ({} bytes) to {}", f.filename, f.bytes, f.peer),
                    Some(why) => format!("did not serve {} to {}: {why}", f.filename, f.peer),
                })
                .collect();
            let answers: Vec<String> = answers.into_iter().chain(served).collect();
            if done.succeeded() {
                Ok(passed(answers.join("; ")))
            } else {
                Err(Failure::new(FailureClass::Device, format!("the controller refused: {}", answers.join("; "))))
            }
        }
    }
}

/// The RFC 5227 check before `configure_network` gives a static address:
/// a host that answers for it fails the step with `address-in-use`. The
/// unit itself answering (its `mac` value) is no conflict. Loopback
/// addresses (the simulators') have no link to probe and are not checked.
async fn check_address(
    job: &DeviceJob,
    profile: &Profile,
    step: &profile::ConfigureNetwork,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    if !step.address_check.enabled || profile.network.dhcp {
        return Ok(());
    }
    let Some(ip) = profile.network.ip.as_ref() else { return Ok(()) };
    let address: Ipv4Addr = ip.to_string().trim().parse().map_err(|_| {
        Failure::new(FailureClass::Input, format!("`{ip}` is not an IPv4 address to check", ip = ip.as_str()))
    })?;
    if address.is_loopback() {
        // A simulated unit on 127.0.0.0/8: no link, no ARP, nobody to ask.
        return Ok(());
    }
    let checked = match arp::check(address, &step.address_check.options(), progress).await {
        Ok(checked) => checked,
        // ARP reaches only this station's own links: an address on another
        // network (a unit set up for its final subnet) cannot be checked
        // from here, and no host on our links can hold it.
        Err(error @ (arp::ArpError::NoRoute { .. } | arp::ArpError::NotOnLink { .. })) => {
            let text = format!("address check skipped: {error}");
            progress.report(ProgressEvent::Note { kind: TaskKind::ConsoleDialog, text });
            return Ok(());
        }
        Err(error) => return Err(Failure::of(error)),
    };
    let Some(holder) = checked.in_use_by else { return Ok(()) };
    let unit = job.values.get("mac").and_then(|mac| mac.parse::<arp::Mac>().ok());
    if unit == Some(holder) {
        return Ok(());
    }
    let mac = holder.to_string();
    Err(Failure {
        finding: Some(address_in_use(address, &mac)),
        ..Failure::new(
            FailureClass::Device,
            format!("{address} is already in use by {mac} (it answered an ARP probe on {})", checked.interface),
        )
    })
}

async fn open_console<'c>(
    job: &DeviceJob,
    profile: &Profile,
    console: &'c mut Option<Console<Port>>,
) -> Result<&'c mut Console<Port>, Failure> {
    if console.is_none() {
        let Some(path) = &job.port else {
            return Err(Failure::new(FailureClass::Input, "the profile has serial steps but the device has no `port`"));
        };
        let opened = port::open_named(&path.to_string_lossy(), &profile.serial, &DevRoot::from_env())
            .await
            .map_err(|e| Failure::new(e.class(), e.to_string()))?;
        *console = Some(Console::new(opened));
    }
    Ok(console.as_mut().expect("opened above"))
}
