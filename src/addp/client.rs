//! The ADDP client: discovery and the three commands that change a device.
//!
//! Discovery sends one request per cookie (a server ignores frames that do
//! not carry its own, so NET+OS units need `DVKT` and Digi firmware `DIGI`)
//! to the multicast group on each chosen interface, from a socket bound to
//! that interface's address (the device answers by unicast to the sender),
//! and to each unicast address given; it reads replies for a window and
//! merges them by MAC. A device whose address is outside every subnet of the
//! interface it answered on gets an advisory: the station cannot reach it
//! by IP until its address is changed.
//!
//! Set address, DHCP and reboot go to one MAC (never the broadcast MAC,
//! which devices ignore), by multicast unless an address is given, and are
//! sent again when no matching reply (the request's command plus one, the
//! target's MAC) arrives in time. The device's verdict is its result flag
//! and error code, never its message text. Passwords are sent, never
//! recorded: errors name the MAC and command only.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::frame::{self, BROADCAST_MAC, Cookie, DeviceInfo, ErrorCode, Reply, Request, ResultFlag, command};
use super::{GROUP, PORT};
use crate::failure::{Classify, FailureClass};
use crate::mac::Mac;

/// Datagrams read per call at most (a flood cannot keep a window open).
const MAX_DATAGRAMS: usize = 100_000;

/// An IPv4 address of a local interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub name: String,
    pub address: Ipv4Addr,
    pub mask: Ipv4Addr,
}

impl Interface {
    /// Whether `address` is on this interface's subnet.
    pub fn holds(&self, address: Ipv4Addr) -> bool {
        same_subnet(self.address, address, self.mask)
    }
}

/// Whether `a` and `b` share the subnet of `mask`.
pub fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, mask: Ipv4Addr) -> bool {
    u32::from(a) & u32::from(mask) == u32::from(b) & u32::from(mask)
}

/// Why ADDP could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AddpError {
    #[error("no network interface named `{name}` with an IPv4 address (have: {have})")]
    NoInterface { name: String, have: String },
    #[error("no interface with an IPv4 address can send multicast here; name a device's address to ask it by unicast")]
    NoMulticastInterface,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot send this request: {0}")]
    Encode(#[from] frame::FrameError),
    #[error("a {what} must name one device: devices ignore it for the broadcast MAC ff:ff:ff:ff:ff:ff")]
    BroadcastMac { what: String },
    #[error("no {what} from {mac} after {attempts} attempts ({waited:?} each): no device with this MAC answered")]
    NoAnswer { what: String, mac: Mac, attempts: u32, waited: Duration },
    #[error("{mac} refused the {what}: {code}{}", message.as_ref().map(|m| format!(" (it said `{m}`)")).unwrap_or_default())]
    Refused { what: String, mac: Mac, code: ErrorCode, flag: Option<ResultFlag>, message: Option<String> },
}

