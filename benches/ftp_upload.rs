//! Benchmark (not a test): upload 64 MiB to a real vsftpd on loopback with
//! `flashline ftp put` next to `curl -T` to the same server in the same run,
//! and print the throughput ratio (target: at least 0.95 of curl's) and
//! flashline's peak memory (target: under 32 MiB).
//!
//! Run as root: `cargo bench --bench ftp_upload`. Without vsftpd or curl it
//! prints why and exits 0: it never fails CI for being slow.

#[path = "../tests/util/mod.rs"]
mod util;

use std::process::Command;
use std::time::{Duration, Instant};

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
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_server, _up) = Vsftpd::anonymous_upload(port, &[]);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("image.bin");
    // Written in 1 MiB pieces: this process stays small, so a child forked
    // from it starts small and the children's peak RSS is flashline's own.
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&local).unwrap());
        let mut piece = vec![0u8; 1 << 20];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..SIZE / piece.len() {
            for chunk in piece.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            out.write_all(&piece).unwrap();
        }
    }
    let local = local.to_str().unwrap().to_string();
    let port_text = port.to_string();

    let mut ours = Vec::new();
    let mut ours_hashing = Vec::new();
    let mut theirs = Vec::new();
    // flashline first, alone, so the children's peak RSS below is its own.
    for run in 0..RUNS {
        for (extra, times) in [(None, &mut ours), (Some("--hash"), &mut ours_hashing)] {
            let remote = format!("up/flashline-{run}-{}.bin", times.len());
            let started = Instant::now();
            let status = util::flashline()
                .env("FTP_PW", "bench@example.invalid")
                .args([
                    "-q",
                    "ftp",
                    "put",
                    &local,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port_text,
                    "--user",
                    "anonymous",
                    "--password-env",
                    "FTP_PW",
                    "--remote",
                    &remote,
                    "--verify",
                    "size",
                ])
                .args(extra)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            times.push(started.elapsed());
            assert!(status.success(), "flashline upload failed");
        }
    }
    let peak_kib = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|usage| usage.max_rss())
        .unwrap_or(0);
    for run in 0..RUNS {
        let url = format!("ftp://127.0.0.1:{port}/up/curl-{run}.bin");
        let started = Instant::now();
        let status = Command::new("curl").args(["-s", "-S", "-T", &local, &url]).status().unwrap();
        theirs.push(started.elapsed());
        assert!(status.success(), "curl upload failed");
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (ours, ours_hashing, theirs) = (median(&mut ours), median(&mut ours_hashing), median(&mut theirs));
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
    println!("flashline peak memory (max RSS): {:.1} MiB (target < 32 MiB)", peak_kib as f64 / 1024.0);
}
