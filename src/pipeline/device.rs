//! One device through its profile's steps: resolve the profile for the
//! device, check the images before anything is sent, then run each step in
//! order (serial image load, console set-up, network wait, FTP upload, TFTP
//! Manage), journaling each result before the next starts. A failure stops
//! the device and carries its class and, for network refusals, the finding.
//!
//! A step the journal already holds as done with the same inputs (the
//! resolved step and the SHA-256 of each image it sends) is skipped, so a
//! finished unit is never flashed twice; with other inputs (a replaced
//! image) it runs again, and so does every step after it. Each step's record
//! lists the hashes of the bytes it really sent.
//!
//! Within an `ftp_upload` step, each file the device confirms is journaled
//! as it is confirmed; a resumed run of the same step with the same inputs
//! (and nothing before it run again) sends only the files not confirmed, so
//! a kill between files does not make the unit write a finished file twice.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::journal::{
    ConfirmedFile, DoneStep, Journal, JournalError, JournalRecord, Resume, StepOutcome, files_to_skip, hex, now,
    resume_decision, step_images, step_inputs,
};
use super::report::{DeviceOutcome, DeviceReport, ImageHash, StepRecord};
use crate::exs::job::{TftpManageJob, run_tftp_manage};
use crate::failure::{Classify, FailureClass};
use crate::ftp::{self, UploadSpec};
use crate::net::Prober;
use crate::net::arp;
use crate::net::console_evidence::diagnose_with_console;
use crate::net::diagnose::{Evidence, Finding, FindingCode, address_in_use, diagnose};
use crate::net::wait::{WaitSpec, wait_for};
use crate::profile::{self, CheckOptions, Device, DeviceValues, Inventory, Problem, Profile, ResolveMode, Step};
use crate::progress::{Progress, ProgressEvent, TaskKind};
use crate::serial::boot_log::BootLog;
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
            profile_sha256: None,
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
    /// Steps an earlier run finished, by index, with their inputs (from the
    /// journal; empty unless resuming).
    pub done: BTreeMap<usize, DoneStep>,
    /// Files of steps not done that the device confirmed in an earlier run
    /// (from the journal, [`super::journal::confirmed_files`]; empty unless
    /// resuming).
    pub files_done: BTreeMap<usize, Vec<ConfirmedFile>>,
    pub progress: &'a dyn Progress,
    /// Becomes true on Ctrl-C: no new step starts.
    pub cancel: watch::Receiver<bool>,
    /// Sees each step's record as it ends (for live display).
    pub on_step: &'a (dyn Fn(&str, &StepRecord) + Send + Sync),
    /// The caller already answered the first step's `interrupt` on the
    /// console it hands over (a station stops a unit's boot before its
    /// database work): that step starts at its dialog.
    pub boot_stopped: bool,
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
    let Resolved { profile, for_digest, base_dir, profile_sha256 } = match resolve(job) {
        Ok(found) => found,
        Err(failure) => {
            fail(&mut report, failure);
            return report;
        }
    };
    report.ip = profile.network.ip.as_ref().map(|t| t.to_string()).or(report.ip);
    report.profile_sha256 = Some(profile_sha256.clone());
    match hash_images(&profile, &base_dir) {
        Ok(images) => report.images = images,
        Err(failure) => {
            fail(&mut report, failure);
            return report;
        }
    }
    // Once a step runs in this run, the steps after it run too: they may
    // depend on what it did (a serial load restarts the unit).
    let mut ran: Option<String> = None;
    for (index, step) in profile.steps.iter().enumerate() {
        if *context.cancel.borrow() {
            report.outcome = if report.steps.is_empty() { DeviceOutcome::NotRun } else { DeviceOutcome::Failed };
            report.error = Some("stopped by Ctrl-C before this step".into());
            report.failure_class = Some(FailureClass::Environment);
            break;
        }
        let step_started = Instant::now();
        // Secrets stay out of the digest: it is taken over the step as
        // resolved for display.
        let digest_step = for_digest.as_ref().and_then(|p| p.steps.get(index)).unwrap_or(step);
        let mut inputs = step_inputs(digest_step, &report.images);
        let done = context.done.get(&index);
        let decision = match (resume_decision(done, &inputs, &step_images(step, &report.images)), &ran) {
            (Resume::Skip, Some(why)) => Resume::Again(why.clone()),
            (decision, _) => decision,
        };
        let (outcome, detail, retries, failure, images) = match (&decision, done) {
            (Resume::Skip, Some(done)) => {
                let detail = "done in an earlier run with the same inputs (journal)".to_string();
                (StepOutcome::Skipped, detail, 0, None, done.images.clone())
            }
            _ => {
                // Files confirmed earlier stand only when nothing before this
                // step ran again in this run and its inputs are the same.
                let skip = match &ran {
                    None => files_to_skip(context.files_done.get(&index), &inputs),
                    Some(_) => Vec::new(),
                };
                ran.get_or_insert_with(|| {
                    format!("step {index} ({}) ran before it in this run: run again", step.kind())
                });
                let why = match &decision {
                    Resume::Again(why) => format!("{why}; "),
                    Resume::Run | Resume::Skip => String::new(),
                };
                let stopped;
                let step = match step {
                    Step::ConfigureNetwork(s) if index == 0 && context.boot_stopped => {
                        stopped =
                            Step::ConfigureNetwork(crate::profile::ConfigureNetwork { interrupt: None, ..s.clone() });
                        &stopped
                    }
                    _ => step,
                };
                let journal_failed: Mutex<Option<JournalError>> = Mutex::new(None);
                let record_file = |image: &ImageHash| {
                    let Some(journal) = context.journal else { return };
                    let line = JournalRecord {
                        device: job.name.clone(),
                        step: index,
                        kind: step.kind().to_string(),
                        outcome: StepOutcome::Confirmed,
                        at: now(),
                        detail: format!("{} confirmed by the device", image.file),
                        profile_sha256: Some(profile_sha256.clone()),
                        inputs_sha256: Some(inputs.clone()),
                        images: vec![image.clone()],
                        file: Some(image.file.clone()),
                    };
                    if let Err(error) = journal.lock().unwrap_or_else(|p| p.into_inner()).append(&line) {
                        journal_failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(error);
                    }
                };
                let files = StepFiles { confirmed: &skip, record: &record_file };
                let result = run_step(job, &profile, &base_dir, step, console, context.progress, files).await;
                let result = match journal_failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
                    Some(error) => Err(Failure::of(error)),
                    None => result,
                };
                match result {
                    Ok(done) => {
                        let notes = record_sent(&mut report.images, &done.sent);
                        inputs = step_inputs(digest_step, &report.images);
                        let detail = format!("{why}{}{notes}", done.detail);
                        (done.outcome, detail, done.retries, None, step_images(step, &report.images))
                    }
                    Err(failure) => {
                        let detail = format!("{why}{}", failure.message);
                        (StepOutcome::Failed, detail, 0, Some(failure), Vec::new())
                    }
                }
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
            inputs_sha256: inputs.clone(),
            images: images.clone(),
        };
        if let Some(journal) = context.journal {
            let line = JournalRecord {
                device: job.name.clone(),
                step: index,
                kind: record.kind.clone(),
                outcome,
                at: now(),
                detail,
                profile_sha256: Some(profile_sha256.clone()),
                inputs_sha256: Some(inputs),
                images,
                file: None,
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

/// Puts the hashes of the bytes a step really sent in place of those taken
/// before it ran, so the report never lists a hash that was not written;
/// returns a note for each file that changed in between.
fn record_sent(images: &mut [ImageHash], sent: &[ImageHash]) -> String {
    let mut notes = String::new();
    for sent in sent {
        if let Some(image) = images.iter_mut().find(|i| i.file == sent.file)
            && image.sha256 != sent.sha256
        {
            notes.push_str(&format!(
                "; {} changed while it was being sent: the sha256 listed is that of the bytes sent",
                sent.file
            ));
            *image = sent.clone();
        }
    }
    notes
}

fn find(text: &str, pattern: &str) -> Option<String> {
    regex::Regex::new(pattern).ok()?.captures(text).map(|c| c[1].to_string())
}

/// A device's profile, ready to run.
struct Resolved {
    /// With the device's values filled in.
    profile: Profile,
    /// The same, resolved for display (secrets as `***`), for the inputs
    /// digests; `None` when that resolution fails (then the digests use the
    /// steps above, with their secret answers masked by `step_inputs`).
    for_digest: Option<Profile>,
    base_dir: PathBuf,
    /// SHA-256 of the profile file's bytes.
    profile_sha256: String,
}

fn resolve(job: &DeviceJob) -> Result<Resolved, Failure> {
    let loaded = profile::load(&job.profile_path, CheckOptions { strict: job.strict }).map_err(|error| {
        let problems = match &error {
            profile::ProfileError::Invalid { problems, .. } => {
                problems.iter().filter(|p| p.is_error()).cloned().collect()
            }
            profile::ProfileError::Read(_) => Vec::new(),
        };
        Failure { problems, ..Failure::of(error) }
    })?;
    let resolved = profile::resolve(&loaded, &job.values, ResolveMode::Use).map_err(|problems| Failure {
        message: format!("{} problem(s) with this device's values", problems.len()),
        problems,
        ..Failure::new(FailureClass::Input, "")
    })?;
    let for_digest = profile::resolve(&loaded, &job.values, ResolveMode::Display).ok();
    let profile_sha256 = super::journal::file_sha256(&job.profile_path).map_err(|error| {
        let shown = job.profile_path.display();
        Failure::new(FailureClass::Environment, format!("cannot read profile {shown} to hash it: {error}"))
    })?;
    Ok(Resolved { profile: resolved, for_digest, base_dir: loaded.base_dir().to_path_buf(), profile_sha256 })
}

/// SHA-256 of every image the steps will send, read and checked before
/// anything runs: a missing or unreadable image, or one that fails its own
/// `bootHdr` length or CRC check, stops the device before it is touched.
fn hash_images(profile: &Profile, base_dir: &Path) -> Result<Vec<ImageHash>, Failure> {
    let mut images = Vec::new();
    for file in profile.steps.iter().flat_map(Step::files) {
        if images.iter().any(|i: &ImageHash| i.file == file) {
            continue;
        }
        let bytes = serial_steps::read_image(&base_dir.join(&file)).map_err(Failure::of)?.data;
        let sha256 = hex(&Sha256::digest(&bytes));
        images.push(ImageHash { file, sha256, bytes: bytes.len() as u64 });
    }
    Ok(images)
}

struct StepDone {
    outcome: StepOutcome,
    detail: String,
    retries: u32,
    /// The files sent, each with the SHA-256 of the bytes that went out.
    sent: Vec<ImageHash>,
}

fn passed(detail: impl Into<String>) -> StepDone {
    StepDone { outcome: StepOutcome::Passed, detail: detail.into(), retries: 0, sent: Vec::new() }
}

/// The address a network step talks to.
fn target(host: Option<&profile::Template>, profile: &Profile) -> Result<Ipv4Addr, Failure> {
    let text = host.or(profile.network.ip.as_ref()).map(|t| t.to_string()).unwrap_or_default();
    text.trim()
        .parse()
        .map_err(|_| Failure::new(FailureClass::Input, format!("`{text}` is not an IPv4 address to reach")))
}

/// The files of a step the device already has, and where a file it
/// confirms now is recorded (the journal).
struct StepFiles<'a> {
    /// Confirmed in an earlier run with the same inputs: not sent again.
    confirmed: &'a [ConfirmedFile],
    record: &'a (dyn Fn(&ImageHash) + Send + Sync),
}

async fn run_step(
    job: &DeviceJob,
    profile: &Profile,
    base_dir: &Path,
    step: &Step,
    console: &mut Option<Console<Port>>,
    progress: &dyn Progress,
    files: StepFiles<'_>,
) -> Result<StepDone, Failure> {
    match step {
        Step::LoadImage(s) => {
            let console = open_console(job, profile, console).await?;
            let image = serial_steps::read_image(&base_dir.join(s.file.as_str())).map_err(Failure::of)?;
            // The bytes read now are the bytes sent: their hash is the one written.
            let hashed = ImageHash {
                file: s.file.to_string(),
                sha256: hex(&Sha256::digest(&image.data)),
                bytes: image.data.len() as u64,
            };
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
                sent: vec![hashed],
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
                    sent: Vec::new(),
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
            let mut finding = match console.as_mut() {
                // The console steps' boot log (and what the unit printed
                // since) names the cause where the network alone cannot.
                Some(console) => {
                    drain_console(console).await;
                    let log = BootLog::parse(console.transcript().render().as_bytes());
                    diagnose_with_console(host, &evidence, &log).finding
                }
                None => diagnose(host, &evidence),
            };
            if finding.code == FindingCode::HostUnreachable
                && let Some(mac) = job.values.get("mac").and_then(|mac| mac.parse::<arp::Mac>().ok())
                && let Some(on_the_wire) = locate_by_addp(host, mac).await
            {
                finding = on_the_wire;
            }
            let message = format!("{host} did not reach the wanted states in {} ms", spec.timeout.as_millis());
            Err(Failure { finding: Some(finding), ..Failure::new(FailureClass::Device, message) })
        }
        Step::FtpUpload(s) => ftp_upload(profile, base_dir, s, progress, files).await,
        Step::AddpConfigure(s) => addp_configure(profile, s).await,
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

/// The `ftp_upload` step. Files the device confirmed in an earlier run are
/// not sent again; each file it confirms now is recorded as it is, so a
/// kill between files loses nothing already written to the unit's flash.
async fn ftp_upload(
    profile: &Profile,
    base_dir: &Path,
    s: &profile::FtpUpload,
    progress: &dyn Progress,
    files: StepFiles<'_>,
) -> Result<StepDone, Failure> {
    let host = target(s.host.as_ref(), profile)?;
    // Hashing while streaming tells which bytes really went out.
    let mut spec = UploadSpec { hash: true, ..UploadSpec::from_step(s, host, base_dir) };
    // The spec's files are the step's, in order: keep those to send, with
    // their names as the step gives them.
    let confirmed = |name: &str| files.confirmed.iter().find(|c| c.file == name);
    let mut names = Vec::new();
    let mut sending = Vec::new();
    let mut kept = Vec::new();
    for (file, upload) in s.files.iter().zip(std::mem::take(&mut spec.files)) {
        let name = file.local.to_string();
        match confirmed(&name) {
            Some(done) => kept.push(done.clone()),
            None => {
                names.push(name);
                sending.push(upload);
            }
        }
    }
    spec.files = sending;
    let mut sent: Vec<ImageHash> = kept.iter().filter_map(|c| c.image.clone()).collect();
    let earlier = kept
        .iter()
        .map(|c| format!("{} confirmed in an earlier run (journal), not sent again", c.file))
        .collect::<Vec<_>>()
        .join(", ");
    if spec.files.is_empty() {
        return Ok(StepDone { outcome: StepOutcome::Passed, detail: earlier, retries: 0, sent });
    }
    let on_confirmed = |index: usize, report: &ftp::FileReport| {
        if let (Some(name), Some(sha256)) = (names.get(index), &report.sha256) {
            (files.record)(&ImageHash { file: name.clone(), sha256: sha256.clone(), bytes: report.bytes });
        }
    };
    let uploaded = ftp::upload_with(&spec, progress, &on_confirmed)
        .await
        .map_err(|error| Failure { finding: error.finding(), ..Failure::of(error) })?;
    let retries = uploaded.files.iter().map(|f| f.attempts.saturating_sub(1)).sum();
    let detail = uploaded
        .files
        .iter()
        .map(|f| {
            let ignored = f
                .pasv_address_ignored
                .as_ref()
                .map(|a| format!("; the PASV reply's address {a} ignored"))
                .unwrap_or_default();
            format!("{} ({} bytes via {}, {}{ignored})", f.remote, f.bytes, f.mode.command(), f.verified)
        })
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
    let earlier = if earlier.is_empty() { earlier } else { format!("{earlier}; ") };
    let detail = format!("as {}: {earlier}{detail}{given_up}", uploaded.user);
    sent.extend(names.iter().zip(&uploaded.files).filter_map(|(name, report)| {
        let sha256 = report.sha256.clone()?;
        Some(ImageHash { file: name.clone(), sha256, bytes: report.bytes })
    }));
    Ok(StepDone { outcome: StepOutcome::Passed, detail, retries, sent })
}

/// A unit that does not answer at `host` but whose MAC is known (the
/// inventory's `mac`): asked by ADDP, its reply may show it on the wire at
/// another address (`wrong-address`) or on another subnet (`wrong-subnet`).
async fn locate_by_addp(host: Ipv4Addr, mac: arp::Mac) -> Option<Finding> {
    crate::addp::client::locate(host, mac).await.ok()??.finding_at(host, &mac.to_string())
}

/// `addp_configure`: the network block's settings to the unit with the
/// step's MAC over ADDP, then a reboot (each judged by the unit's answer).
async fn addp_configure(profile: &Profile, s: &profile::AddpConfigure) -> Result<StepDone, Failure> {
    use crate::addp::client::{OperateOptions, operate};
    use crate::addp::{Password, Request};
    let mac: arp::Mac = s.mac.as_str().parse().map_err(|e: String| Failure::new(FailureClass::Input, e))?;
    let address = |field: &str, value: &Option<profile::Template>, default: Option<Ipv4Addr>| match value
        .as_ref()
        .map(|t| t.as_str().trim().parse::<Ipv4Addr>())
    {
        Some(Ok(address)) => Ok(address),
        None if default.is_some() => Ok(default.expect("checked")),
        _ => Err(Failure::new(FailureClass::Input, format!("`network.{field}` is not an IPv4 address for ADDP"))),
    };
    let password = || Password(s.password.expose().as_bytes().to_vec());
    let request = if profile.network.dhcp {
        Request::Dhcp { enable: true, mac, password: password() }
    } else {
        Request::SetStatic {
            ip: address("ip", &profile.network.ip, None)?,
            mask: address("mask", &profile.network.mask, None)?,
            gateway: address("gateway", &profile.network.gateway, Some(Ipv4Addr::UNSPECIFIED))?,
            mac,
            password: password(),
        }
    };
    let options = OperateOptions {
        interface: s.interface.clone(),
        wait: s.wait.0,
        retries: s.retries,
        ..OperateOptions::default()
    };
    let set = operate(&request, &options).await.map_err(Failure::of)?;
    let mut retries = set.attempts - 1;
    let what = match &request {
        Request::SetStatic { ip, mask, .. } => format!("{ip} / {mask}"),
        _ => "DHCP on".into(),
    };
    let mut detail = format!("{mac} took {what} (answered from {})", set.from.ip());
    if s.reboot {
        let rebooted = operate(&Request::Reboot { mac, password: password() }, &options).await.map_err(Failure::of)?;
        retries += rebooted.attempts - 1;
        detail.push_str("; restarting");
    }
    Ok(StepDone { outcome: StepOutcome::Passed, detail, retries, sent: Vec::new() })
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

/// Reads what the unit printed since the last console step into the
/// transcript: until 100 ms pass quietly, at most 64 reads.
async fn drain_console(console: &mut Console<Port>) {
    for _ in 0..64 {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
        if !matches!(console.read_chunk(deadline, "the unit's boot lines").await, Ok(Some(_))) {
            return;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn image(file: &str, fill: char) -> ImageHash {
        ImageHash { file: file.into(), sha256: fill.to_string().repeat(64), bytes: 10 }
    }

    /// A variable declared secret, sent in a dialog entry not marked secret:
    /// the digest is taken over the step resolved for display, so two
    /// passwords give the same digest and neither is hashed.
    #[test]
    fn secret_variables_stay_out_of_the_inputs_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            "format: 1\nname: p\nvariables:\n  pw:\n    secret: true\nserial:\n  baud: 115200\nnetwork:\n  dhcp: true\nsteps:\n  - configure_network:\n      dialog:\n        - expect: password\n          send: ${pw}\n        - expect: IP address\n          send: ${ip}\n      done: Saved\n",
        )
        .unwrap();
        let digest = |pw: &str, ip: &str| {
            let pairs = [format!("pw={pw}"), format!("ip={ip}")];
            let values = DeviceValues::from_set_pairs(&pairs).unwrap();
            let job = DeviceJob { name: "a".into(), profile_path: path.clone(), values, port: None, strict: false };
            let resolved = resolve(&job).unwrap_or_else(|f| panic!("{}: {:?}", f.message, f.problems));
            let used = serde_json::to_string(&resolved.profile.steps[0]).unwrap();
            assert!(used.contains(pw), "the step as run sends the password");
            assert_eq!(resolved.profile_sha256, hex(&Sha256::digest(std::fs::read(&path).unwrap())));
            step_inputs(&resolved.for_digest.expect("resolves for display").steps[0], &[])
        };
        assert_eq!(digest("first-secret", "10.0.0.5"), digest("second-secret", "10.0.0.5"));
        assert_ne!(digest("first-secret", "10.0.0.5"), digest("first-secret", "10.0.0.6"));
    }

    #[test]
    fn a_file_changed_while_it_was_sent_is_listed_with_the_bytes_sent() {
        let mut images = vec![image("rom.bin", 'a'), image("image.bin", 'b')];
        // rom.bin went out as hashed; image.bin was replaced in between.
        let notes = record_sent(&mut images, &[image("rom.bin", 'a'), image("image.bin", 'c')]);
        assert_eq!(images, [image("rom.bin", 'a'), image("image.bin", 'c')]);
        assert_eq!(notes, "; image.bin changed while it was being sent: the sha256 listed is that of the bytes sent");
        assert_eq!(record_sent(&mut images, &[image("image.bin", 'c')]), "", "nothing changed: no note");
    }
}