impl Classify for AddpError {
    /// A device that refused is the device's; nothing answering is taken as
    /// the bench's (wrong interface, cable, cookie) as the CLI contract says.
    fn class(&self) -> FailureClass {
        match self {
            AddpError::NoInterface { .. } | AddpError::Encode(_) | AddpError::BroadcastMac { .. } => {
                FailureClass::Input
            }
            AddpError::NoMulticastInterface | AddpError::Io { .. } | AddpError::NoAnswer { .. } => {
                FailureClass::Environment
            }
            AddpError::Refused { .. } => FailureClass::Device,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AddpError {
    let what = what.into();
    move |source| AddpError::Io { what, source }
}

/// The IPv4 addresses of the interfaces that are up and can multicast
/// (loopback included only when `name` asks for it).
pub fn interfaces(name: Option<&str>) -> Result<Vec<Interface>, AddpError> {
    let mut all = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(AddpError::Io { what: "cannot list interfaces".into(), source: std::io::Error::last_os_error() });
    }
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: a non-null node of the list getifaddrs returned, alive until freeifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points at a sockaddr whose family we check first.
        if i32::from(unsafe { (*entry.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: an AF_INET address and its netmask are sockaddr_in.
        let (address, mask) = unsafe {
            let address = &*(entry.ifa_addr as *const libc::sockaddr_in);
            let mask = &*(entry.ifa_netmask as *const libc::sockaddr_in);
            (Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr)), Ipv4Addr::from(u32::from_be(mask.sin_addr.s_addr)))
        };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let if_name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) }.to_string_lossy().to_string();
        let flags = entry.ifa_flags;
        let up = flags & libc::IFF_UP as u32 != 0;
        let loopback = flags & libc::IFF_LOOPBACK as u32 != 0;
        let multicast = flags & libc::IFF_MULTICAST as u32 != 0;
        all.push((Interface { name: if_name, address, mask }, up, loopback, multicast));
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    match name {
        Some(name) => {
            let chosen: Vec<Interface> = all.iter().filter(|(i, ..)| i.name == name).map(|(i, ..)| i.clone()).collect();
            if chosen.is_empty() {
                let mut have: Vec<String> = all.iter().map(|(i, ..)| i.name.clone()).collect();
                have.dedup();
                return Err(AddpError::NoInterface { name: name.to_string(), have: have.join(", ") });
            }
            Ok(chosen)
        }
        None => Ok(all
            .into_iter()
            .filter(|(_, up, loopback, multicast)| *up && !*loopback && *multicast)
            .map(|(i, ..)| i)
            .collect()),
    }
}

/// A UDP socket bound to `address` (port 0), sending multicast out of the
/// interface that holds it, one hop only.
fn socket_on(address: Ipv4Addr) -> Result<UdpSocket, AddpError> {
    let what = format!("UDP socket on {address}");
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io(&what))?;
    socket.set_nonblocking(true).map_err(io(&what))?;
    if !address.is_unspecified() {
        socket.set_multicast_if_v4(&address).map_err(io(format!("{what}: multicast interface")))?;
    }
    socket.set_multicast_ttl_v4(1).map_err(io(&what))?;
    socket.bind(&SocketAddr::from((address, 0)).into()).map_err(io(format!("{what}: bind")))?;
    UdpSocket::from_std(socket.into()).map_err(io(&what))
}

/// Where discovery asks and for how long.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// Only this interface; `None`: every interface that is up and can multicast.
    pub interface: Option<String>,
    /// Also ask these addresses directly.
    pub unicast: Vec<Ipv4Addr>,
    /// Send multicast at all (off: unicast only).
    pub multicast: bool,
    pub cookies: Vec<Cookie>,
    /// How long to collect replies after the requests went out.
    pub window: Duration,
    /// The devices' port (2362; tests on loopback use others).
    pub port: u16,
    /// Ask one device only; default: every device.
    pub mac: Mac,
}

impl Default for DiscoverOptions {
    fn default() -> DiscoverOptions {
        DiscoverOptions {
            interface: None,
            unicast: Vec::new(),
            multicast: true,
            cookies: Cookie::ALL.to_vec(),
            window: Duration::from_secs(2),
            port: PORT,
            mac: BROADCAST_MAC,
        }
    }
}

/// One device found, its replies merged.
#[derive(Debug, Clone, Serialize)]
pub struct Discovered {
    #[serde(flatten)]
    pub device: DeviceInfo,
    /// Where its first reply came from.
    pub from: SocketAddr,
    /// The interface it answered on (None: a unicast question).
    pub interface: Option<Interface>,
    /// Every cookie it answered (usually one).
    pub cookies: Vec<Cookie>,
    /// Its address is not on the subnet of the interface it answered on
    /// (or of any chosen interface, for a unicast answer).
    pub other_subnet: bool,
    /// Time from the first request to its first reply.
    #[serde(rename = "reply_ms", serialize_with = "millis")]
    pub reply_after: Duration,
}

/// Milliseconds with microseconds (replies on a local link come in well under one).
fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_micros() as f64 / 1000.0)
}

/// The discovery request flashline sends with `cookie`: for `DVKT` the
/// ADDPv2 form Digi's tool sends NET+OS units (GUID and VERSION options),
/// for the others the plain form of the `DIGI` capture.
pub fn discovery_request(cookie: Cookie, mac: Mac) -> Request {
    if cookie == Cookie::DVKT { Request::discovery(mac) } else { Request::Discovery { mac, options: vec![] } }
}

