//! Serial over the network: our RFC 2217 and raw TCP clients through a real
//! ser2net 4 in front of a PTY: XMODEM and YMODEM to lrzsz on the PTY's other
//! end, byte-exact with every byte value (0xFF included, which telnet
//! escapes); a baud change seen in the PTY's termios; the console dialog
//! against the NET+OS simulator; and the errors of a missing server or a bad
//! name.

use std::fs::File;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use flashline::profile::{SerialSettings, TransferProtocol};
use flashline::progress::Silent;
use flashline::serial::names::DevRoot;
use flashline::serial::port::{self, Port};
use flashline::serial::remote::RemotePort;
use flashline::serial::transfer::{self, TransferRunError};
use flashline::serial::xmodem::{self, Outgoing, Sender, SenderOptions, TransferError};

use crate::serial::ChildGuard;
use crate::util::child::{Bounded, FLASHLINE, die_with_test};
use crate::util::ser2net::{self, Accepter, Ser2net};
use crate::util::{have_program, require};

fn available() -> bool {
    let lrzsz = ["rx", "rb"].iter().all(|p| have_program(p));
    require(lrzsz, "lrzsz (rx, rb) is not installed: apt-get install lrzsz")
        && require(ser2net::unavailable_reason().is_none(), "ser2net is not installed: apt-get install ser2net")
}

/// A PTY whose device end ser2net opens by path; the test keeps the
/// controller end (for lrzsz, and to read the termios).
struct Line {
    controller: File,
    path: PathBuf,
    // Held open so the line stays up between ser2net's sessions.
    _device: serialport::TTYPort,
}

fn line() -> Line {
    let (controller, device) = serialport::TTYPort::pair().expect("open a PTY pair");
    let path = PathBuf::from(serialport::SerialPort::name(&device).expect("a PTY has a name"));
    // SAFETY: `into_raw_fd` hands over sole ownership of an open descriptor.
    let controller = unsafe { File::from_raw_fd(controller.into_raw_fd()) };
    Line { controller, path, _device: device }
}

/// Every byte value, runs of 0xFF (IAC, doubled on a telnet wire) and
/// IAC-like sequences (IAC SE, IAC IAC IAC) that must pass as data.
fn all_byte_values() -> Vec<u8> {
    let mut data: Vec<u8> =
        (0..40u32).flat_map(|round| (0..=255u8).map(move |b| b.wrapping_add(round as u8))).collect();
    data.extend_from_slice(&[0xFF; 300]);
    data.extend_from_slice(&[0xFF, 0xF0, 0xFF, 0xFA, 0x2C, 0x01, 0xFF, 0xFF, 0xFF, 0x0D, 0x00, 0x0A]);
    data.extend(0..=255u8);
    data
}

/// Starts `program` (rx or rb) with stdin and stdout on the PTY's controller.
fn lrzsz(program: &str, args: &[&str], line: &Line, dir: &Path) -> ChildGuard {
    let stderr = File::create(dir.join(format!("{program}.stderr"))).unwrap();
    let mut command = Command::new(program);
    let child = die_with_test(&mut command)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::from(line.controller.try_clone().unwrap()))
        .stdout(Stdio::from(line.controller.try_clone().unwrap()))
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    ChildGuard(child)
}

async fn open(name: &str, baud: u32) -> Port {
    let settings = SerialSettings { baud, ..SerialSettings::default() };
    port::open_named(name, &settings, &DevRoot::default()).await.unwrap_or_else(|e| panic!("open {name}: {e}"))
}

