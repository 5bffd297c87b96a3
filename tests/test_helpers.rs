//! The test helpers themselves: a PTY pair carries bytes both ways, and a
//! namespace pair connects station and dut, has no way out, and is removed
//! on drop, also after a panic.

use std::io::{Read, Write};
use std::time::Duration;

use serialport::SerialPort;

use crate::util::child::{Bounded, QUICK, die_with_test};
use crate::util::netns::{NetnsPair, namespaces, remove_stale};
use crate::util::pty::PtyPair;

#[test]
fn pty_pair_carries_bytes_both_ways() {
    let mut pair = PtyPair::new();
    assert!(pair.device_path().starts_with("/dev/pts"));
    pair.controller.set_timeout(Duration::from_secs(2)).unwrap();
    pair.device.set_timeout(Duration::from_secs(2)).unwrap();
    // Raw mode: every byte value, including XON/XOFF and CR, must pass unchanged
    // for XMODEM.
    let sent: Vec<u8> = (0..=255u8).collect();
    pair.controller.write_all(&sent).unwrap();
    let mut received = vec![0u8; sent.len()];
    pair.device.read_exact(&mut received).unwrap();
    assert_eq!(received, sent);
    pair.device.write_all(b"C").unwrap();
    let mut one = [0u8; 1];
    pair.controller.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"C");
}

#[test]
fn netns_pair_connects_station_and_dut_only() {
    let Some(pair) = NetnsPair::create() else { return };
    assert!(crate::util::require(crate::util::have_program("ping"), "ping (Debian package iputils-ping)"));
    let reach = |ip: std::net::Ipv4Addr| {
        pair.in_station("ping").args(["-c", "1", "-W", "1", &ip.to_string()]).output_within(QUICK).status.success()
    };
    assert!(reach(pair.dut_ip), "station reaches dut at {}", pair.dut_ip);
    assert!(!reach(pair.absent_ip), "nobody answers at {}", pair.absent_ip);
    // No default route: nothing outside the pair is reachable from the station.
    let routes = pair.in_station("ip").args(["route", "show", "default"]).output_within(QUICK);
    assert!(routes.stdout.is_empty(), "station has a default route: {}", String::from_utf8_lossy(&routes.stdout));
    for ip in [pair.station_ip, pair.dut_ip, pair.absent_ip] {
        let octets = ip.octets();
        assert!(octets[0] == 198 && (octets[1] & 0xFE) == 18, "{ip} is outside 198.18.0.0/15");
    }
}

#[test]
fn netns_pair_is_removed_on_drop_and_after_a_panic() {
    let Some(pair) = NetnsPair::create() else { return };
    let names = (pair.station.clone(), pair.dut.clone());
    assert!(namespaces().contains(&names.0));
    drop(pair);
    let now = namespaces();
    assert!(!now.contains(&names.0) && !now.contains(&names.1), "{now:?}");

    let panicked = std::panic::catch_unwind(|| {
        let pair = NetnsPair::create().expect("made above");
        let name = pair.station.clone();
        std::panic::panic_any(name);
    });
    let name = *panicked.expect_err("the closure panics").downcast::<String>().unwrap();
    assert!(!namespaces().contains(&name), "{name} left behind after a panic");
}

#[test]
fn namespaces_of_a_dead_test_process_are_removed_at_the_next_start() {
    let Some(pair) = NetnsPair::create() else { return };
    // A pid no process has: it names the namespace a killed test "left behind".
    let dead = gone_pid();
    let stale = format!("fl{dead}x0s");
    let output = std::process::Command::new("ip").args(["netns", "add", &stale]).output_within(QUICK);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    remove_stale();
    let now = namespaces();
    assert!(!now.contains(&stale), "{stale} of dead process {dead} is still there: {now:?}");
    assert!(now.contains(&pair.station) && now.contains(&pair.dut), "a live process's pair stays: {now:?}");
}

/// A pid no process has now (ours plus a large offset, checked in /proc).
fn gone_pid() -> u32 {
    (1..1000)
        .map(|i| std::process::id().wrapping_add(100_000 + i) % 4_000_000 + 2)
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .expect("a free pid")
}

#[test]
fn a_child_past_its_deadline_is_killed_and_the_test_fails_with_its_output() {
    let started = std::time::Instant::now();
    let panicked = std::panic::catch_unwind(|| {
        std::process::Command::new("sh")
            .args(["-c", "echo started; echo to-stderr >&2; exec sleep 60"])
            .output_within(Duration::from_millis(500))
    });
    let message = *panicked.expect_err("the child outlived its deadline").downcast::<String>().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "killed at its deadline, not waited for");
    assert!(message.contains("still ran after 500ms: killed"), "{message}");
    assert!(message.contains("started") && message.contains("to-stderr"), "its output: {message}");
}

#[test]
fn a_server_child_dies_with_the_thread_that_started_it() {
    use std::os::unix::process::ExitStatusExt;
    // As a server started by a test dies when nextest kills the test.
    let mut child = std::thread::spawn(|| {
        let mut command = std::process::Command::new("sleep");
        command.arg("60");
        die_with_test(&mut command).spawn().expect("start sleep")
    })
    .join()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child outlived the thread that started it by 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.signal(), Some(9), "SIGKILL: {status}");
}
