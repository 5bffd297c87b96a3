//! The address-conflict check of RFC 5227: before a static address is given
//! to a unit, ARP probes (sender address 0.0.0.0, target the address) go out
//! of the interface that routes to it; a host that answers for the address,
//! or probes for it too, holds it, and is named by its MAC.
//!
//! The frames are built and read by pure functions ([`probe_frame`],
//! [`conflict_in`]) with pnet_packet; a frame from the network never panics
//! them. The I/O is one raw `AF_PACKET` socket (needs CAP_NET_RAW) bound to
//! the interface, on the tokio reactor. The route comes from
//! `/proc/net/route` and the interface's index and MAC from
//! `/sys/class/net`, as seen from this process's network namespace. It
//! does not announce or defend an address, and does not look beyond the
//! local link (an address behind a gateway cannot be checked).

use std::io::Read;
use std::net::Ipv4Addr;
use std::time::Duration;

use pnet_packet::MutablePacket;
use pnet_packet::Packet;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::failure::{Classify, FailureClass};
use crate::progress::{Progress, ProgressEvent, TaskKind};

/// RFC 5227's timings: PROBE_NUM probes, each PROBE_MIN to PROBE_MAX apart,
/// then ANNOUNCE_WAIT for a late answer.
pub const PROBE_NUM: u32 = 3;
pub const PROBE_MIN: Duration = Duration::from_secs(1);
pub const PROBE_MAX: Duration = Duration::from_secs(2);
pub const ANNOUNCE_WAIT: Duration = Duration::from_secs(2);

const ETH_P_ARP: u16 = 0x0806;
/// An ARP frame on Ethernet: 14 bytes of header and 28 of ARP.
const FRAME_LEN: usize = 42;
/// Frames read per check at most (a flood of other ARP traffic cannot keep
/// the check busy past its deadline either).
const MAX_FRAMES: u32 = 100_000;

// The MAC type lives in `crate::mac`; named here too for the callers that
// still say `arp::Mac` (pipeline/device.rs, profile/validate.rs).
pub use crate::mac::Mac;

/// How the check probes.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Probes sent (RFC 5227's PROBE_NUM).
    pub probes: u32,
    /// The gap between probes is picked at random in `min..=max`.
    pub interval_min: Duration,
    pub interval_max: Duration,
    /// How long to listen after the last probe.
    pub final_wait: Duration,
    /// The interface to probe from; default: the one that routes to the address.
    pub interface: Option<String>,
}

