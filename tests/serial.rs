//! Serial: our XMODEM/YMODEM against lrzsz over PTY pairs, noisy transfers
//! through the link emulator, the console dialog against the NET+OS
//! simulator, and the `serial` subcommands.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flashline::profile::TransferProtocol;
use flashline::progress::Silent;
use flashline::serial::transfer;
use flashline::serial::xmodem::{self, Outgoing, ReceiverOptions, Sender, SenderOptions};

use crate::util::child::{Bounded, FLASHLINE};
use crate::util::{have_program, require};

/// Kills and reaps a child process when the test ends, pass or fail.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ChildGuard {
    /// Waits up to `limit` for the child to exit; its status, or None.
    async fn exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

fn lrzsz_available() -> bool {
    require(
        ["rx", "rb", "sx", "sb"].iter().all(|p| have_program(p)),
        "lrzsz (rx, rb, sx, sb) is not installed: apt-get install lrzsz",
    )
}

const SIZES: [usize; 8] = [0, 1, 127, 128, 1023, 1024, 1025, 1 << 20];

fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(len as u32) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// A PTY pair for an lrzsz program: the path of its end, and the controller
/// end, whose reads and writes our side gets through [`relay`].
struct LrzszPty {
    // Dropping the device end makes a blocked read of the controller fail
    // with EIO, which ends the relay thread.
    _device: serialport::TTYPort,
    path: PathBuf,
    controller: File,
}

fn pty() -> LrzszPty {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let (controller, device) = serialport::TTYPort::pair().expect("open a PTY pair");
    let path = PathBuf::from(serialport::SerialPort::name(&device).expect("a PTY has a name"));
    // SAFETY: `into_raw_fd` hands over sole ownership of an open descriptor.
    let controller = unsafe { File::from_raw_fd(controller.into_raw_fd()) };
    LrzszPty { _device: device, path, controller }
}

