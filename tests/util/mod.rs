//! Helpers shared by the integration tests: the flashline binary, PTY pairs,
//! network namespace pairs, and the rule for tests that need root or a
//! Debian package (fail loudly under CI=true, skip with a reason elsewhere).

#![allow(dead_code)] // each test module uses a different part

pub mod child;
pub mod line;
pub mod netns;
pub mod ports;
pub mod postgres;
pub mod pty;
pub mod relay;
pub mod ser2net;
pub mod uboot;
pub mod vsftpd;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use child::Bounded;

/// True when running under CI, where a missing requirement is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Call when a test cannot run here. Under CI it fails with `reason`; elsewhere
/// it prints the reason and the caller returns (skips).
pub fn require(ok: bool, reason: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("required for this test under CI: {reason} (.ci/run installs it)");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// Whether this process runs as root (needed for namespaces and raw sockets).
pub fn is_root() -> bool {
    // SAFETY-free: read our effective uid from procfs instead of calling libc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Whether `program` is on PATH.
pub fn have_program(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The built flashline binary.
pub fn flashline_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flashline"))
}

/// A `Command` for the flashline binary, with colour and inherited settings
/// that would change its output turned off.
pub fn flashline() -> Command {
    let mut command = Command::new(flashline_bin());
    command.env_remove("NO_COLOR").env_remove("FLASHLINE_LOG").env("TERM", "dumb");
    command
}

/// Runs flashline with `args` and returns its output.
pub fn run_flashline(args: &[&str]) -> Output {
    flashline().args(args).output_within(child::FLASHLINE)
}

/// Runs flashline from async code (a test whose simulators run on tokio):
/// exit code, stdout, stderr.
pub async fn run_flashline_async(args: Vec<String>) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = flashline().args(&args).output_within(child::FLASHLINE);
        let (stdout, stderr) = text(&output);
        (output.status.code(), stdout, stderr)
    })
    .await
    .unwrap()
}

/// The repository root (where `profiles/` lives).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// stdout and stderr as text, for assertions and failure messages.
pub fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A `flashline run --json` that ended: its exit code, the first device's
/// report (Null when stdout was not a report), stdout and stderr.
pub fn first_device(output: &Output) -> (Option<i32>, serde_json::Value, String, String) {
    let (stdout, stderr) = text(output);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (output.status.code(), report["devices"][0].clone(), stdout, stderr)
}

/// Writes `size` bytes of a fixed pseudo-random pattern to `path`, 1 MiB at
/// a time (the writer stays small, so a child forked from it starts small).
pub fn write_pattern_file(path: &Path, size: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut piece = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for first in (0..size).step_by(piece.len()) {
        for chunk in piece.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        out.write_all(&piece[..piece.len().min(size - first)]).unwrap();
    }
}
