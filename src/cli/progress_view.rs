//! How one command's progress is drawn (`serial send`, `serial dialog`, `ftp
//! put`, `probe --wait-until`): an indicatif bar (bytes, rate, ETA) for each
//! transfer on a terminal, plain lines on stderr otherwise, nothing under
//! `--quiet` or `--json`. The many-device view of `run`/`batch` is
//! `batch_view`; both render the library's one [`ProgressEvent`] channel.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::{Progress, ProgressEvent, TaskKind};
use crate::sync::lock;

/// The bar's look for a byte transfer.
pub(super) fn transfer_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Tasks counted in bytes get a bar; the others print notes.
pub(super) fn is_transfer(kind: TaskKind) -> bool {
    matches!(kind, TaskKind::SerialTransfer | TaskKind::FtpFile)
}

pub struct TaskView {
    terminal: bool,
    silent: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl TaskView {
    /// `silent` for `--quiet` and `--json`.
    pub fn new(silent: bool) -> TaskView {
        TaskView { terminal: std::io::stderr().is_terminal(), silent, bar: Mutex::new(None) }
    }

    /// Clears a bar left by a task that ended in an error.
    pub fn finish(&self) {
        if let Some(bar) = lock(&self.bar).take() {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: &str) {
        match lock(&self.bar).as_ref() {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Progress for TaskView {
    fn report(&self, event: ProgressEvent) {
        if self.silent {
            return;
        }
        match event {
            ProgressEvent::Started { kind, label, total } if is_transfer(kind) => {
                if self.terminal {
                    let bar = ProgressBar::new(total.unwrap_or(0));
                    bar.set_style(transfer_style());
                    bar.set_message(label);
                    bar.enable_steady_tick(Duration::from_millis(200));
                    *lock(&self.bar) = Some(bar);
                } else {
                    eprintln!("sending {label} ({} bytes)", total.unwrap_or(0));
                }
            }
            ProgressEvent::Started { label, .. } => self.line(&label),
            ProgressEvent::Advanced { done, .. } => {
                if let Some(bar) = lock(&self.bar).as_ref() {
                    bar.set_position(done);
                }
            }
            ProgressEvent::Retried { detail, .. } => self.line(&format!("retry: {detail}")),
            ProgressEvent::Note { text, .. } => self.line(&text),
            ProgressEvent::Finished { kind, done, elapsed } if is_transfer(kind) => {
                self.finish();
                if !self.terminal {
                    eprintln!("transfer ended after {done} bytes in {:.1}s", elapsed.as_secs_f64());
                }
            }
            ProgressEvent::Finished { .. } => {}
        }
    }
}
