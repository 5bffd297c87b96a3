//! Many devices at once: a `JoinSet` under a `Semaphore` of `jobs` places.
//! One failing device never stops the others; Ctrl-C stops new devices from
//! starting and lets the running ones stop before their next step; the
//! journal lets a rerun with `resume` skip what is done with the same inputs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, watch};

use super::device::{DeviceJob, RunContext, run_device};
use super::journal::{Journal, JournalError, confirmed_files, done_steps, now};
use super::recording::RunRecording;
use super::report::{BatchReport, DeviceOutcome, DeviceReport, StepRecord, rfc3339};
use crate::failure::{Classify, FailureClass};
use crate::progress::Progress;
use crate::store::{DbUrl, Recorder, RunStart, Store, StoreError, new_id, now_ms};

#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Devices run at once.
    pub jobs: usize,
    pub journal: Option<PathBuf>,
    /// Continue the journal: skip the steps it holds as done with the same
    /// inputs (see `journal::resume_decision`).
    pub resume: bool,
    /// Record every device's run in this unit database (each device needs
    /// its `mac` value: units are kept by MAC).
    pub database: Option<BatchDatabase>,
}

/// Where `batch --db` records.
#[derive(Debug, Clone)]
pub struct BatchDatabase {
    pub url: DbUrl,
    /// The local spool for records while the database is away.
    pub spool: PathBuf,
    /// Recorded as the runs' station (`batch` unless given).
    pub station: String,
    pub operator: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("journal {} already holds {records} record(s): add --resume to continue that batch, or name another journal", path.display())]
    JournalInUse { path: PathBuf, records: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("--db keeps units by MAC: give these devices a `mac` value (an inventory column): {}", devices.join(", "))]
    NoMac { devices: Vec<String> },
}

impl Classify for BatchError {
    fn class(&self) -> FailureClass {
        match self {
            BatchError::Journal(error) => error.class(),
            BatchError::JournalInUse { .. } | BatchError::NoMac { .. } => FailureClass::Input,
            BatchError::Store(error) => error.class(),
        }
    }
}

/// What the batch asks of its caller for each device.
pub trait BatchObserver: Send + Sync {
    /// Progress events of one device.
    fn progress(&self, device: &str) -> Arc<dyn Progress>;
    fn device_started(&self, _device: &str) {}
    fn step_ended(&self, _device: &str, _step: &StepRecord) {}
    fn device_ended(&self, _report: &DeviceReport) {}
}

/// Runs every device of `devices`; the report lists them in the given order.
pub async fn run_batch(
    devices: Vec<DeviceJob>,
    options: &BatchOptions,
    observer: Arc<dyn BatchObserver>,
    cancel: watch::Receiver<bool>,
) -> Result<BatchReport, BatchError> {
    let started_at = now();
    let (journal, done, confirmed) = match &options.journal {
        Some(path) => {
            let (journal, records) = Journal::open(path)?;
            if !records.is_empty() && !options.resume {
                return Err(BatchError::JournalInUse { path: path.clone(), records: records.len() });
            }
            (Some(Arc::new(Mutex::new(journal))), done_steps(&records), confirmed_files(&records))
        }
        None => (None, BTreeMap::new(), BTreeMap::new()),
    };
    let recorder = match &options.database {
        Some(database) => {
            let missing: Vec<String> =
                devices.iter().filter(|d| d.values.get("mac").is_none()).map(|d| d.name.clone()).collect();
            if !missing.is_empty() {
                return Err(BatchError::NoMac { devices: missing });
            }
            let store = Store::open(&database.url).await?;
            Some(Arc::new((Recorder::open(store, &DbUrl::sqlite(&database.spool)).await?, database.clone())))
        }
        None => None,
    };
    let places = Arc::new(Semaphore::new(options.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut task_devices = std::collections::HashMap::new();
    let mut reports: Vec<Option<DeviceReport>> = vec![None; devices.len()];
    for (index, job) in devices.iter().cloned().enumerate() {
        let permit = tokio::select! {
            permit = places.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = wait_for_cancel(cancel.clone()) => break,
        };
        if *cancel.borrow() {
            break;
        }
        let journal = journal.clone();
        let done = done.get(&job.name).cloned().unwrap_or_default();
        let files_done = confirmed.get(&job.name).cloned().unwrap_or_default();
        let observer = observer.clone();
        let cancel = cancel.clone();
        let recorder = recorder.clone();
        let task = tasks.spawn(async move {
            let _permit = permit;
            observer.device_started(&job.name);
            let recording = match &recorder {
                Some(recorder) => match begin_recording(&recorder.0, &recorder.1, &job).await {
                    Ok(recording) => Some(recording),
                    Err(report) => {
                        observer.device_ended(&report);
                        return (index, *report);
                    }
                },
                None => None,
            };
            let progress = observer.progress(&job.name);
            let on_step = |device: &str, step: &StepRecord| {
                observer.step_ended(device, step);
                if let Some(recording) = &recording {
                    recording.step(step);
                }
            };
            let context = RunContext {
                journal: journal.as_deref(),
                done,
                files_done,
                progress: progress.as_ref(),
                cancel,
                on_step: &on_step,
                boot_stopped: false,
            };
            let report = run_device(&job, context).await;
            if let Some(recording) = recording {
                recording.end(&report).await;
            }
            observer.device_ended(&report);
            (index, report)
        });
        task_devices.insert(task.id(), index);
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, report)) => reports[index] = Some(report),
            // A device's task panicked (a flashline defect): the device
            // fails, so the batch exits non-zero and JUnit shows a failure;
            // the others go on.
            Err(error) => {
                tracing::error!(%error, "a device task ended abnormally");
                if let Some(&index) = task_devices.get(&error.id()) {
                    let report = ended_abnormally(&devices[index], &error);
                    observer.device_ended(&report);
                    reports[index] = Some(report);
                }
            }
        }
    }
    let interrupted = *cancel.borrow();
    let devices: Vec<DeviceReport> = reports
        .into_iter()
        .zip(devices)
        .map(|(report, job)| report.unwrap_or_else(|| not_run(&job, interrupted)))
        .collect();
    Ok(BatchReport::new(rfc3339(started_at), rfc3339(now()), interrupted, devices))
}

