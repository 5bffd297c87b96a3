//! `flashline diagnose --console PORT` and `--boot-log FILE`: the console
//! side from the NET+OS simulator (`flashline sim netos --boot-scenario`) on
//! a PTY, the network side from the kernel in a namespace pair (RST on a
//! closed port 21, ICMP echo), flashline running in the station namespace.
//! Each finding code the console adds is produced here.
//!
//! Network rule: traffic only to the 198.18.0.0/15 addresses of the test's
//! own namespace pair, with flashline running inside the station namespace.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use flashline::sim::netos::NvMemory;
use serde_json::Value;

use crate::serial::start_simulator_with;
use crate::util::child::{Bounded, FLASHLINE, LineChild};
use crate::util::netns::NetnsPair;
use crate::util::{flashline_bin, text};

/// Runs `diagnose TARGET --json ARGS` in the station namespace.
fn diagnose_in_station(pair: &NetnsPair, target: Ipv4Addr, args: &[&str]) -> (Option<i32>, Value, String) {
    let target = target.to_string();
    let output = pair
        .in_station(flashline_bin())
        .args(["diagnose", &target, "--json", "--timeout", "500ms", "--method", "syn"])
        .args(args)
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\n{stderr}"));
    (output.status.code(), report, stderr)
}

fn static_nv(ip: Ipv4Addr) -> NvMemory {
    NvMemory {
        dhcp: false,
        ip,
        mask: Ipv4Addr::new(255, 255, 255, 0),
        gateway: Ipv4Addr::new(198, 18, 0, 1),
        ..NvMemory::default()
    }
}

/// How long after its start the simulated unit powers on.
const POWER_ON_DELAY: Duration = Duration::from_millis(1500);

/// A watch of a simulated unit that powers on a moment after flashline
/// opens its console (as a technician's power-cycle), with the network side
/// in the namespace pair.
struct Watched {
    report: Value,
    /// The earliest time into the watch the unit's first line can carry:
    /// the simulator started before `started`, flashline began watching
    /// before it printed "power-cycle the unit now", read at `ready`; so
    /// power-on came at least `POWER_ON_DELAY - (ready - started)` into the
    /// watch, however slowly flashline started on a loaded runner.
    earliest_line: f64,
}

fn watch_scenario(pair: &NetnsPair, nv: &NvMemory, scenario: &str, extra: &[&str]) -> Watched {
    let started = Instant::now();
    let delay = format!("{}ms", POWER_ON_DELAY.as_millis());
    let sim = start_simulator_with(
        Some(nv),
        &["--boot-scenario", scenario, "--key-window", "300ms", "--power-on-delay", &delay],
    );
    let link = sim.link.to_str().unwrap().to_string();
    let mut command = pair.in_station(flashline_bin());
    command
        .args(["diagnose", &pair.dut_ip.to_string(), "--json", "--timeout", "500ms", "--method", "syn"])
        .args(["--console", link.as_str(), "--console-timeout", "8s"])
        .args(extra);
    let mut child = LineChild::spawn(&mut command);
    child.line_matching(Duration::from_secs(30), |line| line.contains("power-cycle the unit now"));
    let ready = started.elapsed();
    let output = child.finish_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(output.status.code(), Some(1), "{scenario}: {report:#}\n{stderr}");
    assert_eq!(report["console"]["source"], link.as_str());
    // Times are printed to the millisecond.
    let earliest_line = POWER_ON_DELAY.as_secs_f64() - ready.as_secs_f64() - 0.001;
    Watched { report, earliest_line }
}

fn finding(report: &Value) -> (&str, &str) {
    (report["finding"]["code"].as_str().unwrap(), report["finding"]["summary"].as_str().unwrap())
}

fn quoted(report: &Value) -> Vec<String> {
    report["console"]["quoted"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap().to_string()).collect()
}