/// One transfer through ser2net to lrzsz: lrzsz's file must be exact; our
/// sender reports success or, as over a bare PTY, a lost final ACK (lrzsz
/// flushes its terminal on exit), nothing else.
async fn send_through(accepter: Accepter, protocol: TransferProtocol) {
    let line = line();
    let server = Ser2net::start(&line.path, accepter);
    let dir = tempfile::tempdir().unwrap();
    let (program, args): (&str, &[&str]) =
        if protocol == TransferProtocol::Ymodem { ("rb", &[]) } else { ("rx", &["-c", "received.bin"]) };
    let scheme = if accepter == Accepter::Rfc2217 { "rfc2217" } else { "tcp" };
    let mut port = open(&format!("{scheme}://127.0.0.1:{}", server.port), 115_200).await;
    // lrzsz starts once the port is open: the purge on start would drop a
    // `C` sent before, and rx repeats it only after 10 s.
    let mut child = lrzsz(program, args, &line, dir.path());
    let data = all_byte_values();
    let mut options = SenderOptions::for_baud(protocol, 115_200);
    options.start_timeout = Duration::from_secs(30);
    let file = Outgoing { name: "sent.bin".into(), data: data.clone(), mtime: 1_700_000_000 };
    let sender = Sender::new(file, options, std::time::Instant::now());
    let sent = tokio::time::timeout(
        Duration::from_secs(240),
        transfer::send(&mut port, sender, "sent.bin", Vec::new(), &Silent),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} through ser2net: the transfer hung\n{}", server.log()));
    let status = child.exit(Duration::from_secs(10)).await;
    let log = std::fs::read_to_string(dir.path().join(format!("{program}.stderr"))).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "{program}: {status:?}\n{log}\nser2net:\n{}", server.log());
    let name = if program == "rx" { "received.bin" } else { "sent.bin" };
    let got = std::fs::read(dir.path().join(name)).unwrap_or_else(|e| panic!("{program}: {e}\n{log}"));
    let mut want = data.clone();
    if protocol != TransferProtocol::Ymodem {
        want.resize(xmodem::padded_len(data.len(), protocol), xmodem::SUB);
    }
    assert!(got == want, "{program} via {scheme}: {} bytes sent, {} received, contents differ", data.len(), got.len());
    match sent {
        Ok(report) => assert_eq!(report.stats.acked_bytes, data.len() as u64),
        Err(TransferRunError::Protocol(error @ TransferError::FinalAckMissing { .. })) => {
            eprintln!("{program} via {scheme}: lost final ACK (lrzsz's exit flush): {error}")
        }
        Err(error) => panic!("{program} via {scheme}: lrzsz has the file but our sender says `{error}`\n{log}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_net_xmodem_through_ser2net_rfc2217_to_lrzsz_is_byte_exact() {
    if available() {
        send_through(Accepter::Rfc2217, TransferProtocol::Xmodem).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_net_ymodem_through_ser2net_rfc2217_to_lrzsz_is_byte_exact() {
    if available() {
        send_through(Accepter::Rfc2217, TransferProtocol::Ymodem).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_net_xmodem_1k_through_ser2net_raw_tcp_to_lrzsz_is_byte_exact() {
    if available() {
        send_through(Accepter::RawTcp, TransferProtocol::Xmodem1k).await;
    }
}

/// The line settings we ask for over RFC 2217 are what ser2net sets: it
/// acknowledges each one, and the baud rate and stop bits are read back
/// from the PTY's termios (a PTY keeps no data size or parity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_net_baud_change_reaches_the_pty_termios() {
    use flashline::profile::Parity;
    use nix::sys::termios::{BaudRate, ControlFlags, cfgetospeed, tcgetattr};
    if !available() {
        return;
    }
    let line = line();
    let server = Ser2net::start(&line.path, Accepter::Rfc2217);
    let name = format!("rfc2217://127.0.0.1:{}", server.port);
    let eight_n_one = SerialSettings { baud: 57_600, ..SerialSettings::default() };
    let seven_e_two = SerialSettings { baud: 19_200, data_bits: 7, parity: Parity::Even, stop_bits: 2, ..eight_n_one };
    for (settings, want) in [(eight_n_one, BaudRate::B57600), (seven_e_two, BaudRate::B19200)] {
        let port = port::open_named(&name, &settings, &DevRoot::default()).await.expect("open");
        let Port::Remote(RemotePort::Rfc2217(stream)) = &port else { panic!("{port:?}") };
        let acknowledged = stream.acknowledged().clone();
        assert!(acknowledged.com_port, "{acknowledged:?}\n{}", server.log());
        assert_eq!(acknowledged.baud, Some(settings.baud), "{acknowledged:?}");
        let parity = if settings.parity == Parity::Even { 3 } else { 1 };
        let asked = (Some(settings.data_bits), Some(parity), Some(settings.stop_bits));
        assert_eq!((acknowledged.data_size, acknowledged.parity, acknowledged.stop_size), asked);
        // On Linux a PTY controller's termios calls act on its device end.
        let termios = tcgetattr(&line.controller).expect("tcgetattr on the PTY");
        assert_eq!(cfgetospeed(&termios), want, "{settings:?}\n{}", server.log());
        let flags = termios.control_flags;
        assert_eq!(flags.contains(ControlFlags::CSTOPB), settings.stop_bits == 2, "{flags:?}");
        // A Linux PTY keeps no data size or parity: its set_termios forces
        // CS8 and clears PARENB (drivers/tty/pty.c). Those two are checked
        // by ser2net's acknowledgments above, not here.
        assert_eq!(flags & ControlFlags::CSIZE, ControlFlags::CS8, "{flags:?}");
        assert!(!flags.contains(ControlFlags::PARENB), "{flags:?}");
        drop(port);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The console dialog against the NET+OS simulator, through ser2net.
#[test]
fn serial_net_dialog_against_the_simulator_through_ser2net() {
    if !require(ser2net::unavailable_reason().is_none(), "ser2net is not installed: apt-get install ser2net") {
        return;
    }
    // The port's purge on start drops what the simulator printed before
    // flashline connected: the first boot waits until then, and a missed
    // window comes back within the dialog's 5 s wait.
    let sim = crate::serial::start_simulator(&["--power-on-delay", "3s", "--key-window", "3s", "--cycle", "1s"]);
    let server = Ser2net::start(&sim.link, Accepter::Rfc2217);
    let profile = crate::util::repo_root().join("profiles/sim-netos.yaml");
    let port = format!("rfc2217://127.0.0.1:{}", server.port);
    let output = crate::util::flashline()
        .args(["serial", "dialog", "--port", &port, "--profile", profile.to_str().unwrap()])
        .args(["--set", "ip=10.0.0.5", "--set", "mask=255.255.255.0", "--set", "gateway=10.0.0.1"])
        .args(["--set", "rom_image=sim-netos.yaml", "--set", "app_image=sim-netos.yaml"])
        .env("FLASHLINE_SIM_ROOT_PASSWORD", "password")
        .env("FLASHLINE_SIM_FTP_PASSWORD", "unused")
        .output_within(FLASHLINE);
    let (stdout, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}\nser2net:\n{}", server.log());
    assert!(stdout.contains("settings saved"), "{stdout}");
    let nv: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sim.nv).unwrap()).unwrap();
    assert_eq!((nv["dhcp"].as_bool(), nv["ip"].as_str()), (Some(false), Some("10.0.0.5")));
}

/// No server on the port: environment (exit code 3), at once; a malformed
/// network name: bad input (exit code 2).
#[test]
fn serial_net_missing_server_and_bad_names() {
    let closed = crate::util::ports::closed_tcp_port();
    let free = closed.port;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("rom.bin");
    std::fs::write(&image, b"boot loader").unwrap();
    let send = |port: &str| {
        crate::util::flashline()
            .args(["serial", "send", image.to_str().unwrap(), "--port", port])
            .output_within(FLASHLINE)
    };
    let started = std::time::Instant::now();
    let output = send(&format!("rfc2217://127.0.0.1:{free}"));
    let (_, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("cannot connect to rfc2217://127.0.0.1:{free}: ")), "{stderr}");
    assert!(stderr.contains("help: check the serial server's address"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let output = send("tcp://127.0.0.1");
    let (_, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`tcp://127.0.0.1` is not a port name: the port is missing (HOST:PORT)"), "{stderr}");
}