impl Default for ProbeOptions {
    fn default() -> ProbeOptions {
        ProbeOptions {
            probes: PROBE_NUM,
            interval_min: PROBE_MIN,
            interval_max: PROBE_MAX,
            final_wait: ANNOUNCE_WAIT,
            interface: None,
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArpCheck {
    pub address: Ipv4Addr,
    pub interface: String,
    pub probes_sent: u32,
    /// The MAC of the host that answered for the address; `None`: free.
    pub in_use_by: Option<Mac>,
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
}

fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum ArpError {
    #[error(
        "the address-conflict check needs CAP_NET_RAW for an ARP socket (run as root, or `setcap cap_net_raw+ep` on flashline), or turn it off in the profile (`address_check: {{enabled: false}}`)"
    )]
    PermissionDenied,
    #[error("no route to {address} on this machine: no interface is on its network")]
    NoRoute { address: Ipv4Addr },
    #[error("{address} is behind the gateway {gateway} (via {interface}): ARP reaches only the local link")]
    NotOnLink { address: Ipv4Addr, gateway: Ipv4Addr, interface: String },
    #[error("no network interface named `{name}`")]
    NoInterface { name: String },
    #[error("`{name}` is not an Ethernet interface (link type {link_type}): ARP cannot probe from it")]
    NotEthernet { name: String, link_type: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for ArpError {
    /// An interface the user named that does not exist is the user's; the
    /// rest is this machine's set-up (permissions, routes, sockets).
    fn class(&self) -> FailureClass {
        match self {
            ArpError::NoInterface { .. } | ArpError::NotEthernet { .. } => FailureClass::Input,
            ArpError::PermissionDenied
            | ArpError::NoRoute { .. }
            | ArpError::NotOnLink { .. }
            | ArpError::Io { .. } => FailureClass::Environment,
        }
    }
}

fn io_error(what: impl Into<String>, source: std::io::Error) -> ArpError {
    if source.kind() == std::io::ErrorKind::PermissionDenied {
        return ArpError::PermissionDenied;
    }
    ArpError::Io { what: what.into(), source }
}

/// An RFC 5227 probe: broadcast ARP request, sender `our_mac` / 0.0.0.0,
/// target hardware zero, target address `target`.
pub fn probe_frame(our_mac: Mac, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; FRAME_LEN];
    if let Some(mut ethernet) = MutableEthernetPacket::new(&mut frame) {
        ethernet.set_destination([0xFF; 6].into());
        ethernet.set_source(our_mac.0.into());
        ethernet.set_ethertype(EtherTypes::Arp);
        if let Some(mut arp) = MutableArpPacket::new(ethernet.payload_mut()) {
            arp.set_hardware_type(ArpHardwareTypes::Ethernet);
            arp.set_protocol_type(EtherTypes::Ipv4);
            arp.set_hw_addr_len(6);
            arp.set_proto_addr_len(4);
            arp.set_operation(ArpOperations::Request);
            arp.set_sender_hw_addr(our_mac.0.into());
            arp.set_sender_proto_addr(Ipv4Addr::UNSPECIFIED);
            arp.set_target_hw_addr([0; 6].into());
            arp.set_target_proto_addr(target);
        }
    }
    frame
}

/// The MAC of a host that `frame` shows holding `target` (its sender
/// address is `target`: a reply, a request or an announcement) or probing
/// for it too (RFC 5227 2.1.1); `None` for anything else, including our own
/// probes and frames that are not Ethernet/IPv4 ARP.
pub fn conflict_in(frame: &[u8], our_mac: Mac, target: Ipv4Addr) -> Option<Mac> {
    let ethernet = EthernetPacket::new(frame)?;
    if ethernet.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let arp = ArpPacket::new(ethernet.payload())?;
    if arp.get_hardware_type() != ArpHardwareTypes::Ethernet
        || arp.get_protocol_type() != EtherTypes::Ipv4
        || arp.get_hw_addr_len() != 6
        || arp.get_proto_addr_len() != 4
    {
        return None;
    }
    let sender = Mac(arp.get_sender_hw_addr().octets());
    if sender == our_mac {
        return None;
    }
    let holds = arp.get_sender_proto_addr() == target;
    let probes_too = arp.get_operation() == ArpOperations::Request
        && arp.get_sender_proto_addr().is_unspecified()
        && arp.get_target_proto_addr() == target;
    (holds || probes_too).then_some(sender)
}

/// A route from `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub interface: String,
    /// `None` for a directly attached network.
    pub gateway: Option<Ipv4Addr>,
}

/// The route to `address` in the text of `/proc/net/route` (longest prefix
/// among the routes that are up). Lines that do not parse are skipped.
pub fn route_to(address: Ipv4Addr, table: &str) -> Option<Route> {
    const RTF_UP: u32 = 0x1;
    let hex = |field: &str| u32::from_str_radix(field, 16).ok();
    // The kernel prints addresses as the hex of the in-memory (network
    // order) u32 read on a little-endian machine: swap on those.
    let address_of = |value: u32| Ipv4Addr::from(u32::from_be(value.to_le()));
    let mut best: Option<(u32, Route)> = None;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(interface), Some(dest), Some(gateway), Some(flags), Some(mask)) = (
            fields.first(),
            fields.get(1).and_then(|f| hex(f)),
            fields.get(2).and_then(|f| hex(f)),
            fields.get(3).and_then(|f| hex(f)),
            fields.get(7).and_then(|f| hex(f)),
        ) else {
            continue;
        };
        if flags & RTF_UP == 0 {
            continue;
        }
        let (dest, gateway, mask) = (u32::from(address_of(dest)), address_of(gateway), u32::from(address_of(mask)));
        if u32::from(address) & mask != dest & mask {
            continue;
        }
        let prefix = mask.count_ones();
        if best.as_ref().is_none_or(|(p, _)| prefix > *p) {
            let gateway = (!gateway.is_unspecified()).then_some(gateway);
            best = Some((prefix, Route { interface: interface.to_string(), gateway }));
        }
    }
    best.map(|(_, route)| route)
}

/// The interface to probe from: the one given, or the one that routes to
/// `address` directly.
fn pick_interface(address: Ipv4Addr, given: Option<&str>) -> Result<String, ArpError> {
    if let Some(name) = given {
        return Ok(name.to_string());
    }
    let table = std::fs::read_to_string("/proc/net/route")
        .map_err(|source| ArpError::Io { what: "cannot read /proc/net/route".into(), source })?;
    match route_to(address, &table) {
        None => Err(ArpError::NoRoute { address }),
        Some(Route { interface, gateway: Some(gateway) }) => Err(ArpError::NotOnLink { address, gateway, interface }),
        Some(Route { interface, gateway: None }) => Ok(interface),
    }
}

