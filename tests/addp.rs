//! ADDP between flashline and simulated NET+OS devices, across network
//! namespaces (tests/util/netns.rs): the devices (`flashline sim netos
//! --addp`) in the dut namespace, flashline in the station namespace,
//! multicast over the veth; only 198.18.0.0/15 addresses. On loopback:
//! unicast only.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::child::{Bounded, FLASHLINE, LineChild, QUICK};
use crate::util::flashline_bin;
use crate::util::netns::NetnsPair;

/// How long a simulated device lives at most (the test kills it earlier).
const DEVICE_LIFETIME: &str = "120s";

/// Starts a simulated device with NV memory `ip`/`mask` and `mac`, answering
/// ADDP on `addp`, and waits until it answers.
fn start_device(
    mut command: Command,
    dir: &Path,
    mac: &str,
    ip: Ipv4Addr,
    mask: &str,
    addp: Ipv4Addr,
    extra: &[&str],
) -> LineChild {
    let command = device_command(&mut command, dir, mac, ip, mask, addp, extra);
    try_start_device(command).unwrap_or_else(|lines| panic!("the simulated device did not answer:\n{lines}"))
}

/// `command` (flashline, maybe under `ip netns exec`) made a simulated
/// device: its NV memory written to `dir`.
fn device_command<'a>(
    command: &'a mut Command,
    dir: &Path,
    mac: &str,
    ip: Ipv4Addr,
    mask: &str,
    addp: Ipv4Addr,
    extra: &[&str],
) -> &'a mut Command {
    let nv = dir.join(format!("{}.json", mac.replace(':', "")));
    std::fs::write(
        &nv,
        format!(
            r#"{{"dhcp":false,"ip":"{ip}","mask":"{mask}","gateway":"0.0.0.0","baud":9600,"serial_number":"N1","mac":"{mac}","wait_seconds":5}}"#
        ),
    )
    .unwrap();
    command
        .args(["-v", "sim", "netos", "--key-window", "100ms", "--exit-after", DEVICE_LIFETIME, "--link"])
        .arg(dir.join(format!("tty-{}", mac.replace(':', ""))))
        .arg("--nv")
        .arg(&nv)
        .args(["--addp", &addp.to_string()])
        .args(extra)
}

/// Starts a simulated device and waits until it answers, or returns what it
/// printed before it ended (or 30 s passed).
fn try_start_device(command: &mut Command) -> Result<LineChild, String> {
    let mut device = LineChild::spawn(command);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while let Some(line) = device.next_line_within(deadline) {
        if line.contains("ADDP: answering on") {
            return Ok(device);
        }
        lines.push(line);
    }
    Err(lines.join("\n"))
}

/// A device at the pair's dut address that owns it on the dut's veth, so an
/// ADDP set-ip and reboot move it (and ping follows).
fn start_mobile_device(pair: &NetnsPair, dir: &Path, mac: &str) -> LineChild {
    let own = ["--addp-interface", pair.dut_veth.as_str()];
    start_device(pair.in_dut(flashline_bin()), dir, mac, pair.dut_ip, MASK29, pair.dut_ip, &own)
}

/// Exit code, stdout and stderr of a command that ended.
fn ended(output: &std::process::Output) -> (Option<i32>, String, String) {
    let (stdout, stderr) = crate::util::text(output);
    (output.status.code(), stdout, stderr)
}

