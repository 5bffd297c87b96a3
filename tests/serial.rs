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
fn relay(mut from: impl std::io::Read + Send + 'static, mut to: impl std::io::Write + Send + 'static) -> tokio::io::DuplexStream {
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
        Duration::from_secs(120),
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
            Duration::from_secs(120),
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