/// Writes the device's run before it is touched; a device whose unit runs
/// elsewhere, or a database that cannot take the row, fails the device.
async fn begin_recording(
    recorder: &Recorder,
    database: &BatchDatabase,
    job: &DeviceJob,
) -> Result<RunRecording, Box<DeviceReport>> {
    let failed = |class: FailureClass, error: String| {
        let mut report = job.report(DeviceOutcome::Failed);
        report.failure_class = Some(class);
        report.error = Some(error);
        Box::new(report)
    };
    let profile_sha256 = job.profile.sha256().unwrap_or_default().to_string();
    let start = RunStart {
        id: new_id(),
        unit_mac: crate::mac::record_form(job.values.get("mac").unwrap_or_default()),
        serial_number: job.values.get("serial_number").map(str::to_string),
        station: database.station.clone(),
        fixture: job.name.clone(),
        operator: database.operator.clone(),
        profile_name: job.profile.name(),
        profile_sha256,
        images: "[]".into(),
        ip: job.values.get("ip").map(str::to_string),
        started_ms: now_ms(),
    };
    match RunRecording::begin(recorder, &start, None).await {
        Ok(Ok(recording)) => Ok(recording),
        Ok(Err(_busy)) => Err(failed(
            FailureClass::Device,
            format!("unit {} is being run elsewhere (the unit database holds a running run)", start.unit_mac),
        )),
        Err(error) => Err(failed(error.class(), error.to_string())),
    }
}

async fn wait_for_cancel(mut cancel: watch::Receiver<bool>) {
    while !*cancel.borrow() {
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The report of a device whose task panicked. Its class is
/// `Environment` (see [`FailureClass`]): nothing says the input or the unit
/// is wrong, and the unit's state is unknown, so it must be run again.
fn ended_abnormally(job: &DeviceJob, error: &tokio::task::JoinError) -> DeviceReport {
    let mut report = job.report(DeviceOutcome::Failed);
    report.failure_class = Some(FailureClass::Environment);
    report.error = Some(format!(
        "flashline's task for this device ended abnormally ({error}); the unit's state is unknown: run it again, and report this as a flashline defect"
    ));
    report
}

fn not_run(job: &DeviceJob, interrupted: bool) -> DeviceReport {
    let mut report = job.report(DeviceOutcome::NotRun);
    report.error =
        Some(if interrupted { "not started: the batch was interrupted".into() } else { "not started".into() });
    report
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::pipeline::device::JobProfile;
    use crate::profile::{CheckOptions, DeviceValues};

    /// An observer with a defect: it panics when device `b` starts, inside
    /// that device's task.
    struct PanicsOnB;

    impl BatchObserver for PanicsOnB {
        fn progress(&self, _device: &str) -> Arc<dyn Progress> {
            Arc::new(crate::progress::Silent)
        }

        fn device_started(&self, device: &str) {
            assert_ne!(device, "b", "a defect in the task of device b");
        }
    }

    #[tokio::test]
    async fn a_device_whose_task_panics_fails_as_environment_and_the_others_run() {
        let profile = Arc::new(JobProfile::load(Path::new("no-such-profile.yaml"), CheckOptions::default()));
        let job = |name: &str| DeviceJob {
            name: name.into(),
            profile: profile.clone(),
            values: DeviceValues::default(),
            port: None,
        };
        let (_keep, cancel) = watch::channel(false);
        let options = BatchOptions { jobs: 2, journal: None, resume: false, database: None };
        let batch = run_batch(vec![job("a"), job("b"), job("c")], &options, Arc::new(PanicsOnB), cancel).await.unwrap();
        let outcomes: Vec<_> = batch.devices.iter().map(|d| (d.name.as_str(), d.outcome, d.failure_class)).collect();
        assert_eq!(
            outcomes,
            [
                ("a", DeviceOutcome::Failed, Some(FailureClass::Environment)),
                ("b", DeviceOutcome::Failed, Some(FailureClass::Environment)),
                ("c", DeviceOutcome::Failed, Some(FailureClass::Environment)),
            ]
        );
        let b = batch.devices[1].error.as_deref().unwrap_or_default();
        assert!(b.contains("ended abnormally") && b.contains("run it again"), "{b}");
        let a = batch.devices[0].error.as_deref().unwrap_or_default();
        assert!(a.contains("no-such-profile.yaml"), "the others ran and failed on their own: {a}");
    }
}