/// The interface's index and MAC, from sysfs.
fn interface_identity(name: &str) -> Result<(i32, Mac), ArpError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(ArpError::NoInterface { name: name.to_string() });
    }
    let dir = std::path::Path::new("/sys/class/net").join(name);
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file)).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ArpError::NoInterface { name: name.to_string() },
            _ => ArpError::Io { what: format!("cannot read {}/{file}", dir.display()), source },
        })
    };
    // ARPHRD_ETHER (1); loopback (772), tunnels and the like have no ARP.
    let link_type = read("type")?.trim().to_string();
    if link_type != "1" {
        return Err(ArpError::NotEthernet { name: name.to_string(), link_type });
    }
    let index = read("ifindex")?.trim().parse().map_err(|_| ArpError::NoInterface { name: name.to_string() })?;
    let mac = read("address")?.trim().parse().map_err(|_| ArpError::Io {
        what: format!("{name} has no Ethernet address"),
        source: std::io::Error::other("not a MAC"),
    })?;
    Ok((index, mac))
}

/// A link-layer address for `AF_PACKET` (bind and send).
fn link_address(index: i32) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is one of this platform's sockaddr types, smaller
    // than the storage; the length given below is its own.
    let address = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = ETH_P_ARP.to_be();
    address.sll_ifindex = index;
    address.sll_halen = 6;
    address.sll_addr[..6].copy_from_slice(&[0xFF; 6]);
    // SAFETY: the family is AF_PACKET and the storage holds a sockaddr_ll.
    unsafe { SockAddr::new(storage, std::mem::size_of::<libc::sockaddr_ll>() as socket2::socklen_t) }
}

fn arp_socket(index: i32) -> Result<AsyncFd<Socket>, ArpError> {
    let protocol = Protocol::from(i32::from(ETH_P_ARP.to_be()));
    let socket = Socket::new(Domain::PACKET, Type::RAW, Some(protocol)).map_err(|e| io_error("ARP socket", e))?;
    socket.bind(&link_address(index)).map_err(|e| io_error("ARP socket: bind to the interface", e))?;
    socket.set_nonblocking(true).map_err(|e| io_error("ARP socket: non-blocking mode", e))?;
    // SAFETY: the socket2 Socket owns its descriptor until it is dropped with
    // the AsyncFd, and always reports that same descriptor.
    unsafe { AsyncFd::register(socket) }.map_err(|e| io_error("ARP socket: register with the reactor", e.into()))
}

/// A gap in `min..=max`, picked from the clock (RFC 5227 wants the probes
/// of hosts started together not to line up; no cryptography needed).
fn gap(min: Duration, max: Duration, salt: u32) -> Duration {
    if max <= min {
        return min;
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut x = nanos ^ salt.wrapping_mul(0x9E37_79B9) ^ std::process::id();
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    let span = (max - min).as_micros() as u64;
    min + Duration::from_micros(u64::from(x) % (span + 1))
}

/// Probes for `address` and says whether another host holds it. Stops at
/// the first answer; else sends `probes` probes and listens `final_wait`
/// after the last.
pub async fn check(address: Ipv4Addr, options: &ProbeOptions, progress: &dyn Progress) -> Result<ArpCheck, ArpError> {
    let started = Instant::now();
    let interface = pick_interface(address, options.interface.as_deref())?;
    let (index, our_mac) = interface_identity(&interface)?;
    let socket = arp_socket(index)?;
    progress.report(ProgressEvent::Started {
        kind: TaskKind::AddressCheck,
        label: format!("checking that {address} is free (ARP probes from {interface})"),
        total: Some(u64::from(options.probes)),
    });
    let frame = probe_frame(our_mac, address);
    let mut buffer = [0u8; 1600];
    let mut frames = 0u32;
    let mut sent = 0u32;
    let mut in_use_by = None;
    'probing: for n in 0..options.probes.max(1) {
        send(&socket, &frame).await?;
        sent += 1;
        progress.report(ProgressEvent::Advanced { kind: TaskKind::AddressCheck, done: u64::from(sent) });
        let listen = if n + 1 == options.probes.max(1) {
            options.final_wait
        } else {
            gap(options.interval_min, options.interval_max, n)
        };
        let deadline = Instant::now() + listen;
        while frames < MAX_FRAMES {
            frames += 1;
            let ready = match tokio::time::timeout_at(deadline, socket.readable()).await {
                Err(_) => continue 'probing,
                Ok(ready) => ready.map_err(|e| io_error("ARP socket: wait", e))?,
            };
            let mut guard = ready;
            let n = match guard.try_io(|socket| socket.get_ref().read(&mut buffer)) {
                Err(_would_block) => continue,
                Ok(result) => result.map_err(|e| io_error("ARP socket: receive", e))?,
            };
            if let Some(mac) = conflict_in(&buffer[..n], our_mac, address) {
                in_use_by = Some(mac);
                break 'probing;
            }
        }
        // Too many frames: what was read held no answer; go on probing.
    }
    let elapsed = started.elapsed();
    progress.report(ProgressEvent::Finished { kind: TaskKind::AddressCheck, done: u64::from(sent), elapsed });
    Ok(ArpCheck { address, interface, probes_sent: sent, in_use_by, elapsed })
}

