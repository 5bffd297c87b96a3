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
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;

pub use super::job::{DeviceJob, JobProfile, ProfileCache};
use super::journal::{
    ConfirmedFile, DoneStep, Journal, JournalError, JournalRecord, Resume, StepOutcome, files_to_skip, now,
    resume_decision, step_images, step_inputs,
};
pub use super::outcome::Failure;
use super::report::{DeviceOutcome, DeviceReport, ImageHash, StepRecord};
use super::steps::{self, StepContext, StepFiles};
use crate::digest::sha256_hex;
use crate::failure::FailureClass;
use crate::profile::{self, Profile, ResolveMode, Step};
use crate::serial::console::Console;
use crate::serial::port::Port;
use crate::sync::lock;

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
    pub progress: &'a dyn crate::progress::Progress,
    /// Becomes true on Ctrl-C: no new step starts.
    pub cancel: watch::Receiver<bool>,
    /// Sees each step's record as it ends (for live display).
    pub on_step: &'a (dyn Fn(&str, &StepRecord) + Send + Sync),
    /// The caller already answered the first step's `interrupt` on the
    /// console it hands over (a station stops a unit's boot before its
    /// database work): that step starts at its dialog.
    pub boot_stopped: bool,
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("journal", &self.journal.is_some())
            .field("done", &self.done.keys().collect::<Vec<_>>())
            .field("files_done", &self.files_done.keys().collect::<Vec<_>>())
            .field("boot_stopped", &self.boot_stopped)
            .finish_non_exhaustive()
    }
}

impl From<steps::StepError> for Failure {
    fn from(error: steps::StepError) -> Failure {
        Failure { finding: error.finding(), ..Failure::of(error) }
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
    let mut report = job.report(DeviceOutcome::Passed);
    // Bad input stops the device before anything is sent.
    let resolved = match resolve(job) {
        Ok(resolved) => resolved,
        Err(failure) => return failed(report, failure),
    };
    report.ip = resolved.profile.network.ip.as_ref().map(|t| t.to_string()).or(report.ip);
    report.profile_sha256 = Some(resolved.profile_sha256.clone());
    match hash_images(&resolved.profile, &resolved.base_dir) {
        Ok(images) => report.images = images,
        Err(failure) => return failed(report, failure),
    }
    let mut runner = Runner { job, context: &context, resolved: &resolved, started: Instant::now(), ran: None };
    for (index, step) in resolved.profile.steps.iter().enumerate() {
        if *context.cancel.borrow() {
            report.outcome = if report.steps.is_empty() { DeviceOutcome::NotRun } else { DeviceOutcome::Failed };
            report.error = Some("stopped by Ctrl-C before this step".into());
            report.failure_class = Some(FailureClass::Environment);
            break;
        }
        let (record, failure) = runner.step(index, step, &mut report.images, console).await;
        let written = runner.journal(&record);
        (context.on_step)(&job.name, &record);
        report.steps.push(record);
        if let Some(failure) = written.err().map(Failure::of).or(failure) {
            report = failed(report, failure);
            break;
        }
    }
    if let Some(console) = console.as_ref() {
        let text = console.transcript().render();
        let identity = resolved.profile.family.report_identity(&text);
        report.mac = identity.mac;
        report.serial_number = identity.serial_number;
    }
    report
}

fn failed(mut report: DeviceReport, failure: Failure) -> DeviceReport {
    report.outcome = DeviceOutcome::Failed;
    report.failure_class = Some(failure.class);
    report.error = Some(failure.message);
    report.finding = failure.finding;
    report.problems = failure.problems;
    report
}

/// One device's steps in order, with what resuming needs to know.
struct Runner<'r> {
    job: &'r DeviceJob,
    context: &'r RunContext<'r>,
    resolved: &'r Resolved,
    started: Instant,
    /// Once a step runs in this run, the steps after it run too: they may
    /// depend on what it did (a serial load restarts the unit). Says which.
    ran: Option<String>,
}

/// How one step ended, before it becomes its record.
struct Ended {
    outcome: StepOutcome,
    detail: String,
    retries: u32,
    failure: Option<Failure>,
    images: Vec<ImageHash>,
}

