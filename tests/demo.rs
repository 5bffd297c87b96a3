//! End to end on simulated benches: `flashline demo` with 8 devices, a broken
//! scenario among passing devices, and a batch killed with SIGKILL part-way
//! and resumed without flashing any unit twice or losing a record.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flashline::digest::hex;
use flashline::netos::boot_header as image;
use flashline::sim::bench::{self, BenchSpec, SimBench};
use serde_json::Value;
use sha2::{Digest, Sha256};

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
    // The simulated firmware's password (the demo's root and FTP password)
    // is in no output of any demo: the reports as written, and the terminal.
    // It is also NET+OS 6.x's published factory password, which the advice
    // for a refused login names on purpose: that sentence is allowed.
    let json = std::fs::read_to_string(&report).unwrap();
    let advice = format!("root/{} on NET+OS 6.x", bench::SIM_ROOT_PASSWORD);
    for (what, text) in [("report.json", &json), ("report.xml", &xml), ("stdout", &stdout), ("stderr", &stderr)] {
        let text = text.replace(&advice, "");
        assert!(!text.contains(bench::SIM_ROOT_PASSWORD), "the password leaked into {what}:\n{text}");
    }
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

/// Lines of finished steps (not those for one confirmed file of a step).
fn journal_lines(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| !l.trim().is_empty() && !l.contains("\"outcome\":\"confirmed\"")).count()
}

/// A simulated bench of `devices` NET+OS units, and its batch.
struct BenchBatch {
    bench: SimBench,
    journal: PathBuf,
    report: PathBuf,
}

impl BenchBatch {
    async fn start(dir: &Path, devices: usize) -> BenchBatch {
        let profile = dir.join("sim-netos.yaml");
        std::fs::copy(repo_root().join("profiles/sim-netos.yaml"), &profile).unwrap();
        let spec = BenchSpec {
            devices,
            scenario: None,
            profile,
            with_csp: false,
            key_window: Duration::from_secs(1),
            link: None,
        };
        let bench = bench::start(dir, &spec).await.unwrap();
        BenchBatch { bench, journal: dir.join("journal.jsonl"), report: dir.join("report.json") }
    }

