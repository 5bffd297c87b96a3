//! A line station at scale (not a test: it prints figures and never fails
//! for being slow).
//!
//! 1. Wall time per unit on 48 fixtures against one fixture, every unit's
//!    console behind the serial link emulator at 115200 baud; the station's
//!    process CPU time and peak RSS (the simulated units run in the same
//!    process, so both include them). After a warm-up shift, 1 and 48
//!    fixtures alternate `ROUNDS` times and the medians are compared; no
//!    ratio is printed when any unit failed.
//! 2. The latency of one step record (`Store::record_step`, the write a
//!    fixture does after each step) on SQLite and on PostgreSQL (a throwaway
//!    cluster, as the tests start, but durable: `fsync` on; skipped with a
//!    reason when it cannot run). Both sides' durability settings are read
//!    back from the servers and printed with the figures.
//!
//! Run: `cargo bench --bench station` (as root for the PostgreSQL part).

#[path = "../tests/util/mod.rs"]
mod util;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flashline::progress::{Progress, Silent};
use flashline::sim::line::{self, LineSpec, SimLine, Unplug};
use flashline::sim::link::LinkConfig;
use flashline::station::{self, StationEvent, StationObserver, StationOptions};
use flashline::store::{DbUrl, RunStart, StepRow, Store, new_id, now_ms};
use tokio::sync::watch;

const UNITS_PER_FIXTURE: usize = 3;
/// Alternations of the 1- and 48-fixture shifts after the warm-up.
const ROUNDS: usize = 3;

struct Counter {
    line: Arc<SimLine>,
    ended: Mutex<usize>,
    failed: Mutex<usize>,
    units: usize,
    stop: watch::Sender<bool>,
}

impl StationObserver for Counter {
    fn event(&self, event: &StationEvent) {
        let fixture = match event {
            StationEvent::RunEnded { fixture, outcome, .. } => {
                if outcome != "passed" {
                    *self.failed.lock().unwrap() += 1;
                }
                fixture
            }
            StationEvent::Refused { fixture, .. } => fixture,
            _ => return,
        };
        self.line.unit_done(fixture);
        let mut ended = self.ended.lock().unwrap();
        *ended += 1;
        if *ended >= self.units {
            let _ = self.stop.send(true);
        }
    }

    fn progress(&self, _fixture: &str) -> Arc<dyn Progress> {
        Arc::new(Silent)
    }
}

struct Shift {
    wall: Duration,
    per_unit: Duration,
    failed: usize,
    cpu: Duration,
}

fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn peak_rss_mib() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

async fn shift(fixtures: usize) -> Shift {
    let dir = tempfile::tempdir().unwrap();
    let units = fixtures * UNITS_PER_FIXTURE;
    let spec = LineSpec {
        fixtures,
        units,
        scenario: None,
        ip_pool: None,
        database: None,
        key_window: Duration::from_secs(5),
        max_gap: Duration::from_millis(50),
        stations: 1,
        unplug: Unplug::WhenTold,
        link: Some(LinkConfig::clean(115_200, Duration::from_millis(2))),
    };
    let line = Arc::new(line::start(dir.path(), &spec).await.unwrap());
    let loaded = station::file::load(&line.station_file).unwrap();
    let (stop, stopped) = watch::channel(false);
    let observer = Arc::new(Counter { line: line.clone(), ended: Mutex::new(0), failed: Mutex::new(0), units, stop });
    let cpu = cpu_time();
    let started = Instant::now();
    station::run_station(loaded, StationOptions::default(), observer.clone(), stopped).await.unwrap();
    let wall = started.elapsed();
    Shift {
        wall,
        per_unit: wall / UNITS_PER_FIXTURE as u32,
        failed: *observer.failed.lock().unwrap(),
        cpu: cpu_time() - cpu,
    }
}

