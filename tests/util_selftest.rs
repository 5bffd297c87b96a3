//! The test helpers themselves: a PTY pair carries bytes both ways, and a
//! namespace pair connects station and dut, has no way out, and is removed
//! on drop, also after a panic; test code opens sockets off loopback only
//! inside its own namespaces; the ports it holds stay closed or silent; a
//! browser and its Chromium end with the test.

use std::io::{Read, Write};
use std::time::Duration;

use serialport::SerialPort;

use crate::util::child::{Bounded, QUICK, die_with_test};
use crate::util::netns::{
    LoopbackNetns, NetnsPair, assert_in_test_namespace, connect_from, listen_in, loopback, namespaces, remove_stale,
    serve, within,
};
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
    if !crate::util::require(crate::util::have_program("ping"), "ping (Debian package iputils-ping)") {
        return;
    }
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

/// The message of a panic caught by `catch_unwind`.
fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(text) => *text,
        Err(panic) => panic.downcast::<&str>().map(|t| t.to_string()).unwrap_or_default(),
    }
}

#[test]
fn test_code_opens_sockets_off_loopback_only_in_its_own_namespaces() {
    let Some(pair) = NetnsPair::create() else { return };
    // The test's own thread is in the host's namespace: refused.
    let refused = std::panic::catch_unwind(|| assert_in_test_namespace("a multicast socket")).unwrap_err();
    let message = panic_text(refused);
    assert!(message.contains("a multicast socket: refused outside the test's own network namespaces"), "{message}");
    // Inside the pair's station namespace the code runs, and sees only lo and the veth.
    let station_veth = pair.station_veth.clone();
    let links = within(&pair.station, move || {
        assert_in_test_namespace("a socket in the station");
        flashline::addp::client::interfaces(None).unwrap().into_iter().map(|i| i.name).collect::<Vec<_>>()
    });
    assert_eq!(links, vec![station_veth], "the one multicast interface in the station namespace");
    // A namespace this process did not make (as the host's could be) is refused too.
    let foreign = format!("flforeign{}", std::process::id());
    let output = std::process::Command::new("ip").args(["netns", "add", &foreign]).output_within(QUICK);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let entered = std::panic::catch_unwind(|| within(&foreign, || ()));
    let _ = std::process::Command::new("ip").args(["netns", "del", &foreign]).output_within(QUICK);
    let message = panic_text(entered.unwrap_err());
    assert!(message.contains("refused outside the test's own network namespaces"), "{message}");
    // Off the namespaces, only loopback.
    assert_eq!(loopback("127.0.0.2:9".parse().unwrap()).port(), 9);
    let message = panic_text(std::panic::catch_unwind(|| loopback("198.18.0.1:9".parse().unwrap())).unwrap_err());
    assert!(message.contains("198.18.0.1:9: a test outside its namespaces may use only 127.0.0.0/8"), "{message}");
}

#[test]
fn serving_counts_the_connections_still_in_the_backlog_when_stopped() {
    let Some(pair) = NetnsPair::create() else { return };
    let address = std::net::SocketAddr::from((pair.dut_ip, 2121));
    let server = serve(listen_in(&pair.dut, address));
    // Each handshake completes in the kernel; stop comes at once after, while
    // the serving thread may be asleep between two accepts.
    let streams: Vec<_> =
        (0..8).map(|_| connect_from(&pair.station, address, Duration::from_secs(5)).expect("connects")).collect();
    assert_eq!(server.stop(), 8, "every completed connection is counted");
    drop(streams);
}