    /// `flashline batch` over the bench, one device at a time.
    fn command(&self, resume: bool) -> Command {
        let mut command = flashline();
        command
            .env("FLASHLINE_SIM_ROOT_PASSWORD", bench::SIM_ROOT_PASSWORD)
            .env("FLASHLINE_SIM_FTP_PASSWORD", bench::SIM_ROOT_PASSWORD)
            .args(["batch", self.bench.inventory.to_str().unwrap(), "--jobs", "1"])
            .args(["--journal", self.journal.to_str().unwrap(), "--report", self.report.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if resume {
            command.arg("--resume");
        }
        command
    }

    /// Runs the batch and SIGKILLs it once the journal holds `lines` lines;
    /// returns how many it held then.
    async fn run_killed_at(&self, lines: usize) -> usize {
        let mut child = die_with_test(&mut self.command(false)).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        while journal_lines(&self.journal) < lines && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let before = journal_lines(&self.journal);
        assert!(before >= lines, "the batch got far enough before the kill");
        before
    }

    /// Resumes the batch to its end; the report it wrote.
    async fn resume(&self) -> Value {
        let mut resumed = self.command(true);
        let status = tokio::task::spawn_blocking(move || resumed.status_within(FLASHLINE)).await.unwrap();
        assert!(status.success(), "the resumed batch passes");
        serde_json::from_str(&std::fs::read_to_string(&self.report).unwrap()).unwrap()
    }

    fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.journal).unwrap();
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_part_way_resumes_without_flashing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let batch = BenchBatch::start(dir.path(), 6).await;
    let bench = &batch.bench;
    // Kill it once two devices are done and the third has been loaded and set
    // up over its console: it is then waiting for its network, a step that
    // can start again. (A console dialog cut in the middle leaves a real
    // device at its prompt until someone power-cycles it.)
    let before = batch.run_killed_at(10).await;
    let done_before: Vec<u32> =
        bench.devices.iter().map(|d| d.flash().images.get("image.bin").map_or(0, |i| i.writes)).collect();
    assert!(done_before.contains(&0), "some devices were not finished when killed: {done_before:?}");

    let report = batch.resume().await;
    assert_eq!(report["summary"]["passed"], 6, "{report:#}");
    for device in &bench.devices {
        let flash = device.flash();
        for image in ["rom.bin", "image.bin"] {
            assert_eq!(flash.images[image].writes, 1, "{} {image} flashed exactly once", device.name);
        }
    }
    // No record lost: every line parses, the old ones are still there, and
    // each step of each device has a passed or skipped record.
    let records = batch.records();
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

/// The flash file a report's image went to: the bench's images are named
/// as the device stores them.
fn flash_name(file: &Value) -> String {
    Path::new(file.as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_image_is_sent_again_on_resume_and_reports_show_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let batch = BenchBatch::start(dir.path(), 2).await;
    let bench = &batch.bench;
    let image_path = dir.path().join("image.bin");
    let old_sha = hex(&Sha256::digest(std::fs::read(&image_path).unwrap()));
    // unit-01 is done, FTP step included (4 lines); unit-02 has been loaded
    // and set up (2 lines) and waits for its network when the kill comes.
    batch.run_killed_at(6).await;
    let unit = &bench.devices[0];
    let flashed = unit.flash().images["image.bin"].clone();
    assert_eq!((flashed.writes, flashed.sha256.as_str()), (1, old_sha.as_str()), "unit-01 holds the old image");
    let records = batch.records();
    let old_upload = records
        .iter()
        .find(|r| r["device"] == "unit-01" && r["step"] == 3 && r["outcome"] == "passed")
        .expect("the journal holds unit-01's FTP step as done")
        .clone();
    assert_eq!(old_upload["profile_sha256"].as_str().unwrap().len(), 64);
    assert!(old_upload["images"].as_array().unwrap().iter().any(|i| i["sha256"] == old_sha.as_str()));

    // A new release of image.bin replaces the old one before the resume.
    let payload: Vec<u8> = (0..150 * 1024u32).map(|i| (i.wrapping_mul(40_503) >> 7) as u8).collect();
    let new_image = image::build(&payload, 0x0107_0002);
    std::fs::write(&image_path, &new_image).unwrap();
    let new_sha = hex(&Sha256::digest(&new_image));

    let report = batch.resume().await;
    assert_eq!(report["summary"]["passed"], 2, "{report:#}");
    let steps = report["devices"][0]["steps"].as_array().unwrap();
    let outcomes: Vec<&str> = steps.iter().map(|s| s["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["skipped", "skipped", "skipped", "passed"], "{steps:#?}");
    let detail = steps[3]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("{} changed since the journal's run", image_path.display()))
            && detail.contains("sent again"),
        "{detail}"
    );
    // The unit got the new image: the step ran and the flash holds its bytes.
    let flashed = unit.flash().images["image.bin"].clone();
    assert_eq!((flashed.writes, flashed.sha256.as_str()), (2, new_sha.as_str()));
    assert_eq!(unit.flash().images["rom.bin"].writes, 2, "rom.bin goes with image.bin in the same FTP step");

    // No report shows a hash that was not written: every image a device or a
    // step lists is what that device's flash holds now.
    for (device, sim) in report["devices"].as_array().unwrap().iter().zip(&bench.devices) {
        let flash = sim.flash();
        let step_images = device["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["images"].as_array().cloned().unwrap_or_default());
        let listed: Vec<Value> = device["images"].as_array().unwrap().iter().cloned().chain(step_images).collect();
        assert!(listed.len() >= 2 + 3, "{}: the images and the steps that sent them: {device:#}", sim.name);
        for image in listed {
            let held = &flash.images[&flash_name(&image["file"])];
            assert_eq!(image["sha256"], held.sha256.as_str(), "{}: {image}", sim.name);
        }
        assert!(device["steps"].as_array().unwrap().iter().all(|s| s["inputs_sha256"].as_str().unwrap().len() == 64));
    }
    // The journal's new record of the step carries the new image and other inputs.
    let records = batch.records();
    let new_upload = records.iter().rev().find(|r| r["device"] == "unit-01" && r["step"] == 3).unwrap();
    assert_eq!(new_upload["outcome"], "passed");
    assert_ne!(new_upload["inputs_sha256"], old_upload["inputs_sha256"]);
    assert!(new_upload["images"].as_array().unwrap().iter().any(|i| i["sha256"] == new_sha.as_str()));
    assert_eq!(new_upload["profile_sha256"], old_upload["profile_sha256"], "the profile did not change");
    assert_eq!(report["devices"][0]["profile_sha256"], old_upload["profile_sha256"]);
    let written = std::fs::read_to_string(&batch.journal).unwrap() + &std::fs::read_to_string(&batch.report).unwrap();
    assert!(!written.contains(bench::SIM_ROOT_PASSWORD), "a password leaked into the journal or the report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_db_records_every_device_in_the_unit_database() {
    let dir = tempfile::tempdir().unwrap();
    let batch = BenchBatch::start(dir.path(), 2).await;
    let db = dir.path().join("units.db");
    let url = format!("sqlite:{}", db.display());
    // Units are kept by MAC: an inventory without one is refused up front.
    let mut command = batch.command(false);
    command.args(["--db", &url]).stderr(Stdio::piped());
    let output = tokio::task::spawn_blocking(move || command.output_within(FLASHLINE)).await.unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unit-01, unit-02"));
    // With the MACs the simulated units print, each run is recorded with its steps.
    let inventory = std::fs::read_to_string(&batch.bench.inventory).unwrap();
    let mut rows = inventory.lines();
    let mut with_mac = format!("{},mac\n", rows.next().unwrap());
    for (index, row) in rows.enumerate() {
        with_mac.push_str(&format!("{row},00-40-9d-00-00-{index:02x}\n"));
    }
    std::fs::write(&batch.bench.inventory, with_mac).unwrap();
    let _ = std::fs::remove_file(&batch.journal);
    let mut command = batch.command(false);
    command.args(["--db", &url, "--operator", "ana"]).stderr(Stdio::piped());
    let output = tokio::task::spawn_blocking(move || command.output_within(FLASHLINE)).await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let query = |sql: &str| {
        let script = "import sqlite3,sys\nfor r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print('|'.join(map(str, r)))";
        let output = Command::new("python3").args(["-c", script]).arg(&db).arg(sql).output_within(FLASHLINE);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(
        query("SELECT unit_mac, outcome, station, operator FROM runs ORDER BY unit_mac"),
        "00:40:9D:00:00:00|passed|batch|ana\n00:40:9D:00:00:01|passed|batch|ana"
    );
    assert_eq!(query("SELECT COUNT(*) FROM steps WHERE outcome = 'passed' AND length(inputs_sha256) = 64"), "8");
    let images = query("SELECT images FROM runs LIMIT 1");
    assert!(images.contains("image.bin") && images.contains("sha256"), "{images}");
}

#[test]
fn demo_keep_with_a_relative_folder_runs_and_keeps_its_files() {
    // Before: the inventory's profile paths became `kept/kept/...` and every
    // device failed on a missing profile.
    let dir = tempfile::tempdir().unwrap();
    let output =
        flashline().current_dir(dir.path()).args(["demo", "--devices", "1", "--keep", "kept"]).output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let kept = dir.path().join("kept");
    assert!(journal_lines(&kept.join("journal.jsonl")) > 0, "{stdout}\n{stderr}");
    assert!(kept.join("sim-netos.yaml").is_file());
}

/// README: "The journal is JSON lines, one per finished step, fsynced before
/// the next step". A SIGKILL keeps the page cache, so only the system calls
/// show it: strace (Debian package strace) records every write to the
/// journal and every fdatasync/fsync of it. Each line's write is followed
/// by a sync of the journal that returned 0 before the next line is written.
#[test]
fn each_journal_line_is_synced_to_disk_before_the_next_is_written() {
    if !crate::util::require(crate::util::have_program("strace"), "strace (Debian package strace) is not installed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let keep = dir.path().join("bench");
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-y", "-e", "trace=write,pwrite64,writev,fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(crate::util::flashline_bin())
        .args(["demo", "--devices", "1", "--jobs", "1", "--keep"])
        .arg(&keep)
        .env("TERM", "dumb");
    let output = command.output_within(FLASHLINE);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    let journal = std::fs::read_dir(&keep)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .expect("the demo keeps its journal");
    // Every line: finished steps and the files a device confirmed.
    let lines = std::fs::read_to_string(&journal).unwrap().lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines >= 4, "the demo's four steps are journaled");
    let name = journal.file_name().unwrap().to_string_lossy().into_owned();
    // `write(7</tmp/.../journal.jsonl>, "{...}\n", 312) = 312`, `fdatasync(7</...journal.jsonl>) = 0`.
    // With several threads strace may split a call in two: `PID
    // fdatasync(7</...journal.jsonl> <unfinished ...>`, then `PID <...
    // fdatasync resumed>) = 0`, which names no file. The halves are joined by
    // their thread id.
    let mut calls: Vec<String> = Vec::new();
    let mut unfinished: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for line in std::fs::read_to_string(&trace).unwrap().lines() {
        let (pid, call) = line.split_once(' ').unwrap_or(("", line));
        let call = call.trim();
        if let Some(rest) = call.strip_prefix("<... ").and_then(|r| r.split_once(" resumed>").map(|(_, rest)| rest)) {
            if let Some(start) = unfinished.remove(pid) {
                calls.push(format!("{start}{rest}"));
            }
        } else if call.contains(&format!("{name}>")) {
            match call.strip_suffix("<unfinished ...>") {
                Some(start) => {
                    unfinished.insert(pid.to_string(), start.trim_end().to_string());
                }
                None => calls.push(call.to_string()),
            }
        }
    }
    let writes = calls.iter().filter(|c| c.starts_with("write") || c.starts_with("pwrite")).count();
    assert_eq!(writes, lines, "one write per journal line:\n{}", calls.join("\n"));
    let mut unsynced = false;
    for call in &calls {
        if call.starts_with("write") || call.starts_with("pwrite") {
            assert!(!unsynced, "a journal line was written before the one before it was synced:\n{}", calls.join("\n"));
            unsynced = true;
        } else if call.starts_with("fdatasync") || call.starts_with("fsync") {
            assert!(call.ends_with("= 0"), "{call}");
            unsynced = false;
        }
    }
    assert!(!unsynced, "the last line was never synced:\n{}", calls.join("\n"));
}
