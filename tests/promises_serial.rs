//! README's serial promises that had no test: the progress bar of `serial
//! send` and `ftp put` on a terminal (and none elsewhere), `serial tap
//! --for`, `run --port rfc2217://...` and an inventory `port` naming a
//! network serial server (through a real ser2net), and the profile options
//! `skip_if` (against the NET+OS simulator) and `start_command` (a boot
//! loader written here that starts lrzsz's `rx` only once it has the command).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flashline::sim::netos::NvMemory;
use serde_json::Value;

use crate::util::child::{Bounded, FLASHLINE, LineChild, die_with_test};
use crate::util::pty::PtyPair;
use crate::util::ser2net::{self, Accepter, Ser2net};
use crate::util::vsftpd::{self, Vsftpd};
use crate::util::{flashline, flashline_bin, have_program, require, text};

/// `flashline sim netos` on a PTY link; killed on drop.
struct Simulator {
    child: std::process::Child,
    link: PathBuf,
    nv: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn simulator(memory: Option<&NvMemory>, extra: &[&str]) -> Simulator {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyNETOS");
    let nv = dir.path().join("nv.json");
    if let Some(memory) = memory {
        std::fs::write(&nv, serde_json::to_vec(memory).unwrap()).unwrap();
    }
    let mut command = flashline();
    let child = die_with_test(&mut command)
        .args(["sim", "netos", "--link", link.to_str().unwrap(), "--nv", nv.to_str().unwrap(), "--exit-after", "90s"])
        .args(extra)
        .env("FLASHLINE_SIM_ROOT_PASSWORD", "password")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !link.exists() {
        assert!(Instant::now() < deadline, "the simulator made no link at {}", link.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    Simulator { child, link, nv, dir }
}

fn nv(sim: &Simulator) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&sim.nv).unwrap_or_default()).unwrap_or(Value::Null)
}

