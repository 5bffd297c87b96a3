//! Benchmark (not a test): the whole pipeline for 1 and for 32 simulated
//! NET+OS devices, each console behind the serial link emulator at 115200
//! baud (1 ms latency), with `flashline batch --jobs N`. One warm-up run,
//! then 1 and 32 alternately, three times each; prints every run (wall,
//! flashline's CPU time and peak RSS, each read from `wait4` for that run)
//! and the ratio of the median wall times (target: 32 devices take at most
//! 1.15 times as long as 1), but only when every device of every run passed.
//!
//! Run: `cargo bench --bench batch`. It never fails CI for being slow.

#[path = "../tests/util/child.rs"]
#[allow(dead_code)] // the bench uses only the measured run
mod child;

use std::time::Duration;

use child::{Measured, measure_within};
use flashline::sim::bench::{self, BenchSpec};
use flashline::sim::link::LinkConfig;

const SAMPLES: usize = 3;

fn run(runtime: &tokio::runtime::Runtime, devices: usize) -> Measured {
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
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_flashline"));
    command
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
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let measured = measure_within(&mut command, Duration::from_secs(900));
    drop(bench);
    measured
}

fn print(devices: usize, label: &str, run: &Measured) {
    println!(
        "{label}: {devices:>2} device(s) at 115200 baud over the link emulator: wall {:.2} s, flashline CPU {:.2} s, peak RSS {:.1} MiB{}",
        run.wall.as_secs_f64(),
        run.cpu.as_secs_f64(),
        run.max_rss_kib as f64 / 1024.0,
        if run.status.success() { String::new() } else { format!(" (DEVICES FAILED: {})", run.status) }
    );
}

fn median(runs: &[Measured]) -> Duration {
    let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    walls.sort();
    walls[walls.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // Warm-up: page cache, the simulators' first PTYs, the binary itself.
    print(1, "warm-up", &run(&runtime, 1));
    let mut ones = Vec::new();
    let mut manys = Vec::new();
    for sample in 1..=SAMPLES {
        ones.push(run(&runtime, 1));
        print(1, &format!("sample {sample}"), ones.last().unwrap());
        manys.push(run(&runtime, 32));
        print(32, &format!("sample {sample}"), manys.last().unwrap());
    }
    let failed = ones.iter().chain(&manys).filter(|r| !r.status.success()).count();
    if failed > 0 {
        println!("no ratio: {failed} of {} runs had failed devices", 2 * SAMPLES);
        return;
    }
    let (one, many) = (median(&ones), median(&manys));
    let peak = |runs: &[Measured]| runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "median of {SAMPLES}: 1 device {:.2} s, 32 devices {:.2} s; wall-time ratio 32 / 1: {:.3} (target <= 1.15); peak RSS 1: {:.1} MiB, 32: {:.1} MiB",
        one.as_secs_f64(),
        many.as_secs_f64(),
        many.as_secs_f64() / one.as_secs_f64(),
        peak(&ones),
        peak(&manys)
    );
}
