//! `flashline probe` and `flashline diagnose` against real peers: the kernel's
//! own answers in network namespaces made by the test (RST for a closed port,
//! ICMP echo), listeners, nftables drop rules, and a real vsftpd; plus the
//! connect method on loopback without root.
//!
//! Network rule: traffic only to 127.0.0.0/8 or to the 198.18.0.0/15 addresses
//! of the test's own namespace pair, with flashline running inside the
//! station namespace.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::child::{Bounded, FLASHLINE, LineChild};
use crate::util::netns::{NetnsPair, bind_in, connect_from, listen_in, nft_in, serve};
use crate::util::vsftpd::{self, Vsftpd};
use crate::util::{flashline, flashline_bin, require, text};

/// Runs flashline in the station namespace and parses its JSON report.
fn run_in_station(pair: &NetnsPair, args: &[&str]) -> (Option<i32>, Value, String) {
    let output = pair.in_station(flashline_bin()).args(args).arg("--json").output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\n{stderr}"));
    (output.status.code(), report, stderr)
}

fn port(report: &Value, number: u16) -> &Value {
    report["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["port"] == number))
        .unwrap_or_else(|| panic!("port {number} missing from {report:#}"))
}

const METHODS: [&str; 2] = ["syn", "connect"];

/// Adds nftables input `rules` in the dut namespace; false when nft is
/// missing outside CI (the test skips).
fn input_rules(pair: &NetnsPair, rules: &[&str]) -> bool {
    if !require(crate::util::have_program("nft"), "nft (Debian package nftables)") {
        return false;
    }
    let mut all = vec!["add table inet t", "add chain inet t input { type filter hook input priority 0 ; }"];
    all.extend_from_slice(rules);
    nft_in(&pair.dut, &all);
    true
}

#[test]
fn loopback_connect_method_without_root() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let held = crate::util::ports::closed_tcp_port();
    let closed = held.port;
    let ports = format!("{open},{closed}");
    let output = flashline()
        .args(["probe", "127.0.0.1", "--method", "connect", "--ports", &ports, "--json"])
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "a closed port is a problem found:\n{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["method"], "connect");
    assert_eq!(report["target"], "127.0.0.1");
    assert_eq!(port(&report, open)["state"], "open");
    assert_eq!(port(&report, open)["reason"], "syn-ack");
    assert_eq!(port(&report, closed)["state"], "closed");
    assert_eq!(port(&report, closed)["reason"], "refused");
    assert!(port(&report, closed)["rtt_ms"].is_number());
    assert_eq!(report["finding"]["code"], "no-listener");
    assert_eq!(report["finding"]["port"], closed);
    assert!(report["timeline"].as_array().is_some_and(|t| !t.is_empty()));
    drop((listener, held));
}

#[test]
fn open_and_closed_ports_in_namespaces() {
    let Some(pair) = NetnsPair::create() else { return };
    let listener = listen_in(&pair.dut, SocketAddr::from((pair.dut_ip, 2121)));
    let server = serve(listener);
    let dut = pair.dut_ip.to_string();
    for method in METHODS {
        let (code, report, stderr) =
            run_in_station(&pair, &["probe", &dut, "--ports", "2121,2122", "--method", method]);
        assert_eq!(code, Some(1), "{method}: {stderr}");
        assert_eq!(report["method"], method);
        assert_eq!(report["icmp"]["state"], "reply", "{method}: the kernel answers ping");
        let open = port(&report, 2121);
        assert_eq!(open["state"], "open", "{method}: {report:#}");
        assert_eq!(open["reason"], "syn-ack");
        let closed = port(&report, 2122);
        assert_eq!(closed["state"], "closed");
        if method == "syn" {
            assert_eq!(closed["reason"], "rst");
            let evidence = closed["evidence"].as_str().unwrap();
            assert!(evidence.starts_with("RST,ACK win=0 ttl=64 "), "capture-style evidence: {evidence}");
            assert!(open["evidence"].as_str().unwrap().starts_with("SYN,ACK win="));
        } else {
            assert_eq!(closed["reason"], "refused");
        }
        assert_eq!(report["finding"]["code"], "no-listener");
        assert_eq!(report["finding"]["port"], 2122);
    }
    // The SYN probe completed no handshake: only connect() reached accept().
    let accepted = server.stop();
    assert_eq!(accepted, 1, "exactly the connect method's one connection was accepted");
}

