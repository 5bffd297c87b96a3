//! README's promises for `station`: "Ctrl-C lets running units finish",
//! "`--json` prints one JSON event per line" and "every run is written to the
//! unit database before anything but the key press that stops the unit's
//! boot is sent". The first two run a real station over a simulated line
//! (`sim line`); the last puts the test itself at the far end of the fixture's
//! serial line, as the unit, so it sees each byte the station sends and
//! reads the database (with Python's sqlite3) at that moment.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::child::{Bounded, FLASHLINE, LineChild, QUICK};
use crate::util::flashline;
use crate::util::pty::PtyPair;

fn sqlite(path: &Path, sql: &str) -> String {
    let script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1], timeout=10)\nfor r in c.execute(sys.argv[2]): print('|'.join(str(x) for x in r))";
    let output = Command::new("python3").args(["-c", script]).arg(path).arg(sql).output_within(FLASHLINE);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Polls `sql` until it prints `wanted` (every 100 ms, at most `limit`).
fn wait_for_row(db: &Path, sql: &str, wanted: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if db.exists() && sqlite(db, sql) == wanted {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The JSON events a `--json` station printed, in order.
fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON event per line ({e}): {line}")))
        .collect()
}

fn names(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["event"].as_str().unwrap_or("?")).collect()
}

#[test]
fn ctrl_c_during_a_unit_lets_it_finish_and_json_gives_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("units.db");
    let url = format!("sqlite:{}", db.display());
    let pick = (std::process::id() % 200) as u8 + 20;
    let pool = format!("127.{}.{pick}.10-127.{}.{pick}.19", pick / 2 + 1, pick / 2 + 1);
    let mut command = flashline();
    command
        .args(["sim", "line", "--fixtures", "1", "--units", "1", "--stations", "1", "--db", &url, "--ip-pool", &pool])
        .args(["--unit-timeout", "60s", "--dir"])
        .arg(dir.path());
    let mut line = LineChild::spawn(&mut command);
    let station_file =
        line.line_matching(QUICK, |l| l.starts_with("station file "))["station file ".len()..].to_string();
    line.line_matching(QUICK, |l| l.starts_with("line ready"));
    let mut command = flashline();
    command
        .arg("station")
        .arg(&station_file)
        .arg("--json")
        .env("FLASHLINE_SIM_ROOT_PASSWORD", "Netsilicon")
        .env("FLASHLINE_SIM_FTP_PASSWORD", "Netsilicon");
    let station = LineChild::spawn(&mut command);
    // Ctrl-C once the unit's run is in the database and its first step runs.
    assert!(
        wait_for_row(&db, "SELECT COUNT(*) FROM runs WHERE outcome = 'running'", "1", QUICK * 2),
        "the station never started the unit's run"
    );
    let interrupted = Instant::now();
    station.signal(nix::sys::signal::Signal::SIGINT);
    let output = station.finish_within(Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let _ = line.finish_within(QUICK);

    // The unit was not cut off: its run passed, every step of it recorded.
    assert_eq!(sqlite(&db, "SELECT outcome FROM runs"), "passed", "{stderr}");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM steps WHERE outcome = 'passed'"), "3");
    assert_eq!(sqlite(&db, "SELECT state FROM stations"), "stopped");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM leases"), "0", "its address went back to the pool");

    let events = events(&output.stdout);
    let seen = names(&events);
    for wanted in ["started", "arrived", "run-started", "step-ended", "run-ended", "stopping", "stopped"] {
        assert!(seen.contains(&wanted), "no `{wanted}` event: {seen:?}");
    }
    let position = |name: &str| seen.iter().position(|n| *n == name).unwrap();
    assert!(position("arrived") < position("run-started") && position("run-started") < position("run-ended"));
    assert!(position("stopping") < position("run-ended"), "Ctrl-C came during the unit: {seen:?}");
    let arrived = &events[position("arrived")];
    let run_started = &events[position("run-started")];
    let run_ended = &events[position("run-ended")];
    let mac = sqlite(&db, "SELECT unit_mac FROM runs");
    assert_eq!(arrived["mac"], mac.as_str(), "{arrived}");
    assert_eq!(run_started["run_id"], run_ended["run_id"]);
    assert_eq!(run_started["run_id"], sqlite(&db, "SELECT id FROM runs").as_str());
    assert!(run_started["ip"].as_str().is_some_and(|ip| ip.starts_with("127.")), "{run_started}");
    assert_eq!(run_ended["outcome"], "passed", "{run_ended}");
    let steps: Vec<&Value> = events.iter().filter(|e| e["event"] == "step-ended").collect();
    let kinds: Vec<&str> = steps.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["configure_network", "wait_for_network", "ftp_upload"], "{steps:?}");
    assert!(steps.iter().all(|e| e["outcome"] == "passed"), "{steps:?}");
    assert!(interrupted.elapsed() < Duration::from_secs(120));
}