/// Finds devices: see the module's notes. An empty list is not an error.
pub async fn discover(options: &DiscoverOptions) -> Result<Vec<Discovered>, AddpError> {
    let interfaces = interfaces(options.interface.as_deref())?;
    let mut sockets: Vec<(UdpSocket, Option<Interface>)> = Vec::new();
    if options.multicast {
        if interfaces.is_empty() && options.unicast.is_empty() {
            return Err(AddpError::NoMulticastInterface);
        }
        for interface in &interfaces {
            sockets.push((socket_on(interface.address)?, Some(interface.clone())));
        }
    }
    let unicast_socket = if options.unicast.is_empty() { None } else { Some(socket_on(Ipv4Addr::UNSPECIFIED)?) };
    let started = Instant::now();
    for cookie in &options.cookies {
        let mut wire = Vec::new();
        discovery_request(*cookie, options.mac).encode(*cookie, &mut wire)?;
        for (socket, interface) in &sockets {
            let name = interface.as_ref().map_or("", |i| i.name.as_str());
            socket
                .send_to(&wire, SocketAddrV4::new(GROUP, options.port))
                .await
                .map_err(io(format!("cannot send discovery to {GROUP}:{} on {name}", options.port)))?;
        }
        if let Some(socket) = &unicast_socket {
            for address in &options.unicast {
                // A host that is down answers nothing; an ICMP error for it is no reason to stop.
                if let Err(error) = socket.send_to(&wire, SocketAddrV4::new(*address, options.port)).await {
                    tracing::debug!("discovery to {address}: {error}");
                }
            }
        }
    }
    if let Some(socket) = unicast_socket {
        sockets.push((socket, None));
    }
    let deadline = started + options.window;
    let mut found: BTreeMap<[u8; 6], Discovered> = BTreeMap::new();
    let mut buf = vec![0u8; 65536];
    let mut read = 0;
    while read < MAX_DATAGRAMS {
        let Ok(ready) = tokio::time::timeout_at(deadline, any_readable(&sockets, |(socket, _)| socket)).await else {
            break;
        };
        let index = ready.map_err(io("waiting for discovery replies"))?;
        let (socket, interface) = &sockets[index];
        let (len, from) = match socket.try_recv_from(&mut buf) {
            Ok(got) => got,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            // An ICMP error from a unicast question surfaces here: not a reply.
            Err(error) => {
                tracing::debug!("discovery socket: {error}");
                read += 1;
                continue;
            }
        };
        read += 1;
        let reply = match Reply::decode(&buf[..len]) {
            Ok(Some((reply, _))) if reply.command == command::DISCOVERY_REPLY => reply,
            Ok(_) => continue,
            Err(error) => {
                tracing::debug!("ignoring a malformed datagram from {from}: {error}");
                continue;
            }
        };
        let device = reply.device();
        // A reply without a MAC cannot be merged or addressed; keep it under its sender.
        let key = device.mac.map_or_else(|| from_key(from), |m| m.0);
        match found.get_mut(&key) {
            Some(known) => {
                if !known.cookies.contains(&reply.cookie) {
                    known.cookies.push(reply.cookie);
                }
            }
            None => {
                let other_subnet = device.ip.is_some_and(|ip| match interface {
                    Some(interface) => !interface.holds(ip),
                    // Asked by unicast: reachable where it answered from,
                    // unless it reports another address off our subnets.
                    None => from.ip() != std::net::IpAddr::V4(ip) && !interfaces.iter().any(|i| i.holds(ip)),
                });
                found.insert(
                    key,
                    Discovered {
                        cookies: vec![reply.cookie],
                        device,
                        from,
                        interface: interface.clone(),
                        other_subnet,
                        reply_after: started.elapsed(),
                    },
                );
            }
        }
    }
    Ok(found.into_values().collect())
}

/// Where the unit with `mac` is: asked by multicast on every interface and
/// by unicast at `host` (where it was expected), for the default window.
/// `None`: it did not answer.
pub async fn locate(host: Ipv4Addr, mac: Mac) -> Result<Option<Discovered>, AddpError> {
    let options = DiscoverOptions { unicast: vec![host], mac, ..DiscoverOptions::default() };
    Ok(discover(&options).await?.into_iter().find(|unit| unit.device.mac == Some(mac)))
}