#[test]
fn filtered_by_a_drop_rule_and_by_an_icmp_reject() {
    let Some(pair) = NetnsPair::create() else { return };
    if !input_rules(
        &pair,
        &[
            "add rule inet t input tcp dport 2123 drop",
            "add rule inet t input tcp dport 2124 reject with icmp type admin-prohibited",
        ],
    ) {
        return;
    }
    let dut = pair.dut_ip.to_string();
    for method in METHODS {
        let started = Instant::now();
        let (code, report, stderr) = run_in_station(
            &pair,
            &["probe", &dut, "--ports", "2123,2124", "--method", method, "--answer-timeout", "300ms"],
        );
        assert_eq!(code, Some(1), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(5), "bounded by the answer timeout");
        let dropped = port(&report, 2123);
        assert_eq!(dropped["state"], "filtered", "{method}: {report:#}");
        assert_eq!(dropped["reason"], if method == "syn" { "no-response" } else { "timeout" });
        let rejected = port(&report, 2124);
        assert_eq!(rejected["state"], "filtered");
        assert_eq!(rejected["reason"], "icmp-unreachable", "{method}: {report:#}");
        if method == "syn" {
            assert!(rejected["evidence"].as_str().unwrap().contains("type 3 code 13"), "{report:#}");
        }
        assert_eq!(report["finding"]["code"], "filtered");
        assert_eq!(report["finding"]["port"], 2123);
    }
}

#[test]
fn icmp_blocked_while_the_service_answers() {
    let Some(pair) = NetnsPair::create() else { return };
    if !input_rules(&pair, &["add rule inet t input icmp type echo-request drop"]) {
        return;
    }
    let listener = listen_in(&pair.dut, SocketAddr::from((pair.dut_ip, 2125)));
    let _server = serve(listener);
    let dut = pair.dut_ip.to_string();
    for method in METHODS {
        let (code, report, stderr) =
            run_in_station(&pair, &["diagnose", &dut, "--service", "2125", "--method", method, "--timeout", "1s"]);
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(report["icmp"]["state"], "timeout", "{report:#}");
        assert_eq!(port(&report, 2125)["state"], "open");
        assert_eq!(report["finding"]["code"], "icmp-blocked", "{method}: {report:#}");
    }
}

#[test]
fn host_down_is_unreachable() {
    let Some(pair) = NetnsPair::create() else { return };
    let absent = pair.absent_ip.to_string();
    for method in METHODS {
        let (code, report, stderr) = run_in_station(
            &pair,
            &["probe", &absent, "--ports", "21", "--method", method, "--answer-timeout", "300ms"],
        );
        assert_eq!(code, Some(1), "{stderr}");
        assert_ne!(report["icmp"]["state"], "reply");
        assert_eq!(port(&report, 21)["state"], "filtered", "{method}: {report:#}");
        assert_eq!(report["finding"]["code"], "host-unreachable", "{method}: {report:#}");
    }
}

#[test]
fn a_listener_that_starts_late_shows_in_the_timeline() {
    let Some(pair) = NetnsPair::create() else { return };
    let dut = pair.dut_ip.to_string();
    for (i, method) in METHODS.iter().enumerate() {
        let port_number = 2130 + i as u16;
        // Bound but not listening: the kernel answers RST (closed) until
        // listen() below; no freed port that someone else could take.
        let socket = bind_in(&pair.dut, SocketAddr::from((pair.dut_ip, port_number)));
        let ports = port_number.to_string();
        // Without --json the wait's timeline comes live on stderr, one line
        // per change: the listener starts once flashline has seen `closed`.
        let mut probe = LineChild::spawn(pair.in_station(flashline_bin()).args([
            "probe",
            &dut,
            "--ports",
            &ports,
            "--method",
            method,
            "--wait-until",
            "open",
            "--timeout",
            "30s",
        ]));
        // Event lines read `  <t> ms  <event>` ("waiting for port N open" is not one).
        let closed = format!(" ms  port {port_number} closed");
        let open = format!(" ms  port {port_number} open");
        let first = probe.line_matching(Duration::from_secs(30), |l| l.contains(&closed) || l.contains(&open));
        assert!(first.contains(&closed), "{method}: the first poll sees the closed port: {first}");
        socket.listen(16).expect("listen");
        probe.line_matching(Duration::from_secs(30), |l| l.contains(&open));
        let output = probe.finish_within(Duration::from_secs(30));
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{method}: {stdout}\n{stderr}");
        // The whole timeline, in order: waiting, closed, open, reached.
        let events: Vec<&str> = stderr.lines().filter(|l| l.contains(" ms  ")).collect();
        let position = |needle: &str| {
            events.iter().position(|e| e.contains(needle)).unwrap_or_else(|| panic!("no `{needle}` in {events:#?}"))
        };
        assert!(position("waiting for") < position(&closed), "{events:#?}");
        assert!(position(&closed) < position(&open), "{events:#?}");
        assert!(position(&open) < position("all wanted states reached"), "{events:#?}");
        assert_eq!(events.iter().filter(|e| e.contains(&open)).count(), 1, "{events:#?}");
        if *method == "syn" {
            assert!(events[position(&closed)].contains("RST,ACK"), "{events:#?}");
            assert!(events[position(&open)].contains("SYN,ACK"), "{events:#?}");
        }
    }
}

/// A profile whose FTP step logs in as a user vsftpd will refuse.
fn refused_login_profile(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(dir.join("image.bin"), b"x").unwrap();
    let path = dir.join("ftp.yaml");
    std::fs::write(
        &path,
        "format: 1\nname: ftp-only\nsteps:\n  - ftp_upload:\n      host: ${ip}\n      credentials:\n        - {user: flashline-nobody, password: \"${env:FTP_PW}\"}\n        - {user: root, password: \"${env:FTP_PW}\"}\n      files: [{local: image.bin}]\n",
    )
    .unwrap();
    path
}

