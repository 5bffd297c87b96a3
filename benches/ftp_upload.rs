//! Benchmark (not a test): upload 64 MiB to a real vsftpd on loopback with
//! `flashline ftp put` next to `curl -T` to the same server in the same run,
//! interleaved (flashline, flashline --hash, curl; each upload deleted after
//! its run, so every run writes into the same near-empty folder), and print
//! the throughput ratio (target: at least 0.95 of curl's) and each run's peak
//! memory read from `wait4` (target for flashline: under 32 MiB).
//!
//! Run as root: `cargo bench --bench ftp_upload`. Without vsftpd or curl it
//! prints why and exits 0: it never fails CI for being slow.

#[path = "../tests/util/mod.rs"]
mod util;

use std::process::{Command, Stdio};
use std::time::Duration;

use util::child::{Measured, measure_within};
use util::vsftpd::{self, Vsftpd};

const RUNS: usize = 7;
const SIZE: usize = 64 << 20;

fn main() {
    if let Some(reason) = vsftpd::unavailable_reason() {
        println!("ftp_upload benchmark skipped: {reason}");
        return;
    }
    if !util::have_program("curl") {
        println!("ftp_upload benchmark skipped: curl is not installed");
        return;
    }
    let (server, up) = Vsftpd::anonymous_upload(0, &[]);
    let port = server.address.port();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("image.bin");
    util::write_pattern_file(&local, SIZE);
    let local = local.to_str().unwrap().to_string();
    let port_text = port.to_string();

    let limit = Duration::from_secs(300);
    let flashline_put = |remote: &str, extra: Option<&str>| -> Measured {
        let mut command = util::flashline();
        command
            .env("FTP_PW", "bench@example.invalid")
            .args(["-q", "ftp", "put", &local, "--host", "127.0.0.1", "--port", &port_text])
            .args(["--user", "anonymous", "--password-env", "FTP_PW", "--remote", remote, "--verify", "size"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        measure_within(&mut command, limit)
    };
    let curl_put = |remote: &str| -> Measured {
        let url = format!("ftp://127.0.0.1:{port}/{remote}");
        let mut command = Command::new("curl");
        command.args(["-s", "-S", "-T", &local, &url]).stdin(Stdio::null()).stdout(Stdio::null());
        measure_within(&mut command, limit)
    };
    let mut ours = Vec::new();
    let mut ours_hashing = Vec::new();
    let mut theirs = Vec::new();
    for run in 1..=RUNS {
        let plain = flashline_put("up/flashline.bin", None);
        assert!(plain.status.success(), "run {run}: flashline upload failed: {}", plain.status);
        remove(&up.join("flashline.bin"));
        let hashing = flashline_put("up/flashline-hash.bin", Some("--hash"));
        assert!(hashing.status.success(), "run {run}: flashline --hash upload failed: {}", hashing.status);
        remove(&up.join("flashline-hash.bin"));
        let curl = curl_put("up/curl.bin");
        assert!(curl.status.success(), "run {run}: curl upload failed: {}", curl.status);
        remove(&up.join("curl.bin"));
        let mib = |kib: i64| kib as f64 / 1024.0;
        println!(
            "run {run}: flashline {:.1} ms (peak RSS {:.1} MiB), with --hash {:.1} ms ({:.1} MiB), curl -T {:.1} ms ({:.1} MiB)",
            plain.wall.as_secs_f64() * 1000.0,
            mib(plain.max_rss_kib),
            hashing.wall.as_secs_f64() * 1000.0,
            mib(hashing.max_rss_kib),
            curl.wall.as_secs_f64() * 1000.0,
            mib(curl.max_rss_kib)
        );
        ours.push(plain);
        ours_hashing.push(hashing);
        theirs.push(curl);
    }
    let median = |runs: &[Measured]| {
        let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
        walls.sort();
        walls[walls.len() / 2]
    };
    let peak_kib = ours.iter().chain(&ours_hashing).map(|r| r.max_rss_kib).max().unwrap_or(0);
    let (ours, ours_hashing, theirs) = (median(&ours), median(&ours_hashing), median(&theirs));
    let rate = |d: Duration| SIZE as f64 / d.as_secs_f64() / (1 << 20) as f64;
    println!(
        "64 MiB to vsftpd on loopback, median of {RUNS} (whole process, connect, login and SIZE check included): flashline {:.0} MiB/s ({:.1} ms), curl -T {:.0} MiB/s ({:.1} ms), throughput ratio {:.2} (target >= 0.95)",
        rate(ours),
        ours.as_secs_f64() * 1000.0,
        rate(theirs),
        theirs.as_secs_f64() * 1000.0,
        rate(ours) / rate(theirs)
    );
    println!(
        "with --hash (SHA-256 computed while sending): flashline {:.0} MiB/s, ratio {:.2}",
        rate(ours_hashing),
        rate(ours_hashing) / rate(theirs)
    );
    println!(
        "flashline peak memory (largest max RSS of its runs): {:.1} MiB (target < 32 MiB)",
        peak_kib as f64 / 1024.0
    );
}

/// Deletes an upload, so the next run writes into the same near-empty folder.
fn remove(path: &std::path::Path) {
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}
