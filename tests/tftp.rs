//! `flashline tftp serve` against independent clients: Debian's tftp-hpa
//! (`tftp`, blocks of 512 bytes, no options) and curl (`tftp://`, blksize and
//! tsize), on 127.0.0.1. Files arrive byte-exact; names that leave the root
//! get a TFTP error; writes only with `--allow-write`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::child::{Bounded, LineChild, QUICK, die_with_test};
use crate::util::{flashline, have_program, require};

/// `flashline tftp serve` on 127.0.0.1, a free port; killed on drop.
struct Server {
    child: LineChild,
    port: u16,
}

impl Server {
    fn start(root: &Path, extra: &[&str]) -> Server {
        let mut command = flashline();
        die_with_test(&mut command).args(["tftp", "serve", "--listen", "127.0.0.1:0", "--root"]).arg(root).args(extra);
        let mut child = LineChild::spawn(&mut command);
        let line = child.line_matching(Duration::from_secs(20), |l| l.starts_with("serving "));
        let port = line
            .split("udp 127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server { child, port }
    }

    /// The progress line about `name` (one per transfer).
    fn line_about(&mut self, name: &str) -> String {
        self.child.line_matching(Duration::from_secs(20), |l| l.contains(name) && !l.starts_with("serving "))
    }
}

fn tools_present() -> bool {
    require(have_program("tftp"), "`tftp` (Debian package tftp-hpa)")
        && require(have_program("curl"), "`curl` (Debian package curl)")
}

fn tftp_hpa(port: u16, command: &str) -> (bool, String) {
    let output = Command::new("tftp")
        .args(["-m", "binary", "127.0.0.1", &port.to_string(), "-c"])
        .args(command.split_whitespace())
        .output_within(Duration::from_secs(120));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // tftp-hpa exits 0 even after an error packet: its message tells.
    (output.status.success() && !text.contains("Error code"), text)
}

fn pattern(size: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[test]
fn tftp_serve_tftp_hpa_and_curl_fetch_byte_exact() {
    if !tools_present() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let files = [("empty.bin", 0usize), ("exact.bin", 512 * 8), ("big.bin", 32 << 20)];
    for (seed, (name, size)) in files.iter().enumerate() {
        std::fs::write(root.path().join(name), pattern(*size, seed as u32)).unwrap();
    }
    let mut server = Server::start(root.path(), &[]);
    for (name, size) in files {
        let want = std::fs::read(root.path().join(name)).unwrap();
        // The copies come through stdout, not the disk: a CI runner's disk
        // need only hold the served file.
        // tftp-hpa: 512-byte blocks; 32 MiB is 65536 full blocks and an
        // empty one, so the block number wraps past 65535.
        let output = Command::new("tftp")
            .args(["-m", "binary", "127.0.0.1", &server.port.to_string(), "-c", "get", name, "/dev/stdout"])
            .output_within(Duration::from_secs(120));
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && !said.contains("Error"), "tftp get {name}: {said}");
        assert!(output.stdout == want, "tftp-hpa's copy of {name} ({size} B) differs: {} B", output.stdout.len());
        let line = server.line_about(name);
        assert!(
            line.starts_with(&format!("sent {name} to 127.0.0.1:")) && line.contains(&format!(": {size} B in")),
            "{line}"
        );

        // curl: the largest block RFC 2348 allows, and tsize.
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--tftp-blksize", "65464", "--max-time", "120", "-o", "-"])
            .arg(format!("tftp://127.0.0.1:{}/{name}", server.port))
            .output_within(Duration::from_secs(150));
        assert!(output.status.success(), "curl {name}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(output.stdout == want, "curl's copy of {name} ({size} B) differs: {} B", output.stdout.len());
        let line = server.line_about(name);
        assert!(line.contains("blksize 65464"), "{line}");
    }
}

/// netascii (tftp-hpa's default mode): LF goes as CR LF and a lone CR as
/// CR NUL on the wire; tftp-hpa turns them back, so the copy is the file.
#[test]
fn tftp_serve_netascii_round_trips_through_tftp_hpa() {
    if !tools_present() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // Long enough for CR LF pairs to straddle 512-byte blocks.
    let text: String = (0..200).map(|i| format!("line {i}\r\n{}\rx\n", "y".repeat(i % 7))).collect();
    std::fs::write(root.path().join("t.txt"), &text).unwrap();
    let mut server = Server::start(root.path(), &[]);
    // Into a file: tftp-hpa's netascii output to a pipe differs (from
    // tftpd-hpa just the same), a file is what users get.
    let copy = root.path().join("copy.txt");
    let output = Command::new("tftp")
        .args(["-m", "netascii", "127.0.0.1", &server.port.to_string(), "-c", "get", "t.txt"])
        .arg(&copy)
        .output_within(QUICK);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let got = std::fs::read(&copy).unwrap();
    assert!(got == text.as_bytes(), "netascii copy differs:\n{:?}", String::from_utf8_lossy(&got));
    assert!(server.line_about("t.txt").starts_with("sent t.txt"));
}

#[test]
fn tftp_serve_refuses_names_that_leave_the_root() {
    if !tools_present() {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"not for the network").unwrap();
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link")).unwrap();
    let escape = format!("../{}/secret", outside.path().file_name().unwrap().to_string_lossy());
    let absolute = outside.path().join("secret").display().to_string();
    let mut server = Server::start(root.path(), &[]);
    let dest = tempfile::tempdir().unwrap();
    let local = dest.path().join("got");
    for name in [escape.as_str(), absolute.as_str(), "link"] {
        let (ok, said) = tftp_hpa(server.port, &format!("get {name} {}", local.display()));
        assert!(!ok && said.contains("Error code 2"), "tftp get {name}: {said}");
        let line = server.line_about(name);
        assert!(line.starts_with("refused "), "{line}");
    }
    // curl sends the path as typed with --path-as-is; the error is TFTP's
    // access violation (curl's exit code 69, CURLE_TFTP_PERM).
    let output = Command::new("curl")
        .args(["--silent", "--path-as-is", "--max-time", "20", "-o"])
        .arg(&local)
        .arg(format!("tftp://127.0.0.1:{}/{escape}", server.port))
        .output_within(QUICK);
    assert_eq!(output.status.code(), Some(69), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(std::fs::read(&local).map_or(true, |got| got.is_empty()), "the secret was sent");
}

#[test]
fn tftp_serve_writes_only_with_allow_write() {
    if !tools_present() {
        return;
    }
    let source = tempfile::tempdir().unwrap();
    let upload = source.path().join("up.bin");
    let content = pattern(5000, 9);
    std::fs::write(&upload, &content).unwrap();

    let root = tempfile::tempdir().unwrap();
    let mut server = Server::start(root.path(), &[]);
    let (ok, said) = tftp_hpa(server.port, &format!("put {} up.bin", upload.display()));
    assert!(!ok && said.contains("Error code 2"), "{said}");
    assert!(server.line_about("up.bin").contains("writing is not allowed"));
    assert!(!root.path().join("up.bin").exists());
    drop(server);

    let mut server = Server::start(root.path(), &["--allow-write"]);
    let (ok, said) = tftp_hpa(server.port, &format!("put {} up.bin", upload.display()));
    assert!(ok, "{said}");
    assert!(server.line_about("up.bin").starts_with("received up.bin"));
    assert_eq!(std::fs::read(root.path().join("up.bin")).unwrap(), content);
}

/// A raw IPv4 socket opened inside namespace `ns` (the socket stays in it):
/// `protocol` 255 (IPPROTO_RAW) sends datagrams whose IP header the test
/// writes, 17 (UDP) receives a copy of every UDP datagram the namespace
/// receives, its own loopback traffic included.
fn raw_socket_in(ns: &str, protocol: i32) -> socket2::Socket {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter the namespace");
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::from(protocol)))
            .expect("a raw socket (needs root)")
    })
    .join()
    .expect("raw socket thread")
}

