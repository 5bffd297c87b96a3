//! The line station against a simulated line (`flashline demo --station`):
//! units plugged into fixtures one after another, each run once and recorded
//! in the unit database with its steps; a failing unit recorded with its
//! finding.

use std::process::Command;

use crate::util::child::{Bounded, FLASHLINE};
use crate::util::{flashline, text};

fn sqlite(path: &std::path::Path, sql: &str) -> String {
    // The database is read back with Python's own sqlite3 (an independent reader).
    let script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nfor r in c.execute(sys.argv[2]): print('|'.join(str(x) for x in r))";
    let output = Command::new("python3").args(["-c", script]).arg(path).arg(sql).output_within(FLASHLINE);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn a_simulated_line_records_every_unit_once_with_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let output = flashline()
        .args(["demo", "--station", "--fixtures", "3", "--units", "12", "--keep"])
        .arg(dir.path())
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let db = dir.path().join("flashline.db");
    assert_eq!(sqlite(&db, "SELECT COUNT(*), COUNT(DISTINCT unit_mac) FROM runs WHERE outcome = 'passed'"), "12|12");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM runs"), "12", "{stderr}");
    // Every run has its three steps, each passed.
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM steps WHERE outcome = 'passed'"), "36");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM units"), "12");
    assert_eq!(sqlite(&db, "SELECT COUNT(DISTINCT fixture) FROM runs"), "3");
    // Each run names the profile's hash and the images' hashes it sent.
    let images = sqlite(&db, "SELECT images FROM runs LIMIT 1");
    assert!(images.contains("rom.bin") && images.contains("sha256"), "{images}");
    // Per-run leases went back to the pool; the station says it stopped.
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM leases"), "0");
    assert_eq!(sqlite(&db, "SELECT state FROM stations"), "stopped");
    assert!(stderr.contains("station stopped: 12 passed, 0 failed, 0 refused"), "{stderr}");
    // The quality department's export lists every unit the line ran.
    let export = flashline()
        .args(["units", "export", "--csv", "--db", &format!("sqlite:{}", db.display())])
        .output_within(FLASHLINE);
    let (csv, stderr) = text(&export);
    assert_eq!(export.status.code(), Some(0), "{stderr}");
    let macs = sqlite(&db, "SELECT unit_mac FROM runs");
    assert_eq!(csv.lines().count(), 13, "a header and a row per run:\n{csv}");
    for mac in macs.lines() {
        assert!(csv.contains(mac), "{mac} is missing from the export:\n{csv}");
    }
}

#[test]
fn a_failing_unit_is_recorded_with_its_finding() {
    let dir = tempfile::tempdir().unwrap();
    let output = flashline()
        .args(["demo", "--station", "--fixtures", "2", "--units", "4", "--scenario", "no-ftp-server", "--keep"])
        .arg(dir.path())
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let db = dir.path().join("flashline.db");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM runs WHERE outcome = 'passed'"), "3");
    let failed = sqlite(&db, "SELECT failure_class, finding FROM runs WHERE outcome = 'failed'");
    // The console said the application has no FTP server: the finding names it.
    assert_eq!(failed, "device|app-without-ftp", "{stderr}");
}

#[test]
fn a_station_file_with_errors_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("station.yaml");
    std::fs::write(
        &file,
        "format: 1\nstation: s1\nprofile: missing.yaml\nfixtures:\n  - name: f1\n    port: /dev/null\n  - name: f1\n    port: /dev/null\nip_pool:\n  addresses: 10.0.0.0/8\n  mask: 255.0.0.0\nbogus: 1\n",
    )
    .unwrap();
    let output = flashline().arg("station").arg(&file).output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("station.yaml:12:1") && stderr.contains("bogus"), "{stderr}");
    assert!(!dir.path().join("flashline.db").exists(), "nothing may be written");
}

