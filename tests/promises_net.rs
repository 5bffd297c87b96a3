//! README's network promises that had no test: `diagnose` finding `ready`
//! (exit 0) against a real vsftpd, waiting up to `--timeout` for it to come
//! up, and `no-banner` from a server that accepts and stays silent; the
//! 10 s limit on connecting to a network serial server; ADDP's retries when
//! packets are lost; `addp --password-file`.
//!
//! Network rule: only 127.0.0.0/8, or the 198.18.0.0/15 addresses of the
//! test's own namespace pair with flashline inside the station namespace.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::child::{Bounded, FLASHLINE, LineChild, QUICK};
use crate::util::netns::{NetnsPair, listen_in, nft_in};
use crate::util::vsftpd::{self, Vsftpd};
use crate::util::{flashline_bin, have_program, require, text};

fn diagnose_in_station(pair: &NetnsPair, args: &[&str]) -> (Option<i32>, Value, String, Duration) {
    let started = Instant::now();
    let output = pair.in_station(flashline_bin()).arg("diagnose").args(args).arg("--json").output_within(FLASHLINE);
    let took = started.elapsed();
    let (stdout, stderr) = text(&output);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\n{stderr}"));
    (output.status.code(), report, stderr, took)
}

#[test]
fn diagnose_finds_a_real_vsftpd_ready_with_exit_0_and_waits_for_it_to_come_up() {
    if !require(vsftpd::unavailable_reason().is_none(), &vsftpd::unavailable_reason().unwrap_or_default()) {
        return;
    }
    let Some(pair) = NetnsPair::create() else { return };
    let dut = pair.dut_ip.to_string();
    for method in ["connect", "syn"] {
        // Port 21 is closed (the dut's kernel answers RST) when diagnose
        // starts; vsftpd comes up 1.5 s later, within --timeout.
        let diagnose = LineChild::spawn(pair.in_station(flashline_bin()).args([
            "diagnose",
            &dut,
            "--method",
            method,
            "--timeout",
            "20s",
            "--json",
        ]));
        std::thread::sleep(Duration::from_millis(1500));
        let server = Vsftpd::start(Some(&pair.dut), pair.dut_ip, 21, &[]);
        let started = Instant::now();
        let output = diagnose.finish_within(Duration::from_secs(60));
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{method}: ready is exit 0:\n{stdout}\n{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["finding"]["code"], "ready", "{method}: {report:#}");
        assert_eq!(report["service"]["banner_code"], 220, "{method}: {report:#}");
        assert!(report["service"]["banner"].as_str().unwrap().contains("vsFTPd"), "{method}: {report:#}");
        assert_eq!(report["icmp"]["state"], "reply", "{method}: {report:#}");
        // It waited: the port was seen closed first, then open.
        let timeline: Vec<String> = report["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap_or_default().to_string())
            .collect();
        let closed = timeline.iter().position(|e| e.starts_with("port 21 closed"));
        let open = timeline.iter().position(|e| e.starts_with("port 21 open"));
        assert!(matches!((closed, open), (Some(c), Some(o)) if c < o), "{method}: {timeline:#?}");
        assert!(started.elapsed() < Duration::from_secs(20), "ended once the server was up");
        drop(server);
    }
    // Nothing comes up: diagnose gives up after --timeout, not before.
    let (code, report, stderr, took) = diagnose_in_station(&pair, &[&dut, "--method", "connect", "--timeout", "2s"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(report["finding"]["code"], "no-listener", "{report:#}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(15), "took {took:?}");
}

/// Accepts connections on `listener` and keeps them open, saying nothing,
/// until dropped (at most 60 s).
struct SilentServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl SilentServer {
    fn start(listener: TcpListener) -> SilentServer {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            let give_up = Instant::now() + Duration::from_secs(60);
            while !stopped.load(Ordering::Relaxed) && Instant::now() < give_up {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            held.len()
        });
        SilentServer { stop, thread: Some(thread) }
    }

    /// Stops and returns how many connections it held.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn diagnose_names_a_server_that_accepts_and_never_greets_no_banner() {
    let Some(pair) = NetnsPair::create() else { return };
    let server = SilentServer::start(listen_in(&pair.dut, SocketAddr::from((pair.dut_ip, 21))));
    let dut = pair.dut_ip.to_string();
    let (code, report, stderr, took) = diagnose_in_station(&pair, &[&dut, "--method", "connect", "--timeout", "2s"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(report["finding"]["code"], "no-banner", "{report:#}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(server.stop() >= 1, "diagnose connected to the silent server");
}

#[test]
fn a_network_serial_server_that_never_accepts_fails_as_environment_after_10_s() {
    if !require(have_program("nft"), "nft (Debian package nftables)") {
        return;
    }
    let Some(pair) = NetnsPair::create() else { return };
    // The dut drops every SYN to 3001: a connect that is never answered.
    nft_in(
        &pair.dut,
        &[
            "add table inet t",
            "add chain inet t input { type filter hook input priority 0 ; }",
            "add rule inet t input tcp dport 3001 drop",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.bin");
    std::fs::write(&image, vec![0x5Au8; 1024]).unwrap();
    for scheme in ["tcp", "rfc2217"] {
        let port = format!("{scheme}://{}:3001", pair.dut_ip);
        let started = Instant::now();
        let output = pair
            .in_station(flashline_bin())
            .args(["serial", "send", image.to_str().unwrap(), "--port", &port])
            .output_within(Duration::from_secs(60));
        let took = started.elapsed();
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(3), "{scheme}: {stdout}\n{stderr}");
        assert!(stderr.contains("no answer within 10s"), "{scheme}: {stderr}");
        assert!(stderr.contains(&port), "{scheme}: the error names the server: {stderr}");
        assert!(took >= Duration::from_secs(10) && took < Duration::from_secs(20), "{scheme}: took {took:?}");
    }
}

/// A simulated NET+OS device answering ADDP on `addp`:`port`, NV memory in `dir`.
fn start_addp_device(command: Command, dir: &std::path::Path, mac: &str, ip: Ipv4Addr, extra: &[&str]) -> LineChild {
    let nv = dir.join("nv.json");
    std::fs::write(
        &nv,
        format!(
            r#"{{"dhcp":false,"ip":"{ip}","mask":"255.255.255.248","gateway":"0.0.0.0","baud":9600,"serial_number":"N1","mac":"{mac}","wait_seconds":5}}"#
        ),
    )
    .unwrap();
    let mut command = command;
    command
        .args(["-v", "sim", "netos", "--key-window", "100ms", "--exit-after", "120s", "--link"])
        .arg(dir.join("tty"))
        .arg("--nv")
        .arg(&nv)
        .args(["--addp", &ip.to_string()])
        .args(extra);
    let mut device = LineChild::spawn(&mut command);
    device.line_matching(Duration::from_secs(30), |line| line.contains("ADDP: answering on"));
    device
}

/// Packets the nft rule with `comment` matched, from the dut's ruleset.
fn nft_packets(pair: &NetnsPair, comment: &str) -> u64 {
    let output = pair.in_dut("nft").args(["list", "ruleset"]).output_within(QUICK);
    let ruleset = String::from_utf8_lossy(&output.stdout).into_owned();
    let line = ruleset.lines().find(|l| l.contains(comment)).unwrap_or_else(|| panic!("no rule {comment}: {ruleset}"));
    let after = line.split("packets ").nth(1).unwrap_or_else(|| panic!("no counter: {line}"));
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn addp_set_ip_is_retried_when_packets_are_lost() {
    if !require(have_program("nft"), "nft (Debian package nftables)") {
        return;
    }
    let Some(pair) = NetnsPair::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mac = "00:40:9D:31:41:61";
    let _device = start_addp_device(pair.in_dut(flashline_bin()), dir.path(), mac, pair.dut_ip, &[]);
    // The dut drops the first two ADDP requests that reach it, whichever
    // attempt they belong to (numgen counts every packet the rule sees).
    nft_in(
        &pair.dut,
        &[
            "add table inet t",
            "add chain inet t input { type filter hook input priority 0 ; }",
            "add rule inet t input udp dport 2362 numgen inc mod 1000000 < 2 counter drop comment \"lost\"",
        ],
    );
    let set_ip = |retries: &str| {
        let output = pair
            .in_station(flashline_bin())
            .env("FLASHLINE_ADDP_PASSWORD", "password")
            .args(["addp", "set-ip", mac, "--ip", &pair.absent_ip.to_string(), "--mask", "255.255.255.248"])
            // One cookie: one packet per attempt; 2 s per attempt is room for a
            // loaded runner (a late answer would count as a lost packet).
            .args(["--address", &pair.dut_ip.to_string(), "--cookie", "DVKT", "--wait", "2s", "--retries", retries])
            .output_within(FLASHLINE);
        let (stdout, stderr) = text(&output);
        (output.status.code(), stdout, stderr)
    };
    // One retry is not enough for two lost packets: nothing answered (exit 3).
    let (code, stdout, stderr) = set_ip("1");
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("after 2 attempts"), "{stderr}");
    assert_eq!(nft_packets(&pair, "lost"), 2, "both attempts were dropped");
    // The loss is over: the first attempt gets through.
    let (code, stdout, stderr) = set_ip("2");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("attempt 1)"), "{stdout}");

    // Again with the loss in the way of the same command: attempt 3 succeeds.
    nft_in(
        &pair.dut,
        &[
            "flush chain inet t input",
            "add rule inet t input udp dport 2362 numgen inc mod 1000000 < 2 counter drop comment \"lost2\"",
        ],
    );
    let (code, stdout, stderr) = set_ip("2");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("set static address accepted"), "{stdout}");
    assert!(stdout.contains("(cookie DVKT, attempt 3)"), "two attempts lost, the third answered: {stdout}");
    assert_eq!(nft_packets(&pair, "lost2"), 2);
}

#[test]
fn addp_reads_the_password_from_password_file() {
    // Loopback, unicast only, on a free port.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mac = "00:40:9D:31:41:62";
    let _device =
        start_addp_device(Command::new(flashline_bin()), dir.path(), mac, Ipv4Addr::LOCALHOST, &["--addp-port", &port]);
    let password_file = dir.path().join("addp.pw");
    let dhcp = |file: &std::path::Path| {
        let output = Command::new(flashline_bin())
            .env_remove("FLASHLINE_ADDP_PASSWORD")
            .args(["addp", "dhcp", mac, "on", "--address", "127.0.0.1", "--port", &port, "--wait", "500ms"])
            .arg("--password-file")
            .arg(file)
            .output_within(FLASHLINE);
        let (stdout, stderr) = text(&output);
        (output.status.code(), stdout, stderr)
    };
    // A wrong password in the file: refused by the device, never shown.
    std::fs::write(&password_file, "not-the-root-pw\n").unwrap();
    let (code, stdout, stderr) = dhcp(&password_file);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("authentication failure"), "{stderr}");
    assert!(!stdout.contains("not-the-root-pw") && !stderr.contains("not-the-root-pw"), "the password was shown");
    // Its first line is the password (the newline is not part of it).
    std::fs::write(&password_file, "password\nsecond line ignored\n").unwrap();
    let (code, stdout, stderr) = dhcp(&password_file);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("DHCP accepted"), "{stdout}");
    let nv: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("nv.json")).unwrap()).unwrap();
    assert_eq!(nv["dhcp"], true, "written to NV memory");
    // A file that cannot be read is the environment's fault.
    let (code, _, stderr) = dhcp(&dir.path().join("absent.pw"));
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("cannot read secret file") && stderr.contains("absent.pw"), "{stderr}");
    // --password-env and --password-file together are refused.
    let output = Command::new(flashline_bin())
        .args(["addp", "reboot", mac, "--password-env", "X", "--password-file"])
        .arg(&password_file)
        .output_within(QUICK);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
}