#[test]
fn a_held_closed_port_refuses_and_a_silent_one_never_answers() {
    use crate::util::ports::{Start, closed_tcp_port, on_free_port, silent_udp_port};
    let closed = closed_tcp_port();
    for _ in 0..3 {
        let error = std::net::TcpStream::connect(("127.0.0.1", closed.port)).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "RST from the bound, not listening, port");
    }
    let taken = std::net::TcpListener::bind(("127.0.0.1", closed.port));
    assert!(taken.is_err(), "nobody else can take the port while it is held");

    let silent = silent_udp_port();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(("127.0.0.1", silent.port)).unwrap();
    client.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    client.send(b"anyone?").unwrap();
    let error = client.recv(&mut [0u8; 16]).unwrap_err();
    assert!(
        matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        "no answer and no ICMP refusal: {error}"
    );

    let mut tries = Vec::new();
    let port = on_free_port("a server", |port| {
        tries.push(port);
        if tries.len() < 3 { Start::PortTaken("Address already in use".into()) } else { Start::Started(port) }
    });
    assert_eq!((tries.len(), tries.last()), (3, Some(&port)), "retried on a taken port: {tries:?}");
    let message = panic_text(
        std::panic::catch_unwind(|| on_free_port("vsftpd", |_| Start::<()>::PortTaken("in use".into()))).unwrap_err(),
    );
    assert!(message.starts_with("vsftpd: every port tried was taken"), "{message}");
}

/// `root` and all its descendants now.
fn descendants(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    all.extend(crate::util::child::descendants(root));
    all
}

