//! README's command-line promises that had no test: every `demo --scenario`
//! gives the finding docs/diagnosis.md documents for it, and the global
//! flags `-q` (errors only) and `NO_COLOR` (for `--color auto`) hold at the
//! real binary, on a real terminal (`script` gives it a PTY).

use std::process::Command;

use serde_json::Value;

use crate::util::child::{Bounded, FLASHLINE};
use crate::util::{flashline, flashline_bin, have_program, repo_root, require, run_flashline, text};

/// `flashline demo ARGS --report F`: exit code, the report, everything printed.
fn demo(args: &[&str]) -> (Option<i32>, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let output = flashline().args(["demo", "--report", report.to_str().unwrap()]).args(args).output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no report ({e}):\n{stdout}\n{stderr}"));
    (output.status.code(), value, format!("{stdout}\n{stderr}"))
}

fn step_outcomes(device: &Value) -> Vec<(String, String)> {
    device["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap().to_string(), s["outcome"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn demo_late_ftp_passes_because_the_wait_outlasts_the_late_server() {
    let (code, report, output) = demo(&["--devices", "2", "--jobs", "2", "--scenario", "late-ftp"]);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    // The late device waited for its FTP server (3 s after its network).
    let late = &report["devices"][1];
    let wait = late["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "wait_for_network").unwrap();
    let quick = report["devices"][0]["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "wait_for_network");
    let (late_ms, quick_ms) = (wait["duration_ms"].as_u64().unwrap(), quick.unwrap()["duration_ms"].as_u64().unwrap());
    assert!(late_ms >= 2500 && late_ms > quick_ms, "late {late_ms} ms, on time {quick_ms} ms: {report:#}");
}

#[test]
fn demo_backup_image_fails_with_the_documented_finding() {
    let (code, report, output) = demo(&["--devices", "2", "--jobs", "2", "--scenario", "backup-image"]);
    assert_eq!(code, Some(1), "{output}");
    let broken = &report["devices"][1];
    assert_eq!(broken["outcome"], "failed", "{broken:#}");
    assert_eq!(broken["failure_class"], "device", "{broken:#}");
    assert_eq!(broken["finding"]["code"], "backup-image", "{broken:#}");
    let steps = step_outcomes(broken);
    assert_eq!(steps.last().map(|s| s.0.as_str()), Some("wait_for_network"), "{steps:?}");
    assert_eq!(report["devices"][0]["outcome"], "passed", "{report:#}");
}

#[test]
fn demo_csp_missing_file_fails_on_the_controllers_status() {
    let (code, report, output) = demo(&["--devices", "1", "--scenario", "csp-missing-file"]);
    assert_eq!(code, Some(1), "{output}");
    let devices = report["devices"].as_array().unwrap();
    let csp = devices.iter().find(|d| d["steps"][0]["kind"] == "tftp_manage").expect("the CSP controller ran");
    assert_eq!(csp["outcome"], "failed", "{csp:#}");
    assert_eq!(csp["failure_class"], "device", "{csp:#}");
    // No network finding: the controller's Status and More Status are the error.
    assert!(csp["finding"].is_null(), "{csp:#}");
    let detail =
        csp["steps"][0]["detail"].as_str().unwrap_or_default().to_string() + csp["error"].as_str().unwrap_or_default();
    assert!(detail.contains("0x0008 TFTP of the configuration file failed"), "{csp:#}");
    assert!(devices.iter().filter(|d| d["outcome"] == "passed").count() >= 1, "{report:#}");
}

#[test]
fn demo_refuses_an_unknown_scenario_naming_the_known_ones() {
    let output = run_flashline(&["demo", "--scenario", "melt-down"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    for known in ["no-ftp-server", "late-ftp", "wrong-password", "backup-image", "csp-missing-file"] {
        assert!(stderr.contains(known), "{known}: {stderr}");
    }
}

/// Runs `command` in `sh` with stdout and stderr on a terminal (`script`),
/// with the environment `env`; everything the terminal showed.
fn on_a_terminal(command: &str, env: &[(&str, &str)]) -> String {
    let mut script = Command::new("script");
    script.args(["-qefc", command, "/dev/null"]).env("TERM", "xterm").env_remove("NO_COLOR");
    for (name, value) in env {
        script.env(name, value);
    }
    String::from_utf8_lossy(&script.output_within(FLASHLINE).stdout).into_owned()
}

fn broken_profile(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("broken.yaml");
    std::fs::write(&path, "format: 1\nname: t\nserial: {bauds: 9600}\nsteps: []\n").unwrap();
    path
}

#[test]
fn no_color_turns_colour_off_on_a_terminal_and_color_always_wins() {
    if !require(have_program("script"), "script (Debian package bsdutils)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let check = |flags: &str| {
        format!("'{}' {flags} profile check '{}'", flashline_bin().display(), broken_profile(dir.path()).display())
    };
    let escape = "\x1b[";
    // A terminal and no NO_COLOR: colour.
    let screen = on_a_terminal(&check(""), &[]);
    assert!(screen.contains("unknown key `bauds`") && screen.contains(escape), "{screen:?}");
    // NO_COLOR set (any non-empty value): none, on stdout and stderr.
    let screen = on_a_terminal(&check(""), &[("NO_COLOR", "1")]);
    assert!(screen.contains("unknown key `bauds`") && !screen.contains(escape), "{screen:?}");
    // An empty NO_COLOR does not count.
    let screen = on_a_terminal(&check(""), &[("NO_COLOR", "")]);
    assert!(screen.contains(escape), "{screen:?}");
    // An explicit choice beats NO_COLOR.
    let screen = on_a_terminal(&check("--color always"), &[("NO_COLOR", "1")]);
    assert!(screen.contains(escape), "{screen:?}");
    let screen = on_a_terminal(&check("--color never"), &[]);
    assert!(!screen.contains(escape), "{screen:?}");
}

#[test]
fn quiet_prints_errors_only() {
    // The shipped Digi profile passes with warnings (factory passwords in clear text).
    let digi = repo_root().join("profiles/digi-connectme-9210.yaml");
    let output = run_flashline(&["profile", "check", digi.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("warning:") && stdout.contains(": ok ("), "without -q: {stdout}\n{stderr}");
    let output = run_flashline(&["-q", "profile", "check", digi.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""), "-q on a valid profile prints nothing");

    // An error is still printed, with its place; the summary line is not.
    let dir = tempfile::tempdir().unwrap();
    let broken = broken_profile(dir.path());
    let output = run_flashline(&["--quiet", "profile", "check", broken.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("{}:3:10: error: serial.bauds", broken.display())), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");

    // A batch under -q: no live lines, and no summary table when all passed.
    let (code, report, output) = demo(&["-q", "--devices", "1"]);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    assert_eq!(output.trim(), "", "-q demo printed: {output}");
}

/// README: `batch` shows "a live line per device" (`demo` runs the same
/// batch view). On a terminal each device has a line redrawn in place (the
/// cursor moves up over them) with its step and, during a transfer, bytes
/// and ETA, under an overall bar; without a terminal, plain lines only.
#[test]
fn batch_draws_a_live_line_per_device_on_a_terminal_and_plain_lines_elsewhere() {
    if !require(have_program("script"), "script (Debian package bsdutils)") {
        return;
    }
    let demo = format!("'{}' demo --devices 2 --jobs 3", flashline_bin().display());
    let screen = on_a_terminal(&demo, &[]);
    assert!(screen.contains("3 device(s): 3 passed"), "{screen}");
    let live = |device: &str| regex::Regex::new(&format!(r"{device} +\S \S")).unwrap().is_match(&screen);
    for device in ["unit-01", "unit-02", "csp-standby"] {
        assert!(live(device), "no live line for {device}:\n{screen:?}");
    }
    assert!(screen.contains("\x1b[1A") && screen.contains("\x1b[2K"), "lines redrawn in place: {screen:?}");
    let transfer = regex::Regex::new(r"rom\.bin +\[[=> ]{24}\] +[0-9.]+ [KMG]?i?B/[0-9.]+ [KMG]?i?B .* ETA").unwrap();
    assert!(transfer.is_match(&screen), "a transfer line with bytes and ETA: {screen:?}");
    assert!(screen.contains("/3 devices"), "the overall bar: {screen:?}");

    let output = Command::new("sh").args(["-c", &demo]).env("TERM", "xterm").output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains('\x1b') && !stderr.contains("/3 devices"), "{stderr:?}");
    assert!(stderr.contains("unit-01: ") && stderr.contains("unit-02: "), "{stderr}");
}