#[test]
fn a_replugged_unit_is_refused_as_done_before() {
    use crate::util::child::{LineChild, QUICK};
    let dir = tempfile::tempdir().unwrap();
    let output = flashline()
        .args(["demo", "--station", "--fixtures", "1", "--units", "1", "--keep"])
        .arg(dir.path())
        .output_within(FLASHLINE);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    let db = dir.path().join("flashline.db");
    let mac = sqlite(&db, "SELECT unit_mac FROM runs WHERE outcome = 'passed'");
    // The same unit plugged in again: a simulated console with its MAC.
    let nv = dir.path().join("nv.json");
    std::fs::write(
        &nv,
        format!(
            r#"{{"dhcp": true, "ip": "0.0.0.0", "mask": "0.0.0.0", "gateway": "0.0.0.0", "baud": 9600, "serial_number": "N00000042", "mac": "{mac}", "wait_seconds": 5}}"#
        ),
    )
    .unwrap();
    let link = dir.path().join("fixture");
    let mut unit = flashline();
    unit.args(["sim", "netos", "--firmware", "6", "--power-on-delay", "2s", "--nv"]).arg(&nv).arg("--link").arg(&link);
    let unit = LineChild::spawn(&mut unit);
    let deadline = std::time::Instant::now() + QUICK;
    while !link.exists() {
        assert!(std::time::Instant::now() < deadline, "the simulated unit made no PTY");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let station_file = dir.path().join("again.yaml");
    std::fs::write(
        &station_file,
        format!(
            "format: 1\nstation: rework\nprofile: sim-netos-line.yaml\nip_pool:\n  addresses: 127.0.0.0/30\n  mask: 255.0.0.0\nfixtures:\n  - name: f1\n    port: {}\n",
            link.display()
        ),
    )
    .unwrap();
    let mut station = LineChild::spawn(flashline().arg("station").arg(&station_file));
    let refused = station.line_matching(QUICK, |l| l.contains("refused"));
    assert!(refused.contains(&format!("refused {mac} (done-before)")), "{refused}");
    station.signal(nix::sys::signal::Signal::SIGINT);
    let _ = station.finish_within(QUICK);
    unit.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = unit.finish_within(QUICK);
    assert_eq!(sqlite(&db, "SELECT reason, unit_mac FROM refusals"), format!("done-before|{mac}"));
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM runs"), "1", "the unit was not run again");
}

#[test]
fn an_unreachable_database_is_exit_3_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let closed = crate::util::ports::closed_tcp_port();
    let port = closed.port;
    let file = dir.path().join("station.yaml");
    let profile = crate::util::repo_root().join("profiles/sim-netos-line.yaml");
    std::fs::write(
        &file,
        format!(
            "format: 1\nstation: s1\nprofile: {}\ndatabase: postgres://line:hunter2hunter@127.0.0.1:{port}/units\nfixtures:\n  - name: f1\n    port: /dev/null\n",
            profile.display()
        ),
    )
    .unwrap();
    let output = flashline().arg("station").arg(&file).output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("postgres://line:***@127.0.0.1:{port}/units")), "{stderr}");
    assert!(!stderr.contains("hunter2hunter") && !stdout.contains("hunter2hunter"), "{stderr}");
}

