//! What `run`, `batch` and `demo` show while devices work: on a terminal an
//! indicatif MultiProgress with a line per device and an overall bar; plain
//! lines otherwise (logs, line systems); nothing with `--json` or `-q`. Also
//! the shared ending: reports written, summary printed, exit code decided.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use tokio::sync::watch;

use super::progress_view::is_transfer;
use super::{Context, Outcome, Painter};
use crate::pipeline::batch::{BatchObserver, BatchOptions, run_batch};
use crate::pipeline::device::DeviceJob;
use crate::pipeline::report::{BatchReport, DeviceOutcome, DeviceReport, StepRecord, write_atomically};
use crate::progress::{Progress, ProgressEvent};
use crate::sync::lock;

pub struct BatchView {
    mode: Mode,
    err: Painter,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    overall: Option<ProgressBar>,
    multi: MultiProgress,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Silent,
}

impl BatchView {
    pub fn new(devices: usize, json: bool, context: &Context) -> Arc<BatchView> {
        let mode = if json || context.quiet {
            Mode::Silent
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        let multi = MultiProgress::new();
        let overall = (mode == Mode::Bars).then(|| {
            let bar = multi.add(ProgressBar::new(devices as u64));
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} devices  {msg}").expect("a valid template"),
            );
            bar
        });
        Arc::new(BatchView { mode, err: context.err, bars: Mutex::new(BTreeMap::new()), overall, multi })
    }

    fn bar(&self, device: &str) -> Option<ProgressBar> {
        lock(&self.bars).get(device).cloned()
    }

    fn line(&self, text: String) {
        match self.mode {
            Mode::Bars => {
                let _ = self.multi.println(text);
            }
            Mode::Lines => eprintln!("{text}"),
            Mode::Silent => {}
        }
    }
}

/// The device line while nothing is counted in bytes.
fn idle_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:12} {spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The device line during a transfer: bytes, rate and ETA.
fn transfer_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:12} {spinner} {msg:20} [{bar:24}] {bytes:>9}/{total_bytes:9} {binary_bytes_per_sec:>11} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// How often a plain-lines view prints a transfer's progress.
const LINE_INTERVAL: Duration = Duration::from_secs(2);

/// Progress of one device's tasks (serial transfers, dialogs, network waits,
/// FTP files, EXS exchanges): on its bar on a terminal, as throttled plain
/// lines otherwise.
struct DeviceProgress {
    device: String,
    mode: Mode,
    bar: Option<ProgressBar>,
    /// The running transfer: its label, size, start, and when a line was last printed.
    transfer: Mutex<Option<Transfer>>,
}

struct Transfer {
    label: String,
    total: u64,
    started: Instant,
    printed: Instant,
}

impl DeviceProgress {
    fn plain(&self, event: ProgressEvent) {
        let mut transfer = lock(&self.transfer);
        let device = &self.device;
        match event {
            ProgressEvent::Started { kind, label, total } if is_transfer(kind) => {
                let total = total.unwrap_or(0);
                eprintln!("{device}: sending {label} ({total} bytes)");
                let now = Instant::now();
                *transfer = Some(Transfer { label, total, started: now, printed: now });
            }
            ProgressEvent::Advanced { done, .. } => {
                if let Some(t) = transfer.as_mut().filter(|t| t.printed.elapsed() >= LINE_INTERVAL) {
                    t.printed = Instant::now();
                    eprintln!("{device}: {}", progress_line(&t.label, done, t.total, t.started.elapsed()));
                }
            }
            ProgressEvent::Finished { kind, done, elapsed } if is_transfer(kind) => {
                let label = transfer.take().map(|t| t.label).unwrap_or_default();
                let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
                eprintln!(
                    "{device}: sent {label}: {done} bytes in {:.1} s ({})",
                    elapsed.as_secs_f64(),
                    per_second(rate)
                );
            }
            ProgressEvent::Retried { detail, .. } => eprintln!("{device}: retry: {detail}"),
            ProgressEvent::Note { text, .. } => eprintln!("{device}: {text}"),
            _ => {}
        }
    }
}

/// `image.bin 45% (1.2 MiB of 2.6 MiB, 300.0 KiB/s, ETA 4 s)`
fn progress_line(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let eta = if rate > 0.0 { format!("{:.0} s", total.saturating_sub(done) as f64 / rate) } else { "?".into() };
    format!(
        "{label} {percent}% ({} of {}, {}, ETA {eta})",
        indicatif::BinaryBytes(done),
        indicatif::BinaryBytes(total),
        per_second(rate)
    )
}

fn per_second(rate: f64) -> String {
    format!("{}/s", indicatif::BinaryBytes(rate as u64))
}

impl Progress for DeviceProgress {
    fn report(&self, event: ProgressEvent) {
        match self.mode {
            Mode::Silent => {}
            Mode::Lines => self.plain(event),
            Mode::Bars => {
                let Some(bar) = &self.bar else { return };
                match event {
                    ProgressEvent::Started { kind, label, total } if is_transfer(kind) => {
                        bar.set_style(transfer_style());
                        bar.set_length(total.unwrap_or(0));
                        bar.reset();
                        bar.set_message(label);
                    }
                    ProgressEvent::Started { label, .. } => bar.set_message(label),
                    ProgressEvent::Advanced { done, .. } => bar.set_position(done),
                    ProgressEvent::Note { text, .. } => bar.set_message(text),
                    ProgressEvent::Retried { detail, .. } => bar.set_message(format!("retry: {detail}")),
                    ProgressEvent::Finished { kind, .. } if is_transfer(kind) => bar.set_style(idle_style()),
                    ProgressEvent::Finished { .. } => {}
                }
            }
        }
    }
}

