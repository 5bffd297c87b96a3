//! Tests against a real bench: a NET+OS board on a serial port and the
//! network, and a CSP matrix controller. They are `#[ignore]`d, so CI (which
//! has no bench) lists them as skipped instead of passing them as no-ops; on a
//! bench run them with `--run-ignored only` (README.md). Run that way, a
//! missing FLASHLINE_HW_* variable is a failure that names it.

#[path = "../tests/util/child.rs"]
#[allow(dead_code)] // the hardware tests use only part of it
mod child;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use child::Bounded;
use flashline::exs::frame::{FrameError, Framing};
use flashline::profile::ExsChecksum;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variables a test needs; fails naming the missing ones.
fn needs(names: &[&str]) -> Vec<String> {
    let missing: Vec<&str> = names.iter().copied().filter(|n| var(n).is_none()).collect();
    assert!(missing.is_empty(), "set {} to name the hardware (hardware-tests/README.md)", missing.join(", "));
    names.iter().map(|n| var(n).expect("checked above")).collect()
}

fn flashline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flashline"))
}

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The shipped Digi profile, as the bench needs it: a board whose root
/// password is not a factory one (FLASHLINE_HW_ROOT_PASSWORD) gets it tried
/// first; `boot_wait` lets a person power-cycle the board before the
/// `Press any key` window.
fn bench_profile(dir: &std::path::Path, boot_wait: Option<&str>) -> String {
    let mut text = std::fs::read_to_string(repo("profiles/digi-connectme-9210.yaml")).expect("the Digi profile");
    if var("FLASHLINE_HW_ROOT_PASSWORD").is_some() {
        let factory = "candidates: [password, Netsilicon]";
        assert!(text.contains(factory), "the profile's root password candidates changed: update this test");
        text = text.replace(factory, "candidates: [\"${env:FLASHLINE_HW_ROOT_PASSWORD}\", password, Netsilicon]");
    }
    if let Some(wait) = boot_wait {
        let interrupt = "        no_line_ending: true\n      # Short patterns";
        assert!(text.contains(interrupt), "the profile's interrupt changed: update this test");
        text = text.replace(
            interrupt,
            &format!("        no_line_ending: true\n        timeout: {wait}\n      # Short patterns"),
        );
    }
    let path = dir.join("digi-connectme-9210.yaml");
    std::fs::write(&path, text).expect("write the bench profile");
    path.display().to_string()
}

/// Prints a step the person at the bench must take, with the time they
/// have for it (the tests run with `--no-capture`).
fn manual_step(what: &str, within: &str) {
    println!("\n>>> BENCH STEP (within {within}): {what}\n");
}

