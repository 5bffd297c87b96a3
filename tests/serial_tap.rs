//! `flashline serial tap` and `serial monitor` between PTY pairs: 1 MiB each
//! way at once, byte-exact, every byte value; the record holds both
//! directions; a monitor never writes to its port.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::child::LineChild;
use crate::util::pty::PtyPair;

const MIB: usize = 1 << 20;

/// Every byte value, in an order that differs per direction.
fn pattern(seed: u8) -> Vec<u8> {
    (0..MIB).map(|i| (i as u8).wrapping_mul(seed).wrapping_add((i >> 8) as u8)).collect()
}

fn start(args: &[&str], ready: &str) -> LineChild {
    let mut command = crate::util::flashline();
    command.args(args);
    let mut child = LineChild::spawn(&mut command);
    child.line_matching(Duration::from_secs(20), |l| l.contains(ready));
    child
}

/// Reads exactly `len` bytes from `port` within `limit`.
fn read_all(mut port: serialport::TTYPort, len: usize, limit: Duration) -> Vec<u8> {
    use serialport::SerialPort;
    port.set_timeout(Duration::from_millis(200)).unwrap();
    let deadline = Instant::now() + limit;
    let mut got = Vec::with_capacity(len);
    let mut buf = [0u8; 8192];
    while got.len() < len && Instant::now() < deadline {
        match port.read(&mut buf[..(len - got.len()).min(8192)]) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}

/// Writes `data` to `port` within `limit` and returns how much was written:
/// a tap that stops relaying fills the PTY, and the writer gives up at the
/// deadline instead of blocking (its thread is joined).
fn write_all(mut port: serialport::TTYPort, data: Vec<u8>, limit: Duration) -> usize {
    use serialport::SerialPort;
    port.set_timeout(Duration::from_millis(200)).unwrap();
    let deadline = Instant::now() + limit;
    let mut written = 0;
    while written < data.len() && Instant::now() < deadline {
        let end = (written + 4096).min(data.len());
        match port.write(&data[written..end]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("write: {e}"),
        }
    }
    written
}

/// The byte counts of each direction's record lines (`[ t] A>B  n  text`).
fn recorded(log: &str, mark: &str) -> usize {
    log.lines()
        .filter_map(|line| line.split_once("] ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.strip_prefix(mark))
        .map(|rest| rest.split_whitespace().next().unwrap().parse::<usize>().unwrap())
        .sum()
}

#[test]
fn tap_relays_a_mebibyte_each_way_at_once_unchanged() {
    let (a, b) = (PtyPair::new(), PtyPair::new());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tap.log");
    let (a_path, b_path) = (a.device_path(), b.device_path());
    let tap =
        start(&["serial", "tap", path(&a_path), path(&b_path), "--baud", "115200", "--log", path(&log)], "relaying");
    let (to_b, to_a) = (pattern(7), pattern(13));
    let (a_in, b_in) = (a.controller.try_clone_native().unwrap(), b.controller.try_clone_native().unwrap());
    let limit = Duration::from_secs(120);
    let writers = [
        std::thread::spawn({
            let data = to_b.clone();
            move || write_all(a_in, data, limit)
        }),
        std::thread::spawn({
            let data = to_a.clone();
            move || write_all(b_in, data, limit)
        }),
    ];
    let from_a = std::thread::spawn(move || read_all(b.controller, MIB, limit));
    let from_b = read_all(a.controller, MIB, limit);
    let from_a = from_a.join().unwrap();
    for (writer, direction) in writers.into_iter().zip(["A>B", "B>A"]) {
        let written = writer.join().unwrap();
        assert_eq!(written, MIB, "{direction}: the tap stopped taking bytes after {written} of {MIB} within {limit:?}");
    }
    assert!(from_a == to_b, "A>B changed or lost bytes: {} of {MIB}", from_a.len());
    assert!(from_b == to_a, "B>A changed or lost bytes: {} of {MIB}", from_b.len());
    tap.interrupt();
    let output = tap.finish_within(Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("relayed {MIB} bytes A>B and {MIB} bytes B>A")), "{stderr}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(recorded(&log, "A>B"), MIB);
    assert_eq!(recorded(&log, "B>A"), MIB);
    assert!(log.contains("\\xFF") && log.contains("\\x00"), "binary bytes are escaped in the text");
}

#[test]
fn monitor_records_with_hex_and_never_writes() {
    let pair = PtyPair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("monitor.log");
    let device = pair.device_path();
    let monitor =
        start(&["serial", "monitor", path(&device), "--hex", "--idle", "100ms", "--log", path(&log)], "recording");
    let mut controller = pair.controller;
    controller.write_all(b"NET+OS Version 7.4\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    controller.write_all(b"\x00\xff").unwrap();
    let echoed = read_all(controller, 1, Duration::from_millis(600));
    assert!(echoed.is_empty(), "a monitor wrote to its port: {echoed:?}");
    monitor.interrupt();
    let output = monitor.finish_within(Duration::from_secs(20));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(recorded(&log, "<"), 22, "{log}");
    assert!(log.contains("NET+OS Version 7.4\\r\\n"), "{log}");
    assert!(log.contains("4E 45 54 2B 4F 53"), "{log}");
    assert!(log.contains("--- idle"), "{log}");
    assert!(log.contains("\\x00\\xFF") && log.contains("00 FF"), "{log}");
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}