impl BatchObserver for BatchView {
    fn progress(&self, device: &str) -> Arc<dyn Progress> {
        Arc::new(DeviceProgress {
            device: device.to_string(),
            mode: self.mode,
            bar: self.bar(device),
            transfer: Mutex::new(None),
        })
    }

    fn device_started(&self, device: &str) {
        match self.mode {
            Mode::Bars => {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(idle_style());
                bar.set_prefix(device.to_string());
                bar.enable_steady_tick(Duration::from_millis(150));
                lock(&self.bars).insert(device.to_string(), bar);
            }
            Mode::Lines => eprintln!("{device}: started"),
            Mode::Silent => {}
        }
    }

    fn step_ended(&self, device: &str, step: &StepRecord) {
        let text = format!(
            "{device}: {} {} ({:.1} s) {}",
            step.kind,
            step.outcome.as_str(),
            step.duration_ms as f64 / 1000.0,
            step.detail
        );
        if let Some(bar) = self.bar(device) {
            bar.set_message(format!("{} {}", step.kind, step.outcome.as_str()));
        }
        self.line(text);
    }

    fn device_ended(&self, report: &DeviceReport) {
        if let Some(bar) = lock(&self.bars).remove(&report.name) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if let Some(overall) = &self.overall {
            overall.inc(1);
        }
        let result = match report.outcome {
            DeviceOutcome::Passed => "passed".to_string(),
            DeviceOutcome::Failed => format!("FAILED: {}", report.error.clone().unwrap_or_default()),
            DeviceOutcome::NotRun => "not run".into(),
        };
        self.line(format!("{}: {result}", report.name));
        // Each problem once, on its own line, placed in its file.
        for problem in &report.problems {
            self.line(format!("  {}", self.err.problem(problem)));
        }
    }
}

impl BatchView {
    pub fn finish(&self) {
        if let Some(overall) = &self.overall {
            overall.finish_and_clear();
        }
    }
}

/// The journal and checking options `run` and `batch` share.
#[derive(Debug, clap::Args)]
pub struct JournalArgs {
    /// Journal file (JSON lines, fsynced per step), so a rerun with --resume skips the steps done.
    #[arg(long, value_name = "F")]
    pub journal: Option<PathBuf>,
    /// Continue the journal: skip the steps it holds as done with the same inputs (the step and its images' SHA-256); a finished unit is never flashed twice, a changed image is sent again.
    #[arg(long, requires = "journal")]
    pub resume: bool,
    /// Treat profile warnings (such as a clear-text password) as errors.
    #[arg(long)]
    pub strict: bool,
}

impl JournalArgs {
    /// The check options the profile is loaded with.
    pub fn check_options(&self) -> crate::profile::CheckOptions {
        crate::profile::CheckOptions { strict: self.strict }
    }
}

/// Where the reports go: the options `run`, `batch` and `demo` share.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Write the JSON report here (atomically).
    #[arg(long = "report", value_name = "F.json")]
    pub json_file: Option<PathBuf>,
    /// Write a JUnit XML report here (a testcase per device).
    #[arg(long = "junit", value_name = "F.xml")]
    pub junit_file: Option<PathBuf>,
    /// Print the JSON report on stdout instead of the summary table.
    #[arg(long = "json")]
    pub json: bool,
}

/// Writes the reports, prints the summary, decides the exit code: 0 all
/// passed; otherwise the worst class among the failures (device 1, input 2,
/// environment 3).
pub fn conclude(report: &BatchReport, targets: &ReportArgs, context: &Context) -> Outcome {
    let mut outcome = Outcome::Success;
    // The batch report is stdout's one JSON document: a report file that
    // cannot be written is told on stderr only, and the exit code says it.
    let report_context = context.for_json(false);
    for (path, contents) in [(&targets.json_file, report.to_json()), (&targets.junit_file, report.to_junit())] {
        if let Some(path) = path
            && let Err(error) = write_atomically(path, &contents)
        {
            outcome = outcome
                .worst(report_context.fail(format!("cannot write {}: {error}", path.display()), Outcome::Environment));
        }
    }
    if targets.json {
        println!("{}", report.to_json());
    } else if !context.quiet || report.summary.failed > 0 {
        print!("{}", report.to_table());
        for device in report.devices.iter().filter(|d| d.outcome == DeviceOutcome::Failed) {
            if let Some(finding) = &device.finding {
                println!("{}: {} ({})", device.name, context.out.error(finding.code.as_str()), finding.summary);
                for advice in &finding.advice {
                    println!("  - {advice}");
                }
            }
        }
    }
    for device in &report.devices {
        if device.outcome == DeviceOutcome::Failed {
            outcome = outcome.worst(device.failure_class.map_or(Outcome::DeviceFailure, Outcome::from));
        }
    }
    if report.interrupted {
        outcome = outcome.worst(Outcome::DeviceFailure);
    }
    outcome
}

/// Runs `devices` with Ctrl-C handling and concludes with the reports.
pub fn run_jobs(devices: Vec<DeviceJob>, options: &BatchOptions, reports: &ReportArgs, context: &Context) -> Outcome {
    match context.runtime() {
        Ok(runtime) => run_jobs_in(&runtime, devices, options, reports, context),
        Err(outcome) => outcome,
    }
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
        Err(error) => context.fail_with(&error),
    }
}