/// `flashline diagnose IP --console PORT` while the person at the bench
/// power-cycles the board: the report of the boot that follows.
fn watch_next_boot(port: &str, ip: &str, why: &str) -> serde_json::Value {
    manual_step(&format!("power-cycle the board (recovery jumper off) {why}"), "120 s");
    let output = flashline()
        .args(["diagnose", ip, "--json", "--timeout", "60s", "--console", port, "--console-timeout", "120s"])
        .output_within(Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON report from diagnose ({e}): {stderr}"));
    println!("{report:#}");
    report
}

/// The console lines the watch quoted.
fn quoted(report: &serde_json::Value) -> Vec<String> {
    report["console"]["quoted"]
        .as_array()
        .map(|lines| lines.iter().filter_map(|l| l["text"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn mask_and_gateway(ip: &str) -> (String, String) {
    let mask = var("FLASHLINE_HW_MASK").unwrap_or_else(|| "255.255.255.0".into());
    let gateway = var("FLASHLINE_HW_GATEWAY").unwrap_or_else(|| {
        let mut octets: Vec<&str> = ip.split('.').collect();
        octets[3] = "1";
        octets.join(".")
    });
    (mask, gateway)
}

/// The console dialog alone, on a board that boots normally: the shipped
/// profile sets the address and keeps every other setting (no answer typed
/// into the serial number or MAC prompts).
#[test]
#[ignore = "needs a real bench named by FLASHLINE_HW_*: run with --run-ignored only (hardware-tests/README.md)"]
fn netos_board_console_dialog_sets_the_address_and_keeps_the_rest() {
    let values = needs(&["FLASHLINE_HW_SERIAL", "FLASHLINE_HW_IP"]);
    let (port, ip) = (&values[0], &values[1]);
    let (mask, gateway) = mask_and_gateway(ip);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let profile = bench_profile(dir.path(), Some("120s"));
    let transcript = dir.path().join("transcript.txt");
    manual_step("power-cycle the board (recovery jumper off): flashline waits for `Press any key`", "120 s");
    let output = flashline()
        .args(["serial", "dialog", "--port", port, "--profile", &profile])
        .args(["--set", &format!("ip={ip}"), "--set", &format!("mask={mask}"), "--set", &format!("gateway={gateway}")])
        .args(["--transcript", transcript.to_str().expect("a UTF-8 path")])
        .output_within(Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let transcript = std::fs::read_to_string(&transcript).unwrap_or_default();
    println!("{transcript}");
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("settings saved"), "the board already had {ip}: give it another address\n{stdout}");
    assert!(stdout.contains("kept defaults:") && stdout.contains("baud rate"), "{stdout}");
    if let Some(password) = var("FLASHLINE_HW_ROOT_PASSWORD") {
        assert!(!transcript.contains(&password) && !stdout.contains(&password), "the root password leaked");
    }
    // Only the address went out: every other line we sent is empty or a single key.
    let sent: Vec<&str> = transcript.lines().filter_map(|l| l.split_once("] > ").map(|(_, t)| t)).collect();
    let allowed = ["", " ", "M", "N", "A", "***", ip.as_str(), mask.as_str(), gateway.as_str()];
    assert!(sent.iter().all(|t| allowed.contains(t)), "unexpected answers sent: {sent:?}");

    // "Saving ... Done" is the board's word; the next boot shows whether it
    // took the address: its banner's `IP address on LAN is` line.
    let report = watch_next_boot(port, ip, "to read the banner of the boot with the new settings");
    let lines = quoted(&report);
    let on_lan: Vec<&String> = lines.iter().filter(|l| l.contains("IP address on LAN is")).collect();
    assert!(!on_lan.is_empty(), "the next banner showed no address: {lines:#?}");
    assert!(
        on_lan.iter().all(|l| l.trim_end().ends_with(&format!("IP address on LAN is {ip}"))),
        "the board boots with another address than {ip}: {on_lan:?}"
    );
    assert_ne!(report["finding"]["code"], "address-mismatch", "{report:#}");
}

/// The whole pipeline on the board, then the readiness check (in this one
/// test: nextest runs tests in any order, in parallel).
#[test]
#[ignore = "needs a real bench named by FLASHLINE_HW_*: run with --run-ignored only (hardware-tests/README.md)"]
fn netos_board_full_pipeline_then_ready() {
    let values = needs(&[
        "FLASHLINE_HW_SERIAL",
        "FLASHLINE_HW_IP",
        "FLASHLINE_HW_ROM",
        "FLASHLINE_HW_IMAGE",
        "FLASHLINE_HW_IMAGE_APPLICATION",
    ]);
    let (port, ip, rom, image, application) = (&values[0], &values[1], &values[2], &values[3], &values[4]);
    let (mask, gateway) = mask_and_gateway(ip);
    let dir = tempfile::tempdir().expect("a temporary folder");
    // A serial load at 9600 baud and two FTP uploads with restarts. The
    // load_image step waits 120 s (its wait_timeout) for the boot loader.
    manual_step(
        "put the recovery jumper on and power-cycle the board: flashline waits for `Starting serial recovery`",
        "120 s",
    );
    manual_step("take the recovery jumper off once the serial load has ended (the loaded image runs from RAM)", "60 s");
    let output = flashline()
        .args(["run", &bench_profile(dir.path(), None), "--port", port, "--json"])
        .args(["--set", &format!("ip={ip}"), "--set", &format!("mask={mask}"), "--set", &format!("gateway={gateway}")])
        .args(["--set", &format!("rom_image={rom}"), "--set", &format!("app_image={image}")])
        .output_within(Duration::from_secs(1800));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    if let Some(password) = var("FLASHLINE_HW_ROOT_PASSWORD") {
        assert!(!stdout.contains(&password), "the root password leaked into the report");
    }
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["devices"][0]["outcome"], "passed");

    let output =
        flashline().args(["diagnose", ip, "--timeout", "30s", "--json"]).output_within(Duration::from_secs(120));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(report["finding"]["code"], "ready", "{report:#}");
    assert_eq!(output.status.code(), Some(0), "{report:#}");

    // `ready` holds for the old application too (an ignored upload, a
    // failed flash write): the boot from flash must run the image just
    // sent, named by its APPLICATION line (name and build date).
    let report = watch_next_boot(port, ip, "to boot it from flash");
    let lines = quoted(&report);
    let running: Vec<&String> = lines.iter().filter(|l| l.starts_with("APPLICATION:")).collect();
    assert_eq!(
        running,
        [&format!("APPLICATION: {application}")],
        "the board runs another application than the one in {image} (FLASHLINE_HW_IMAGE_APPLICATION): {lines:#?}"
    );
    assert_eq!(report["finding"]["code"], "ready", "after the boot from flash: {report:#}");
}

/// `exs tftp-manage --host CSP ARGS --json`: its report, after a zero exit.
fn tftp_manage(csp: &str, args: &[&str]) -> serde_json::Value {
    let output = flashline()
        .args(["exs", "tftp-manage", "--host", csp, "--json"])
        .args(args)
        .output_within(Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).expect("JSON report")
}

/// The adjacent server address the report's exchanges answered.
fn adjacent_server(report: &serde_json::Value) -> Option<String> {
    report["exchanges"].as_array()?.iter().find_map(|exchange| {
        exchange["response"]["icbs"].as_array()?.iter().find_map(|icb| {
            (icb["field"] == "adjacent-server").then(|| icb["value"].as_str().map(str::to_string)).flatten()
        })
    })
}

/// Sets a value (the adjacent server address, to the value it has: nothing
/// changes on the card) and queries it back: the set is acknowledged, the
/// value read back is the value sent, and the response layout the card uses
/// is recorded, the same for the set and the query.
#[test]
#[ignore = "needs a real bench named by FLASHLINE_HW_*: run with --run-ignored only (hardware-tests/README.md)"]
fn csp_controller_takes_a_harmless_setting_and_reads_it_back() {
    let values = needs(&["FLASHLINE_HW_CSP"]);
    let before = tftp_manage(&values[0], &["--query", "adjacent-server"]);
    let current = adjacent_server(&before).unwrap_or_else(|| panic!("no adjacent-server in the answer: {before:#}"));
    let after = tftp_manage(&values[0], &["--adjacent-server", &current, "--query", "adjacent-server"]);
    let exchanges = after["exchanges"].as_array().expect("exchanges");
    assert_eq!(exchanges.len(), 2, "the setting, then the query: {after:#}");
    for exchange in exchanges {
        assert_eq!(exchange["response"]["status"]["value"], 0x10, "{}: {exchange:#}", exchange["purpose"]);
    }
    assert_eq!(adjacent_server(&after).as_deref(), Some(current.as_str()), "read back: {after:#}");
    let layouts: Vec<&serde_json::Value> = exchanges.iter().map(|e| &e["response"]["layout"]).collect();
    println!("the card answers in the response layout {}", layouts[0]);
    assert!(layouts[0].is_string() && layouts.iter().all(|l| *l == layouts[0]), "one layout: {layouts:?}");
}

#[test]
#[ignore = "needs a real bench named by FLASHLINE_HW_*: run with --run-ignored only (hardware-tests/README.md)"]
fn csp_controller_answers_every_query() {
    let values = needs(&["FLASHLINE_HW_CSP"]);
    let output = flashline()
        .args(["exs", "tftp-manage", "--host", &values[0], "--query", "all", "--json"])
        .output_within(Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let exchanges = report["exchanges"].as_array().expect("exchanges");
    // `--query all`: every Action subtype but Begin Download (0x01-0x08).
    assert_eq!(exchanges.len(), 8, "one answer per query: {report:#}");
    for exchange in exchanges {
        assert_eq!(
            exchange["response"]["status"]["value"], 0x10,
            "{}: not a positive acknowledgment: {exchange:#}",
            exchange["purpose"]
        );
    }
}

/// Connects to the controller and reads (for at most 10 s; it sends Poll
/// every 2 s) until one whole frame decodes under the rule flashline uses
/// (its default, `sum8-twos` today). A frame whose checksum follows another
/// rule fails the test, naming the rules it does satisfy.
#[test]
#[ignore = "needs a real bench named by FLASHLINE_HW_*: run with --run-ignored only (hardware-tests/README.md)"]
fn csp_capture_settles_the_checksum_rule() {
    let values = needs(&["FLASHLINE_HW_CSP"]);
    let address: SocketAddr = format!("{}:12610", values[0]).parse().expect("FLASHLINE_HW_CSP is an IPv4 address");
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect to the controller");
    stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    // The rule a profile gets when it names none: what flashline sends.
    let ours = Framing::default();
    let rule = serde_json::to_value(ours.checksum).expect("a rule name");
    let rule = rule.as_str().expect("a rule name");
    let mut captured = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 512];
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ");
    loop {
        // Skip to the first marker: the connection may open mid-frame.
        if let Some(start) = captured.iter().position(|&b| b == 0xFE) {
            captured.drain(..start);
        } else {
            captured.clear();
        }
        match ours.decode(&captured) {
            Ok(Some((frame, used))) => {
                println!("captured: {} (type {:#06x}, {rule} holds)", hex(&captured[..used]), frame.msg_type);
                return;
            }
            Ok(None) => {}
            Err(FrameError::BadChecksum { frame_len, .. }) => {
                let frame_bytes = &captured[..frame_len];
                let matching: Vec<&str> =
                    [(ExsChecksum::Sum8Twos, "sum8-twos"), (ExsChecksum::Sum8, "sum8"), (ExsChecksum::Xor8, "xor8")]
                        .into_iter()
                        .filter(|(rule, _)| {
                            Framing { checksum: *rule, ..ours }.decode(frame_bytes).is_ok_and(|f| f.is_some())
                        })
                        .map(|(_, name)| name)
                        .collect();
                panic!(
                    "the controller's frame does not follow {rule}, the rule flashline uses: {}\n\
                     rules it satisfies: {matching:?} (set `checksum:` in the profile and report the capture)",
                    hex(frame_bytes)
                );
            }
            Err(error) => panic!("not a frame ({error}): {}", hex(&captured)),
        }
        assert!(Instant::now() < deadline, "no whole frame from the controller in 10 s: {}", hex(&captured));
        match stream.read(&mut buffer) {
            Ok(0) => panic!("the controller closed the connection: {}", hex(&captured)),
            Ok(n) => captured.extend_from_slice(&buffer[..n]),
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(error) => panic!("reading from the controller: {error}"),
        }
    }
}
