//! Benchmark (not a test): the dashboard's answer times with 100,000 units in
//! the database, on SQLite and on PostgreSQL (a throwaway cluster, when
//! Debian's postgresql is installed). The database is filled in bulk (units
//! over 30 days at 8 fixtures of 2 stations, 5% failing, 4 steps a run),
//! the dashboard served in this process on 127.0.0.1, and each page asked
//! 200 times over fresh HTTP/1.1 connections after 10 warm-up requests.
//!
//! Prints p50 and p95 of `/`, `/units?mac=FULL`, `/units?mac=PART`,
//! `/api/v1/units/MAC` and `/metrics`, and each p95 as a ratio to the p95 of
//! the style sheet (the reference: the same server and connection work with
//! no query), measured in the same run. The target: p95 under 100 ms.
//!
//! Run: `cargo bench --bench dashboard` (release profile). Never fails CI.

// The test helpers the bench shares: the PostgreSQL cluster and the line's
// vocabulary.
#[path = "../tests/util/mod.rs"]
mod util;
use util::{line, postgres};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use flashline::dashboard::{self, Config};
use flashline::store::{DbUrl, Store};

const UNITS: u32 = 100_000;
const REQUESTS: usize = 200;
const WARM_UP: usize = 10;
const DAY: i64 = 86_400_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = DbUrl::sqlite(&dir.path().join("units.db"));
    sqlx::any::install_default_drivers();
    let path = dir.path().join("units.db");
    measure("SQLite", &runtime, &sqlite, &format!("sqlite://{}?mode=rwc", path.display()));
    match postgres::unavailable_reason() {
        Some(reason) => println!("PostgreSQL: skipped ({reason})"),
        None => {
            let postgres = postgres::Postgres::start();
            let url = DbUrl::parse(&postgres.url(), dir.path()).unwrap();
            measure("PostgreSQL", &runtime, &url, &postgres.url());
        }
    }
}

/// `raw`: the URL with its password, for the bulk writer's own pool.
fn measure(name: &str, runtime: &tokio::runtime::Runtime, url: &DbUrl, raw: &str) {
    let started = Instant::now();
    let store = runtime.block_on(async {
        let store = Store::open(url).await.expect("open the database");
        fill(&store, raw).await;
        store
    });
    println!("{name}: {UNITS} units filled in {:.1} s", started.elapsed().as_secs_f64());
    // What a scrape costs when the database changed since the last one:
    // every run and step counted (the dashboard then keeps the totals
    // until the next change, at most 5 s while the line runs).
    let mut cold: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            runtime.block_on(store.metrics()).expect("metrics");
            start.elapsed()
        })
        .collect();
    cold.sort();
    println!("{name}: /metrics totals read from the database (cold): median {:.1} ms of 5", ms(cold[2]));
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config { token: None, shift_hours: 8 };
    let server = runtime.spawn(dashboard::serve(listener, store.clone(), config, async {
        let _ = stopped.await;
    }));
    let mac = line::mac(UNITS / 2);
    let part = mac[9..14].to_string();
    let paths = [
        ("/static/style.css (reference)".to_string(), "/static/style.css".to_string()),
        ("/".to_string(), "/".to_string()),
        ("/units?mac=FULL".to_string(), format!("/units?mac={mac}")),
        (format!("/units?mac={part}"), format!("/units?mac={part}")),
        ("/api/v1/units/MAC".to_string(), format!("/api/v1/units/{mac}")),
        ("/metrics".to_string(), "/metrics".to_string()),
    ];
    let mut reference = None;
    for (label, path) in &paths {
        let times = sample(address, path);
        let (p50, p95) = (percentile(&times, 50), percentile(&times, 95));
        let reference_p95 = *reference.get_or_insert(p95);
        let verdict = if p95 < Duration::from_millis(100) { "under 100 ms" } else { "OVER 100 ms" };
        println!(
            "{name}: {label:<32} p50 {:>7.2} ms  p95 {:>7.2} ms  ratio {:>6.1}  {verdict}",
            ms(p50),
            ms(p95),
            ms(p95) / ms(reference_p95).max(0.001)
        );
    }
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    runtime.block_on(store.close());
}

fn sample(address: SocketAddr, path: &str) -> Vec<Duration> {
    for _ in 0..WARM_UP {
        request(address, path);
    }
    let mut times: Vec<Duration> = (0..REQUESTS)
        .map(|_| {
            let start = Instant::now();
            request(address, path);
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

/// One GET over a fresh connection; panics unless the answer is 200.
fn request(address: SocketAddr, path: &str) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&answer[..answer.len().min(300)])
    );
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Writes the units, runs and steps in bulk (multi-row inserts in one
/// transaction per chunk): the station's one-row-at-a-time calls would take
/// an hour for 100,000 units, and the pages read the same rows either way.
async fn fill(store: &Store, raw: &str) {
    let now = flashline::store::now_ms();
    let pool = sqlx::AnyPool::connect(raw).await.expect("a bulk writer's connection");
    let chunk = 500u32;
    for first in (0..UNITS).step_by(chunk as usize) {
        let mut units = Vec::new();
        let mut runs = Vec::new();
        let mut steps = Vec::new();
        for n in first..(first + chunk).min(UNITS) {
            let mac = line::mac(n);
            let station = if n % 2 == 0 { "st-a" } else { "st-b" };
            let fixture = format!("f{}", n % 4 + 1);
            // Spread over 30 days, the newest last.
            let started = now - 30 * DAY + i64::from(n) * (30 * DAY / i64::from(UNITS));
            let failed = n % 20 == 7;
            let step_count = if failed { 2 } else { 4 };
            let ended = started + 150_000;
            let (outcome, finding, error) = if failed {
                ("failed", "'ftp-refused-after-ping'", "'530 Login incorrect'")
            } else {
                ("passed", "NULL", "NULL")
            };
            units.push(format!("('{mac}', 'SN-{n:06}', {started})"));
            runs.push(format!(
                "('run-{n}', '{mac}', '{station}', '{fixture}', 'op', 'connectme', 'ab', '[]', NULL, {started}, {ended}, \
                 '{outcome}', {}, {finding}, {error})",
                if failed { "'device'" } else { "NULL" }
            ));
            for (idx, (kind, duration)) in line::STEPS.iter().take(step_count).enumerate() {
                steps.push(format!(
                    "('run-{n}', {idx}, '{kind}', 'passed', {started}, {}, 0, 'done', 'cd')",
                    duration + i64::from(n % 1000)
                ));
            }
        }
        let mut tx = pool.begin().await.unwrap();
        for (table, rows) in [
            ("units (mac, serial_number, first_seen_ms)", &units),
            (
                "runs (id, unit_mac, station, fixture, operator, profile_name, profile_sha256, images, ip, started_ms, \
              ended_ms, outcome, failure_class, finding, error)",
                &runs,
            ),
            ("steps (run_id, idx, kind, outcome, started_ms, duration_ms, retries, detail, inputs_sha256)", &steps),
        ] {
            sqlx::query(&format!("INSERT INTO {table} VALUES {}", rows.join(", "))).execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    // A real database has been analysed by autovacuum long before it holds
    // 100,000 units; a bulk load has not.
    if raw.starts_with("postgres") {
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    }
    pool.close().await;
    for name in ["st-a", "st-b"] {
        line::station(store, name, now, "running").await;
    }
}
