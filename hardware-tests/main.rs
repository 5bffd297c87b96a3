//! Tests against a real bench: a NET+OS board on a serial port and the
//! network, and a CSP matrix controller. Each skips with a printed reason
//! unless the FLASHLINE_HW_* variables name the hardware (see README.md).
//! They never fail for lack of hardware, also under CI.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variables a test needs, or None after printing which are missing.
fn needs(names: &[&str]) -> Option<Vec<String>> {
    let missing: Vec<&str> = names.iter().copied().filter(|n| var(n).is_none()).collect();
    if !missing.is_empty() {
        eprintln!("SKIPPED: set {} to run this against real hardware (hardware-tests/README.md)", missing.join(", "));
        return None;
    }
    Some(names.iter().map(|n| var(n).expect("checked above")).collect())
}

fn flashline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flashline"))
}

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn netos_board_full_pipeline() {
    let Some(values) = needs(&[
        "FLASHLINE_HW_SERIAL",
        "FLASHLINE_HW_IP",
        "FLASHLINE_HW_ROM",
        "FLASHLINE_HW_IMAGE",
        "FLASHLINE_HW_ROOT_PASSWORD",
    ]) else {
        return;
    };
    let (port, ip, rom, image) = (&values[0], &values[1], &values[2], &values[3]);
    let mask = var("FLASHLINE_HW_MASK").unwrap_or_else(|| "255.255.255.0".into());
    let gateway = var("FLASHLINE_HW_GATEWAY").unwrap_or_else(|| {
        let mut octets: Vec<&str> = ip.split('.').collect();
        octets[3] = "1";
        octets.join(".")
    });
    let output = flashline()
        .args(["run", &repo("profiles/digi-connectme-9210.yaml"), "--port", port, "--json"])
        .args(["--set", &format!("ip={ip}"), "--set", &format!("mask={mask}"), "--set", &format!("gateway={gateway}")])
        .args(["--set", &format!("rom_image={rom}"), "--set", &format!("app_image={image}")])
        .args(["--set", &format!("root_password={}", values[4])])
        .output()
        .expect("run flashline");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(!stdout.contains(&values[4]), "the root password leaked into the report");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["devices"][0]["outcome"], "passed");
}

#[test]
fn netos_board_is_ready_after_the_pipeline() {
    let Some(values) = needs(&["FLASHLINE_HW_IP"]) else { return };
    let output =
        flashline().args(["diagnose", &values[0], "--timeout", "30s", "--json"]).output().expect("run flashline");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["finding"]["code"], "ready", "{report:#}");
}

#[test]
fn csp_controller_answers_every_query() {
    let Some(values) = needs(&["FLASHLINE_HW_CSP"]) else { return };
    let output = flashline()
        .args(["exs", "tftp-manage", "--host", &values[0], "--query", "all", "--json"])
        .output()
        .expect("run flashline");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    println!("{stdout}");
}

#[test]
fn csp_capture_settles_the_checksum_rule() {
    let Some(values) = needs(&["FLASHLINE_HW_CSP"]) else { return };
    let address: SocketAddr = format!("{}:12610", values[0]).parse().expect("FLASHLINE_HW_CSP is an IPv4 address");
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect to the controller");
    stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    // The controller sends Poll every 2 s: listen for up to 6 s.
    let mut captured = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut buffer = [0u8; 512];
    while Instant::now() < deadline && captured.len() < 8 {
        if let Ok(n) = stream.read(&mut buffer) {
            captured.extend_from_slice(&buffer[..n]);
        }
    }
    assert!(captured.first() == Some(&0xFE), "no frame from the controller in 6 s: {captured:02X?}");
    let hex: Vec<String> = captured.iter().map(|b| format!("{b:02X}")).collect();
    println!("captured: {}", hex.join(" "));
    let mut matching = Vec::new();
    for rule in ["sum8-twos", "sum8", "xor8"] {
        let output =
            flashline().args(["exs", "decode", "--checksum", rule]).arg(hex.join(" ")).output().expect("run flashline");
        if output.status.success() {
            matching.push(rule);
        }
    }
    println!("checksum rules this frame satisfies: {matching:?} (flashline assumes sum8-twos)");
    assert!(!matching.is_empty(), "no known checksum rule matches: report the capture above");
}
