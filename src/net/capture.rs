//! Packet captures for `probe --pcap` and `diagnose --pcap`: every IPv4
//! packet between this station and the target while the investigation runs
//! (the SYNs or connections flashline made, the ICMP echo, and what came
//! back: SYN-ACK, RST, echo reply, ICMP unreachable), written as a pcap file
//! that Wireshark and tshark open.
//!
//! The capture is a packet socket (`AF_PACKET`, cooked, every protocol,
//! as only those see outgoing packets too; IPv4 kept; needs CAP_NET_RAW) in the namespace flashline runs in, so it records the same
//! packets whichever probe method ran, as the kernel sent and received them.
//! Packets of other hosts are dropped as they arrive ([`is_between`], pure);
//! on the loopback interface each packet is seen leaving and arriving, and
//! only the arrival is kept. The file is written with `pcap-file` (link type
//! RAW: each record starts at the IP header).

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::NetError;

const ETH_P_IP: u16 = 0x0800;
/// Every protocol: only such a socket also sees the packets sent.
const ETH_P_ALL: u16 = 0x0003;
/// The most packets one capture keeps; the rest are counted, not stored.
const MAX_PACKETS: usize = 100_000;
/// Replies still on their way when the investigation ends.
const GRACE: Duration = Duration::from_millis(50);

/// One captured IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Since the Unix epoch, when it was read.
    pub at: Duration,
    /// From the IPv4 header on.
    pub data: Vec<u8>,
}

/// Whether `packet` (from the IPv4 header on) goes between us and `target`.
pub fn is_between(packet: &[u8], target: Ipv4Addr) -> bool {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return false;
    }
    let source = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let destination = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    source == target || destination == target
}

/// Writes `packets` as a pcap file (link type RAW) to `out`.
pub fn write_pcap<W: std::io::Write>(packets: &[Packet], out: W) -> Result<(), pcap_file::PcapError> {
    let header = PcapHeader { datalink: DataLink::RAW, ..PcapHeader::default() };
    let mut writer = PcapWriter::with_header(out, header)?;
    for packet in packets {
        let length = u32::try_from(packet.data.len()).unwrap_or(u32::MAX);
        writer.write_packet(&PcapPacket::new(packet.at, length, &packet.data))?;
    }
    Ok(())
}

/// A capture running in the background; [`Capture::finish`] ends it.
pub struct Capture {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<Captured, NetError>>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").finish_non_exhaustive()
    }
}

/// What a capture holds.
#[derive(Debug, Default)]
pub struct Captured {
    pub packets: Vec<Packet>,
    /// Packets about the target not kept because the capture was full.
    pub dropped: usize,
}

impl Capture {
    /// Starts capturing packets between this station and `target`.
    pub fn start(target: Ipv4Addr) -> Result<Capture, NetError> {
        let protocol = Protocol::from(i32::from(ETH_P_ALL.to_be()));
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(protocol))
            .map_err(|e| NetError::io("packet capture socket", e))?;
        socket.set_nonblocking(true).map_err(|e| NetError::io("packet capture socket: non-blocking mode", e))?;
        // SAFETY: the socket2 Socket owns its descriptor until it is dropped
        // with the AsyncFd, and always reports that same descriptor.
        let socket = unsafe { AsyncFd::register(socket) }
            .map_err(|e| NetError::io("packet capture socket: register with the reactor", e.into()))?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(capture_until(socket, target, stopped));
        Ok(Capture { stop, task })
    }

    /// Stops and writes the pcap file at `path`; returns what it holds.
    pub async fn save(self, path: &std::path::Path) -> Result<Captured, NetError> {
        let captured = self.finish().await?;
        let what = || format!("cannot write the capture {}", path.display());
        let file = std::fs::File::create(path).map_err(|source| NetError::Io { what: what(), source })?;
        let mut out = std::io::BufWriter::new(file);
        write_pcap(&captured.packets, &mut out)
            .map_err(|e| NetError::Io { what: what(), source: std::io::Error::other(e) })?;
        std::io::Write::flush(&mut out).map_err(|source| NetError::Io { what: what(), source })?;
        Ok(captured)
    }

    /// Stops after a short grace for replies in flight; returns the packets.
    pub async fn finish(self) -> Result<Captured, NetError> {
        tokio::time::sleep(GRACE).await;
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(NetError::Io { what: "packet capture".into(), source: std::io::Error::other(error) }),
        }
    }
}