/// Reads from the unit's end of the line until `wanted` arrives (at most
/// `limit`); returns everything read.
fn read_until(unit: &mut serialport::TTYPort, wanted: u8, limit: Duration) -> Vec<u8> {
    use serialport::SerialPort;
    unit.set_timeout(Duration::from_millis(100)).unwrap();
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buffer = [0u8; 256];
    while Instant::now() < deadline && !got.contains(&wanted) {
        match unit.read(&mut buffer) {
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("the unit's end of the line: {e}"),
        }
    }
    got
}

fn image(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, name.repeat(100)).unwrap();
    path
}

/// A station named `name` with one fixture on `pty`, recording into `db`
/// with the line profile, started with `--json`.
fn bench_station(dir: &Path, name: &str, db: &Path, pty: &PtyPair, pool: &str) -> LineChild {
    let profile = crate::util::repo_root().join("profiles/sim-netos-line.yaml");
    let station_file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &station_file,
        format!(
            "format: 1\nstation: {name}\nprofile: {}\ndatabase: sqlite:{}\nip_pool:\n  addresses: {pool}\n  mask: 255.0.0.0\n  gateway: 127.0.0.1\nfixtures:\n  - name: f1\n    port: {}\n    set: {{rom_image: {}, app_image: {}}}\n",
            profile.display(),
            db.display(),
            pty.device_path().display(),
            image(dir, "rom.bin").display(),
            image(dir, "image.bin").display(),
        ),
    )
    .unwrap();
    let mut command = flashline();
    command
        .arg("station")
        .arg(&station_file)
        .arg("--json")
        .env("FLASHLINE_SIM_ROOT_PASSWORD", "x")
        .env("FLASHLINE_SIM_FTP_PASSWORD", "x");
    LineChild::spawn(&mut command)
}

/// What a NET+OS unit prints as it boots: its identity, then the key window.
fn banner(mac: &str) -> String {
    format!(
        "\r\nNET+OS Version 7.5.2\r\nMAC Address is {mac}\r\nSerial number is N20261207\r\nPress any key in 5 seconds to change these settings.\r\n"
    )
}