async fn send(socket: &AsyncFd<Socket>, frame: &[u8]) -> Result<(), ArpError> {
    // A send that would block waits for the socket; bounded by the kernel
    // draining its queue, and tried a fixed number of times.
    for _ in 0..16 {
        let mut guard = socket.writable().await.map_err(|e| io_error("ARP socket: wait to send", e))?;
        match guard.try_io(|socket| socket.get_ref().send(frame)) {
            Ok(result) => {
                result.map_err(|e| io_error("ARP socket: send", e))?;
                return Ok(());
            }
            Err(_would_block) => continue,
        }
    }
    Err(ArpError::Io { what: "ARP socket: send".into(), source: std::io::ErrorKind::WouldBlock.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
    const THEIRS: Mac = Mac([0x02, 0xAB, 0xCD, 0, 0, 2]);
    const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 9);

    #[test]
    fn the_probe_is_rfc_5227s() {
        let frame = probe_frame(OURS, TARGET);
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06, // Ethernet
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,                              // Ethernet/IPv4, request
            0x02, 0, 0, 0, 0, 1, 0, 0, 0, 0,                                      // sender: us, 0.0.0.0
            0, 0, 0, 0, 0, 0, 198, 18, 0, 9,                                      // target: zero, the address
        ];
        assert_eq!(frame, expected);
    }

    /// A frame from `sender` with sender address `spa` and target `tpa`.
    fn arp(op: u16, sender: Mac, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        let mut frame = probe_frame(sender, tpa);
        frame[20..22].copy_from_slice(&op.to_be_bytes());
        frame[28..32].copy_from_slice(&spa.octets());
        frame
    }

    #[test]
    fn answers_and_other_probes_name_the_holder() {
        // The kernel's reply to a probe: sender is the address.
        let reply = arp(2, THEIRS, TARGET, Ipv4Addr::UNSPECIFIED);
        assert_eq!(conflict_in(&reply, OURS, TARGET), Some(THEIRS));
        // Another host probing for the same address.
        let probe = probe_frame(THEIRS, TARGET);
        assert_eq!(conflict_in(&probe, OURS, TARGET), Some(THEIRS));
        // Our own probe, seen on the way out.
        assert_eq!(conflict_in(&probe_frame(OURS, TARGET), OURS, TARGET), None);
        // Someone else's traffic about another address.
        let other = arp(1, THEIRS, Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(conflict_in(&other, OURS, TARGET), None);
        // Not ARP, wrong lengths, truncated.
        let mut ipv4 = reply.clone();
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(conflict_in(&ipv4, OURS, TARGET), None);
        let mut long_hw = reply.clone();
        long_hw[18] = 8;
        assert_eq!(conflict_in(&long_hw, OURS, TARGET), None);
        for cut in 0..reply.len() {
            assert_eq!(conflict_in(&reply[..cut], OURS, TARGET), None, "cut at {cut}");
        }
    }

    #[test]
    fn routes_pick_the_longest_prefix_and_see_gateways() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     veth1\t000012C6\t00000000\t0001\t0\t0\t0\tF8FFFFFF\t0\t0\t0\n\
                     down0\t080012C6\t00000000\t0000\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n\
                     garbage line\n";
        if cfg!(target_endian = "little") {
            let on_link = route_to(Ipv4Addr::new(198, 18, 0, 5), table).unwrap();
            assert_eq!(on_link, Route { interface: "veth1".into(), gateway: None });
            let lan = route_to(Ipv4Addr::new(192, 168, 0, 7), table).unwrap();
            assert_eq!(lan, Route { interface: "eth0".into(), gateway: None });
            let far = route_to(Ipv4Addr::new(8, 8, 8, 8), table).unwrap();
            assert_eq!(far.gateway, Some(Ipv4Addr::new(192, 168, 0, 1)));
        }
        assert_eq!(route_to(Ipv4Addr::new(10, 0, 0, 1), "Iface\n"), None);
    }

    #[test]
    fn macs_and_gaps() {
        assert_eq!("02:AB:cd:00:00:02".parse::<Mac>().unwrap(), THEIRS);
        assert_eq!(THEIRS.to_string(), "02:AB:CD:00:00:02");
        assert!("02:ab".parse::<Mac>().is_err());
        for salt in 0..50 {
            let g = gap(PROBE_MIN, PROBE_MAX, salt);
            assert!((PROBE_MIN..=PROBE_MAX).contains(&g), "{g:?}");
        }
        assert_eq!(gap(PROBE_MIN, PROBE_MIN, 1), PROBE_MIN);
    }

    proptest::proptest! {
        /// Frames from the network never panic the parser.
        #[test]
        fn any_frame_is_read_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let _ = conflict_in(&bytes, OURS, TARGET);
        }
    }
}
