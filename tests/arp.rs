//! The RFC 5227 address-conflict check: `flashline arp-check` and the check
//! `configure_network` runs before it gives a unit its static address. In
//! network namespaces (tests/util/netns.rs): the dut namespace holds its
//! address and its kernel answers the probes; flashline runs in the station
//! namespace; only 198.18.0.0/15 addresses.

use std::process::Command;

use serde_json::Value;

use crate::util::child::{Bounded, FLASHLINE, QUICK};
use crate::util::flashline_bin;
use crate::util::netns::NetnsPair;

/// Short timings for a virtual link (RFC 5227's take about 5 s).
const FAST: [&str; 8] = ["--probes", "2", "--interval-min", "50ms", "--interval-max", "100ms", "--wait", "300ms"];

/// The MAC of the dut's end of the veth pair.
fn dut_mac(pair: &NetnsPair) -> String {
    let output = Command::new("ip").args(["-n", &pair.dut, "-o", "link", "show"]).output_within(QUICK);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    text.lines()
        .filter(|line| !line.contains("LOOPBACK"))
        .find_map(|line| line.split("link/ether ").nth(1).and_then(|rest| rest.split_whitespace().next()))
        .unwrap_or_else(|| panic!("no ether address in:\n{text}"))
        // ip prints lower case; flashline prints a MAC in upper case.
        .to_ascii_uppercase()
}

fn arp_check(pair: &NetnsPair, address: &str) -> (Option<i32>, Value, String) {
    let output =
        pair.in_station(flashline_bin()).args(["arp-check", address, "--json"]).args(FAST).output_within(FLASHLINE);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (output.status.code(), report, stderr)
}

#[test]
fn arp_check_names_the_holder_and_passes_a_free_address() {
    let Some(pair) = NetnsPair::create() else { return };
    let mac = dut_mac(&pair);

    let (code, report, stderr) = arp_check(&pair, &pair.dut_ip.to_string());
    assert_eq!(code, Some(1), "{report}\n{stderr}");
    assert_eq!(report["in_use_by"], mac.as_str(), "{report}");
    assert_eq!(report["address"], pair.dut_ip.to_string());

    // An address the dut takes on only now: named by the same MAC.
    let extra = std::net::Ipv4Addr::from(u32::from(pair.dut_ip) + 1);
    let added = Command::new("ip")
        .args(["-n", &pair.dut, "addr", "add", &format!("{extra}/32"), "dev"])
        .arg(dut_interface(&pair))
        .output_within(QUICK);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let (code, report, stderr) = arp_check(&pair, &extra.to_string());
    assert_eq!((code, report["in_use_by"].as_str()), (Some(1), Some(mac.as_str())), "{report}\n{stderr}");

    let (code, report, stderr) = arp_check(&pair, &pair.absent_ip.to_string());
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report["in_use_by"], Value::Null);
    assert_eq!(report["probes_sent"], 2);

    // An interface without ARP, or none at all: the user's mistake.
    for (interface, says) in [("lo", "not an Ethernet interface"), ("nosuch0", "no network interface")] {
        let output = pair
            .in_station(flashline_bin())
            .args(["arp-check", &pair.absent_ip.to_string(), "--interface", interface])
            .args(FAST)
            .output_within(FLASHLINE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{interface}: {stderr}");
        assert!(stderr.contains(says), "{interface}: {stderr}");
    }

    // Without CAP_NET_RAW: an environment error that says what is missing.
    let output = pair
        .in_station("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"])
        .arg(flashline_bin())
        .args(["arp-check", &pair.absent_ip.to_string()])
        .args(FAST)
        .output_within(FLASHLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("CAP_NET_RAW"), "{stderr}");
}

fn dut_interface(pair: &NetnsPair) -> String {
    let output = Command::new("ip").args(["-n", &pair.dut, "-o", "link", "show"]).output_within(QUICK);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    text.lines()
        .find(|line| !line.contains("LOOPBACK"))
        .and_then(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .unwrap_or_else(|| panic!("no veth in:\n{text}"))
}

/// `configure_network` with a static address that the dut holds: the step
/// fails with `address-in-use` naming the MAC, before the serial port is
/// opened (the port here does not exist: opening it would be another error).
#[test]
fn configure_network_stops_before_the_unit_when_the_address_is_taken() {
    let Some(pair) = NetnsPair::create() else { return };
    let mac = dut_mac(&pair);
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("unit.yaml");
    std::fs::write(
        &profile,
        "format: 1\nname: arp-test\nnetwork:\n  dhcp: false\n  ip: ${ip}\n  mask: 255.255.255.248\nsteps:\n  - configure_network:\n      dialog:\n        - expect: 'IP address'\n          send: ${ip}\n      done: Saved\n      address_check:\n        probes: 2\n        interval_min: 50ms\n        interval_max: 100ms\n        wait: 300ms\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let output = pair
            .in_station(flashline_bin())
            .arg("run")
            .arg(&profile)
            .args(["--port", "/nonexistent/ttyFLASHLINE", "--json", "--set", &format!("ip={}", pair.dut_ip)])
            .args(extra)
            .output_within(FLASHLINE);
        crate::util::first_device(&output)
    };
    let (code, device, stdout, stderr) = run(&[]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert_eq!(device["finding"]["code"], "address-in-use", "{device}");
    assert!(device["error"].as_str().unwrap().contains(&mac), "{device}");
    assert!(!device["error"].as_str().unwrap().contains("ttyFLASHLINE"), "the port was opened: {device}");

    // The unit itself holding its address (its `mac` value) is no conflict:
    // the step goes on to the console (which does not exist here).
    let (code, device, stdout, stderr) = run(&["--set", &format!("mac={mac}")]);
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(device["finding"].is_null(), "{device}");
    assert!(device["error"].as_str().unwrap().contains("ttyFLASHLINE"), "{device}");

    // An address outside the station's links (a unit set up for another
    // subnet: the station namespace has no route there) cannot be checked by
    // ARP: the check is skipped and the step goes on to the console. No
    // packet leaves: the route lookup fails first.
    let (code, device, stdout, stderr) = run(&["--set", "ip=198.19.200.10"]);
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(device["finding"].is_null(), "{device}");
    assert!(device["error"].as_str().unwrap().contains("ttyFLASHLINE"), "{device}");
}