#[test]
fn ftp_login_refused_is_auth_failed() {
    let Some(pair) = NetnsPair::create() else { return };
    if let Some(reason) = vsftpd::unavailable_reason() {
        require(false, &reason);
        return;
    }
    let _ftp = Vsftpd::start(Some(&pair.dut), pair.dut_ip, 21, &["ftpd_banner=NET+OS FTP server ready."]);
    assert!(
        connect_from(&pair.station, SocketAddr::from((pair.dut_ip, 21)), Duration::from_secs(5)).is_some(),
        "vsftpd listening"
    );
    let dir = tempfile::tempdir().unwrap();
    let profile = refused_login_profile(dir.path());
    let dut = pair.dut_ip.to_string();
    for method in METHODS {
        let output = pair
            .in_station(flashline_bin())
            .env("FTP_PW", "not-the-password")
            .args([
                "diagnose",
                &dut,
                "--service",
                "ftp",
                "--profile",
                profile.to_str().unwrap(),
                "--method",
                method,
                "--json",
            ])
            .output_within(FLASHLINE);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
        assert!(!stdout.contains("not-the-password") && !stderr.contains("not-the-password"), "password leaked");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(port(&report, 21)["state"], "open");
        assert_eq!(report["service"]["banner"], "220 NET+OS FTP server ready.");
        assert_eq!(report["service"]["login"]["result"], "refused");
        assert_eq!(report["service"]["login"]["tried"], serde_json::json!(["flashline-nobody", "root"]));
        assert!(report["service"]["login"]["reply"].as_str().unwrap().starts_with("530"));
        assert_eq!(report["finding"]["code"], "auth-failed", "{method}: {report:#}");
    }
}

#[test]
fn ftp_busy_is_service_busy() {
    let Some(pair) = NetnsPair::create() else { return };
    if let Some(reason) = vsftpd::unavailable_reason() {
        require(false, &reason);
        return;
    }
    let _ftp = Vsftpd::start(Some(&pair.dut), pair.dut_ip, 21, &["max_clients=1"]);
    // Hold the one session vsftpd allows, as another client would.
    // vsftpd counts a session until it has reaped its process: retry until
    // the held connection is the one it greets.
    let deadline = Instant::now() + Duration::from_secs(5);
    let held = loop {
        let stream = connect_from(&pair.station, SocketAddr::from((pair.dut_ip, 21)), Duration::from_secs(5))
            .expect("vsftpd listening");
        let mut greeting = String::new();
        BufReader::new(&stream).read_line(&mut greeting).unwrap();
        if greeting.starts_with("220") {
            break stream;
        }
        assert!(Instant::now() < deadline, "vsftpd never freed its one session: {greeting}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let dut = pair.dut_ip.to_string();
    for method in METHODS {
        let (code, report, stderr) = run_in_station(&pair, &["diagnose", &dut, "--service", "ftp", "--method", method]);
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(report["service"]["banner_code"], 421, "{report:#}");
        assert_eq!(report["finding"]["code"], "service-busy", "{method}: {report:#}");
    }
    drop(held);
}

#[test]
fn diagnose_speaks_plainly_for_the_forum_case() {
    let Some(pair) = NetnsPair::create() else { return };
    let dut = pair.dut_ip.to_string();
    let output = pair
        .in_station(flashline_bin())
        .args(["diagnose", &dut, "--timeout", "500ms", "--method", "syn"])
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("finding: no-listener"), "{stdout}");
    assert!(stdout.contains("answers ping"), "{stdout}");
    assert!(stdout.contains("RST,ACK win=0"), "{stdout}");
    assert!(stdout.contains("built without the FTP server"), "{stdout}");
}

/// A copy of the binary any user can run (the build folder may not be).
fn binary_for_everyone(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let copy = dir.join("flashline");
    std::fs::copy(flashline_bin(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

#[test]
fn without_raw_socket_permission_syn_is_an_environment_error_and_auto_falls_back() {
    if !require(
        crate::util::is_root() && crate::util::have_program("runuser"),
        "root and runuser, to run as an unprivileged user",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = binary_for_everyone(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port().to_string();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&binary)
            .args(args)
            .output_within(FLASHLINE)
    };
    let output = as_nobody(&["probe", "127.0.0.1", "--ports", &open, "--method", "syn"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("needs CAP_NET_RAW"), "{stderr}");
    assert!(stderr.contains("--method connect"), "says what to try: {stderr}");

    let output = as_nobody(&["probe", "127.0.0.1", "--ports", &open, "--json"]);
    let (stdout, stderr) = text(&output);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    assert_eq!(report["method"], "connect", "auto falls back to connect()");
    assert_eq!(port(&report, open.parse().unwrap())["state"], "open");
    drop(listener);
}