impl Runner<'_> {
    /// Runs step `index`, or skips it when the journal holds it done with the
    /// same inputs; gives its record and, when it failed, why.
    async fn step(
        &mut self,
        index: usize,
        step: &Step,
        images: &mut [ImageHash],
        console: &mut Option<Console<Port>>,
    ) -> (StepRecord, Option<Failure>) {
        let step_started = Instant::now();
        // Secrets stay out of the digest: it is taken over the step as
        // resolved for display.
        let digest_step = self.resolved.for_digest.as_ref().and_then(|p| p.steps.get(index)).unwrap_or(step);
        let mut inputs = step_inputs(digest_step, images);
        let done = self.context.done.get(&index);
        let decision = match (resume_decision(done, &inputs, &step_images(step, images)), &self.ran) {
            (Resume::Skip, Some(why)) => Resume::Again(why.clone()),
            (decision, _) => decision,
        };
        let ended = match (&decision, done) {
            (Resume::Skip, Some(done)) => Ended {
                outcome: StepOutcome::Skipped,
                detail: "done in an earlier run with the same inputs (journal)".into(),
                retries: 0,
                failure: None,
                images: done.images.clone(),
            },
            _ => {
                let ended = self.execute(index, step, &decision, &inputs, images, console).await;
                inputs = step_inputs(digest_step, images);
                ended
            }
        };
        let record = StepRecord {
            index,
            kind: step.kind().to_string(),
            outcome: ended.outcome,
            started_ms: step_started.duration_since(self.started).as_millis() as u64,
            duration_ms: step_started.elapsed().as_millis() as u64,
            retries: ended.retries,
            detail: ended.detail,
            inputs_sha256: inputs,
            images: ended.images,
        };
        (record, ended.failure)
    }

    /// Runs the step on the device. Each file the device confirms is
    /// journaled at once; a journal that cannot take it fails the step.
    async fn execute(
        &mut self,
        index: usize,
        step: &Step,
        decision: &Resume,
        inputs: &str,
        images: &mut [ImageHash],
        console: &mut Option<Console<Port>>,
    ) -> Ended {
        // Files confirmed earlier stand only when nothing before this step
        // ran again in this run and its inputs are the same.
        let skip = match &self.ran {
            None => files_to_skip(self.context.files_done.get(&index), inputs),
            Some(_) => Vec::new(),
        };
        self.ran.get_or_insert_with(|| format!("step {index} ({}) ran before it in this run: run again", step.kind()));
        let why = match decision {
            Resume::Again(why) => format!("{why}; "),
            Resume::Run | Resume::Skip => String::new(),
        };
        let stopped;
        let step = match step {
            Step::ConfigureNetwork(s) if index == 0 && self.context.boot_stopped => {
                stopped = Step::ConfigureNetwork(profile::ConfigureNetwork { interrupt: None, ..s.clone() });
                &stopped
            }
            _ => step,
        };
        let journal_failed: Mutex<Option<JournalError>> = Mutex::new(None);
        let record_file = |image: &ImageHash| {
            let line = JournalRecord {
                outcome: StepOutcome::Confirmed,
                detail: format!("{} confirmed by the device", image.file),
                images: vec![image.clone()],
                file: Some(image.file.clone()),
                ..self.journal_line(index, step.kind(), inputs)
            };
            if let Some(journal) = self.context.journal
                && let Err(error) = lock(journal).append(&line)
            {
                lock(&journal_failed).get_or_insert(error);
            }
        };
        let mut cx = StepContext {
            profile: &self.resolved.profile,
            base_dir: &self.resolved.base_dir,
            values: &self.job.values,
            port: self.job.port.as_deref(),
            console,
            progress: self.context.progress,
            files: StepFiles { confirmed: &skip, record: &record_file },
        };
        let result = steps::run(step, &mut cx).await.map_err(Failure::from);
        let result = match journal_failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(error) => Err(Failure::of(error)),
            None => result,
        };
        match result {
            Ok(done) => {
                let notes = record_sent(images, &done.sent);
                let detail = format!("{why}{}{notes}", done.detail);
                Ended {
                    outcome: done.outcome,
                    detail,
                    retries: done.retries,
                    failure: None,
                    images: step_images(step, images),
                }
            }
            Err(failure) => Ended {
                outcome: StepOutcome::Failed,
                detail: format!("{why}{}", failure.message),
                retries: 0,
                failure: Some(failure),
                images: Vec::new(),
            },
        }
    }

    /// The journal line of step `index`, as far as every line has it.
    fn journal_line(&self, index: usize, kind: &str, inputs: &str) -> JournalRecord {
        JournalRecord {
            device: self.job.name.clone(),
            step: index,
            kind: kind.to_string(),
            outcome: StepOutcome::Passed,
            at: now(),
            detail: String::new(),
            profile_sha256: Some(self.resolved.profile_sha256.clone()),
            inputs_sha256: Some(inputs.to_string()),
            images: Vec::new(),
            file: None,
        }
    }

    /// A step's end, appended and synced before the next step starts.
    fn journal(&self, record: &StepRecord) -> Result<(), JournalError> {
        let Some(journal) = self.context.journal else { return Ok(()) };
        let line = JournalRecord {
            outcome: record.outcome,
            detail: record.detail.clone(),
            images: record.images.clone(),
            ..self.journal_line(record.index, &record.kind, &record.inputs_sha256)
        };
        lock(journal).append(&line)
    }
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
    let loaded = job.profile.loaded.as_ref().map_err(Clone::clone)?;
    let resolved = profile::resolve(loaded, &job.values, ResolveMode::Use).map_err(Failure::values)?;
    let for_digest = profile::resolve(loaded, &job.values, ResolveMode::Display).ok();
    Ok(Resolved {
        profile: resolved,
        for_digest,
        base_dir: loaded.base_dir().to_path_buf(),
        profile_sha256: loaded.sha256.clone(),
    })
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
        let bytes = steps::load_image::read_image(&base_dir.join(&file), profile.family)?.data;
        let sha256 = sha256_hex(&bytes);
        images.push(ImageHash { file, sha256, bytes: bytes.len() as u64 });
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::DeviceValues;

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
            let profile = std::sync::Arc::new(JobProfile::load(&path, profile::CheckOptions::default()));
            let job = DeviceJob { name: "a".into(), profile, values, port: None };
            let resolved = resolve(&job).unwrap_or_else(|f| panic!("{}: {:?}", f.message, f.problems));
            let used = serde_json::to_string(&resolved.profile.steps[0]).unwrap();
            assert!(used.contains(pw), "the step as run sends the password");
            assert_eq!(resolved.profile_sha256, sha256_hex(&std::fs::read(&path).unwrap()), "the bytes parsed");
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
