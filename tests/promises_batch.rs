//! README's promise for `batch` and Ctrl-C: "Ctrl-C stops new devices from
//! starting, lets running ones stop before their next step, and still writes
//! the reports". A real SIGINT goes to a `flashline batch` over simulated
//! NET+OS FTP flash servers on 127.0.0.x while two devices are inside a step.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flashline::sim::netos_ftp::{Firmware, FtpBehaviour, FtpScenario, NetosFtp};
use serde_json::Value;

use crate::util::child::LineChild;
use crate::util::flashline;

const PORT: u16 = 2121;

/// A profile that waits (up to 60 s) for port 2121 and then uploads image.bin.
fn write_profile(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("image.bin"), (0..50_000u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>()).unwrap();
    let path = dir.join("net-only.yaml");
    std::fs::write(
        &path,
        "format: 1\nname: net-only\nnetwork:\n  dhcp: false\n  ip: ${ip}\nsteps:\n  - wait_for_network:\n      icmp: false\n      method: connect\n      ports: [{port: 2121}]\n      timeout: 60s\n  - ftp_upload:\n      port: 2121\n      credentials:\n        - {user: root, password: Netsilicon}\n      verify: size\n      files: [{local: image.bin}]\n",
    )
    .unwrap();
    path
}

fn behaviour(scenario: FtpScenario) -> FtpBehaviour {
    FtpBehaviour {
        firmware: Firmware::Netos6,
        scenario,
        reset_delay: Duration::from_millis(200),
        boot_time: Duration::from_millis(300),
        max_sessions: 2,
        no_pasv: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_a_batch_lets_running_steps_end_starts_nothing_new_and_writes_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path());
    let ips: Vec<Ipv4Addr> = (211..215).map(|last| Ipv4Addr::new(127, 0, 0, last)).collect();
    // The first two devices' FTP servers come up only when the test says so:
    // their wait_for_network is still running when Ctrl-C comes. The last two
    // are ready from the start, so only the interruption keeps them from running.
    let devices: Vec<NetosFtp> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let scenario = if i < 2 { FtpScenario::LateFtp(Duration::from_secs(600)) } else { FtpScenario::Normal };
            NetosFtp::start(SocketAddr::from((*ip, PORT)), behaviour(scenario), dir.path())
        })
        .collect();
    let mut inventory = String::from("name,profile,ip\n");
    for (i, ip) in ips.iter().enumerate() {
        inventory.push_str(&format!("unit-{i},{},{ip}\n", profile.display()));
    }
    let inventory_path = dir.path().join("line.csv");
    std::fs::write(&inventory_path, inventory).unwrap();
    let journal = dir.path().join("journal.jsonl");
    let report_path = dir.path().join("report.json");
    let junit_path = dir.path().join("report.xml");

    let mut command: Command = flashline();
    command
        .args(["batch", inventory_path.to_str().unwrap(), "--jobs", "2"])
        .args(["--journal", journal.to_str().unwrap()])
        .args(["--report", report_path.to_str().unwrap(), "--junit", junit_path.to_str().unwrap()]);
    let (batch, journal_at_interrupt) = tokio::task::spawn_blocking({
        let journal = journal.clone();
        move || {
            let mut batch = LineChild::spawn(&mut command);
            // stderr is not a terminal: the batch prints a plain line per
            // event, the network wait's timeline among them. Once both
            // devices have seen their port closed, both are inside
            // wait_for_network, polling.
            let mut polling = [false, false];
            let deadline = Instant::now() + Duration::from_secs(60);
            while polling != [true, true] {
                let line = batch.line_matching(deadline.saturating_duration_since(Instant::now()), |l| {
                    l.contains("port 2121 closed")
                });
                for (i, seen) in polling.iter_mut().enumerate() {
                    *seen |= line.starts_with(&format!("unit-{i}: "));
                }
            }
            batch.interrupt();
            batch.line_matching(Duration::from_secs(10), |l| l.starts_with("stopping: no new device starts"));
            (batch, std::fs::read_to_string(&journal).unwrap_or_default())
        }
    })
    .await
    .unwrap();
    // The running steps' ports open only after the Ctrl-C: a step that
    // passes now was let run to its end.
    for device in &devices[..2] {
        device.start_ftp_now();
    }
    let output = tokio::task::spawn_blocking(move || batch.finish_within(Duration::from_secs(90))).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(journal_at_interrupt.trim().is_empty(), "no step had ended at the Ctrl-C: {journal_at_interrupt}");

    // The devices stopped by Ctrl-C fail as environment: exit code 3.
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");

    // The reports are written.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true, "{report:#}");
    assert_eq!(report["summary"]["passed"], 0, "{report:#}");
    assert_eq!(report["summary"]["failed"], 2, "{report:#}");
    assert_eq!(report["summary"]["not_run"], 2, "{report:#}");
    for running in &report["devices"].as_array().unwrap()[..2] {
        // The step that was running when Ctrl-C came ended normally...
        let steps = running["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 1, "only the running step ran: {running:#}");
        assert_eq!(
            (steps[0]["kind"].as_str(), steps[0]["outcome"].as_str()),
            (Some("wait_for_network"), Some("passed"))
        );
        // ...and the next one never started.
        assert_eq!(running["outcome"], "failed", "{running:#}");
        assert_eq!(running["failure_class"], "environment", "{running:#}");
        assert_eq!(running["error"], "stopped by Ctrl-C before this step", "{running:#}");
    }
    for waiting in &report["devices"].as_array().unwrap()[2..] {
        assert_eq!(waiting["outcome"], "not-run", "{waiting:#}");
        assert_eq!(waiting["error"], "not started: the batch was interrupted", "{waiting:#}");
        assert!(waiting["steps"].as_array().unwrap().is_empty(), "{waiting:#}");
    }
    let junit = std::fs::read_to_string(&junit_path).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 4, "{junit}");
    assert_eq!(junit.matches("<skipped message=\"not run\"/>").count(), 2, "{junit}");

    // The journal holds the two steps that ended, nothing more.
    let records: Vec<Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut held: Vec<(String, u64, String)> = records
        .iter()
        .map(|r| {
            (r["device"].as_str().unwrap().into(), r["step"].as_u64().unwrap(), r["outcome"].as_str().unwrap().into())
        })
        .collect();
    held.sort();
    assert_eq!(held, [("unit-0".into(), 0, "passed".into()), ("unit-1".into(), 0, "passed".into())], "{records:#?}");

    // No device was flashed: the upload step never started anywhere.
    for (i, device) in devices.iter().enumerate() {
        assert!(device.flash().images.is_empty(), "unit-{i} was flashed after Ctrl-C");
    }
    assert!(!stderr.contains("unit-2: started") && !stderr.contains("unit-3: started"), "{stderr}");
}
