//! End to end on simulated benches: `flashline demo` with 8 devices, a broken
//! scenario among passing devices, and a batch killed with SIGKILL part-way
//! and resumed without flashing any unit twice or losing a record.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use flashline::sim::bench::{self, BenchSpec};
use serde_json::Value;

use crate::util::child::{Bounded, FLASHLINE, die_with_test};
use crate::util::{flashline, repo_root, text};

fn demo(args: &[&str]) -> (Option<i32>, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let junit = dir.path().join("report.xml");
    let output = flashline()
        .args(["demo", "--report", report.to_str().unwrap(), "--junit", junit.to_str().unwrap()])
        .args(args)
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no report ({e}):\n{stdout}\n{stderr}"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), value["devices"].as_array().unwrap().len());
    (output.status.code(), value, format!("{stdout}\n{stderr}"))
}

#[test]
fn demo_with_eight_devices_all_pass_with_a_full_report() {
    let (code, report, output) = demo(&["--devices", "8", "--jobs", "8"]);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(report["summary"]["passed"], 9, "8 NET+OS devices and the CSP controller: {report:#}");
    for device in report["devices"].as_array().unwrap().iter().take(8) {
        assert_eq!(device["outcome"], "passed");
        let kinds: Vec<&str> =
            device["steps"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["load_image", "configure_network", "wait_for_network", "ftp_upload"]);
        assert!(device["mac"].as_str().is_some_and(|m| m.starts_with("00:40:9D")), "{device:#}");
        assert_eq!(device["images"].as_array().unwrap().len(), 2);
    }
    // unit-01 refuses passive mode: its files go over PORT, the others' over EPSV.
    let upload = |i: usize| report["devices"][i]["steps"][3]["detail"].as_str().unwrap_or("").to_string();
    assert!(upload(bench::NO_PASV_DEVICE).contains("via PORT") && !upload(0).contains("via EPSV"), "{report:#}");
    assert!(
        upload(bench::NO_PASV_DEVICE).ends_with(
            "; given up: EPSV refused: 502 Command not implemented.; PASV refused: 502 Command not implemented."
        ),
        "{report:#}"
    );
    assert!(upload(1).contains("via EPSV") && !upload(1).contains("via PORT"), "{report:#}");
    assert!(!output.contains("Netsilicon"), "a password leaked into the output");
}

#[test]
fn a_broken_device_fails_with_its_finding_while_the_others_pass() {
    // The console steps' boot log names the cause of the refused port: the
    // application came up (its banner and network lines) with no FTP line.
    for (scenario, code) in [("no-ftp-server", "app-without-ftp"), ("wrong-password", "auth-failed")] {
        let (exit, report, output) = demo(&["--devices", "3", "--jobs", "3", "--scenario", scenario]);
        assert_eq!(exit, Some(1), "{scenario}: {output}");
        assert_eq!(report["summary"]["passed"], 3, "{scenario}: {report:#}");
        let broken = &report["devices"][2];
        assert_eq!(broken["outcome"], "failed");
        assert_eq!(broken["failure_class"], "device", "{scenario}: {broken:#}");
        assert_eq!(broken["finding"]["code"], code, "{scenario}: {broken:#}");
        // The simulated device ran: it took the serial load and answered its
        // console dialog; only then did its network side fail as scenario says.
        let steps: Vec<(&str, &str)> = broken["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["kind"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
            .collect();
        let failing = if scenario == "no-ftp-server" { "wait_for_network" } else { "ftp_upload" };
        assert_eq!(steps[..2], [("load_image", "passed"), ("configure_network", "passed")], "{scenario}: {steps:?}");
        assert_eq!(steps.last(), Some(&(failing, "failed")), "{scenario}: {steps:?}");
        let advice: Vec<&str> =
            broken["finding"]["advice"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let expected = if scenario == "no-ftp-server" { "built without the FTP server" } else { "factory password" };
        assert!(advice.iter().any(|a| a.contains(expected)), "{scenario}: {advice:#?}");
        if scenario == "no-ftp-server" {
            let summary = broken["finding"]["summary"].as_str().unwrap();
            assert!(summary.contains("`Network IP configured.`") && summary.contains("refused"), "{summary}");
        }
    }
}

fn journal_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter(|l| !l.trim().is_empty()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_part_way_resumes_without_flashing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("sim-netos.yaml");
    std::fs::copy(repo_root().join("profiles/sim-netos.yaml"), &profile).unwrap();
    let spec = BenchSpec {
        devices: 6,
        scenario: None,
        profile,
        with_csp: false,
        key_window: Duration::from_secs(1),
        link: None,
    };
    let bench = bench::start(dir.path(), &spec).await.unwrap();
    let journal = dir.path().join("journal.jsonl");
    let report = dir.path().join("report.json");
    let command = |resume: bool| {
        let mut command = flashline();
        command
            .env("FLASHLINE_SIM_ROOT_PASSWORD", bench::SIM_ROOT_PASSWORD)
            .env("FLASHLINE_SIM_FTP_PASSWORD", bench::SIM_ROOT_PASSWORD)
            .args(["batch", bench.inventory.to_str().unwrap(), "--jobs", "1", "--journal", journal.to_str().unwrap()])
            .args(["--report", report.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if resume {
            command.arg("--resume");
        }
        command
    };
    // Kill it once two devices are done and the third has been loaded and set
    // up over its console: it is then waiting for its network, a step that
    // can start again. (A console dialog cut in the middle leaves a real
    // device at its prompt until someone power-cycles it.)
    let mut child = die_with_test(&mut command(false)).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while journal_lines(&journal) < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let before = journal_lines(&journal);
    assert!(before >= 10, "the batch got far enough before the kill");
    let done_before: Vec<u32> =
        bench.devices.iter().map(|d| d.flash().images.get("image.bin").map_or(0, |i| i.writes)).collect();
    assert!(done_before.contains(&0), "some devices were not finished when killed: {done_before:?}");

    let mut resumed = command(true);
    let status = tokio::task::spawn_blocking(move || resumed.status_within(FLASHLINE)).await.unwrap();
    assert!(status.success(), "the resumed batch passes");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["summary"]["passed"], 6, "{report:#}");
    for device in &bench.devices {
        let flash = device.flash();
        for image in ["rom.bin", "image.bin"] {
            assert_eq!(flash.images[image].writes, 1, "{} {image} flashed exactly once", device.name);
        }
    }
    // No record lost: every line parses, the old ones are still there, and
    // each step of each device has a passed or skipped record.
    let text = std::fs::read_to_string(&journal).unwrap();
    let records: Vec<Value> =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records.len() > before);
    for device in &bench.devices {
        for step in 0..4 {
            assert!(
                records
                    .iter()
                    .any(|r| r["device"] == device.name.as_str() && r["step"] == step && r["outcome"] != "failed"),
                "{} step {step} has a record",
                device.name
            );
        }
    }
}