/// Our end of a line to an lrzsz program, as an async stream: two threads do
/// blocking reads of `from` and writes to `to`, so a byte the program writes is
/// taken the moment it exists (see [`send_once_to_lrzsz`] for why that matters).
fn relay(
    mut from: impl std::io::Read + Send + 'static,
    mut to: impl std::io::Write + Send + 'static,
) -> tokio::io::DuplexStream {
    let (ours, relay) = tokio::io::duplex(1 << 16);
    let (mut relay_read, mut relay_write) = tokio::io::split(relay);
    let handle = tokio::runtime::Handle::current();
    let reader_handle = handle.clone();
    std::thread::spawn(move || {
        use tokio::io::AsyncWriteExt;
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if reader_handle.block_on(relay_write.write_all(&buf[..n])).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        // Ends when our side of the duplex is dropped (read returns 0).
        while let Ok(n @ 1..) = handle.block_on(relay_read.read(&mut buf)) {
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    ours
}

/// Starts an lrzsz program with its stdin and stdout on the PTY at `tty`.
/// With `stdout_to_pipe`, its output goes to a pipe instead (see
/// [`send_once_to_lrzsz`]).
fn spawn_lrzsz(program: &str, args: &[&str], tty: &Path, dir: &Path, stdout_to_pipe: bool) -> ChildGuard {
    let open = || OpenOptions::new().read(true).write(true).open(tty).expect("open the PTY");
    let stderr = File::create(dir.join(format!("{program}.stderr"))).expect("stderr file");
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::from(open()))
        .stdout(if stdout_to_pipe { Stdio::piped() } else { Stdio::from(open()) })
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    ChildGuard(child)
}

fn lrzsz_log(program: &str, dir: &Path) -> String {
    std::fs::read_to_string(dir.join(format!("{program}.stderr"))).unwrap_or_default()
}

/// What an XMODEM receiver keeps: the file padded with SUB to whole blocks.
fn padded(data: &[u8], protocol: TransferProtocol) -> Vec<u8> {
    let mut padded = data.to_vec();
    padded.resize(xmodem::padded_len(data.len(), protocol), xmodem::SUB);
    padded
}

/// Our sender to an lrzsz receiver, every size.
async fn send_to_lrzsz(protocol: TransferProtocol, program: &str, args: &[&str]) {
    for (index, &len) in SIZES.iter().enumerate() {
        send_once_to_lrzsz(protocol, program, args, &payload(len, index as u32)).await;
    }
}

/// One transfer from our sender to an lrzsz receiver reading from a PTY.
///
/// The receiver's output goes to a pipe, not back through the PTY: lrzsz
/// writes its last ACK and half a millisecond later calls
/// `tcflush(TCIOFLUSH)` on its terminal on the way out, which on a PTY
/// discards output the kernel has not yet moved to the controller side, so
/// the last ACK was lost in about half the runs on a busy machine (a real
/// UART would drop it the same way). The pipe keeps every byte lrzsz writes;
/// its input, mode changes and purges stay on the PTY.
async fn send_once_to_lrzsz(protocol: TransferProtocol, program: &str, args: &[&str], data: &[u8]) {
    let len = data.len();
    let dir = tempfile::tempdir().unwrap();
    let line = pty();
    let mut full_args: Vec<&str> = args.to_vec();
    if program == "rx" {
        full_args.push("received.bin");
    }
    let mut child = spawn_lrzsz(program, &full_args, &line.path, dir.path(), true);
    let output = child.0.stdout.take().expect("piped stdout");
    let mut ours = relay(output, line.controller.try_clone().expect("clone the PTY controller"));
    let file = Outgoing { name: "sent.bin".into(), data: data.to_vec(), mtime: 1_700_000_000 };
    let mut options = SenderOptions::for_baud(protocol, 115_200);
    options.start_timeout = Duration::from_secs(10);
    let sender = Sender::new(file, options, std::time::Instant::now());
    let sent = tokio::time::timeout(
        // lrzsz's input purges cost timeouts and retransmissions: a 1 MiB
        // transfer takes 20-75 s alone and more on a busy 2-core runner.
        Duration::from_secs(480),
        transfer::send(&mut ours, sender, "sent.bin", Vec::new(), &Silent),
    )
    .await
    .expect("the transfer is bounded");
    let status = child.exit(Duration::from_secs(10)).await;
    let log = lrzsz_log(program, dir.path());
    let report = sent.unwrap_or_else(|e| panic!("{program} {args:?}, {len} bytes: {e}\n{log}"));
    assert!(status.is_some_and(|s| s.success()), "{program} {len} bytes: {status:?}\n{log}");
    let name = if program == "rx" { "received.bin" } else { "sent.bin" };
    let got = std::fs::read(dir.path().join(name)).unwrap_or_else(|e| panic!("{program} {len}: {e}\n{log}"));
    let want = if protocol == TransferProtocol::Ymodem { data.to_vec() } else { padded(data, protocol) };
    assert!(got == want, "{program} {args:?}: {len} bytes sent, {} received, contents differ", got.len());
    assert_eq!(report.stats.acked_bytes, len as u64);
    assert_eq!(report.stats.checksum_mode, !args.contains(&"-c") && program == "rx", "{program} {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_xmodem_crc_to_lrzsz_rx() {
    if lrzsz_available() {
        send_to_lrzsz(TransferProtocol::Xmodem, "rx", &["-c"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_xmodem_checksum_fallback_to_lrzsz_rx() {
    if lrzsz_available() {
        // Plain `rx` asks with NAK: the sender falls back to the 8-bit checksum.
        send_to_lrzsz(TransferProtocol::Xmodem, "rx", &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_xmodem_1k_to_lrzsz_rx() {
    if lrzsz_available() {
        send_to_lrzsz(TransferProtocol::Xmodem1k, "rx", &["-c"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_ymodem_to_lrzsz_rb() {
    if lrzsz_available() {
        send_to_lrzsz(TransferProtocol::Ymodem, "rb", &[]).await;
    }
}

/// An lrzsz sender to our receiver, every size.
async fn receive_from_lrzsz(program: &str, args: &[&str], ymodem: bool, block: TransferProtocol) {
    for (index, &len) in SIZES.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(len, 100 + index as u32);
        std::fs::write(dir.path().join("image.bin"), &data).unwrap();
        let line = pty();
        let mut full_args: Vec<&str> = args.to_vec();
        full_args.push("image.bin");
        let mut child = spawn_lrzsz(program, &full_args, &line.path, dir.path(), false);
        let mut ours = relay(line.controller.try_clone().unwrap(), line.controller.try_clone().unwrap());
        let options = ReceiverOptions::for_baud(ymodem, 115_200);
        let received = tokio::time::timeout(
            // lrzsz's input purges cost timeouts and retransmissions: a 1 MiB
            // transfer takes 20-75 s alone and more on a busy 2-core runner.
            Duration::from_secs(480),
            transfer::receive(&mut ours, options, Duration::from_millis(100)),
        )
        .await
        .expect("the transfer is bounded");
        let status = child.exit(Duration::from_secs(10)).await;
        let log = lrzsz_log(program, dir.path());
        let report = received.unwrap_or_else(|e| panic!("{program} {args:?}, {len} bytes: {e}\n{log}"));
        assert!(status.is_some_and(|s| s.success()), "{program} {len} bytes: {status:?}\n{log}");
        assert_eq!(report.files.len(), 1, "{program} {len}");
        let file = &report.files[0];
        if ymodem {
            assert_eq!(file.name.as_deref(), Some("image.bin"));
            assert_eq!(file.declared_size, Some(len as u64));
            assert!(file.data == data, "{program}: {len} bytes sent, {} received, contents differ", file.data.len());
        } else {
            // lrzsz pads like we do, except that it sends a 1K block only when
            // a whole 1K remains: compare the data and the SUB padding.
            assert!(file.data.len() >= len && file.data.len() % 128 == 0, "{program} {len}: {}", file.data.len());
            assert!(file.data[..len] == data[..], "{program} {args:?} {len}: contents differ");
            assert!(file.data[len..].iter().all(|&b| b == xmodem::SUB), "{program} {len}: padding is SUB");
            let _ = block;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_lrzsz_sx_to_our_receiver() {
    if lrzsz_available() {
        receive_from_lrzsz("sx", &[], false, TransferProtocol::Xmodem).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_lrzsz_sx_1k_to_our_receiver() {
    if lrzsz_available() {
        receive_from_lrzsz("sx", &["-k"], false, TransferProtocol::Xmodem1k).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_lrzsz_sb_to_our_receiver() {
    if lrzsz_available() {
        receive_from_lrzsz("sb", &[], true, TransferProtocol::Ymodem).await;
        receive_from_lrzsz("sb", &["-k"], true, TransferProtocol::Ymodem).await;
    }
}

/// Noisy links: every transfer ends byte-exact or with a clear error on
/// both sides, never with different bytes reported as success. 120 seeded
/// transfers, all three protocols, with paused time (pacing costs nothing).
#[tokio::test(start_paused = true)]
async fn serial_noisy_links_never_corrupt_silently() {
    use flashline::sim::link::{self, Direction, LinkConfig};
    let protocols = [TransferProtocol::Xmodem, TransferProtocol::Xmodem1k, TransferProtocol::Ymodem];
    let (mut exact, mut aborted, mut retransmissions) = (0, 0, 0u64);
    let mut corrupted_bytes = 0u64;
    for seed in 0..120u64 {
        let protocol = protocols[seed as usize % 3];
        let mut config = LinkConfig::clean(115_200, Duration::from_millis(1 + seed % 16));
        // Roughly one damaged block in ten, some lost bytes, a noisy reply path.
        let noise = Direction {
            latency: config.a_to_b.latency,
            bit_error_rate: 2e-5 * (1 + seed % 4) as f64,
            drop_rate: 1e-5 * (seed % 3) as f64,
        };
        config.a_to_b = noise;
        config.b_to_a = Direction { bit_error_rate: noise.bit_error_rate * 20.0, ..noise };
        config.seed = seed;
        let (mut ours, mut theirs, stats) = link::link(config);
        let data = payload(4096 + (seed as usize * 37) % 3000, seed as u32);
        let file = Outgoing { name: format!("noisy-{seed}.bin"), data: data.clone(), mtime: seed };
        // tokio's clock: with paused time it runs ahead of the system's.
        let sender =
            Sender::new(file, SenderOptions::for_baud(protocol, 115_200), tokio::time::Instant::now().into_std());
        let receiving = tokio::spawn(async move {
            let options = ReceiverOptions::for_baud(protocol == TransferProtocol::Ymodem, 115_200);
            transfer::receive(&mut theirs, options, Duration::from_millis(500)).await
        });
        let sent = tokio::time::timeout(
            Duration::from_secs(600),
            transfer::send(&mut ours, sender, "noisy", Vec::new(), &Silent),
        )
        .await
        .expect("bounded");
        drop(ours);
        let received = tokio::time::timeout(Duration::from_secs(600), receiving).await.expect("bounded").unwrap();
        let link_stats = *stats.lock().unwrap();
        corrupted_bytes += link_stats.a_to_b.corrupted + link_stats.b_to_a.corrupted + link_stats.a_to_b.dropped;
        match (&sent, &received) {
            (Ok(report), Ok(got)) => {
                let got = &got.files[0].data;
                let want = if protocol == TransferProtocol::Ymodem { data.clone() } else { padded(&data, protocol) };
                assert!(*got == want, "seed {seed} {protocol:?}: both sides report success but the data differ");
                retransmissions += u64::from(report.stats.retransmissions);
                exact += 1;
            }
            (Err(error), _) | (_, Err(error)) => {
                // A clear abort: an error naming what failed; never a
                // receiver that claims a file the sender did not finish.
                // Both sides' view: a sender that saw the line close names
                // the receiver's reason here.
                let sender_view = sent.as_ref().err().map_or("ok".to_string(), |e| e.to_string());
                let receiver_view = received.as_ref().err().map_or("ok".to_string(), |e| e.to_string());
                let text = format!("sender: {sender_view}; receiver: {receiver_view}");
                assert!(!error.to_string().is_empty());
                if let Ok(got) = &received {
                    let got = &got.files[0].data;
                    assert!(
                        got[..data.len().min(got.len())] == data[..data.len().min(got.len())],
                        "seed {seed}: partial data differ"
                    );
                }
                eprintln!("seed {seed} {protocol:?}: aborted: {text}");
                aborted += 1;
            }
        }
    }
    eprintln!(
        "noisy transfers: {exact} byte-exact, {aborted} aborted, {retransmissions} retransmissions, {corrupted_bytes} bytes damaged on the line"
    );
    assert_eq!(exact + aborted, 120);
    assert!(retransmissions > 50, "the noise must actually hit blocks: {retransmissions}");
    assert!(exact >= 100, "most noisy transfers recover: {exact} of 120");
}

/// A running `flashline sim netos` on a PTY, killed when dropped.
struct Simulator {
    child: ChildGuard,
    link: PathBuf,
    nv: PathBuf,
    _dir: tempfile::TempDir,
}

fn start_simulator(extra: &[&str]) -> Simulator {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyNETOS");
    let nv = dir.path().join("nv.json");
    let child = crate::util::flashline()
        .args(["sim", "netos", "--link", link.to_str().unwrap(), "--nv", nv.to_str().unwrap(), "--exit-after", "60s"])
        .args(extra)
        .env_remove("FLASHLINE_SIM_ROOT_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start flashline sim netos");
    let child = ChildGuard(child);
    for _ in 0..500 {
        if link.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(link.exists(), "the simulator made no link at {}", link.display());
    Simulator { child, link, nv, _dir: dir }
}

fn dialog(sim: &Simulator, profile: &Path, password: &str, extra: &[&str]) -> std::process::Output {
    let mut command = crate::util::flashline();
    command
        .args(["serial", "dialog", "--port", sim.link.to_str().unwrap(), "--profile", profile.to_str().unwrap()])
        .args(["--set", "ip=10.0.0.5", "--set", "mask=255.255.255.0", "--set", "gateway=10.0.0.1"])
        .args(["--set", "rom_image=sim-netos.yaml", "--set", "app_image=sim-netos.yaml"])
        .args(extra)
        .env("FLASHLINE_SIM_ROOT_PASSWORD", password)
        .env("FLASHLINE_SIM_FTP_PASSWORD", "unused");
    command.output_within(FLASHLINE)
}

#[test]
fn serial_dialog_sets_a_static_address_in_nv_memory() {
    let sim = start_simulator(&["--key-window", "2s", "--cycle", "2s"]);
    let profile = crate::util::repo_root().join("profiles/sim-netos.yaml");
    let transcript = sim._dir.path().join("transcript.txt");
    let output = dialog(&sim, &profile, "Netsilicon", &["--transcript", transcript.to_str().unwrap()]);
    let (stdout, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("settings saved"), "{stdout}");
    let nv: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sim.nv).unwrap()).unwrap();
    assert_eq!(nv["dhcp"], false);
    assert_eq!(nv["ip"], "10.0.0.5");
    assert_eq!(nv["mask"], "255.255.255.0");
    assert_eq!(nv["gateway"], "10.0.0.1");
    let transcript = std::fs::read_to_string(&transcript).unwrap();
    assert!(transcript.contains("> ***") && !transcript.contains("Netsilicon"), "{transcript}");
    assert!(transcript.contains("< Saving the changes in NV memory"), "{transcript}");
    drop(sim.child);
}

#[test]
fn serial_dialog_prompt_that_never_comes_quotes_the_last_lines() {
    let sim = start_simulator(&["--key-window", "2s", "--cycle", "2s"]);
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(crate::util::repo_root().join("profiles/sim-netos.yaml")).unwrap();
    let profile = dir.path().join("wrong-prompt.yaml");
    std::fs::write(
        &profile,
        original.replace("'Subnet mask  \\['", "'Netmask  \\['").replace("timeout: 5s", "timeout: 2s"),
    )
    .unwrap();
    std::fs::write(dir.path().join("sim-netos.yaml"), "").unwrap();
    let started = std::time::Instant::now();
    let output = dialog(&sim, &profile, "Netsilicon", &[]);
    let (_, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no the prompt `Netmask  \\[` within 2s; last lines received:"), "{stderr}");
    assert!(stderr.contains("  | Subnet mask  [0.0.0.0]?"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn serial_dialog_reports_an_answer_the_device_rejects() {
    let sim = start_simulator(&["--key-window", "2s", "--cycle", "2s"]);
    let profile = crate::util::repo_root().join("profiles/sim-netos.yaml");
    let output = dialog(&sim, &profile, "not-the-password", &[]);
    let (stdout, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "the device rejected the answer `***` to `Enter the root password`: it printed `Invalid password.`"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    assert!(!sim.nv.exists(), "nothing saved");
}

#[test]
fn serial_send_loads_an_image_by_serial_recovery() {
    let sim = start_simulator(&["--recovery", "--c-interval", "200ms", "--cycle", "3s"]);
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.bin");
    std::fs::write(&image, flashline::serial::image::build(&payload(5000, 9), 0x0100_0000)).unwrap();
    let output = crate::util::flashline()
        .args(["serial", "send", image.to_str().unwrap(), "--port", sim.link.to_str().unwrap(), "--baud", "115200"])
        .args(["--wait-for", "Starting serial recovery", "--wait-timeout", "10s"])
        .args(["--end-text", "Image check: bootHdr image, 5000 bytes, CRC 0x[0-9A-F]{8} OK", "--end-timeout", "10s"])
        .output_within(FLASHLINE);
    let (stdout, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("sent 5044 bytes"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_send_on_a_port_in_use_fails_at_once_with_exit_code_3() {
    let sim = start_simulator(&["--key-window", "60s"]);
    let settings = flashline::profile::SerialSettings::default();
    let _held = flashline::serial::port::open(&sim.link, &settings).expect("first open");
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("rom.bin");
    std::fs::write(&image, b"boot loader").unwrap();
    let started = std::time::Instant::now();
    let output = crate::util::flashline()
        .args(["serial", "send", image.to_str().unwrap(), "--port", sim.link.to_str().unwrap()])
        .output_within(FLASHLINE);
    let (_, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("port {} is in use", sim.link.display())), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "at once");
}