fn from_key(from: SocketAddr) -> [u8; 6] {
    match from {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            let [e, f] = v4.port().to_be_bytes();
            [a, b, c, d, e, f]
        }
        SocketAddr::V6(_) => [0; 6],
    }
}

/// The index of the first socket of `items` that has a datagram to read.
async fn any_readable<T>(items: &[T], socket: impl Fn(&T) -> &UdpSocket) -> std::io::Result<usize> {
    let mut waits: Vec<_> = items.iter().map(|item| Box::pin(socket(item).readable())).collect();
    std::future::poll_fn(move |cx| {
        for (index, wait) in waits.iter_mut().enumerate() {
            if let std::task::Poll::Ready(result) = wait.as_mut().poll(cx) {
                return std::task::Poll::Ready(result.map(|()| index));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// How a command is sent.
#[derive(Debug, Clone)]
pub struct OperateOptions {
    /// Send by unicast to this address; `None`: multicast.
    pub address: Option<Ipv4Addr>,
    /// Multicast out of this interface only; `None`: every one that can.
    pub interface: Option<String>,
    /// The cookies to send with (a device answers only its own): default all three.
    pub cookies: Vec<Cookie>,
    /// Wait per attempt.
    pub wait: Duration,
    /// Attempts after the first.
    pub retries: u32,
    pub port: u16,
}

impl Default for OperateOptions {
    fn default() -> OperateOptions {
        OperateOptions {
            address: None,
            interface: None,
            cookies: Cookie::ALL.to_vec(),
            wait: Duration::from_secs(2),
            retries: 2,
            port: PORT,
        }
    }
}

/// A command the device accepted.
#[derive(Debug, Clone)]
pub struct Operation {
    pub reply: Reply,
    pub from: SocketAddr,
    /// Requests sent until the reply (1 when the first was answered).
    pub attempts: u32,
}

/// What a request is called in messages ("reboot", "set static").
fn describe(request: &Request) -> String {
    frame::command::describe(request.command()).replace(" request", "")
}

/// Refuses a command that would reach every device that hears it: one for
/// the broadcast MAC, or a discovery (that is `discover`'s). `operate`
/// checks this before it opens a socket; it is pure so that it can be
/// tested without sending anything.
pub fn refuse_every_device(request: &Request) -> Result<(), AddpError> {
    if request.mac() == BROADCAST_MAC || matches!(request, Request::Discovery { .. }) {
        return Err(AddpError::BroadcastMac { what: describe(request) });
    }
    Ok(())
}

/// Sends `request` (set static, reboot or DHCP) and reads the device's
/// verdict: `Ok` on result flag success with no error code, `Refused`
/// otherwise, `NoAnswer` when no matching reply came in any attempt.
pub async fn operate(request: &Request, options: &OperateOptions) -> Result<Operation, AddpError> {
    refuse_every_device(request)?;
    let what = describe(request);
    let mac = request.mac();
    let mut sockets: Vec<(UdpSocket, SocketAddr)> = Vec::new();
    match options.address {
        Some(address) => sockets.push((socket_on(Ipv4Addr::UNSPECIFIED)?, SocketAddr::from((address, options.port)))),
        None => {
            let chosen = interfaces(options.interface.as_deref())?;
            if chosen.is_empty() {
                return Err(AddpError::NoMulticastInterface);
            }
            for interface in chosen {
                sockets.push((socket_on(interface.address)?, SocketAddr::from((GROUP, options.port))));
            }
        }
    }
    let mut datagrams = Vec::new();
    for cookie in &options.cookies {
        let mut wire = Vec::new();
        request.encode(*cookie, &mut wire)?;
        datagrams.push(wire);
    }
    let attempts = options.retries + 1;
    let mut buf = vec![0u8; 65536];
    for attempt in 1..=attempts {
        for (socket, to) in &sockets {
            for wire in &datagrams {
                if let Err(error) = socket.send_to(wire, to).await {
                    tracing::debug!("{what} to {to}: {error}");
                }
            }
        }
        let deadline = Instant::now() + options.wait;
        let mut read = 0;
        while read < MAX_DATAGRAMS {
            let Ok(ready) = tokio::time::timeout_at(deadline, any_readable(&sockets, |(socket, _)| socket)).await
            else {
                break;
            };
            let index = ready.map_err(io(format!("waiting for the {what} reply")))?;
            read += 1;
            let (len, from) = match sockets[index].0.try_recv_from(&mut buf) {
                Ok(got) => got,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => {
                    tracing::debug!("{what}: {error}");
                    continue;
                }
            };
            let Ok(Some((reply, _))) = Reply::decode(&buf[..len]) else { continue };
            if reply.command != request.command() + 1 || reply.mac() != Some(mac) {
                continue;
            }
            let flag = reply.result_flag();
            let code = reply.error_code();
            let success = flag == Some(ResultFlag::Success) && matches!(code, None | Some(ErrorCode::None));
            if success {
                return Ok(Operation { reply, from, attempts: attempt });
            }
            return Err(AddpError::Refused {
                what,
                mac,
                code: code.unwrap_or(ErrorCode::Unknown(0xFF)),
                flag,
                message: reply.result_message(),
            });
        }
    }
    Err(AddpError::NoAnswer { what, mac, attempts, waited: options.wait })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_keys() {
        let interface = Interface {
            name: "eth0".into(),
            address: Ipv4Addr::new(198, 18, 0, 1),
            mask: Ipv4Addr::new(255, 255, 255, 248),
        };
        assert!(interface.holds(Ipv4Addr::new(198, 18, 0, 6)));
        assert!(!interface.holds(Ipv4Addr::new(198, 18, 0, 9)));
        assert_ne!(from_key("127.0.0.1:1".parse().unwrap()), from_key("127.0.0.1:2".parse().unwrap()));
    }

    #[test]
    fn loopback_is_listed_only_by_name() {
        let all = interfaces(None).unwrap();
        assert!(all.iter().all(|i| !i.address.is_loopback()), "{all:?}");
        let lo = interfaces(Some("lo")).unwrap();
        assert!(lo.iter().any(|i| i.address == Ipv4Addr::LOCALHOST), "{lo:?}");
        let error = interfaces(Some("nosuch0")).unwrap_err();
        assert!(error.to_string().contains("`nosuch0`"), "{error}");
        assert_eq!(error.class(), FailureClass::Input);
    }

    // The guard alone, without a socket: `operate` itself is tested only
    // inside a namespace the test made (tests/addp.rs), so a regression
    // here can never send a reboot to the machine's own network.
    #[test]
    fn a_command_for_every_device_is_refused() {
        let password = || frame::Password(b"x".to_vec());
        let one = Mac([0x00, 0x40, 0x9D, 0x01, 0x02, 0x03]);
        let every = [
            Request::Reboot { mac: BROADCAST_MAC, password: password() },
            Request::Dhcp { enable: true, mac: BROADCAST_MAC, password: password() },
            Request::SetStatic {
                ip: Ipv4Addr::new(198, 18, 0, 2),
                mask: Ipv4Addr::new(255, 255, 255, 248),
                gateway: Ipv4Addr::UNSPECIFIED,
                mac: BROADCAST_MAC,
                password: password(),
            },
            Request::discovery(one),
        ];
        for request in &every {
            let error = refuse_every_device(request).unwrap_err();
            assert!(matches!(error, AddpError::BroadcastMac { .. }), "{request:?}: {error}");
            assert_eq!(error.class(), FailureClass::Input);
            assert!(error.to_string().contains("ff:ff:ff:ff:ff:ff"), "{error}");
        }
        assert!(refuse_every_device(&Request::Reboot { mac: one, password: password() }).is_ok());
        let reboot = refuse_every_device(&every[0]).unwrap_err().to_string();
        assert!(reboot.starts_with("a reboot must name one device"), "{reboot}");
    }

    #[test]
    fn dvkt_asks_with_the_v2_options_others_plain() {
        let mac = BROADCAST_MAC;
        assert!(
            matches!(discovery_request(Cookie::DVKT, mac), Request::Discovery { options, .. } if options.len() == 2)
        );
        assert!(
            matches!(discovery_request(Cookie::DIGI, mac), Request::Discovery { options, .. } if options.is_empty())
        );
    }
}