/// An IPv4 UDP datagram from `from` to `to` with `payload` (the kernel fills
/// in the IP checksum; a UDP checksum of 0 means none, RFC 768).
fn udp_datagram(from: std::net::SocketAddrV4, to: std::net::SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    packet[2..4].copy_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&from.ip().octets());
    packet.extend_from_slice(&to.ip().octets());
    packet.extend_from_slice(&from.port().to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    packet
}

/// CPU time (user + system) of the process whose command line contains
/// `marker`, from /proc (clock ticks of 10 ms on Linux).
fn cpu_time_of_process_with(marker: &str) -> Duration {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        // The server itself, not `ip netns exec` (which execs it, same pid).
        if !args.contains(&marker.as_bytes()) || !args.contains(&&b"serve"[..]) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the ")" of the command name: utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        return Duration::from_millis(ticks * 10);
    }
    panic!("no process with {marker} in its command line");
}

/// Issue 28 item 3: a datagram whose source is the server's own address and
/// port (spoofed with a raw socket inside a namespace the test made, where
/// the server runs) gets no answer: not an ERROR and not anything else, so
/// the server does not answer itself in a loop. A capture socket counts
/// every UDP datagram from the server's port; the server's CPU time stays
/// small; a client is served after.
#[test]
fn tftp_serve_does_not_answer_a_datagram_from_itself() {
    let Some(pair) = crate::util::netns::NetnsPair::create() else { return };
    if !require(have_program("curl"), "`curl` (Debian package curl)") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let content = pattern(3000, 3);
    std::fs::write(root.path().join("f.bin"), &content).unwrap();
    let marker = root.path().to_str().unwrap().to_string();
    let mut command = pair.in_station(crate::util::flashline_bin());
    die_with_test(&mut command).env("TERM", "dumb").args(["tftp", "serve", "--listen", "0.0.0.0:0", "--root", &marker]);
    let mut server = LineChild::spawn(&mut command);
    let line = server.line_matching(Duration::from_secs(20), |l| l.starts_with("serving "));
    let port: u16 = line
        .split("udp 0.0.0.0:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));

    let capture = raw_socket_in(&pair.station, 17);
    capture.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let sender = raw_socket_in(&pair.station, 255);
    let cpu_before = cpu_time_of_process_with(&marker);
    let mut injected = 0;
    // An ERROR and an ACK (which a server answers with an ERROR), each from
    // the veth address and from loopback, to the same address and port.
    for ip in [pair.station_ip, std::net::Ipv4Addr::LOCALHOST] {
        let own = std::net::SocketAddrV4::new(ip, port);
        for payload in [&b"\x00\x05\x00\x05unknown transfer id\x00"[..], &b"\x00\x04\x00\x01"[..]] {
            let to: std::net::SocketAddr = own.into();
            sender.send_to(&udp_datagram(own, own, payload), &to.into()).expect("send the spoofed datagram");
            injected += 1;
        }
    }
    // Count for 2 s: the datagrams injected come through the capture once
    // each; an answer (to the server itself) would come as more.
    let mut from_server = 0u32;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    let until = std::time::Instant::now() + Duration::from_secs(2);
    let mut seen = 0u32;
    while std::time::Instant::now() < until && seen < 1_000_000 {
        let Ok(n) = capture.recv(&mut buf) else { continue };
        seen += 1;
        // SAFETY: recv initialised the first n bytes.
        let bytes: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
        let header = usize::from(bytes[0] & 0x0f) * 4;
        if bytes.len() >= header + 8 && u16::from_be_bytes([bytes[header], bytes[header + 1]]) == port {
            from_server += 1;
        }
    }
    let cpu = cpu_time_of_process_with(&marker).saturating_sub(cpu_before);
    assert_eq!(from_server, injected, "datagrams from udp port {port}: {injected} injected, the rest the server's");
    assert!(cpu < Duration::from_millis(500), "the server used {cpu:?} of CPU in 2 s after the spoofed datagrams");

    // A client is still served, byte-exact.
    let output = pair
        .in_station("curl")
        .args(["--silent", "--show-error", "--max-time", "20", "-o", "-"])
        .arg(format!("tftp://{}:{port}/f.bin", pair.station_ip))
        .output_within(QUICK);
    assert!(output.status.success(), "curl: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout == content, "the copy differs: {} B", output.stdout.len());
    let line = server.line_matching(Duration::from_secs(20), |l| l.contains("f.bin"));
    assert!(line.starts_with("sent f.bin"), "{line}");
}

/// RFC 2349: a client's `timeout` is echoed in the OACK and then sets the
/// retransmission interval (1 s asked, 10 s the server's own); a value out
/// of 1..=255 is left out (no OACK, so the first reply is the data).
/// No independent client here asks for it (curl and tftp-hpa do not): the
/// request is written in bytes.
#[test]
fn tftp_serve_honours_the_timeout_option() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("t.bin"), pattern(100, 5)).unwrap();
    let mut server = Server::start(root.path(), &["--timeout", "10s"]);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1024];
    client.send_to(b"\x00\x01t.bin\x00octet\x00timeout\x001\x00", address).unwrap();
    let (n, transfer) = client.recv_from(&mut buf).expect("an OACK within 5 s");
    let first = std::time::Instant::now();
    assert_eq!(&buf[..n], b"\x00\x06timeout\x001\x00");
    // Not acknowledged: the OACK comes again after the agreed second.
    let mut intervals = Vec::new();
    let mut last = first;
    for _ in 0..2 {
        let (n, from) = client.recv_from(&mut buf).expect("the OACK again within 5 s");
        assert_eq!((&buf[..n], from), (&b"\x00\x06timeout\x001\x00"[..], transfer));
        intervals.push(last.elapsed());
        last = std::time::Instant::now();
    }
    for interval in &intervals {
        assert!(
            *interval > Duration::from_millis(700) && *interval < Duration::from_millis(2500),
            "retransmission intervals {intervals:?}, 1 s agreed"
        );
    }
    client.send_to(b"\x00\x04\x00\x00", transfer).unwrap();
    let (n, _) = client.recv_from(&mut buf).expect("block 1");
    assert_eq!((&buf[..4], n), (&b"\x00\x03\x00\x01"[..], 104));
    client.send_to(b"\x00\x04\x00\x01", transfer).unwrap();
    assert!(server.line_about("t.bin").starts_with("sent t.bin"));

    // Out of range: ignored, so no OACK.
    client.send_to(b"\x00\x01t.bin\x00octet\x00timeout\x00300\x00", address).unwrap();
    let (n, transfer) = client.recv_from(&mut buf).expect("block 1 within 5 s");
    assert_eq!((&buf[..4], n), (&b"\x00\x03\x00\x01"[..], 104));
    client.send_to(b"\x00\x04\x00\x01", transfer).unwrap();
    assert!(server.line_about("t.bin").starts_with("sent t.bin"));
}
