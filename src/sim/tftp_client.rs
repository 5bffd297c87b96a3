//! A small TFTP client (RFC 1350, read requests in `octet` mode) over tokio
//! UDP: what the simulated CSP uses to fetch a configuration file from the
//! server address the host gave it, as a real controller does.
//!
//! It retransmits its last packet when an answer is late (bounded tries),
//! re-acknowledges duplicate blocks, refuses packets from other ports than the
//! server's chosen one (RFC 1350's transfer IDs), and caps the file size. It
//! does not write files, negotiate options (RFC 2347) or serve anything.
//! Packets are built and read by the one codec, [`crate::tftp::packet`].

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};

use crate::tftp::packet::{self, DEFAULT_BLOCK as BLOCK, ErrorCode, Packet, RequestKind};

#[derive(Debug, Clone, Copy)]
pub struct TftpOptions {
    /// How long to wait for each packet before sending the last one again.
    pub timeout: Duration,
    /// How many times a packet is sent before giving up.
    pub tries: u32,
    /// The largest file accepted.
    pub max_size: usize,
}

impl Default for TftpOptions {
    fn default() -> TftpOptions {
        TftpOptions { timeout: Duration::from_secs(1), tries: 3, max_size: 64 * 1024 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    #[error("no answer from {server} after {tries} tries of {timeout:?}")]
    Timeout { server: SocketAddr, tries: u32, timeout: Duration },
    #[error("{server} answered error {code}: {message}")]
    Remote { server: SocketAddr, code: u16, message: String },
    #[error("{server} broke the protocol: {what}")]
    Protocol { server: SocketAddr, what: String },
    #[error("the file from {server} is over {limit} bytes")]
    TooLarge { server: SocketAddr, limit: usize },
    #[error("udp socket: {0}")]
    Io(#[from] io::Error),
}

/// Reads `filename` from the TFTP server at `server`.
pub async fn fetch(server: SocketAddr, filename: &str, options: &TftpOptions) -> Result<Vec<u8>, TftpError> {
    let local: SocketAddr =
        if server.ip().is_loopback() { (Ipv4Addr::LOCALHOST, 0).into() } else { (Ipv4Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await?;
    let mut last_sent = request(filename);
    // The server answers from a new port (its transfer ID); until then, and
    // for retransmitting the request, the well-known address is the peer.
    let mut peer: Option<SocketAddr> = None;
    let mut file = Vec::new();
    let mut expected: u16 = 1;
    let mut buf = vec![0u8; BLOCK + 4 + 1];
    socket.send_to(&last_sent, server).await?;
    let mut tries = 1;
    let mut deadline = Instant::now() + options.timeout;
    loop {
        let (n, from) = match timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Ok(result) => result?,
            Err(_) => {
                if tries >= options.tries {
                    return Err(TftpError::Timeout { server, tries, timeout: options.timeout });
                }
                tries += 1;
                socket.send_to(&last_sent, peer.unwrap_or(server)).await?;
                deadline = Instant::now() + options.timeout;
                continue;
            }
        };
        if from.ip() != server.ip() || peer.is_some_and(|p| p != from) {
            // RFC 1350: a packet from a wrong transfer ID gets an error and
            // does not disturb the transfer.
            let _ = socket.send_to(&error_packet(5, "unknown transfer ID"), from).await;
            continue;
        }
        match packet::decode_datagram(&buf[..n]) {
            Ok(Packet::Data { block, data }) => {
                peer = Some(from);
                if block == expected {
                    if data.len() > BLOCK {
                        return Err(TftpError::Protocol {
                            server,
                            what: format!("block {block} has {} bytes, more than 512", data.len()),
                        });
                    }
                    if file.len() + data.len() > options.max_size {
                        let _ = socket.send_to(&error_packet(3, "file too large"), from).await;
                        return Err(TftpError::TooLarge { server, limit: options.max_size });
                    }
                    file.extend_from_slice(data);
                    last_sent = ack(block);
                    socket.send_to(&last_sent, from).await?;
                    if data.len() < BLOCK {
                        return Ok(file);
                    }
                    expected = expected.wrapping_add(1);
                    tries = 1;
                    deadline = Instant::now() + options.timeout;
                } else if block == expected.wrapping_sub(1) {
                    // Our ACK was lost: acknowledge the duplicate again.
                    socket.send_to(&ack(block), from).await?;
                } else {
                    return Err(TftpError::Protocol {
                        server,
                        what: format!("got block {block}, expected {expected}"),
                    });
                }
            }
            Ok(Packet::Error { code, message }) => {
                return Err(TftpError::Remote { server, code: code.number(), message });
            }
            _ => {
                return Err(TftpError::Protocol {
                    server,
                    what: format!("unexpected packet of {n} bytes starting {:02X?}", &buf[..n.min(4)]),
                });
            }
        }
    }
}

fn request(filename: &str) -> Vec<u8> {
    packet::to_bytes(&Packet::Request {
        kind: RequestKind::Read,
        filename: filename.to_string(),
        mode: "octet".into(),
        options: Vec::new(),
    })
}

fn ack(block: u16) -> Vec<u8> {
    packet::to_bytes(&Packet::Ack { block })
}

fn error_packet(code: u16, message: &str) -> Vec<u8> {
    packet::to_bytes(&Packet::Error { code: ErrorCode::from_number(code), message: message.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-file TFTP server good enough to test the client: answers from
    /// a new port; can ignore the first ACK so that the client must send it
    /// again.
    async fn serve_once(content: Vec<u8>, ignore_first_ack: bool) -> SocketAddr {
        let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 600];
            let (n, client) = listener.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..2], &[0, 1]);
            let name_end = buf[2..n].iter().position(|b| *b == 0).unwrap() + 2;
            if &buf[2..name_end] == b"missing" {
                listener.send_to(&error_packet(1, "File not found"), client).await.unwrap();
                return;
            }
            let transfer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut ignore = ignore_first_ack;
            // A file whose size is a multiple of 512 ends with an empty block.
            let blocks = content.chunks(BLOCK).chain(std::iter::once(&[][..]));
            for (i, chunk) in blocks.enumerate() {
                let block = (i + 1) as u16;
                let mut packet = Vec::new();
                packet::encode_data(block, chunk, &mut packet);
                transfer.send_to(&packet, client).await.unwrap();
                let mut acked = false;
                for _ in 0..10 {
                    match tokio::time::timeout(Duration::from_secs(2), transfer.recv_from(&mut buf)).await {
                        Ok(Ok((4, _))) if buf[..4] == ack(block)[..] && !ignore => {
                            acked = true;
                            break;
                        }
                        Ok(Ok((4, _))) if buf[..4] == ack(block)[..] => ignore = false,
                        // The client gave up (e.g. file too large).
                        Ok(Ok((_, _))) if buf[..2] == packet::ERROR.to_be_bytes() => return,
                        _ => {}
                    }
                }
                if !acked || chunk.len() < BLOCK {
                    return;
                }
            }
        });
        address
    }

    fn fast() -> TftpOptions {
        TftpOptions { timeout: Duration::from_millis(300), ..TftpOptions::default() }
    }

    #[tokio::test]
    async fn fetches_files_of_several_blocks() {
        for size in [0, 10, 512, 1300] {
            let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let server = serve_once(content.clone(), false).await;
            assert_eq!(fetch(server, "x.cfg", &fast()).await.unwrap(), content, "size {size}");
        }
    }

    #[tokio::test]
    async fn a_lost_ack_is_sent_again() {
        let content = vec![7u8; 700];
        let server = serve_once(content.clone(), true).await;
        assert_eq!(fetch(server, "x.cfg", &fast()).await.unwrap(), content);
    }

    #[tokio::test]
    async fn not_found_and_timeout() {
        let server = serve_once(Vec::new(), false).await;
        let error = fetch(server, "missing", &fast()).await.unwrap_err();
        assert!(matches!(&error, TftpError::Remote { code: 1, message, .. } if message == "File not found"), "{error}");
        // A bound socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let error = fetch(silent.local_addr().unwrap(), "x", &fast()).await.unwrap_err();
        assert!(matches!(error, TftpError::Timeout { tries: 3, .. }), "{error}");
    }

    #[tokio::test]
    async fn size_limit() {
        let server = serve_once(vec![1u8; 2000], false).await;
        let options = TftpOptions { max_size: 1000, ..fast() };
        assert!(matches!(fetch(server, "x", &options).await, Err(TftpError::TooLarge { limit: 1000, .. })));
    }
}