async fn capture_until(
    socket: AsyncFd<Socket>,
    target: Ipv4Addr,
    mut stopped: oneshot::Receiver<()>,
) -> Result<Captured, NetError> {
    let mut captured = Captured::default();
    let mut buffer = vec![0u8; 65_536];
    loop {
        let mut guard = tokio::select! {
            _ = &mut stopped => return Ok(captured),
            ready = socket.readable() => ready.map_err(|e| NetError::io("packet capture: wait", e))?,
        };
        let (n, keep) = match guard.try_io(|socket| receive(socket.get_ref(), &mut buffer)) {
            Err(_would_block) => continue,
            Ok(result) => result.map_err(|e| NetError::io("packet capture: receive", e))?,
        };
        let data = &buffer[..n];
        if !keep || !is_between(data, target) {
            continue;
        }
        if captured.packets.len() >= MAX_PACKETS {
            captured.dropped += 1;
            continue;
        }
        let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        captured.packets.push(Packet { at, data: data.to_vec() });
    }
}

/// Reads one packet: its length, and whether to keep it: IPv4, and not
/// loopback's outgoing copy of a packet it then also delivers.
fn receive(socket: &Socket, buffer: &mut [u8]) -> std::io::Result<(usize, bool)> {
    use std::os::fd::AsRawFd;
    // SAFETY: zeroed is a valid sockaddr_ll; recvfrom writes at most `len`
    // bytes of address and `buffer.len()` bytes of data into memory we own.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    let n = unsafe {
        libc::recvfrom(
            socket.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            0,
            (&raw mut address).cast(),
            &raw mut len,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let loopback_out = address.sll_pkttype == libc::PACKET_OUTGOING && address.sll_hatype == libc::ARPHRD_LOOPBACK;
    let ipv4 = u16::from_be(address.sll_protocol) == ETH_P_IP;
    Ok((n as usize, ipv4 && !loopback_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(source: [u8; 4], destination: [u8; 4]) -> Vec<u8> {
        let mut packet = vec![0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 6, 0, 0];
        packet.extend_from_slice(&source);
        packet.extend_from_slice(&destination);
        packet
    }

    #[test]
    fn only_packets_to_or_from_the_target_count() {
        let target = Ipv4Addr::new(198, 18, 0, 2);
        assert!(is_between(&ipv4([198, 18, 0, 1], [198, 18, 0, 2]), target));
        assert!(is_between(&ipv4([198, 18, 0, 2], [198, 18, 0, 1]), target));
        assert!(!is_between(&ipv4([198, 18, 0, 1], [198, 18, 0, 3]), target));
        assert!(!is_between(&ipv4([198, 18, 0, 2], [198, 18, 0, 1])[..19], target), "too short");
        let mut v6 = ipv4([198, 18, 0, 2], [198, 18, 0, 1]);
        v6[0] = 0x60;
        assert!(!is_between(&v6, target), "not IPv4");
    }

    #[test]
    fn the_file_is_pcap_with_raw_ip_records() {
        let packet = ipv4([198, 18, 0, 1], [198, 18, 0, 2]);
        let mut file = Vec::new();
        write_pcap(&[Packet { at: Duration::new(1_700_000_000, 250_000_000), data: packet.clone() }], &mut file)
            .unwrap();
        // Global header (pcap-file writes big-endian): magic, version 2.4,
        // snaplen, link type 101 (RAW).
        assert_eq!(&file[..4], &0xA1B2_C3D4u32.to_be_bytes());
        assert_eq!(&file[20..24], &101u32.to_be_bytes());
        // Record: seconds, microseconds, captured and original lengths, data.
        assert_eq!(&file[24..28], &1_700_000_000u32.to_be_bytes());
        assert_eq!(&file[28..32], &250_000u32.to_be_bytes());
        assert_eq!(&file[32..36], &20u32.to_be_bytes());
        assert_eq!(&file[40..], &packet[..]);
    }
}
