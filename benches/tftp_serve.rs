//! Benchmark (not a test): the same 32 MiB file fetched over loopback from
//! `flashline tftp serve` and from tftpd-hpa (`in.tftpd`) in the same run,
//! by the same clients (tftp-hpa's `tftp`: 512-byte blocks, one in flight,
//! so the server's per-block latency decides; curl with blksize 65464),
//! runs interleaved, copies thrown away (/dev/null). Prints the median time
//! of each and the throughput ratio flashline / tftpd-hpa (target: at least
//! 1.0).
//!
//! Run as root (in.tftpd drops to its user): `cargo bench --bench
//! tftp_serve`. Without in.tftpd, tftp or curl it prints why and exits 0: it
//! never fails CI for being slow.

#[path = "../tests/util/mod.rs"]
mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::child::{Bounded, LineChild, die_with_test};

const RUNS: usize = 5;
const SIZE: usize = 32 << 20;

fn main() {
    let tftpd =
        ["/usr/sbin/in.tftpd", "in.tftpd"].into_iter().find(|p| Path::new(p).is_file() || util::have_program(p));
    let Some(tftpd) = tftpd else {
        println!("tftp_serve benchmark skipped: in.tftpd (Debian package tftpd-hpa) is not installed");
        return;
    };
    for program in ["tftp", "curl"] {
        if !util::have_program(program) {
            println!("tftp_serve benchmark skipped: {program} is not installed");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    util::write_pattern_file(&dir.path().join("big.bin"), SIZE);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path().join("big.bin"), std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    // flashline, on a free port it reports.
    let mut command = util::flashline();
    die_with_test(&mut command).args(["-q", "tftp", "serve", "--root"]).arg(dir.path());
    let ours_port = free_udp_port();
    command.args(["--listen", &format!("127.0.0.1:{ours_port}")]);
    let _ours = LineChild::spawn(&mut command);
    // tftpd-hpa, in the foreground, on another.
    let theirs_port = free_udp_port();
    let mut command = Command::new(tftpd);
    die_with_test(&mut command)
        .args(["--listen", "--foreground", "--address", &format!("127.0.0.1:{theirs_port}"), "--secure"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut theirs = command.spawn().expect("start in.tftpd");
    for port in [ours_port, theirs_port] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !udp_port_bound(port) {
            assert!(Instant::now() < deadline, "no server bound 127.0.0.1:{port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    for (client, fetch) in
        [("tftp-hpa, 512-byte blocks", fetch_tftp_hpa as fn(u16)), ("curl, blksize 65464", fetch_curl)]
    {
        let (mut ours, mut reference) = (Vec::new(), Vec::new());
        fetch(ours_port);
        fetch(theirs_port);
        for _ in 0..RUNS {
            ours.push(timed(|| fetch(ours_port)));
            reference.push(timed(|| fetch(theirs_port)));
        }
        let (ours, reference) = (median(&mut ours), median(&mut reference));
        let rate = |d: Duration| SIZE as f64 / d.as_secs_f64() / 1e6;
        println!(
            "tftp_serve 32 MiB ({client}): flashline {:.3} s ({:.1} MB/s), tftpd-hpa {:.3} s ({:.1} MB/s), ratio {:.2} (target >= 1.0)",
            ours.as_secs_f64(),
            rate(ours),
            reference.as_secs_f64(),
            rate(reference),
            reference.as_secs_f64() / ours.as_secs_f64()
        );
    }
    let _ = theirs.kill();
    let _ = theirs.wait();
}

fn fetch_tftp_hpa(port: u16) {
    let output = Command::new("tftp")
        .args(["-m", "binary", "127.0.0.1", &port.to_string(), "-c", "get", "big.bin", "/dev/null"])
        .output_within(Duration::from_secs(300));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !said.contains("Error"), "tftp from port {port}: {said}");
}

fn fetch_curl(port: u16) {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--tftp-blksize", "65464", "-o", "/dev/null"])
        .arg(format!("tftp://127.0.0.1:{port}/big.bin"))
        .output_within(Duration::from_secs(300));
    assert!(output.status.success(), "curl from port {port}: {}", String::from_utf8_lossy(&output.stderr));
}

fn timed(run: impl FnOnce()) -> Duration {
    let started = Instant::now();
    run();
    started.elapsed()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn udp_port_bound(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|table| table.lines().any(|l| l.contains(&wanted)))
}