fn add_address(pair: &NetnsPair, cidr: &str) {
    let output =
        Command::new("ip").args(["-n", &pair.dut, "addr", "add", cidr, "dev", &pair.dut_veth]).output_within(QUICK);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn discover(pair: &NetnsPair, extra: &[&str]) -> (Option<i32>, String, String) {
    let output =
        pair.in_station(flashline_bin()).args(["discover", "--timeout", "1s"]).args(extra).output_within(FLASHLINE);
    ended(&output)
}

const MASK29: &str = "255.255.255.248";

#[test]
fn discover_finds_several_devices_and_advises_on_another_subnet() {
    let Some(pair) = NetnsPair::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let second = Ipv4Addr::from(u32::from(pair.dut_ip) + 1);
    add_address(&pair, &format!("{second}/29"));
    // A unit set up for another subnet, still on the same wire.
    let elsewhere = Ipv4Addr::new(198, 19, 200, 7);
    add_address(&pair, &format!("{elsewhere}/24"));
    let _a = start_device(
        pair.in_dut(flashline_bin()),
        dir.path(),
        "00:40:9D:00:00:0A",
        pair.dut_ip,
        MASK29,
        pair.dut_ip,
        &[],
    );
    let _b = start_device(pair.in_dut(flashline_bin()), dir.path(), "00:40:9D:00:00:0B", second, MASK29, second, &[]);
    let _c = start_device(
        pair.in_dut(flashline_bin()),
        dir.path(),
        "00:40:9D:00:00:0C",
        elsewhere,
        "255.255.255.0",
        elsewhere,
        &[],
    );

    let (code, stdout, stderr) = discover(&pair, &["--json"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let found: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let found = found.as_array().unwrap();
    let macs: Vec<&str> = found.iter().map(|d| d["mac"].as_str().unwrap()).collect();
    assert_eq!(macs, ["00:40:9D:00:00:0A", "00:40:9D:00:00:0B", "00:40:9D:00:00:0C"], "{stdout}");
    let a = &found[0];
    assert_eq!(a["ip"], pair.dut_ip.to_string());
    assert_eq!(
        (a["mask"].as_str(), a["gateway"].as_str(), a["dhcp"].as_bool()),
        (Some(MASK29), Some("0.0.0.0"), Some(false))
    );
    assert_eq!((a["hardware"].as_str(), a["firmware"].as_str()), (Some("Unknown"), Some("Unknown")));
    assert_eq!(a["guid"], "bf6db409-c83d-44a3-a36d-21797d2f73f9");
    // Each device answers its own cookie only, once, though all three were asked.
    assert_eq!(a["cookies"], serde_json::json!(["DVKT"]));
    assert_eq!(found[1]["ip"], second.to_string());
    assert_eq!((a["other_subnet"].as_bool(), found[2]["other_subnet"].as_bool()), (Some(false), Some(true)));
    assert_eq!(found[2]["advisory"], 1, "the device sees the asker on another subnet too");

    let (code, stdout, stderr) = discover(&pair, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("MAC") && stdout.contains("COOKIE"), "{stdout}");
    let advisories: Vec<&str> = stdout.lines().filter(|l| l.starts_with("advisory")).collect();
    assert_eq!(advisories.len(), 1, "{stdout}");
    assert!(advisories[0].contains("00:40:9D:00:00:0C has 198.19.200.7 / 255.255.255.0"), "{stdout}");
    assert!(advisories[0].contains("flashline addp set-ip 00:40:9D:00:00:0C"), "{stdout}");

    // Asking with DIGI only: NET+OS units stay silent.
    let (code, stdout, stderr) = discover(&pair, &["--json", "--cookie", "DIGI"]);
    assert_eq!((code, stdout.trim()), (Some(0), "[]"), "{stderr}");
}

fn addp(pair: &NetnsPair, password: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let output = pair
        .in_station(flashline_bin())
        .env("UNIT_PASSWORD", password)
        .arg("addp")
        .args(args)
        .args(["--password-env", "UNIT_PASSWORD", "--wait", "1s", "--retries", "1"])
        .output_within(FLASHLINE);
    ended(&output)
}

fn pings(pair: &NetnsPair, address: Ipv4Addr) -> bool {
    pair.in_station("ping").args(["-c", "1", "-W", "1", &address.to_string()]).output_within(QUICK).status.success()
}

#[test]
fn set_ip_and_reboot_move_the_unit_and_a_wrong_password_is_refused() {
    let Some(pair) = NetnsPair::create() else { return };
    if !crate::util::require(crate::util::have_program("ping"), "ping (Debian package iputils-ping) is missing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mac = "00:40:9D:31:41:59";
    let mut device = start_mobile_device(&pair, dir.path(), mac);
    let new_ip = pair.absent_ip.to_string();
    let set_ip = ["set-ip", mac, "--ip", &new_ip, "--mask", MASK29];

    let (code, stdout, stderr) = addp(&pair, "not-it", &set_ip);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("authentication failure"), "{stderr}");
    assert!(!stderr.contains("not-it"), "the password is never shown: {stderr}");

    // A wrong MAC: nothing answers (exit 3).
    let (code, _, stderr) = addp(&pair, "password", &["reboot", "00:40:9d:31:41:58"]);
    assert_eq!(code, Some(3), "{stderr}");

    let (code, stdout, stderr) = addp(&pair, "password", &set_ip);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("set static address accepted"), "{stdout}");
    assert!(!pings(&pair, pair.absent_ip), "the new address is used from the next boot only");
    let (code, stdout, stderr) = addp(&pair, "password", &["reboot", mac]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");

    let deadline = Instant::now() + Duration::from_secs(20);
    while !pings(&pair, pair.absent_ip) {
        assert!(Instant::now() < deadline, "no ping answer at {new_ip} after the reboot");
    }
    device.line_matching(Duration::from_secs(10), |line| line.contains(&format!("ADDP: answering on {new_ip}")));
    let (code, stdout, stderr) = discover(&pair, &["--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let found: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(found[0]["ip"], new_ip, "{stdout}");
}

/// Every datagram that reaches `socket` until it has been quiet for 500 ms
/// (at most 64).
fn received(socket: &std::net::UdpSocket) -> Vec<Vec<u8>> {
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < 64 {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => got.push(buf[..n].to_vec()),
            Err(_) => break,
        }
    }
    got
}

/// `operate` with its default options multicasts on every interface that
/// can, so it runs here only inside the station namespace of a pair, whose
/// one such interface is the veth, never on the host's. A socket in the dut
/// namespace that joined the ADDP group shows what was sent: nothing for a
/// reboot of every device (library and CLI), and three requests (one per
/// cookie) for a reboot of one MAC, which proves the socket would have seen
/// the first.
#[test]
fn a_reboot_for_every_device_sends_nothing() {
    use flashline::addp::client::{OperateOptions, operate};
    use flashline::addp::frame::{BROADCAST_MAC, Frame, Password, Request};
    use flashline::addp::{GROUP, PORT};
    let Some(pair) = NetnsPair::create() else { return };
    let dut_ip = pair.dut_ip;
    let group = crate::util::netns::within(&pair.dut, move || {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).unwrap();
        socket.join_multicast_v4(&GROUP, &dut_ip).unwrap();
        socket
    });
    let reboot = |mac| {
        let request = Request::Reboot { mac, password: Password(b"password".to_vec()) };
        let options = OperateOptions { wait: Duration::from_millis(200), retries: 0, ..OperateOptions::default() };
        crate::util::netns::within(&pair.station, move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(operate(&request, &options)).map(|_| ()).map_err(|e| e.to_string())
        })
    };

    let error = reboot(BROADCAST_MAC).unwrap_err();
    assert!(error.contains("must name one device"), "{error}");
    assert_eq!(received(&group), Vec::<Vec<u8>>::new(), "nothing is sent for the broadcast MAC");
    let (code, _, stderr) = addp(&pair, "password", &["reboot", "ff:ff:ff:ff:ff:ff"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("must name one device"), "{stderr}");
    assert_eq!(received(&group), Vec::<Vec<u8>>::new(), "nothing is sent by the CLI either");

    let one = flashline::net::arp::Mac([0x00, 0x40, 0x9D, 0x31, 0x41, 0x59]);
    let error = reboot(one).unwrap_err();
    assert!(error.contains("no device with this MAC answered"), "{error}");
    let sent = received(&group);
    assert_eq!(sent.len(), 3, "one reboot per cookie: {sent:?}");
    for wire in &sent {
        let (frame, _) = Frame::decode(wire).unwrap().unwrap();
        let request = Request::decode(&frame).unwrap().unwrap();
        assert!(matches!(request, Request::Reboot { mac, .. } if mac == one), "{request:?}");
    }
}

/// On loopback, unicast only: discovery, a refused set (an invalid value,
/// error 3) and DHCP, against a device on 127.0.0.1 and a free port.
#[test]
fn unicast_on_loopback_reads_the_device_and_its_refusals() {
    use crate::util::ports::{Start, on_free_port, says_address_in_use};
    let dir = tempfile::tempdir().unwrap();
    let mac = "00:40:9D:31:41:5A";
    // The simulator binds the port it is told: one taken since it was chosen is tried again.
    let (_device, port) = on_free_port("the simulated ADDP device", |port| {
        let port = port.to_string();
        let mut command = Command::new(flashline_bin());
        // A server that insists on the ADDPv2 options: flashline's DVKT request carries them.
        let extra = ["--addp-port", &port, "--addp-require-options"];
        let ip = Ipv4Addr::LOCALHOST;
        match try_start_device(device_command(&mut command, dir.path(), mac, ip, "255.0.0.0", ip, &extra)) {
            Ok(device) => Start::Started((device, port)),
            Err(lines) if says_address_in_use(&lines) => Start::PortTaken(lines),
            Err(lines) => panic!("the simulated device did not answer:\n{lines}"),
        }
    });
    let flashline = |args: &[&str]| {
        let output = Command::new(flashline_bin())
            .env("FLASHLINE_ADDP_PASSWORD", "password")
            .args(args)
            .args(["--port", &port])
            .output_within(FLASHLINE);
        ended(&output)
    };
    let (code, stdout, stderr) =
        flashline(&["discover", "--address", "127.0.0.1", "--unicast-only", "--timeout", "500ms", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let found: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (found[0]["mac"].as_str(), found[0]["other_subnet"].as_bool()),
        (Some("00:40:9D:31:41:5A"), Some(false))
    );

    let (code, _, stderr) =
        flashline(&["addp", "set-ip", mac, "--ip", "0.0.0.0", "--mask", "255.0.0.0", "--address", "127.0.0.1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("invalid value"), "{stderr}");
    let (code, stdout, stderr) = flashline(&["addp", "dhcp", mac, "on", "--address", "127.0.0.1"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("DHCP accepted"), "{stdout}");
    let nv: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("00409D31415A.json")).unwrap()).unwrap();
    assert_eq!(nv["dhcp"], true, "written to NV memory");
}

/// `diagnose --mac` on a unit that does not answer at the address asked:
/// ADDP finds it elsewhere on the station's subnet (`wrong-address`) or on
/// another subnet (`wrong-subnet`), with its reply as evidence.
#[test]
fn diagnose_with_the_mac_finds_a_unit_with_a_wrong_address() {
    let Some(pair) = NetnsPair::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = Ipv4Addr::new(198, 19, 200, 7);
    add_address(&pair, &format!("{elsewhere}/24"));
    let near = "00:40:9D:00:00:1A";
    let far = "00:40:9D:00:00:1B";
    let _near = start_device(pair.in_dut(flashline_bin()), dir.path(), near, pair.dut_ip, MASK29, pair.dut_ip, &[]);
    let _far = start_device(pair.in_dut(flashline_bin()), dir.path(), far, elsewhere, "255.255.255.0", elsewhere, &[]);
    let diagnose = |mac: &str, json: bool| {
        let output = pair
            .in_station(flashline_bin())
            .args(["diagnose", &pair.absent_ip.to_string(), "--mac", mac, "--timeout", "1s", "--method", "connect"])
            .args(if json { &["--json"][..] } else { &[][..] })
            .output_within(FLASHLINE);
        ended(&output)
    };
    let (code, stdout, stderr) = diagnose(near, true);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["finding"]["code"], "wrong-address", "{report}");
    assert_eq!(report["addp"]["ip"], pair.dut_ip.to_string(), "{report}");
    assert!(report["finding"]["advice"][0].as_str().unwrap().contains("flashline addp set-ip 00:40:9D:00:00:1A"));

    let (code, stdout, stderr) = diagnose(far, false);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("finding: wrong-subnet"), "{stdout}");
    assert!(stdout.contains("address 198.19.200.7 / mask 255.255.255.0"), "{stdout}");
    assert!(stdout.contains("addp      00:40:9D:00:00:1B answered from 198.19.200.7"), "{stdout}");

    // The pipeline does the same with the inventory's `mac` when
    // wait_for_network times out.
    let profile = dir.path().join("wait.yaml");
    std::fs::write(
        &profile,
        "format: 1\nname: wait\nvariables:\n  mac: {description: the unit's MAC}\nnetwork:\n  ip: ${ip}\nsteps:\n  - wait_for_network:\n      timeout: 1s\n      method: connect\n      ports: [{port: 21}]\n",
    )
    .unwrap();
    let output = pair
        .in_station(flashline_bin())
        .arg("run")
        .arg(&profile)
        .args(["--json", "--set", &format!("ip={}", pair.absent_ip), "--set", &format!("mac={near}")])
        .output_within(FLASHLINE);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report["devices"][0]["finding"]["code"], "wrong-address", "{stdout}");

    // A MAC nobody has: the finding stays host-unreachable.
    let (code, stdout, _) = diagnose("00:40:9d:00:00:99", true);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((code, report["finding"]["code"].as_str()), (Some(1), Some("host-unreachable")), "{report}");
    assert!(report.get("addp").is_none(), "{report}");
}

/// The `addp_configure` step in place of the console dialog: the unit (no
/// serial cable) gets the inventory's address by its MAC, restarts, and
/// `wait_for_network` finds it there.
#[test]
fn the_addp_configure_step_moves_a_unit_without_a_serial_cable() {
    let Some(pair) = NetnsPair::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mac = "00:40:9D:31:41:60";
    let mut device = start_mobile_device(&pair, dir.path(), mac);
    let profile = crate::util::repo_root().join("profiles/netos-addp.yaml");
    let run = |password: &str| {
        let output = pair
            .in_station(flashline_bin())
            .env("ADDP_PASSWORD", password)
            .arg("run")
            .arg(&profile)
            .args(["--json", "--set", &format!("mac={mac}"), "--set", &format!("ip={}", pair.absent_ip)])
            .args(["--set", &format!("mask={MASK29}"), "--set", &format!("gateway={}", pair.station_ip)])
            .output_within(FLASHLINE);
        crate::util::first_device(&output)
    };
    let (code, unit, stdout, stderr) = run("not-the-root-pw");
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(unit["error"].as_str().unwrap().contains("authentication failure"), "{unit}");
    assert!(!stdout.contains("not-the-root-pw") && !stderr.contains("not-the-root-pw"), "a password shown: {stdout}");

    let (code, unit, stdout, stderr) = run("password");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(unit["steps"][0]["outcome"], "passed", "{unit}");
    let detail = unit["steps"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("took {} / {MASK29}", pair.absent_ip)) && detail.contains("restarting"),
        "{detail}"
    );
    assert_eq!(unit["steps"][1]["outcome"], "passed", "{unit}");
    device.line_matching(Duration::from_secs(10), |line| {
        line.contains(&format!("ADDP: answering on {}", pair.absent_ip))
    });
}