#[test]
fn a_unit_whose_banner_shows_no_mac_is_refused_with_its_lines() {
    use crate::util::child::{LineChild, QUICK};
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("fixture");
    let mut unit = flashline();
    unit.args(["sim", "netos", "--firmware", "6", "--power-on-delay", "2s", "--link"]).arg(&link);
    let unit = LineChild::spawn(&mut unit);
    let deadline = std::time::Instant::now() + QUICK;
    while !link.exists() {
        assert!(std::time::Instant::now() < deadline, "the simulated unit made no PTY");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A station that looks for the MAC where this console never prints one.
    let profile = crate::util::repo_root().join("profiles/sim-netos-line.yaml");
    let file = dir.path().join("station.yaml");
    std::fs::write(
        &file,
        format!(
            "format: 1\nstation: s1\nprofile: {}\narrival:\n  mac: 'Hardware address: ([0-9A-F:]{{17}})'\n  identity_timeout: 2s\nfixtures:\n  - name: f1\n    port: {}\n    set: {{ip: 127.0.0.5}}\n",
            profile.display(),
            link.display()
        ),
    )
    .unwrap();
    let mut station = LineChild::spawn(flashline().arg("station").arg(&file));
    let refused = station.line_matching(QUICK, |l| l.contains("refused"));
    assert!(refused.contains("(no-identity)") && refused.contains("its banner shows no MAC"), "{refused}");
    assert!(
        refused.contains("`Press any key in 5 seconds to change these settings.`"),
        "the banner is quoted: {refused}"
    );
    station.signal(nix::sys::signal::Signal::SIGINT);
    let _ = station.finish_within(QUICK);
    unit.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = unit.finish_within(QUICK);
}

/// A second process of a live station: it must leave at once (exit 3,
/// naming the station) and leave the first one's runs and leases alone.
/// `db` is the line's database URL; `query` reads it back independently.
pub fn a_second_process_of_a_live_station_leaves(dir: &std::path::Path, db: &str, query: &dyn Fn(&str) -> String) {
    use crate::util::child::{LineChild, QUICK};
    let pick = (std::process::id() % 200) as u8 + 20;
    let pool = format!("127.{pick}.{}.10-127.{pick}.{}.29", pick + 1, pick + 1);
    let mut command = flashline();
    command
        .args(["sim", "line", "--fixtures", "2", "--units", "2", "--stations", "1", "--db", db, "--ip-pool", &pool])
        .args(["--unit-timeout", "60s", "--dir"])
        .arg(dir);
    let mut line = LineChild::spawn(&mut command);
    let station_file =
        line.line_matching(QUICK, |l| l.starts_with("station file "))["station file ".len()..].to_string();
    line.line_matching(QUICK, |l| l.starts_with("line ready"));
    let start = |file: &str| {
        let mut command = flashline();
        command
            .arg("station")
            .arg(file)
            .env("FLASHLINE_SIM_ROOT_PASSWORD", "Netsilicon")
            .env("FLASHLINE_SIM_FTP_PASSWORD", "Netsilicon");
        LineChild::spawn(&mut command)
    };
    let mut first = start(&station_file);
    first.line_matching(QUICK * 2, |l| l.contains(" running with address "));
    let running = query("SELECT COUNT(*) FROM runs WHERE outcome = 'running'");
    assert_ne!(running, "0", "the first station runs a unit");
    let leases = query("SELECT COUNT(*) FROM leases");

    let began = std::time::Instant::now();
    let second = start(&station_file).finish_within(QUICK);
    let took = began.elapsed();
    let stderr = String::from_utf8_lossy(&second.stderr).into_owned();
    assert_eq!(second.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("station demo-line is already running (pid "), "{stderr}");
    assert!(took < std::time::Duration::from_secs(10), "it left at once, not after retrying: {took:?}");
    // Nothing of the first one's was touched: no run interrupted, no
    // address freed, the station's row still the first one's.
    assert_eq!(query("SELECT COUNT(*) FROM runs WHERE outcome = 'interrupted'"), "0", "{stderr}");
    // A run that ended meanwhile gave its address back, nothing else did.
    if query("SELECT COUNT(*) FROM runs WHERE outcome = 'running'") == running {
        assert_eq!(query("SELECT COUNT(*) FROM leases"), leases, "{stderr}");
    }
    assert_eq!(query("SELECT state FROM stations WHERE name = 'demo-line'"), "running");

    // The first station carries on: both units pass.
    let output = line.finish_within(std::time::Duration::from_secs(180));
    first.signal(nix::sys::signal::Signal::SIGINT);
    let first_log = String::from_utf8_lossy(&first.finish_within(QUICK).stderr).into_owned();
    assert!(String::from_utf8_lossy(&output.stderr).contains("every unit has been in and out"), "{first_log}");
    assert_eq!(query("SELECT outcome, COUNT(*) FROM runs GROUP BY outcome"), "passed|2", "{first_log}");
    assert_eq!(query("SELECT state FROM stations WHERE name = 'demo-line'"), "stopped");
}

#[test]
fn a_second_process_of_a_live_station_exits_3_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("units.db");
    let url = format!("sqlite:{}", db.display());
    a_second_process_of_a_live_station_leaves(dir.path(), &url, &|sql| sqlite(&db, sql));
}

#[test]
fn station_check_refuses_a_spinning_heartbeat_and_a_gateway_outside_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let profile = crate::util::repo_root().join("profiles/sim-netos-line.yaml");
    let file = dir.path().join("station.yaml");
    let write = |heartbeat: &str, pool: &str| {
        std::fs::write(
            &file,
            format!(
                "format: 1\nstation: s1\nprofile: {}\nip_pool:\n  addresses: {pool}\n  mask: 255.255.255.0\n  gateway: 192.168.7.1\nheartbeat:\n  interval: {heartbeat}\n  expiry: 15s\nfixtures:\n  - name: f1\n    port: /dev/null\n",
                profile.display()
            ),
        )
        .unwrap();
        let output = flashline().arg("station").arg("--check").arg(&file).output_within(FLASHLINE);
        let (stdout, stderr) = text(&output);
        (output.status.code(), format!("{stdout}{stderr}"))
    };
    let (code, out) = write("1ms", "192.168.8.10-192.168.8.20");
    assert_eq!(code, Some(2), "{out}");
    // Each problem with its line: the interval (line 9), the gateway (line 7).
    assert!(out.contains("station.yaml:9:") && out.contains("a heartbeat every 1 ms is too often"), "{out}");
    assert!(
        out.contains("station.yaml:7:")
            && out.contains("gateway 192.168.7.1 is outside the device's subnet 192.168.8.0/24"),
        "{out}"
    );
    let (code, out) = write("0s", "192.168.7.10-192.168.7.20");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("a heartbeat every 0 ms is too often"), "{out}");
    let (code, out) = write("2s", "192.168.7.250-192.168.8.4");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("192.168.8.4: gateway 192.168.7.1 is outside"), "{out}");
    let (code, out) = write("2s", "192.168.7.10-192.168.7.20");
    assert_eq!(code, Some(0), "{out}");
}
