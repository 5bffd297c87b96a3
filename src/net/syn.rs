//! Half-open TCP SYN probes through raw sockets, built and parsed with
//! pnet_packet.
//!
//! A SYN goes out from a raw socket; the device answers SYN-ACK (open), RST
//! (closed: its stack has no listener), an ICMP destination-unreachable, or
//! nothing (filtered). Our kernel has no socket for the SYN-ACK and answers it
//! with a RST, so no connection is ever made: a NET+OS device, which allows two
//! FTP sessions, does not lose one to the probe.
//!
//! One background receiver per [`SynProber`] reads both raw sockets (TCP and
//! ICMP) and hands each reply to the probe waiting for it, matched by address,
//! ports and sequence number; packets that match nothing, or do not parse, are
//! dropped. It runs on the tokio reactor (non-blocking sockets in `AsyncFd`),
//! never blocking the runtime.
//!
//! Needs CAP_NET_RAW; [`SynProber::new`] says so when it is missing.

use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pnet_packet::icmp::{IcmpPacket, IcmpTypes};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::tcp::{MutableTcpPacket, TcpFlags, TcpPacket, ipv4_checksum};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::{NetError, PortResult, PortState, ProbeOptions, Reason, UsedMethod, format_rtt};
use crate::sync::lock;

/// The shortest wait for stragglers once other ports have answered: covers
/// a device's slow path (a busy embedded stack) without waiting the full
/// timeout for a port a filter drops.
pub const MIN_ADAPTIVE_WAIT: Duration = Duration::from_millis(100);

/// What identifies a reply: the device's address and port, and our port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    target: Ipv4Addr,
    port: u16,
    source_port: u16,
}

struct Waiter {
    /// Our initial sequence number; a genuine answer acknowledges seq + 1.
    seq: u32,
    sent_at: Instant,
    /// Where the first answer goes, with the probe's index; None once sent.
    reply: Option<(usize, mpsc::UnboundedSender<(usize, Reply)>)>,
}

#[derive(Debug)]
struct Reply {
    state: PortState,
    reason: Reason,
    rtt: Duration,
    evidence: String,
}

struct Shared {
    tcp: AsyncFd<Socket>,
    icmp: AsyncFd<Socket>,
    pending: Mutex<HashMap<Key, Waiter>>,
}

/// A SYN prober: raw sockets plus the receiver task that demultiplexes replies.
pub struct SynProber {
    shared: Arc<Shared>,
    receiver: tokio::task::JoinHandle<()>,
    next_port: AtomicU32,
}

impl std::fmt::Debug for SynProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynProber").finish_non_exhaustive()
    }
}

impl Drop for SynProber {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

fn raw_socket(protocol: Protocol, what: &'static str) -> Result<AsyncFd<Socket>, NetError> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(protocol)).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => NetError::PermissionDenied { what },
        _ => NetError::io(format!("cannot open {what}"), e),
    })?;
    socket.set_nonblocking(true).map_err(|e| NetError::io("raw socket: non-blocking mode", e))?;
    // A burst of a thousand answers must not overflow the default buffer.
    let _ = socket.set_recv_buffer_size(4 << 20);
    // SAFETY: the socket2 Socket owns its descriptor until it is dropped with
    // the AsyncFd, and always reports that same descriptor.
    unsafe { AsyncFd::register(socket) }.map_err(|e| NetError::io("raw socket: register with the reactor", e.into()))
}

impl SynProber {
    /// Opens the raw sockets and starts the receiver. Must be called inside a
    /// tokio runtime.
    pub fn new() -> Result<SynProber, NetError> {
        let tcp = raw_socket(Protocol::TCP, "a TCP SYN probe (raw socket)")?;
        let icmp = raw_socket(Protocol::ICMPV4, "a TCP SYN probe (raw ICMP socket)")?;
        let shared = Arc::new(Shared { tcp, icmp, pending: Mutex::new(HashMap::new()) });
        let receiver = tokio::spawn(receive(shared.clone()));
        // Source ports from a per-prober random start in 40000-59999, so two
        // probers (or two runs) are unlikely to reuse one.
        let start = 40_000 + random_u32() % 20_000;
        Ok(SynProber { shared, receiver, next_port: AtomicU32::new(start) })
    }