/// Runs `command` with stdout and stderr on a terminal (`script` gives it a
/// PTY) and returns everything the terminal showed.
fn on_a_terminal(command: &str) -> String {
    let output = Command::new("script")
        .args(["-qefc", command, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .output_within(FLASHLINE);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn quoted(path: &Path) -> String {
    format!("'{}'", path.display())
}

/// What the transfer bar draws: `[=====>   ] 12.00 KiB/64.00 KiB 30.00 KiB/s ETA 1s`.
fn has_transfer_bar(screen: &str) -> bool {
    let bar = regex::Regex::new(r"\[[=> ]{30}\] [0-9.]+ [KMG]?i?B/[0-9.]+ [KMG]?i?B [0-9.]+ [KMG]?i?B/s ETA").unwrap();
    bar.is_match(screen)
}

#[test]
fn serial_send_draws_a_progress_bar_on_a_terminal_and_plain_lines_elsewhere() {
    if !require(have_program("script"), "script (Debian package bsdutils)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.bin");
    crate::util::write_pattern_file(&image, 96 * 1024);
    let send = |sim: &Simulator| {
        format!(
            "{} serial send {} --port {} --baud 115200 --wait-for 'Starting serial recovery'",
            quoted(&flashline_bin()),
            quoted(&image),
            quoted(&sim.link)
        )
    };
    let sim = simulator(None, &["--recovery", "--c-interval", "200ms", "--cycle", "60s"]);
    let screen = on_a_terminal(&send(&sim));
    assert!(screen.contains("sent 98304 bytes"), "{screen}");
    assert!(has_transfer_bar(&screen), "no bar with bytes, rate and ETA on the terminal:\n{screen:?}");
    drop(sim);

    // Not a terminal: no bar, no cursor movement; a plain line instead.
    let sim = simulator(None, &["--recovery", "--c-interval", "200ms", "--cycle", "60s"]);
    let output = Command::new("sh").args(["-c", &send(&sim)]).env("TERM", "xterm").output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!has_transfer_bar(&stderr) && !stderr.contains('\x1b') && !stderr.contains("ETA"), "{stderr:?}");
    assert!(stderr.contains("sending image.bin (98304 bytes)"), "{stderr}");
}

#[test]
fn ftp_put_draws_a_progress_bar_on_a_terminal_and_plain_lines_elsewhere() {
    if !require(have_program("script"), "script (Debian package bsdutils)")
        || !require(vsftpd::unavailable_reason().is_none(), &vsftpd::unavailable_reason().unwrap_or_default())
    {
        return;
    }
    // 4 MiB at 4 MB/s: about a second, so the bar is drawn several times.
    let (server, up) = Vsftpd::anonymous_upload(0, &["anon_max_rate=4000000"]);
    let port = server.address.port();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.bin");
    crate::util::write_pattern_file(&image, 4 << 20);
    let put = |remote: &str| {
        format!(
            "FTP_PW=x@example.invalid {} ftp put {} --remote {remote} --host 127.0.0.1 --port {port} --user anonymous --password-env FTP_PW",
            quoted(&flashline_bin()),
            quoted(&image)
        )
    };
    let screen = on_a_terminal(&put("up/a.bin"));
    assert!(screen.contains("verified"), "{screen}");
    assert!(has_transfer_bar(&screen), "no bar with bytes, rate and ETA on the terminal:\n{screen:?}");
    assert_eq!(std::fs::metadata(up.join("a.bin")).unwrap().len(), 4 << 20);

    let output = Command::new("sh").args(["-c", &put("up/b.bin")]).env("TERM", "xterm").output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!has_transfer_bar(&stderr) && !stderr.contains('\x1b') && !stderr.contains("ETA"), "{stderr:?}");
    assert!(stdout.contains("verified"), "{stdout}");
}

#[test]
fn serial_tap_for_stops_on_its_own_after_the_duration() {
    let (a, b) = (PtyPair::new(), PtyPair::new());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tap.log");
    let started = Instant::now();
    let mut command = flashline();
    command.args(["serial", "tap"]).arg(a.device_path()).arg(b.device_path()).args(["--for", "2s", "--log"]).arg(&log);
    let mut tap = LineChild::spawn(&mut command);
    tap.line_matching(Duration::from_secs(20), |l| l.contains("relaying"));
    let mut to_b = a.controller.try_clone_native().unwrap();
    to_b.write_all(b"hello").unwrap();
    let output = tap.finish_within(Duration::from_secs(20));
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(15), "stopped after {took:?}");
    assert!(stderr.contains("relayed 5 bytes A>B and 0 bytes B>A"), "{stderr}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("A>B     5  hello"), "the record holds what was relayed");
}

/// The sim-netos console step alone (no serial load, no network).
const CONSOLE_ONLY: &str = r#"format: 1
name: console-only
serial:
  baud: 9600
network:
  dhcp: false
  ip: ${ip}
  mask: ${mask}
  gateway: ${gateway}
steps:
  - configure_network:
      SKIP_IF
      interrupt:
        expect: Press any key in \d+ seconds
        send: " "
        no_line_ending: true
      dialog:
        - expect: Press A to Accept the settings, or M to Modify\?
          send: "M"
          no_line_ending: true
        - expect: Enter the root password
          send: password
          secret: true
          optional: true
        - expect: Reset configuration to default values
          send: "N"
          optional: true
        - expect: (?i)obtain IP settings
          send: "N"
        - expect: 'IP address +\['
          send: ${ip}
        - expect: 'Subnet mask +\['
          send: ${mask}
        - expect: 'Gateway address +\['
          send: ${gateway}
      keep_defaults: true
      done: 'Saving the changes in NV memory\.*\s*Done'
      after_done:
        expect: Press A to Accept the settings, or M to Modify\?
        send: "A"
        no_line_ending: true
      reject:
        - (?i)invalid
      timeout: 5s
"#;

fn console_profile(dir: &Path, skip_if: Option<&str>) -> PathBuf {
    let path = dir.join("console-only.yaml");
    let line = skip_if.map(|s| format!("skip_if: '{s}'")).unwrap_or_default();
    std::fs::write(&path, CONSOLE_ONLY.replace("SKIP_IF", &line)).unwrap();
    path
}

const ADDRESS: [&str; 6] = ["--set", "ip=10.0.0.5", "--set", "mask=255.255.255.0", "--set", "gateway=10.0.0.1"];

#[test]
fn run_and_batch_reach_the_console_through_ser2net_by_a_remote_port_name() {
    if !require(ser2net::unavailable_reason().is_none(), "ser2net is not installed: apt-get install ser2net") {
        return;
    }
    for how in ["run", "batch"] {
        // The port's purge on start drops what was printed before flashline
        // connected: the first boot waits for it.
        let sim = simulator(None, &["--power-on-delay", "3s", "--key-window", "3s", "--cycle", "1s"]);
        let server = Ser2net::start(&sim.link, Accepter::Rfc2217);
        let profile = console_profile(sim.dir.path(), None);
        let port = format!("rfc2217://127.0.0.1:{}", server.port);
        let mut command = flashline();
        if how == "run" {
            command.args(["run", profile.to_str().unwrap(), "--port", &port]).args(ADDRESS).arg("--json");
        } else {
            let inventory = sim.dir.path().join("line.csv");
            std::fs::write(
                &inventory,
                format!(
                    "name,profile,port,ip,mask,gateway\nunit-01,{},{port},10.0.0.5,255.255.255.0,10.0.0.1\n",
                    profile.display()
                ),
            )
            .unwrap();
            command.args(["batch", inventory.to_str().unwrap(), "--json"]);
        }
        let output = command.output_within(FLASHLINE);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{how}: {stdout}\n{stderr}\nser2net:\n{}", server.log());
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let device = &report["devices"][0];
        assert_eq!(device["outcome"], "passed", "{how}: {device:#}");
        assert_eq!(device["port"], port.as_str(), "{how}: {device:#}");
        assert_eq!(device["steps"][0]["kind"], "configure_network", "{how}: {device:#}");
        let nv = nv(&sim);
        assert_eq!((nv["dhcp"].as_bool(), nv["ip"].as_str()), (Some(false), Some("10.0.0.5")), "{how}: {nv}");
    }
}

#[test]
fn skip_if_skips_the_dialog_when_the_console_shows_the_settings_and_not_otherwise() {
    // The banner prints `IP address on LAN is A.B.C.D` before the key window.
    let skip_if = r"IP address on LAN is ${ip}\b";
    for (held, skipped) in [("10.0.0.5", true), ("10.0.0.50", false)] {
        let memory = NvMemory { dhcp: false, ip: held.parse().unwrap(), ..NvMemory::default() };
        let sim = simulator(Some(&memory), &["--key-window", "3s", "--cycle", "3s"]);
        let profile = console_profile(sim.dir.path(), Some(skip_if));
        let transcript = sim.dir.path().join("transcript.txt");
        let output = flashline()
            .args(["serial", "dialog", "--port", sim.link.to_str().unwrap(), "--profile", profile.to_str().unwrap()])
            .args(ADDRESS)
            .args(["--transcript", transcript.to_str().unwrap()])
            .output_within(FLASHLINE);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{held}: {stdout}\n{stderr}");
        let transcript = std::fs::read_to_string(&transcript).unwrap();
        let sent = transcript.lines().filter(|l| l.contains("] > ") || l.starts_with("> ")).count();
        if skipped {
            assert!(stdout.contains("the device already has these settings; dialog skipped"), "{stdout}");
            assert!(transcript.contains("skip_if matched"), "{transcript}");
            assert_eq!(sent, 0, "nothing typed on a skipped dialog: {transcript}");
        } else {
            assert!(stdout.contains("settings saved"), "{held}: {stdout}");
            // `10.0.0.5` inside `10.0.0.50` does not match: the value is escaped
            // and \b ends it.
            assert!(!transcript.contains("skip_if matched"), "{transcript}");
            assert!(sent > 0, "{transcript}");
        }
        // NV memory holds the wanted address either way.
        assert_eq!(nv(&sim)["ip"], "10.0.0.5", "{held}");
    }
}

#[test]
fn start_command_is_sent_before_the_transfer() {
    if !require(["rx"].iter().all(|p| have_program(p)), "lrzsz (rx) is not installed: apt-get install lrzsz") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("boot.bin");
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 37 % 251) as u8).collect();
    std::fs::write(&image, &data).unwrap();
    let profile = dir.path().join("loader.yaml");
    std::fs::write(
        &profile,
        "format: 1\nname: loader\nsteps:\n  - load_image:\n      file: boot.bin\n      protocol: xmodem\n      wait_for: 'Boot> '\n      start_command: xmodem go\n      wait_timeout: 20s\n",
    )
    .unwrap();
    let (controller, device) = serialport::TTYPort::pair().unwrap();
    let device_path = serialport::SerialPort::name(&device).unwrap();
    // SAFETY: `into_raw_fd` hands over sole ownership of an open descriptor.
    let mut controller = unsafe { File::from_raw_fd(controller.into_raw_fd()) };
    let run = LineChild::spawn(flashline().args(["run", profile.to_str().unwrap(), "--port", &device_path, "--json"]));
    // The boot loader: a prompt, then nothing until the command comes.
    std::thread::sleep(Duration::from_millis(500));
    controller.write_all(b"\r\nBoot> ").unwrap();
    let reader = controller.try_clone().unwrap();
    let heard = std::thread::spawn(move || {
        let mut reader = reader;
        let mut heard = Vec::new();
        let mut byte = [0u8; 1];
        let deadline = Instant::now() + Duration::from_secs(20);
        while !heard.ends_with(b"xmodem go\r") && Instant::now() < deadline && reader.read(&mut byte).unwrap_or(0) == 1
        {
            heard.push(byte[0]);
        }
        heard
    })
    .join()
    .unwrap();
    assert_eq!(heard, b"xmodem go\r", "the start command, alone, before anything else");
    // Only now the receiver starts: lrzsz's rx on the boot loader's side.
    let stderr = File::create(dir.path().join("rx.stderr")).unwrap();
    let mut rx = Command::new("rx");
    let mut rx = die_with_test(&mut rx)
        .args(["-c", "received.bin"])
        .current_dir(dir.path())
        .stdin(Stdio::from(controller.try_clone().unwrap()))
        .stdout(Stdio::from(controller.try_clone().unwrap()))
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap();
    let output = run.finish_within(Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = rx.kill();
    let _ = rx.wait();
    let (stdout, stderr) = text(&output);
    let got = std::fs::read(dir.path().join("received.bin")).unwrap_or_default();
    let mut want = data.clone();
    want.resize(3072, 0x1A);
    assert!(got == want, "rx got {} bytes, want {}:\n{stdout}\n{stderr}", got.len(), want.len());
    // rx may exit before our sender reads its last ACK (it flushes its
    // terminal on exit): the file is exact either way.
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let step = &report["devices"][0]["steps"][0];
    assert!(step["outcome"] == "passed" || step["detail"].as_str().is_some_and(|d| d.contains("final")), "{report:#}");
    drop(device);
}
