//! `flashline run` and `flashline batch` end to end against simulated NET+OS
//! FTP flash servers on 127.0.0.x: reports, journal, resume without flashing
//! twice, and one failing device among passing ones.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use flashline::sim::netos_ftp::{Firmware, FtpBehaviour, FtpScenario, NetosFtp};
use serde_json::Value;

use crate::util::run_flashline_async as run;

const PORT: u16 = 2121;

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

/// A profile that waits for port 2121 and uploads image.bin, verified by
/// read-back and the restart.
fn write_profile(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("image.bin"), (0..100_000u32).map(|i| (i * 31) as u8).collect::<Vec<u8>>()).unwrap();
    let path = dir.join("net-only.yaml");
    std::fs::write(
        &path,
        "format: 1\nname: net-only\nnetwork:\n  dhcp: false\n  ip: ${ip}\nsteps:\n  - wait_for_network:\n      icmp: false\n      method: connect\n      ports: [{port: 2121}]\n      timeout: 3s\n  - ftp_upload:\n      port: 2121\n      credentials:\n        - {user: root, password: Netsilicon}\n      verify: readback\n      files: [{local: image.bin}]\n      wait_for_restart: true\n      restart_timeout: 10s\n",
    )
    .unwrap();
    path
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_one_broken_device_then_resume_without_reflashing() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path());
    let ips: Vec<Ipv4Addr> = (31..35).map(|last| Ipv4Addr::new(127, 0, 0, last)).collect();
    let mut devices = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        // The third device runs an image without the FTP server.
        let scenario = if i == 2 { FtpScenario::NoFtpServer } else { FtpScenario::Normal };
        devices.push(NetosFtp::start(SocketAddr::from((*ip, PORT)), behaviour(scenario), dir.path()));
    }
    let mut inventory = String::from("name,profile,ip\n");
    for (i, ip) in ips.iter().enumerate() {
        inventory.push_str(&format!("unit-{i},{},{ip}\n", profile.display()));
    }
    let inventory_path = dir.path().join("line.csv");
    std::fs::write(&inventory_path, inventory).unwrap();
    let journal = dir.path().join("journal.jsonl");
    let report_path = dir.path().join("report.json");
    let junit_path = dir.path().join("report.xml");
    let args = |extra: &[&str]| {
        let mut args = strings(&[
            "batch",
            inventory_path.to_str().unwrap(),
            "--jobs",
            "3",
            "--journal",
            journal.to_str().unwrap(),
        ]);
        args.extend(strings(&["--report", report_path.to_str().unwrap(), "--junit", junit_path.to_str().unwrap()]));
        args.extend(strings(extra));
        args
    };
    let (code, stdout, stderr) = run(args(&[])).await;
    assert_eq!(code, Some(1), "one device failed:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["summary"]["passed"], 3, "{report:#}");
    assert_eq!(report["summary"]["failed"], 1);
    let broken = &report["devices"][2];
    assert_eq!(broken["outcome"], "failed");
    assert_eq!(broken["failure_class"], "device");
    assert_eq!(broken["finding"]["code"], "no-listener", "{broken:#}");
    let good = &report["devices"][0];
    assert_eq!(good["images"][0]["file"], "image.bin");
    assert_eq!(good["images"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(good["steps"].as_array().unwrap().len(), 2);
    let junit = std::fs::read_to_string(&junit_path).unwrap();
    assert!(junit.contains("tests=\"4\" failures=\"1\""), "{junit}");
    assert!(stdout.contains("no-listener"), "{stdout}");
    for (i, device) in devices.iter().enumerate() {
        let flash = device.flash();
        if i == 2 {
            assert!(flash.images.is_empty());
        } else {
            assert_eq!(flash.images["image.bin"].writes, 1, "unit-{i}");
        }
    }

    // Without --resume the journal is not reused by accident.
    let (code, _, stderr) = run(args(&[])).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("add --resume"), "{stderr}");

    // The broken unit is mended (its FTP server now runs) before the resume.
    drop(devices.remove(2));
    devices.insert(2, NetosFtp::start(SocketAddr::from((ips[2], PORT)), behaviour(FtpScenario::Normal), dir.path()));

    // Resume: finished units are not flashed again; the broken one is retried,
    // and only it.
    let (code, stdout, stderr) = run(args(&["--resume"])).await;
    assert_eq!(code, Some(0), "the mended unit passes on its retry:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["summary"]["passed"], 4, "{report:#}");
    for i in [0, 1, 3] {
        let steps = report["devices"][i]["steps"].as_array().unwrap();
        assert!(steps.iter().all(|s| s["outcome"] == "skipped"), "unit-{i}: {steps:#?}");
    }
    let retried = &report["devices"][2];
    assert_eq!(retried["outcome"], "passed", "{retried:#}");
    let steps = retried["steps"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.iter().all(|s| s["outcome"] == "passed"), "unit-2 ran again: {steps:#?}");
    for (i, device) in devices.iter().enumerate() {
        let what = if i == 2 { "flashed on its retry" } else { "flashed once, not again" };
        assert_eq!(device.flash().images["image.bin"].writes, 1, "unit-{i} {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_one_device_with_set_values() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path());
    let ip = Ipv4Addr::new(127, 0, 0, 36);
    let device = NetosFtp::start(SocketAddr::from((ip, PORT)), behaviour(FtpScenario::Normal), dir.path());
    let (code, stdout, stderr) = run(strings(&[
        "run",
        profile.to_str().unwrap(),
        "--set",
        &format!("ip={ip}"),
        "--set",
        "name=bench-7",
        "--json",
    ]))
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["devices"][0]["name"], "bench-7");
    assert_eq!(report["devices"][0]["outcome"], "passed");
    assert_eq!(device.flash().images["image.bin"].writes, 1);

    // A missing variable is bad input, found before anything runs.
    let (code, stdout, _) = run(strings(&["run", profile.to_str().unwrap(), "--json"])).await;
    assert_eq!(code, Some(2), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["devices"][0]["failure_class"], "input");
    assert!(report["devices"][0]["steps"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_lines_without_digests_run_again_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path());
    let ip = Ipv4Addr::new(127, 0, 0, 37);
    let device = NetosFtp::start(SocketAddr::from((ip, PORT)), behaviour(FtpScenario::Normal), dir.path());
    let inventory = dir.path().join("line.csv");
    std::fs::write(&inventory, format!("name,profile,ip\nunit-0,{},{ip}\n", profile.display())).unwrap();
    let journal = dir.path().join("journal.jsonl");
    let report_path = dir.path().join("report.json");
    let batch = |resume: bool| {
        let mut args = strings(&["batch", inventory.to_str().unwrap(), "--journal", journal.to_str().unwrap()]);
        args.extend(strings(&["--report", report_path.to_str().unwrap()]));
        if resume {
            args.push("--resume".into());
        }
        run(args)
    };
    let steps = || -> Vec<Value> {
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
        report["devices"][0]["steps"].as_array().unwrap().clone()
    };
    let (code, stdout, stderr) = batch(false).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(device.flash().images["image.bin"].writes, 1);

    // The journal as the flashline before input digests wrote it.
    let old: String = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            let fields = record.as_object_mut().unwrap();
            for new in ["profile_sha256", "inputs_sha256", "images"] {
                assert!(fields.remove(new).is_some() || new == "images", "{new} in {line}");
            }
            format!("{record}\n")
        })
        .collect();
    std::fs::write(&journal, old).unwrap();

    // Inputs unknown: never skipped, each step says why it ran again.
    let (code, stdout, stderr) = batch(true).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for step in steps() {
        assert_eq!(step["outcome"], "passed", "{step:#}");
        assert!(step["detail"].as_str().unwrap().contains("inputs unknown, run again"), "{step:#}");
    }
    assert_eq!(device.flash().images["image.bin"].writes, 2);

    // Now the journal knows the inputs: the same inputs are not sent again.
    let (code, stdout, stderr) = batch(true).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(steps().iter().all(|s| s["outcome"] == "skipped"), "{:#?}", steps());
    assert_eq!(device.flash().images["image.bin"].writes, 2);

    // A changed step runs again, and so does every step after it, even one
    // whose own inputs are the same.
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(&profile, text.replace("timeout: 3s", "timeout: 4s")).unwrap();
    let (code, stdout, stderr) = batch(true).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let steps = steps();
    assert!(steps[0]["detail"].as_str().unwrap().starts_with("the step's settings changed"), "{steps:#?}");
    assert!(
        steps[1]["detail"].as_str().unwrap().starts_with("step 0 (wait_for_network) ran before it in this run"),
        "{steps:#?}"
    );
    assert!(steps.iter().all(|s| s["outcome"] == "passed"), "{steps:#?}");
    assert_eq!(device.flash().images["image.bin"].writes, 3);
}