    fn source_port(&self) -> u16 {
        let n = self.next_port.fetch_add(1, Ordering::Relaxed);
        (40_000 + (n - 40_000) % 20_000) as u16
    }

    /// Probes every port of `target` at once, retransmitting unanswered SYNs
    /// `options.retries` times; results in `ports` order.
    ///
    /// Each try waits at most `options.timeout`, but once answers arrive it
    /// waits only a few round-trip times longer for the rest (at least
    /// [`MIN_ADAPTIVE_WAIT`]): on a LAN silence after that means a filter, not
    /// a slow device.
    pub async fn probe(
        &self,
        target: Ipv4Addr,
        ports: &[u16],
        options: ProbeOptions,
    ) -> Result<Vec<PortResult>, NetError> {
        let source = local_address_for(target)?;
        let source_port = self.source_port();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut probes = Vec::with_capacity(ports.len());
        {
            let mut pending = lock(&self.shared.pending);
            for (index, &port) in ports.iter().enumerate() {
                let key = Key { target, port, source_port };
                let seq = random_u32();
                pending.insert(key, Waiter { seq, sent_at: Instant::now(), reply: Some((index, tx.clone())) });
                probes.push((key, seq));
            }
        }
        drop(tx);
        let mut replies: Vec<Option<Reply>> = (0..ports.len()).map(|_| None).collect();
        let outcome = self.exchange(source, &probes, &mut replies, &mut rx, options).await;
        {
            let mut pending = lock(&self.shared.pending);
            for (key, _) in &probes {
                pending.remove(key);
            }
        }
        outcome?;
        let tries = options.retries + 1;
        Ok(probes
            .into_iter()
            .zip(replies)
            .map(|((key, _), reply)| match reply {
                Some(reply) => PortResult {
                    port: key.port,
                    state: reply.state,
                    reason: reply.reason,
                    rtt: Some(reply.rtt),
                    evidence: reply.evidence,
                    method: UsedMethod::Syn,
                },
                None => PortResult {
                    port: key.port,
                    state: PortState::Filtered,
                    reason: Reason::NoResponse,
                    rtt: None,
                    evidence: format!("no answer to {tries} SYN{}", if tries == 1 { "" } else { "s" }),
                    method: UsedMethod::Syn,
                },
            })
            .collect())
    }

