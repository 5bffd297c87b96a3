//! Progress reporting: the library says what is happening, the CLI decides how
//! to show it (a progress bar on a terminal, plain lines, JSON, or nothing).
//!
//! Library code takes a `&dyn Progress` and calls [`Progress::report`]; it never
//! prints. Each long-running activity is a task with a [`TaskKind`] and a
//! label: serial transfers, console waits and dialogs, network waits, FTP files
//! and EXS exchanges all report through this one channel, so `run` and `batch`
//! draw every step the same way. This module does not render anything.

use std::time::Duration;

/// What a long-running activity is, for a renderer to pick its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskKind {
    /// A file transfer over the serial line (XMODEM / YMODEM).
    SerialTransfer,
    /// Waiting for text on a console (boot loader, prompt).
    ConsoleWait,
    /// A console dialog.
    ConsoleDialog,
    /// Polling a device until it answers (ping, ports), or waiting for its
    /// restart.
    NetworkWait,
    /// One file uploaded over FTP (bytes sent).
    FtpFile,
    /// One EXS API request and its answer.
    ExsExchange,
    /// One file served (or received) by the TFTP server.
    TftpTransfer,
    /// An address-conflict check (ARP probes) before a static address is set.
    AddressCheck,
}

/// One progress event. Sizes are in bytes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A task started; `total` is known for transfers.
    Started { kind: TaskKind, label: String, total: Option<u64> },
    /// `done` of `total` units are complete (bytes acknowledged, for transfers).
    Advanced { kind: TaskKind, done: u64 },
    /// Something was retried; `detail` says what and why.
    Retried { kind: TaskKind, detail: String },
    /// A human-readable milestone ("sent answer to `IP address`").
    Note { kind: TaskKind, text: String },
    /// The task ended (successfully or not: the caller's result says which).
    Finished { kind: TaskKind, done: u64, elapsed: Duration },
}

/// Receives progress events. Implemented by the CLI; `Silent` drops them.
pub trait Progress: Send + Sync {
    fn report(&self, event: ProgressEvent);
}

/// Drops every event (tests, quiet runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn report(&self, _event: ProgressEvent) {}
}

impl<F: Fn(ProgressEvent) + Send + Sync> Progress for F {
    fn report(&self, event: ProgressEvent) {
        self(event)
    }
}