#[test]
fn each_console_finding_from_the_simulator() {
    let Some(pair) = NetnsPair::create() else { return };
    let cases = [
        ("app-without-ftp", "app-without-ftp", "APPLICATION: Serial Bridge Application [Mar 02 2024 10:11:12]"),
        ("ftp-not-started", "ftp-not-started", "FTP Server not started"),
        ("backup-image", "backup-image", "image.bin failed its CRC check: running backup.bin"),
        ("reset-after-download", "in-reset-window", "Resetting system in 10 seconds."),
    ];
    for (scenario, code, line) in cases {
        let Watched { report, earliest_line } = watch_scenario(&pair, &static_nv(pair.dut_ip), scenario, &[]);
        let (got, summary) = finding(&report);
        assert_eq!(got, code, "{scenario}: {report:#}");
        // The packet evidence and the console's lines side by side.
        assert!(summary.contains("RST"), "{scenario}: {summary}");
        assert!(summary.contains(line), "{scenario}: {summary}");
        assert!(quoted(&report).iter().any(|q| q == line), "{scenario}: {report:#}");
        assert_eq!(report["ports"][0]["reason"], "rst");
        // Each line is timed from the start of the watch, so none before the
        // unit powered on (a reader that stamped lines from when it parsed
        // them, or from 0, would fail here).
        let times: Vec<f64> =
            report["console"]["quoted"].as_array().unwrap().iter().map(|l| l["at"].as_f64().unwrap()).collect();
        assert!(
            times.iter().all(|&t| t >= earliest_line),
            "{scenario}: lines timed after power-on ({earliest_line} s): {times:?}"
        );
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{scenario}: in order: {times:?}");
    }
    let report = watch_scenario(&pair, &static_nv(pair.dut_ip), "app-without-ftp", &[]).report;
    assert!(finding(&report).1.contains("`Serial Bridge Application`"));
    assert_eq!(report["console"]["application"]["name"], "Serial Bridge Application");
}

#[test]
fn another_address_and_dhcp_on_the_console() {
    let Some(pair) = NetnsPair::create() else { return };
    let other = Ipv4Addr::new(198, 18, 0, 77);
    let report = watch_scenario(&pair, &static_nv(other), "normal", &[]).report;
    let (code, summary) = finding(&report);
    assert_eq!(code, "address-mismatch", "{report:#}");
    assert!(summary.contains(&format!("on {other}, not {}", pair.dut_ip)), "{summary}");
    assert!(quoted(&report).contains(&format!("IP address on LAN is {other}")));

    // The simulator's DHCP boot: another address from DHCP.
    let report = watch_scenario(&pair, &NvMemory::default(), "normal", &[]).report;
    assert_eq!(finding(&report).0, "address-mismatch", "{report:#}");
    assert!(quoted(&report).iter().any(|q| q.starts_with("The board will obtain IP configuration")));
}

#[test]
fn a_boot_not_finished_is_still_booting() {
    let Some(pair) = NetnsPair::create() else { return };
    // A long key window: the watch ends before the network starts.
    let sim = start_simulator_with(Some(&static_nv(pair.dut_ip)), &["--key-window", "30s", "--power-on-delay", "1s"]);
    let link = sim.link.to_str().unwrap();
    let (code, report, stderr) =
        diagnose_in_station(&pair, pair.dut_ip, &["--console", link, "--console-timeout", "3s"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("time is up"), "{stderr}");
    let (got, summary) = finding(&report);
    assert_eq!(got, "still-booting", "{report:#}");
    assert!(summary.contains("Press any key in 5 seconds"), "{summary}");
}

/// A saved log, each kind: the real 7.4 banner (DHCP) and a transcript.
#[test]
fn boot_log_files_a_real_banner_and_a_transcript() {
    let Some(pair) = NetnsPair::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real-7.4.log");
    std::fs::write(&real, include_str!("../docs/examples/netos-7.4-boot.log")).unwrap();
    let (code, report, _) = diagnose_in_station(&pair, pair.dut_ip, &["--boot-log", real.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_eq!(finding(&report).0, "address-mismatch", "DHCP gave 192.168.1.152: {report:#}");
    assert_eq!(report["console"]["version"], "7.4");

    let transcript = transcript_file(dir.path(), pair.dut_ip);
    let (code, report, _) = diagnose_in_station(&pair, pair.dut_ip, &["--boot-log", transcript.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_eq!(finding(&report).0, "ftp-not-started", "{report:#}");
    assert_eq!(report["console"]["quoted"].as_array().unwrap().last().unwrap()["at"], 9.5);

    // Without console evidence the finding is the network's.
    let (_, report, _) = diagnose_in_station(&pair, pair.dut_ip, &[]);
    assert_eq!(finding(&report).0, "no-listener");
    assert!(report.get("console").is_none());

    let missing = dir.path().join("missing.log");
    let output = pair
        .in_station(flashline_bin())
        .args(["diagnose", &pair.dut_ip.to_string(), "--boot-log"])
        .arg(&missing)
        .output_within(FLASHLINE);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot read boot log") && stderr.contains("missing.log"), "{stderr}");
}

fn transcript_file(dir: &Path, ip: Ipv4Addr) -> std::path::PathBuf {
    let path = dir.join("transcript.txt");
    let text = format!(
        "[   0.000] # waiting for `Press any key`\n[   1.200] < NET+OS Version 7.4\n\
         [   1.210] < APPLICATION: Ram-based FTP Server Application [Sep 19 2008 14:38:08]\n\
         [   1.220] < IP address on LAN is {ip}\n[   1.300] < Press any key in 5 seconds to change these settings.\n\
         [   6.400] < Network IP configured.\n[   9.500] < FTP Server not started\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}
