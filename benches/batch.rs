//! Benchmark (not a test): the whole pipeline for 1 and for 32 simulated
//! NET+OS devices, each console behind the serial link emulator at 115200
//! baud (1 ms latency), with `flashline batch --jobs N`; prints the wall-time
//! ratio (target: 32 devices take at most 1.15 times as long as 1), and
//! flashline's total CPU time and peak memory for each.
//!
//! Run: `cargo bench --bench batch`. It never fails CI for being slow.

use std::time::{Duration, Instant};

use flashline::sim::bench::{self, BenchSpec};
use flashline::sim::link::LinkConfig;
use nix::sys::resource::{UsageWho, getrusage};

struct Run {
    wall: Duration,
    cpu: Duration,
    peak_kib: i64,
    passed: bool,
}

fn children_cpu() -> (Duration, i64) {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let cpu = Duration::from_micros((usage.user_time().tv_sec() * 1_000_000 + usage.user_time().tv_usec()) as u64)
        + Duration::from_micros((usage.system_time().tv_sec() * 1_000_000 + usage.system_time().tv_usec()) as u64);
    (cpu, usage.max_rss())
}

fn run(runtime: &tokio::runtime::Runtime, devices: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("sim-netos.yaml");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/sim-netos.yaml"), &profile).unwrap();
    let spec = BenchSpec {
        devices,
        scenario: None,
        profile,
        with_csp: false,
        key_window: Duration::from_secs(1),
        link: Some(LinkConfig { precise: true, ..LinkConfig::clean(115_200, Duration::from_millis(1)) }),
    };
    let bench = runtime.block_on(bench::start(dir.path(), &spec)).expect("a simulated bench");
    let report = dir.path().join("report.json");
    let (cpu_before, _) = children_cpu();
    let started = Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_flashline"))
        .env("FLASHLINE_SIM_ROOT_PASSWORD", bench::SIM_ROOT_PASSWORD)
        .env("FLASHLINE_SIM_FTP_PASSWORD", bench::SIM_ROOT_PASSWORD)
        .args([
            "-q",
            "batch",
            bench.inventory.to_str().unwrap(),
            "--jobs",
            &devices.to_string(),
            "--report",
            report.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run flashline");
    let wall = started.elapsed();
    let (cpu_after, peak_kib) = children_cpu();
    drop(bench);
    Run { wall, cpu: cpu_after - cpu_before, peak_kib, passed: status.success() }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let one = run(&runtime, 1);
    let many = run(&runtime, 32);
    for (n, r) in [(1, &one), (32, &many)] {
        println!(
            "{n:>2} device(s) at 115200 baud over the link emulator: wall {:.2} s, flashline CPU {:.2} s, flashline peak RSS {:.1} MiB{}",
            r.wall.as_secs_f64(),
            r.cpu.as_secs_f64(),
            r.peak_kib as f64 / 1024.0,
            if r.passed { "" } else { " (SOME DEVICES FAILED)" }
        );
    }
    println!(
        "wall-time ratio 32 / 1 devices: {:.3} (target <= 1.15)",
        many.wall.as_secs_f64() / one.wall.as_secs_f64()
    );
}
