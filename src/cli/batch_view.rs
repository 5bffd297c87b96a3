//! What `run`, `batch` and `demo` show while devices work: on a terminal an
//! indicatif MultiProgress with a line per device and an overall bar; plain
//! lines otherwise (logs, line systems); nothing with `--json` or `-q`. Also
//! the shared ending: reports written, summary printed, exit code decided.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{Context, Outcome};
use crate::pipeline::batch::BatchObserver;
use crate::pipeline::report::{BatchReport, DeviceOutcome, DeviceReport, StepRecord, write_atomically};
use crate::progress::{Progress, ProgressEvent};

pub struct BatchView {
    mode: Mode,
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
        Arc::new(BatchView { mode, bars: Mutex::new(BTreeMap::new()), overall, multi })
    }

    fn bar(&self, device: &str) -> Option<ProgressBar> {
        self.bars.lock().unwrap_or_else(|p| p.into_inner()).get(device).cloned()
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

/// Progress of one device's serial transfers and dialogs on its line.
struct DeviceProgress {
    bar: Option<ProgressBar>,
}

impl Progress for DeviceProgress {
    fn report(&self, event: ProgressEvent) {
        let Some(bar) = &self.bar else { return };
        match event {
            ProgressEvent::Started { label, total, .. } => {
                bar.set_length(total.unwrap_or(0));
                bar.set_position(0);
                bar.set_message(label);
            }
            ProgressEvent::Advanced { done, .. } => bar.set_position(done),
            ProgressEvent::Note { text, .. } => bar.set_message(text),
            _ => {}
        }
    }
}

impl BatchObserver for BatchView {
    fn progress(&self, device: &str) -> Arc<dyn Progress> {
        Arc::new(DeviceProgress { bar: self.bar(device) })
    }

    fn device_started(&self, device: &str) {
        match self.mode {
            Mode::Bars => {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:12} {spinner} {msg:50} {bytes:>9}/{total_bytes:9}")
                        .expect("a valid template"),
                );
                bar.set_prefix(device.to_string());
                bar.enable_steady_tick(Duration::from_millis(150));
                self.bars.lock().unwrap_or_else(|p| p.into_inner()).insert(device.to_string(), bar);
            }
            Mode::Lines => eprintln!("{device}: started"),
            Mode::Silent => {}
        }
    }

    fn step_ended(&self, device: &str, step: &StepRecord) {
        let text = format!(
            "{device}: {} {:?} ({:.1} s) {}",
            step.kind,
            step.outcome,
            step.duration_ms as f64 / 1000.0,
            step.detail
        );
        if let Some(bar) = self.bar(device) {
            bar.set_message(format!("{} {:?}", step.kind, step.outcome));
        }
        self.line(text);
    }

    fn device_ended(&self, report: &DeviceReport) {
        if let Some(bar) = self.bars.lock().unwrap_or_else(|p| p.into_inner()).remove(&report.name) {
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
    }
}

impl BatchView {
    pub fn finish(&self) {
        if let Some(overall) = &self.overall {
            overall.finish_and_clear();
        }
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
    for (path, contents) in [(&targets.json_file, report.to_json()), (&targets.junit_file, report.to_junit())] {
        if let Some(path) = path
            && let Err(error) = write_atomically(path, &contents)
        {
            eprintln!("{}: cannot write {}: {error}", context.err.error("error"), path.display());
            outcome = outcome.worst(Outcome::Environment);
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