async fn record_latencies(url: &DbUrl, count: usize) -> (Duration, Duration) {
    let store = Store::open(url).await.unwrap();
    let run = RunStart {
        id: new_id(),
        unit_mac: "00:40:9D:BE:0C:40".into(),
        serial_number: None,
        station: "bench".into(),
        fixture: "f1".into(),
        operator: None,
        profile_name: "bench".into(),
        profile_sha256: String::new(),
        images: "[]".into(),
        ip: None,
        started_ms: now_ms(),
    };
    store.begin_run(&run).await.unwrap();
    let mut times = Vec::with_capacity(count);
    for idx in 0..count {
        let row = StepRow {
            run_id: run.id.clone(),
            idx: idx as i64,
            kind: "ftp_upload".into(),
            outcome: "passed".into(),
            started_ms: 0,
            duration_ms: 2_700,
            retries: 0,
            detail: "as root: rom.bin (24620 bytes via EPSV, sha256 of a read-back matches)".into(),
            inputs_sha256: "ab".repeat(32),
        };
        let started = Instant::now();
        store.record_step(&row).await.unwrap();
        times.push(started.elapsed());
    }
    store.close().await;
    times.sort();
    (times[count / 2], times[count * 95 / 100])
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn print_shift(fixtures: usize, shift: &Shift) {
    println!(
        "  {fixtures:2} fixture(s): {:6.1} s wall, {:5.2} s per unit, {} failed, CPU {:5.1} s",
        shift.wall.as_secs_f64(),
        shift.per_unit.as_secs_f64(),
        shift.failed,
        shift.cpu.as_secs_f64()
    );
}

/// What makes a commit durable on each side, as the server reports it
/// (`url`: the same URL the store was opened with).
async fn durability(url: &str) -> String {
    use sqlx::Connection;
    let show =
        |rows: Vec<(String, String)>| rows.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        let mut rows = Vec::new();
        for pragma in ["journal_mode", "synchronous"] {
            let value: (String,) = sqlx::query_as(&format!("SELECT CAST(\"{pragma}\" AS TEXT) FROM pragma_{pragma}"))
                .fetch_one(&mut connection)
                .await
                .unwrap();
            rows.push((pragma.to_string(), value.0));
        }
        show(rows)
    } else {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        let mut rows = Vec::new();
        for setting in ["fsync", "synchronous_commit", "wal_sync_method"] {
            let value: (String,) = sqlx::query_as(&format!("SHOW {setting}")).fetch_one(&mut connection).await.unwrap();
            rows.push((setting.to_string(), value.0));
        }
        show(rows)
    }
}

fn main() {
    for var in ["FLASHLINE_SIM_ROOT_PASSWORD", "FLASHLINE_SIM_FTP_PASSWORD"] {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var(var, flashline::sim::bench::SIM_ROOT_PASSWORD) };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "station: {UNITS_PER_FIXTURE} units per fixture, consoles at 115200 baud through the link emulator; \
         a warm-up shift, then 1 and 48 fixtures alternating {ROUNDS} times"
    );
    let warm_up = runtime.block_on(shift(1));
    println!("  warm-up (not counted):");
    print_shift(1, &warm_up);
    let (mut ones, mut manys) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let one = runtime.block_on(shift(1));
        print_shift(1, &one);
        ones.push(one);
        let many = runtime.block_on(shift(48));
        print_shift(48, &many);
        manys.push(many);
    }
    let failed: usize = ones.iter().chain(&manys).map(|s| s.failed).sum();
    let one = median(ones.iter().map(|s| s.per_unit).collect());
    let many = median(manys.iter().map(|s| s.per_unit).collect());
    let cpu = median(manys.iter().map(|s| s.cpu).collect());
    println!(
        "  medians: 1 fixture {:.2} s per unit; 48 fixtures {:.2} s per unit, CPU {:.1} s for {} units; \
         peak RSS of the process {:.0} MiB",
        one.as_secs_f64(),
        many.as_secs_f64(),
        cpu.as_secs_f64(),
        48 * UNITS_PER_FIXTURE,
        peak_rss_mib()
    );
    if failed > 0 {
        println!("  per-unit ratio not computed: {failed} unit(s) failed, so the shifts did not do the same work");
    } else {
        println!(
            "  per-unit time, 48 fixtures / 1 fixture (medians): {:.3} (target: within 1.10)",
            many.as_secs_f64() / one.as_secs_f64()
        );
    }

    println!("step record latency (Store::record_step, 2000 records, both sides durable):");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = DbUrl::sqlite(&dir.path().join("bench.db"));
    let (p50, p95) = runtime.block_on(record_latencies(&sqlite, 2000));
    let settings = runtime.block_on(durability(&format!("sqlite://{}", dir.path().join("bench.db").display())));
    println!(
        "  SQLite:     p50 {:7.3} ms, p95 {:7.3} ms ({settings})",
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3
    );
    match util::postgres::unavailable_reason() {
        Some(reason) => println!("  PostgreSQL: skipped: {reason}"),
        None => {
            // Durable, unlike the tests' clusters: fsync on, as a plant's server.
            let server = util::postgres::Postgres::start_durable();
            let url = DbUrl::parse(&server.url(), std::path::Path::new("/")).unwrap();
            let (p50, p95) = runtime.block_on(record_latencies(&url, 2000));
            let settings = runtime.block_on(durability(&server.url()));
            println!(
                "  PostgreSQL: p50 {:7.3} ms, p95 {:7.3} ms ({settings})",
                p50.as_secs_f64() * 1e3,
                p95.as_secs_f64() * 1e3
            );
        }
    }
}
