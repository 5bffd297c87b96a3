//! Many stations on one PostgreSQL (a throwaway cluster): station processes
//! (`flashline station`) in front of one simulated line (`flashline sim
//! line`), read back with psql. The pool is shared and never leases an
//! address to two units at once; a station killed mid-unit leaves an
//! interrupted run whose address the others get back; the database stopped
//! for 10 s mid-shift loses and duplicates no record.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::child::{Bounded, LineChild, QUICK};
use crate::util::postgres::{self, PASSWORD, Postgres};
use crate::util::{flashline, require};

const SHIFT: Duration = Duration::from_secs(240);

fn psql(server: &Postgres, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-U",
            "flashline",
            "-d",
            "postgres",
            "-At",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", PASSWORD)
        .output_within(QUICK);
    assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A loopback range of this test's own (the simulated FTP servers share a port).
fn pool(size: u8) -> String {
    let pick = (std::process::id() % 200) as u8 + 20;
    let salt = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 250) as u8;
    format!("127.{pick}.{salt}.10-127.{pick}.{salt}.{}", 9 + size)
}

fn start_line(
    dir: &std::path::Path,
    fixtures: u16,
    units: u16,
    stations: u16,
    db: &str,
    extra: &[&str],
) -> (LineChild, Vec<String>) {
    let mut command = flashline();
    command
        .args(["sim", "line", "--fixtures", &fixtures.to_string(), "--units", &units.to_string()])
        .args(["--stations", &stations.to_string(), "--db", db, "--ip-pool", &pool(20), "--dir"])
        .arg(dir)
        .args(extra);
    let mut line = LineChild::spawn(&mut command);
    let mut files = Vec::new();
    let deadline = std::time::Instant::now() + QUICK;
    while let Some(text) = line.next_line_within(deadline) {
        if let Some(file) = text.strip_prefix("station file ") {
            files.push(file.to_string());
        }
        if text.starts_with("line ready") {
            return (line, files);
        }
    }
    panic!("the simulated line did not start")
}

fn station(file: &str) -> LineChild {
    let mut command = flashline();
    command
        .arg("station")
        .arg(file)
        .env("FLASHLINE_SIM_ROOT_PASSWORD", "Netsilicon")
        .env("FLASHLINE_SIM_FTP_PASSWORD", "Netsilicon");
    LineChild::spawn(&mut command)
}

fn stop(stations: Vec<LineChild>) -> Vec<String> {
    for station in &stations {
        station.signal(Signal::SIGINT);
    }
    stations
        .into_iter()
        .map(|s| {
            let output = s.finish_within(QUICK);
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(!stderr.contains(PASSWORD), "a station printed the database password:\n{stderr}");
            stderr
        })
        .collect()
}

fn available() -> bool {
    let reason = postgres::unavailable_reason();
    require(reason.is_none(), &reason.unwrap_or_default())
}

#[test]
fn three_stations_share_one_pool_and_record_every_unit_once() {
    if !available() {
        return;
    }
    let server = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (line, files) = start_line(dir.path(), 12, 60, 3, &server.url(), &[]);
    assert_eq!(files.len(), 3);
    let stations: Vec<LineChild> = files.iter().map(|f| station(f)).collect();
    let output = line.finish_within(SHIFT);
    let logs = stop(stations);
    let line_log = String::from_utf8_lossy(&output.stderr);
    assert!(line_log.contains("every unit has been in and out"), "{line_log}\n{}", logs.join("\n"));
    assert_eq!(
        psql(&server, "SELECT COUNT(*), COUNT(DISTINCT unit_mac) FROM runs WHERE outcome = 'passed'"),
        "60|60",
        "{}",
        logs.join("\n")
    );
    assert_eq!(psql(&server, "SELECT COUNT(*) FROM runs"), "60");
    assert_eq!(psql(&server, "SELECT COUNT(*) FROM steps WHERE outcome = 'passed'"), "180");
    assert_eq!(psql(&server, "SELECT COUNT(DISTINCT station) FROM runs"), "3");
    // No address was given to two units whose runs overlapped.
    let overlaps = "SELECT COUNT(*) FROM runs a JOIN runs b ON a.ip = b.ip AND a.id < b.id \
                    AND a.started_ms < b.ended_ms AND b.started_ms < a.ended_ms";
    assert_eq!(psql(&server, overlaps), "0");
    assert_eq!(psql(&server, "SELECT COUNT(*) FROM leases"), "0");
    assert_eq!(psql(&server, "SELECT string_agg(state, ',') FROM stations"), "stopped,stopped,stopped");
}