    async fn exchange(
        &self,
        source: Ipv4Addr,
        probes: &[(Key, u32)],
        replies: &mut [Option<Reply>],
        rx: &mut mpsc::UnboundedReceiver<(usize, Reply)>,
        options: ProbeOptions,
    ) -> Result<(), NetError> {
        let mut slowest: Option<Duration> = None;
        let mut unanswered = probes.len();
        for attempt in 0..=options.retries {
            for (index, (key, seq)) in probes.iter().enumerate() {
                if replies[index].is_some() {
                    continue;
                }
                if let Some(waiter) = lock(&self.shared.pending).get_mut(key) {
                    waiter.sent_at = Instant::now();
                }
                self.send_syn(source, *key, *seq).await?;
            }
            let sent = tokio::time::Instant::now();
            let hard_deadline = sent + options.timeout;
            while unanswered > 0 {
                let deadline = match slowest {
                    Some(rtt) => (sent + (rtt * 8).max(MIN_ADAPTIVE_WAIT)).min(hard_deadline),
                    None => hard_deadline,
                };
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((index, reply))) => {
                        if replies[index].is_none() {
                            unanswered -= 1;
                        }
                        slowest = Some(slowest.map_or(reply.rtt, |s| s.max(reply.rtt)));
                        replies[index] = Some(reply);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            if unanswered == 0 {
                break;
            }
            tracing::debug!(attempt, unanswered, "retransmitting unanswered SYNs");
        }
        Ok(())
    }

    async fn send_syn(&self, source: Ipv4Addr, key: Key, seq: u32) -> Result<(), NetError> {
        let segment = build_syn(source, key.target, key.source_port, key.port, seq);
        let address = SockAddr::from(SocketAddrV4::new(key.target, 0));
        loop {
            let mut guard =
                self.shared.tcp.writable().await.map_err(|e| NetError::io("raw socket: wait for writable", e))?;
            match guard.try_io(|socket| socket.get_ref().send_to(&segment, &address)) {
                Ok(Ok(_)) => return Ok(()),
                // The device's address has no route: nothing can answer; the
                // probe ends as filtered by its timeout.
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable
                    ) =>
                {
                    return Ok(());
                }
                Ok(Err(e)) => return Err(NetError::io(format!("send SYN to {}:{}", key.target, key.port), e)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// A 20-byte SYN segment with a correct checksum for `source` -> `target`.
pub fn build_syn(source: Ipv4Addr, target: Ipv4Addr, source_port: u16, port: u16, seq: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; 20];
    let mut tcp = MutableTcpPacket::new(&mut bytes).expect("20 bytes hold a TCP header");
    tcp.set_source(source_port);
    tcp.set_destination(port);
    tcp.set_sequence(seq);
    tcp.set_acknowledgement(0);
    tcp.set_data_offset(5);
    tcp.set_flags(TcpFlags::SYN);
    tcp.set_window(1024);
    let checksum = ipv4_checksum(&tcp.to_immutable(), &source, &target);
    tcp.set_checksum(checksum);
    bytes
}

/// The address the kernel would send from to reach `target` (a UDP socket
/// "connected" to it picks the route; no packet is sent).
fn local_address_for(target: Ipv4Addr) -> Result<Ipv4Addr, NetError> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| NetError::io("pick a source address", e))?;
    socket.connect((target, 9)).map_err(|e| NetError::io(format!("no route to {target}"), e))?;
    match socket.local_addr() {
        Ok(std::net::SocketAddr::V4(v4)) => Ok(*v4.ip()),
        Ok(other) => {
            Err(NetError::io("pick a source address", std::io::Error::other(format!("unexpected address {other}"))))
        }
        Err(e) => Err(NetError::io("pick a source address", e)),
    }
}

/// The receiver: reads both raw sockets until the prober is dropped.
async fn receive(shared: Arc<Shared>) {
    let mut tcp_buffer = vec![0u8; 65_536];
    let mut icmp_buffer = vec![0u8; 65_536];
    loop {
        tokio::select! {
            ready = shared.tcp.readable() => {
                let Ok(mut guard) = ready else { return };
                match guard.try_io(|socket| socket.get_ref().read(&mut tcp_buffer)) {
                    Ok(Ok(n)) => handle_tcp(&shared, &tcp_buffer[..n]),
                    Ok(Err(error)) => tracing::debug!(%error, "raw TCP receive"),
                    Err(_would_block) => {}
                }
            }
            ready = shared.icmp.readable() => {
                let Ok(mut guard) = ready else { return };
                match guard.try_io(|socket| socket.get_ref().read(&mut icmp_buffer)) {
                    Ok(Ok(n)) => handle_icmp(&shared, &icmp_buffer[..n]),
                    Ok(Err(error)) => tracing::debug!(%error, "raw ICMP receive"),
                    Err(_would_block) => {}
                }
            }
        }
    }
}

/// Parsed facts of a TCP answer, for matching and evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpAnswer {
    pub from: Ipv4Addr,
    pub ttl: u8,
    pub source_port: u16,
    pub destination_port: u16,
    pub acknowledgement: u32,
    pub flags: u8,
    pub window: u16,
}

/// Parses an IPv4 packet carrying TCP; None for anything else or anything
/// malformed (never panics).
pub fn parse_tcp_answer(packet: &[u8]) -> Option<TcpAnswer> {
    let ip = Ipv4Packet::new(packet)?;
    if ip.get_version() != 4 || ip.get_next_level_protocol() != IpNextHeaderProtocols::Tcp {
        return None;
    }
    let header = usize::from(ip.get_header_length()) * 4;
    if header < 20 || packet.len() < header {
        return None;
    }
    let tcp = TcpPacket::new(&packet[header..])?;
    Some(TcpAnswer {
        from: ip.get_source(),
        ttl: ip.get_ttl(),
        source_port: tcp.get_source(),
        destination_port: tcp.get_destination(),
        acknowledgement: tcp.get_acknowledgement(),
        flags: tcp.get_flags(),
        window: tcp.get_window(),
    })
}

/// What a TCP answer means for a probe with initial sequence `seq`.
pub fn classify_tcp(answer: &TcpAnswer, seq: u32) -> Option<(PortState, Reason)> {
    let acks_our_syn = answer.flags & TcpFlags::ACK != 0 && answer.acknowledgement == seq.wrapping_add(1);
    if answer.flags & TcpFlags::RST != 0 && acks_our_syn {
        return Some((PortState::Closed, Reason::Rst));
    }
    if answer.flags & (TcpFlags::SYN | TcpFlags::ACK) == (TcpFlags::SYN | TcpFlags::ACK) && acks_our_syn {
        return Some((PortState::Open, Reason::SynAck));
    }
    None
}

/// `SYN,ACK`, `RST,ACK`... in capture order.
pub fn flag_names(flags: u8) -> String {
    let names = [
        (TcpFlags::FIN, "FIN"),
        (TcpFlags::SYN, "SYN"),
        (TcpFlags::RST, "RST"),
        (TcpFlags::PSH, "PSH"),
        (TcpFlags::ACK, "ACK"),
        (TcpFlags::URG, "URG"),
    ];
    let set: Vec<&str> = names.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, name)| *name).collect();
    if set.is_empty() { "none".into() } else { set.join(",") }
}