#[test]
fn a_run_is_in_the_database_before_the_station_answers_the_units_first_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("units.db");
    let mut pty = PtyPair::new();
    let station = bench_station(dir.path(), "bench", &db, &pty, "127.0.0.10-127.0.0.12");
    assert!(wait_for_row(&db, "SELECT state FROM fixtures", "idle", QUICK), "the fixture never became idle");
    // The unit boots: the banner with its identity, then the key window.
    let mac = "00:40:9D:5E:0C:21";
    pty.controller.write_all(banner(mac).as_bytes()).unwrap();
    let before_key = read_until(&mut pty.controller, b' ', QUICK);
    assert_eq!(before_key, b" ", "the key press alone comes first");
    // The menu at once, as the vendor's console prints it.
    pty.controller.write_all(b"\r\nPress A to Accept the settings, or M to Modify?").unwrap();
    let answer = read_until(&mut pty.controller, b'M', QUICK);
    if answer != b"M" {
        station.signal(nix::sys::signal::Signal::SIGINT);
        let output = station.finish_within(QUICK);
        panic!(
            "the dialog's first answer was {answer:?}, not `M`:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The station answered the unit: by now its run must be recorded.
    let run = sqlite(
        &db,
        "SELECT r.unit_mac, u.serial_number, r.outcome, r.ip FROM runs r JOIN units u ON u.mac = r.unit_mac",
    );
    assert_eq!(run, format!("{mac}|N20261207|running|127.0.0.10"));
    // The unit goes silent; Ctrl-C; the step gives up (5 s) and the run
    // ends failed, recorded.
    station.signal(nix::sys::signal::Signal::SIGINT);
    let output = station.finish_within(QUICK);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let events = events(&output.stdout);
    let seen = names(&events);
    assert!(seen.contains(&"run-ended"), "{seen:?}\n{stderr}");
    assert_eq!(sqlite(&db, "SELECT outcome FROM runs"), "failed", "{stderr}");
    let arrived = events.iter().find(|e| e["event"] == "arrived").unwrap();
    assert_eq!(arrived["serial_number"], "N20261207");
}

/// README: a unit is "refused when it ... runs elsewhere". Two stations on
/// one database; the same unit's banner at the second while the first runs
/// it: the second refuses it (`running-elsewhere`) and sends it nothing
/// but the key press that stops its boot (sent before the look-up, so that a
/// slow database cannot make a unit miss its window).
#[test]
fn a_unit_running_at_one_station_is_refused_at_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("units.db");
    let mut first_pty = PtyPair::new();
    let mut second_pty = PtyPair::new();
    let first = bench_station(dir.path(), "bench-a", &db, &first_pty, "127.0.0.20-127.0.0.22");
    assert!(wait_for_row(&db, "SELECT COUNT(*) FROM fixtures WHERE state = 'idle'", "1", QUICK), "bench-a idle");
    let mac = "00:40:9D:5E:0C:22";
    first_pty.controller.write_all(banner(mac).as_bytes()).unwrap();
    assert_eq!(read_until(&mut first_pty.controller, b' ', QUICK), b" ");
    assert!(
        wait_for_row(&db, "SELECT station, outcome FROM runs", "bench-a|running", QUICK),
        "bench-a never started the unit's run"
    );
    let second = bench_station(dir.path(), "bench-b", &db, &second_pty, "127.0.0.30-127.0.0.32");
    assert!(wait_for_row(&db, "SELECT COUNT(*) FROM fixtures WHERE state = 'idle'", "1", QUICK), "bench-b idle");
    // bench-a's unit waits in its dialog (nothing more is written to it).
    second_pty.controller.write_all(banner(mac).as_bytes()).unwrap();
    assert!(
        wait_for_row(
            &db,
            "SELECT station, reason, unit_mac FROM refusals",
            &format!("bench-b|running-elsewhere|{mac}"),
            QUICK
        ),
        "bench-b did not refuse the unit"
    );
    // Everything bench-b sent within 2 s (0xFE is never sent).
    let sent = read_until(&mut second_pty.controller, 0xFE, Duration::from_secs(2));
    assert!(sent.is_empty() || sent == b" ", "bench-b sent the refused unit {sent:?}");
    let stop = |station: LineChild| {
        station.signal(nix::sys::signal::Signal::SIGINT);
        events(&station.finish_within(QUICK).stdout)
    };
    let seen = stop(second);
    let refused = seen.iter().find(|e| e["event"] == "refused").expect("a refused event");
    assert_eq!(refused["reason"], "running-elsewhere", "{refused}");
    assert!(refused["detail"].as_str().is_some_and(|d| d.contains("bench-a")), "names where it runs: {refused}");
    assert!(!seen.iter().any(|e| e["event"] == "run-started"), "{seen:?}");
    stop(first);
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM runs"), "1", "the unit ran at bench-a only");
}