#[test]
fn a_killed_station_leaves_an_interrupted_run_and_its_address_returns() {
    if !available() {
        return;
    }
    let server = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (line, files) = start_line(dir.path(), 4, 8, 2, &server.url(), &["--unit-timeout", "30s"]);
    let mut doomed = station(&files[0]);
    let survivor = station(&files[1]);
    doomed.line_matching(QUICK * 2, |l| l.contains(" running with address "));
    doomed.signal(Signal::SIGKILL);
    let _ = doomed.finish_within(QUICK);
    // line-1 has two fixtures: one run or both were under way when it died.
    let running = psql(&server, "SELECT COUNT(*) FROM runs WHERE station = 'line-1' AND outcome = 'running'");
    assert!(running == "1" || running == "2", "line-1's runs under way at its death: {running}");
    // The survivor's heartbeat pass releases them once line-1's heartbeat (5 s expiry) is old.
    let deadline = std::time::Instant::now() + QUICK;
    while psql(&server, "SELECT COUNT(*) FROM runs WHERE station = 'line-1' AND outcome = 'interrupted'") != running {
        assert!(std::time::Instant::now() < deadline, "line-1's runs were never released");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(psql(&server, "SELECT COUNT(*) FROM leases WHERE station = 'line-1'"), "0");
    assert_eq!(psql(&server, "SELECT state FROM stations WHERE name = 'line-1'"), "stale");
    drop(line);
    let logs = stop(vec![survivor]);
    // Nothing was flashed twice: no unit has two passed runs.
    assert_eq!(
        psql(
            &server,
            "SELECT COUNT(*) FROM (SELECT unit_mac FROM runs WHERE outcome = 'passed' GROUP BY unit_mac HAVING COUNT(*) > 1) t"
        ),
        "0",
        "{}",
        logs.join("\n")
    );
}

#[test]
fn the_database_stopped_mid_shift_loses_and_duplicates_nothing() {
    if !available() {
        return;
    }
    let mut server = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (line, files) = start_line(dir.path(), 3, 9, 1, &server.url(), &["--unit-timeout", "30s"]);
    let mut st = station(&files[0]);
    // Mid-unit: the database goes away while units run.
    st.line_matching(QUICK * 2, |l| l.contains(" running with address "));
    server.stop();
    st.line_matching(QUICK, |l| l.contains("DATABASE UNAVAILABLE"));
    std::thread::sleep(Duration::from_secs(10));
    server.start_server();
    let output = line.finish_within(SHIFT);
    let logs = stop(vec![st]);
    let log = &format!("{}\n--- line:\n{}", logs[0], String::from_utf8_lossy(&output.stderr));
    assert!(log.contains("every unit has been in and out"), "{log}");
    let refused = log.matches("(database-unavailable)").count();
    let passed: usize = psql(&server, "SELECT COUNT(*) FROM runs WHERE outcome = 'passed'").parse().unwrap();
    // A unit that arrives while the database is still slow to reconnect can
    // miss its key window and fail: it is recorded as failed, not lost.
    let failed: usize = psql(&server, "SELECT COUNT(*) FROM runs WHERE outcome = 'failed'").parse().unwrap();
    assert_eq!(passed + failed + refused, 9, "every unit is a record or a refusal:\n{log}");
    // The station carries on after the outage: at most the one unit that
    // arrived in the reconnect fails, and only for its key window.
    assert!(failed <= 1, "{failed} units failed:\n{log}");
    // The station presses the key first and then waits for the database: a
    // unit whose look-up outlasted its menu's wait fails on the menu prompt
    // instead of the key prompt. (An error is several lines, quoting the
    // console: it is judged whole, not line by line.)
    let other = "SELECT COUNT(*) FROM runs WHERE outcome = 'failed' \
                 AND error NOT LIKE '%Press any key%' AND error NOT LIKE '%Press A to Accept%'";
    assert_eq!(psql(&server, other), "0", "a failure other than the key window:\n{log}");
    assert_eq!(log.matches(" FAILED").count(), failed, "{log}");
    // Every run that started ended, with all its steps: nothing was lost in the spool.
    assert_eq!(psql(&server, "SELECT COUNT(*) FROM runs WHERE outcome = 'running'"), "0", "{log}");
    let steps = psql(&server, "SELECT COUNT(*), COUNT(DISTINCT run_id || ':' || idx) FROM steps");
    let (all, distinct) = steps.split_once('|').unwrap();
    assert_eq!(all, distinct, "no step written twice: {log}");
    let passed_steps =
        psql(&server, "SELECT COUNT(*) FROM steps JOIN runs ON runs.id = run_id WHERE runs.outcome = 'passed'");
    assert_eq!(passed_steps, (passed * 3).to_string(), "{log}");
    let failed_runs_with_steps = psql(
        &server,
        "SELECT COUNT(DISTINCT run_id) FROM steps JOIN runs ON runs.id = run_id WHERE runs.outcome = 'failed'",
    );
    assert_eq!(failed_runs_with_steps, failed.to_string(), "a failed run keeps the step that failed: {log}");
    assert!(log.contains("database back"), "{log}");
}

#[test]
fn a_second_process_of_a_live_station_exits_3_on_postgresql() {
    if !available() {
        return;
    }
    let server = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    crate::station::a_second_process_of_a_live_station_leaves(dir.path(), &server.url(), &|sql| psql(&server, sql));
}

/// A TCP proxy on 127.0.0.1 in front of the server on `target`: every chunk
/// the server sends waits the returned delay (milliseconds, changed by the
/// test: a database far away or overloaded). Accepts until `life` has
/// passed; each connection's threads end when either side closes.
fn slow_proxy(target: u16, life: Duration) -> (u16, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let delay = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pipe = |mut from: std::net::TcpStream,
                mut to: std::net::TcpStream,
                delay: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>| {
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                if let Some(delay) = &delay {
                    std::thread::sleep(Duration::from_millis(delay.load(Ordering::Relaxed)));
                }
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    };
    let slow = delay.clone();
    std::thread::spawn(move || {
        let until = std::time::Instant::now() + life;
        while std::time::Instant::now() < until {
            match listener.accept() {
                Ok((client, _)) => {
                    client.set_nonblocking(false).unwrap();
                    let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else { continue };
                    pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), None);
                    pipe(server, client, Some(slow.clone()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (port, delay)
}

#[test]
fn a_slow_database_does_not_make_a_unit_miss_its_key_window() {
    if !available() {
        return;
    }
    let server = Postgres::start();
    let (proxy, delay) = slow_proxy(server.port, SHIFT);
    let url = server.url().replace(&format!(":{}/", server.port), &format!(":{proxy}/"));
    assert_ne!(url, server.url());
    let dir = tempfile::tempdir().unwrap();
    let (line, files) = start_line(dir.path(), 1, 2, 1, &url, &["--key-window", "2s", "--unit-timeout", "60s"]);
    let mut st = station(&files[0]);
    st.line_matching(QUICK, |l| l.contains("idle, waiting for a unit"));
    // Once the station has started: 400 ms for every answer. The station's
    // look-up, lease and run row take some ten answers, twice the unit's
    // 2 s key window.
    delay.store(400, std::sync::atomic::Ordering::Relaxed);
    let output = line.finish_within(SHIFT);
    let logs = stop(vec![st]);
    let log = format!("{}\n--- line:\n{}", logs[0], String::from_utf8_lossy(&output.stderr));
    assert!(log.contains("every unit has been in and out"), "{log}");
    assert_eq!(psql(&server, "SELECT outcome, COUNT(*) FROM runs GROUP BY outcome"), "passed|2", "{log}");
}
