//! Loopback ports for tests, without the race of "bind port 0, read the
//! number, close, hope nobody takes it before the tool does".
//!
//! - A port that must be closed (a TCP connect gets RST) or silent (a UDP
//!   datagram gets neither an answer nor an ICMP error) is held for as long
//!   as the test keeps the value: a socket bound to it and never listened
//!   on or read, as `src/net/wait.rs` does, so no other process can take it.
//! - A server that can be handed a bound socket gets it (`in.tftpd` reads
//!   its socket from stdin as under inetd).
//! - A server that must be told a number and binds it itself is started by
//!   [`on_free_port`], which tries another port when the server says the
//!   one it was given was taken meanwhile.
//!
//! Every socket here is on 127.0.0.1 (see `netns::loopback`): the host's
//! namespace is used only through loopback.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use super::netns::loopback;

/// A TCP port on 127.0.0.1 that is bound and not listening: the kernel
/// answers a SYN to it with RST until this is dropped.
pub struct ClosedTcpPort {
    pub port: u16,
    _socket: socket2::Socket,
}

/// Holds a closed TCP port on 127.0.0.1 for the life of the value.
pub fn closed_tcp_port() -> ClosedTcpPort {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .expect("a TCP socket");
    let address = loopback(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    socket.bind(&address.into()).expect("bind 127.0.0.1:0");
    let port = socket.local_addr().expect("bound").as_socket().expect("an IP address").port();
    ClosedTcpPort { port, _socket: socket }
}

/// A UDP port on 127.0.0.1 that is bound and never read: what is sent to it
/// is never answered (no ICMP "port unreachable" either) until this is dropped.
pub struct SilentUdpPort {
    pub port: u16,
    _socket: UdpSocket,
}

/// Holds a silent UDP port on 127.0.0.1 for the life of the value.
pub fn silent_udp_port() -> SilentUdpPort {
    let socket = bound_udp();
    SilentUdpPort { port: socket.local_addr().unwrap().port(), _socket: socket }
}

/// A UDP socket bound to 127.0.0.1 and a port of the kernel's choice, to
/// hand to a server that takes a bound socket.
pub fn bound_udp() -> UdpSocket {
    UdpSocket::bind(loopback(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).expect("bind UDP 127.0.0.1:0")
}

/// What a server start gave `on_free_port`.
pub enum Start<T> {
    Started(T),
    /// The port was taken between choosing it and binding it: try another.
    PortTaken(String),
}

/// How many ports `on_free_port` tries before it fails.
const PORT_ATTEMPTS: usize = 5;

/// Starts a server that must be told its port number: `start` gets a port
/// free a moment ago and says whether the server bound it. A port taken in
/// between (another test's server, the race this closes) is retried with a
/// fresh one, at most `PORT_ATTEMPTS` times.
pub fn on_free_port<T>(what: &str, mut start: impl FnMut(u16) -> Start<T>) -> T {
    let mut taken = Vec::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = port_free_a_moment_ago();
        match start(port) {
            Start::Started(server) => return server,
            Start::PortTaken(why) => {
                eprintln!("{what}: port {port} was taken meanwhile ({why}); trying another");
                taken.push(format!("{port}: {why}"));
            }
        }
    }
    panic!("{what}: every port tried was taken: {}", taken.join("; "))
}

/// A port number that was free on 127.0.0.1 a moment ago for TCP and for
/// UDP alike (servers of either kind are started on it), at most 20 tries.
fn port_free_a_moment_ago() -> u16 {
    for _ in 0..20 {
        let udp = bound_udp();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(loopback(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP on 127.0.0.1 in 20 tries")
}

/// Whether an error text is the kernel's "address in use" (as a server
/// prints it: `Address already in use`, `EADDRINUSE`).
pub fn says_address_in_use(text: &str) -> bool {
    text.contains("Address already in use") || text.contains("EADDRINUSE") || text.contains("address in use")
}

/// Whether process `pid` holds a TCP socket listening on `port` (IPv4), read
/// from /proc: proof that a server bound the port it was given, where a
/// connection could reach another server that took it first.
pub fn holds_listener(pid: u32, port: u16) -> bool {
    listening_inodes(port).iter().any(|inode| holds_socket(pid, *inode))
}

/// Whether any process of this network namespace listens on TCP `port`.
pub fn someone_listens(port: u16) -> bool {
    !listening_inodes(port).is_empty()
}

/// The inodes of the IPv4 TCP sockets listening on `port` (/proc/net/tcp:
/// local address `IP:PORT` in hex, state 0A).
fn listening_inodes(port: u16) -> Vec<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local_port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(1)?.ends_with(&local_port) && *fields.get(3)? == "0A";
            if listening { fields.get(9)?.parse().ok() } else { None }
        })
        .collect()
}

/// Whether process `pid` has socket `inode` open.
fn holds_socket(pid: u32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    entries
        .flatten()
        .any(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str()))
}