fn handle_tcp(shared: &Shared, packet: &[u8]) {
    let Some(answer) = parse_tcp_answer(packet) else { return };
    let key = Key { target: answer.from, port: answer.source_port, source_port: answer.destination_port };
    let mut pending = lock(&shared.pending);
    let Some(waiter) = pending.get_mut(&key) else { return };
    let Some((state, reason)) = classify_tcp(&answer, waiter.seq) else { return };
    let rtt = waiter.sent_at.elapsed();
    if let Some((index, tx)) = waiter.reply.take() {
        let evidence =
            format!("{} win={} ttl={} {}", flag_names(answer.flags), answer.window, answer.ttl, format_rtt(rtt));
        let _ = tx.send((index, Reply { state, reason, rtt, evidence }));
    }
}

/// Facts of an ICMP destination-unreachable about one of our SYNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub from: Ipv4Addr,
    pub ttl: u8,
    pub code: u8,
    /// The quoted SYN: its destination, ports and sequence.
    pub target: Ipv4Addr,
    pub source_port: u16,
    pub port: u16,
    pub seq: u32,
}

/// Parses an IPv4 packet carrying ICMP destination-unreachable that quotes a
/// TCP segment; None otherwise (never panics).
pub fn parse_unreachable(packet: &[u8]) -> Option<Unreachable> {
    let ip = Ipv4Packet::new(packet)?;
    if ip.get_next_level_protocol() != IpNextHeaderProtocols::Icmp {
        return None;
    }
    let header = usize::from(ip.get_header_length()) * 4;
    let icmp = IcmpPacket::new(packet.get(header..)?)?;
    if icmp.get_icmp_type() != IcmpTypes::DestinationUnreachable {
        return None;
    }
    // Type, code, checksum, 4 unused bytes, then the quoted IP header and at
    // least 8 bytes of its payload.
    let quoted = packet.get(header + 8..)?;
    let inner = Ipv4Packet::new(quoted)?;
    if inner.get_next_level_protocol() != IpNextHeaderProtocols::Tcp {
        return None;
    }
    let inner_header = usize::from(inner.get_header_length()) * 4;
    let tcp = quoted.get(inner_header..inner_header + 8)?;
    Some(Unreachable {
        from: ip.get_source(),
        ttl: ip.get_ttl(),
        code: icmp.get_icmp_code().0,
        target: inner.get_destination(),
        source_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        port: u16::from_be_bytes([tcp[2], tcp[3]]),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
    })
}

/// Names of the unreachable codes that mean "filtered" (RFC 792 / 1812).
pub fn unreachable_name(code: u8) -> &'static str {
    match code {
        0 => "net unreachable",
        1 => "host unreachable",
        2 => "protocol unreachable",
        3 => "port unreachable",
        9 => "net administratively prohibited",
        10 => "host administratively prohibited",
        13 => "communication administratively prohibited",
        _ => "unreachable",
    }
}

