//! `probe --pcap` and `diagnose --pcap` read back by tshark (Debian's, an
//! independent pcap reader): the SYN and the RST or SYN-ACK, with the ports
//! and addresses of the probe's JSON, for the SYN and the connect methods.
//!
//! Network rule: traffic only to the 198.18.0.0/15 addresses of the test's
//! own namespace pair, with flashline running inside the station namespace.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::child::{Bounded, FLASHLINE};
use crate::util::netns::{NetnsPair, listen_in, serve};
use crate::util::{flashline_bin, have_program, require, text};

/// One packet as tshark prints its fields.
#[derive(Debug, PartialEq)]
struct Seen {
    source: String,
    destination: String,
    source_port: u16,
    destination_port: u16,
    flags: String,
}

/// Reads `file` with tshark: TCP packets' addresses, ports and flags.
fn tshark_tcp(file: &Path) -> Vec<Seen> {
    let output = Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args(["-Y", "tcp", "-T", "fields", "-E", "separator=|"])
        .args(["-e", "ip.src", "-e", "ip.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.str"])
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "tshark cannot read {}: {stderr}", file.display());
    stdout
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            Seen {
                source: f[0].into(),
                destination: f[1].into(),
                source_port: f[2].parse().unwrap(),
                destination_port: f[3].parse().unwrap(),
                // tshark marks unset flags with `·`; keep the letters (NCEUAPRSF order).
                flags: f[4].chars().filter(char::is_ascii_uppercase).collect(),
            }
        })
        .collect()
}

fn tshark_icmp_types(file: &Path) -> Vec<String> {
    let output = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-Y", "icmp", "-T", "fields", "-e", "icmp.type"])
        .output_within(FLASHLINE);
    text(&output).0.lines().map(str::to_string).collect()
}

#[test]
fn probe_pcap_shows_the_syn_and_its_answer_to_tshark() {
    if !require(have_program("tshark"), "tshark (Debian package tshark)") {
        return;
    }
    let Some(pair) = NetnsPair::create() else { return };
    let listener = listen_in(&pair.dut, SocketAddr::from((pair.dut_ip, 2121)));
    let server = serve(listener);
    let dir = tempfile::tempdir().unwrap();
    let (dut, station) = (pair.dut_ip.to_string(), pair.station_ip.to_string());
    for method in ["syn", "connect"] {
        let file = dir.path().join(format!("{method}.pcap"));
        let output = pair
            .in_station(flashline_bin())
            .args(["probe", &dut, "--ports", "21,2121", "--method", method, "--json", "--pcap"])
            .arg(&file)
            .output_within(FLASHLINE);
        let (stdout, stderr) = text(&output);
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
        assert_eq!(report["target"], dut.as_str());
        let seen = tshark_tcp(&file);
        for (port, state, answer) in [(21u16, "closed", "AR"), (2121, "open", "AS")] {
            let json = report["ports"].as_array().unwrap().iter().find(|p| p["port"] == port).unwrap();
            assert_eq!(json["state"], state, "{method}: {report:#}");
            let syn = seen
                .iter()
                .find(|s| s.destination_port == port && s.flags == "S")
                .unwrap_or_else(|| panic!("{method}: no SYN to {port} in {seen:?}"));
            assert_eq!((syn.source.as_str(), syn.destination.as_str()), (station.as_str(), dut.as_str()));
            let reply = seen
                .iter()
                .find(|s| s.source_port == port && s.destination_port == syn.source_port)
                .unwrap_or_else(|| panic!("{method}: no answer from {port} in {seen:?}"));
            assert_eq!(reply.flags, answer, "{method} port {port}: {seen:?}");
            assert_eq!((reply.source.as_str(), reply.destination.as_str()), (dut.as_str(), station.as_str()));
        }
        // The ICMP echo and its reply are in the file too.
        let icmp = tshark_icmp_types(&file);
        assert!(icmp.contains(&"8".to_string()) && icmp.contains(&"0".to_string()), "{method}: {icmp:?}");
        assert!(seen.iter().all(|s| s.source == dut || s.destination == dut), "only the target's packets");
    }
    server.stop();
}

#[test]
fn diagnose_pcap_and_a_file_that_cannot_be_written() {
    if !require(have_program("tshark"), "tshark (Debian package tshark)") {
        return;
    }
    let Some(pair) = NetnsPair::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("diagnose.pcap");
    let dut = pair.dut_ip.to_string();
    let output = pair
        .in_station(flashline_bin())
        .args(["diagnose", &dut, "--timeout", "300ms", "--method", "syn", "--pcap"])
        .arg(&file)
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("finding: no-listener"), "{stdout}");
    assert!(stderr.contains("packets written to"), "{stderr}");
    let seen = tshark_tcp(&file);
    assert!(seen.iter().any(|s| s.destination_port == 21 && s.flags == "S"), "{seen:?}");
    assert!(seen.iter().any(|s| s.source_port == 21 && s.flags == "AR"), "{seen:?}");

    let output = pair
        .in_station(flashline_bin())
        .args(["probe", &dut, "--method", "syn", "--pcap", "/nonexistent-dir/x.pcap"])
        .output_within(FLASHLINE);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot write the capture /nonexistent-dir/x.pcap"), "{stderr}");
}