/// Whether `pid` is alive (a zombie counts as gone: it runs nothing).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[test]
fn a_browser_reaches_only_its_namespace_and_is_reaped_when_its_session_cannot_be_deleted() {
    if !crate::util::web::browser_available() {
        return;
    }
    let mut browser = crate::util::web::Browser::start();
    let links = std::process::Command::new("ip").args(["-n", browser.namespace(), "-o", "link"]).output_within(QUICK);
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
    assert!(links.contains(": lo:"), "{links}");
    let routes = std::process::Command::new("ip").args(["-n", browser.namespace(), "route"]).output_within(QUICK);
    assert!(routes.stdout.is_empty(), "no route: {}", String::from_utf8_lossy(&routes.stdout));
    browser.open("about:blank");
    let processes = descendants(browser.reaper_pid());
    assert!(processes.len() >= 3, "unshare, chromedriver and Chromium: {processes:?}");
    let namespace = browser.namespace().to_string();
    // The drop's DELETE now fails (chromedriver knows no such session).
    browser.lose_session();
    drop(browser);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while processes.iter().any(|&pid| alive(pid)) {
        let left: Vec<_> = processes.iter().filter(|&&pid| alive(pid)).collect();
        assert!(std::time::Instant::now() < deadline, "still running 10 s after the drop: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!namespaces().contains(&namespace), "{namespace} removed");
}

#[test]
fn a_loopback_namespace_has_only_lo_and_is_removed_on_drop() {
    let Some(netns) = LoopbackNetns::create() else { return };
    let output = netns.command("ip").args(["-o", "link"]).output_within(QUICK);
    let links = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(links.lines().count() == 1 && links.contains(": lo:") && links.contains("UP"), "{links}");
    let name = netns.name.clone();
    drop(netns);
    assert!(!namespaces().contains(&name), "{name} removed");
}

#[test]
fn vsftpd_on_drop_ends_its_sessions_too() {
    use std::io::BufRead;
    if !crate::util::require(crate::util::vsftpd::unavailable_reason().is_none(), "vsftpd installed, root") {
        return;
    }
    let Some(netns) = LoopbackNetns::create() else { return };
    // In a namespace of its own: port 21 is nobody else's.
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], 21));
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let anon_root = format!("anon_root={}", root.path().display());
    let lines = ["anonymous_enable=YES", "local_enable=NO", "no_anon_password=YES", anon_root.as_str()];
    let server = crate::util::vsftpd::Vsftpd::start(Some(&netns.name), std::net::Ipv4Addr::LOCALHOST, 21, &lines);
    let mut stream = connect_from(&netns.name, address, Duration::from_secs(5)).expect("vsftpd listens");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut reply = |expect: &str| {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(expect), "{line}");
    };
    reply("220");
    // A logged-in session: vsftpd forks again for it.
    stream.write_all(b"USER anonymous\r\n").unwrap();
    reply("230");
    let processes = descendants(server.pid());
    assert!(processes.len() >= 3, "the listener and the session processes it forked: {processes:?}");
    drop(server);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while processes.iter().any(|&pid| alive(pid)) {
        let left: Vec<_> = processes.iter().filter(|&&pid| alive(pid)).collect();
        assert!(std::time::Instant::now() < deadline, "still running 5 s after the drop: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stream);
}

#[test]
fn a_child_killed_at_its_deadline_takes_its_children_with_it() {
    let started = std::time::Instant::now();
    // The grandchild inherits the pipes: were it left running, the readers
    // (and the test) would wait the 60 s for it.
    let panicked = std::panic::catch_unwind(|| {
        std::process::Command::new("sh")
            .args(["-c", "sleep 60 & echo grandchild=$! >&2; wait"])
            .output_within(Duration::from_millis(500))
    });
    let message = panic_text(panicked.expect_err("the child outlived its deadline"));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}: the grandchild was waited for", started.elapsed());
    let grandchild: u32 = message
        .rsplit("grandchild=")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in: {message}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive(grandchild) {
        assert!(std::time::Instant::now() < deadline, "grandchild {grandchild} survived its group's kill");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_child_that_leaves_a_process_holding_its_output_fails_at_the_deadline() {
    let started = std::time::Instant::now();
    let panicked = std::panic::catch_unwind(|| {
        std::process::Command::new("sh").args(["-c", "sleep 60 & echo started"]).output_within(Duration::from_secs(1))
    });
    let message = panic_text(panicked.expect_err("its output is held past the deadline"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}: the leftover process was waited for",
        started.elapsed()
    );
    assert!(message.contains("a process it started still held its output"), "{message}");
    assert!(message.contains("started"), "with what it printed: {message}");
}

#[test]
fn a_flashline_run_is_killed_by_its_own_limit_before_nextest_kills_the_test() {
    // The default profile's `slow-timeout = { period = "60s", terminate-after = 3 }`.
    let config = std::fs::read_to_string(crate::util::repo_root().join(".config/nextest.toml")).unwrap();
    let default = config.split("[[profile.default.overrides]]").next().unwrap();
    let line = default.lines().find(|l| l.starts_with("slow-timeout")).expect("a default slow-timeout");
    let number = |key: &str| -> u64 {
        let rest = line.split(key).nth(1).unwrap_or_else(|| panic!("no {key} in `{line}`"));
        rest.trim_start_matches([' ', '=', '"'])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let nextest = Duration::from_secs(number("period") * number("terminate-after"));
    assert!(
        crate::util::child::FLASHLINE + Duration::from_secs(10) < nextest,
        "FLASHLINE {:?} must end a child well before nextest ends the test at {nextest:?}",
        crate::util::child::FLASHLINE
    );
}

/// A server told a port that another process took meanwhile says so (and
/// `on_free_port` tries another), instead of taking the other process's
/// listener for its own.
#[test]
fn vsftpd_on_a_taken_port_says_so_and_port_0_finds_a_free_one() {
    use crate::util::ports::{Start, holds_listener};
    use crate::util::vsftpd::{Vsftpd, unavailable_reason};
    if !crate::util::require(unavailable_reason().is_none(), &unavailable_reason().unwrap_or_default()) {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    match Vsftpd::try_start(None, std::net::Ipv4Addr::LOCALHOST, port, &[]) {
        Start::PortTaken(why) => assert!(why.contains("another process listens there"), "{why}"),
        Start::Started(_) => panic!("vsftpd took port {port}, which a listener of the test holds"),
    }
    assert!(!holds_listener(std::process::id() + 1_000_000, port));
    let server = Vsftpd::start(None, std::net::Ipv4Addr::LOCALHOST, 0, &[]);
    assert!(holds_listener(server.pid(), server.address.port()));
}