fn handle_icmp(shared: &Shared, packet: &[u8]) {
    let Some(unreachable) = parse_unreachable(packet) else { return };
    let key = Key { target: unreachable.target, port: unreachable.port, source_port: unreachable.source_port };
    let mut pending = lock(&shared.pending);
    let Some(waiter) = pending.get_mut(&key) else { return };
    if waiter.seq != unreachable.seq {
        return;
    }
    let rtt = waiter.sent_at.elapsed();
    if let Some((index, tx)) = waiter.reply.take() {
        let evidence = format!(
            "ICMP {} (type 3 code {}) from {} ttl={} {}",
            unreachable_name(unreachable.code),
            unreachable.code,
            unreachable.from,
            unreachable.ttl,
            format_rtt(rtt)
        );
        let _ = tx.send((index, Reply { state: PortState::Filtered, reason: Reason::IcmpUnreachable, rtt, evidence }));
    }
}

/// A non-cryptographic random number: sequence numbers and ports only need
/// to differ between probes and runs.
pub(crate) fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_header(protocol: u8, source: [u8; 4], destination: [u8; 4], ttl: u8, payload_len: usize) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, ttl, protocol, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&source);
        h.extend_from_slice(&destination);
        h
    }

    #[test]
    fn syn_segment_is_well_formed() {
        let source = Ipv4Addr::new(198, 18, 0, 1);
        let target = Ipv4Addr::new(198, 18, 0, 2);
        let bytes = build_syn(source, target, 40_001, 21, 0x1234_5678);
        let tcp = TcpPacket::new(&bytes).unwrap();
        assert_eq!(tcp.get_source(), 40_001);
        assert_eq!(tcp.get_destination(), 21);
        assert_eq!(tcp.get_sequence(), 0x1234_5678);
        assert_eq!(tcp.get_flags(), TcpFlags::SYN);
        assert_eq!(tcp.get_checksum(), ipv4_checksum(&tcp, &source, &target));
    }

    #[test]
    fn rst_ack_and_syn_ack_are_classified_by_their_ack() {
        // The forum's capture: `ftp > wip-port [RST, ACK] seq=1 ack=1 win=0`.
        let mut packet = ip_header(6, [198, 18, 0, 2], [198, 18, 0, 1], 64, 20);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&21u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40_001u16.to_be_bytes());
        tcp[8..12].copy_from_slice(&0x1234_5679u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = TcpFlags::RST | TcpFlags::ACK;
        packet.extend_from_slice(&tcp);
        let answer = parse_tcp_answer(&packet).unwrap();
        assert_eq!(answer.source_port, 21);
        assert_eq!(classify_tcp(&answer, 0x1234_5678), Some((PortState::Closed, Reason::Rst)));
        assert_eq!(flag_names(answer.flags), "RST,ACK");
        // An answer to someone else's SYN is not ours.
        assert_eq!(classify_tcp(&answer, 7), None);
        let mut syn_ack = answer.clone();
        syn_ack.flags = TcpFlags::SYN | TcpFlags::ACK;
        assert_eq!(classify_tcp(&syn_ack, 0x1234_5678), Some((PortState::Open, Reason::SynAck)));
        // A bare SYN (our own, seen on loopback) is nothing.
        syn_ack.flags = TcpFlags::SYN;
        assert_eq!(classify_tcp(&syn_ack, 0x1234_5678), None);
    }

    #[test]
    fn icmp_unreachable_quoting_our_syn() {
        let syn = build_syn(Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2), 40_002, 23, 99);
        let mut quoted = ip_header(6, [198, 18, 0, 1], [198, 18, 0, 2], 63, 20);
        quoted.extend_from_slice(&syn);
        let mut icmp = vec![3, 13, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let mut packet = ip_header(1, [198, 18, 0, 2], [198, 18, 0, 1], 64, icmp.len());
        packet.extend_from_slice(&icmp);
        let found = parse_unreachable(&packet).unwrap();
        assert_eq!((found.code, found.port, found.source_port, found.seq), (13, 23, 40_002, 99));
        assert_eq!(unreachable_name(found.code), "communication administratively prohibited");
    }

    proptest::proptest! {
        #[test]
        fn parsers_take_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_tcp_answer(&bytes);
            let _ = parse_unreachable(&bytes);
        }
    }

    #[test]
    fn odd_packets_never_panic() {
        for len in 0..80 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = parse_tcp_answer(&junk);
            let _ = parse_unreachable(&junk);
            let mut claims_long_header = junk.clone();
            if !claims_long_header.is_empty() {
                claims_long_header[0] = 0x4F;
            }
            let _ = parse_tcp_answer(&claims_long_header);
            let _ = parse_unreachable(&claims_long_header);
        }
    }
}
