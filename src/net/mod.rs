//! Reachability and port probes, waiting for services, and the diagnosis of a
//! device that "pings but refuses FTP".
//!
//! - [`icmp`]: ICMP echo (unprivileged datagram socket, or raw).
//! - [`syn`]: half-open TCP SYN probes through a raw socket, one receiver
//!   demultiplexing the replies of many probes. Takes no session on the device.
//! - [`connect`]: the fallback without CAP_NET_RAW: a full `connect()`.
//! - [`wait`]: polling until wanted states, with a timeline of what changed.
//! - [`service`]: what an open FTP port says (banner, login).
//! - [`arp`]: the RFC 5227 address-conflict check (ARP probes from
//!   0.0.0.0) before a static address is given to a unit.
//! - [`diagnose`]: evidence to one finding in plain words, with advice.
//!   The same with a NET+OS unit's console log (an application without
//!   FTP, the backup image, ...) is the family's:
//!   [`crate::netos::console_findings`].
//! - [`capture`]: the packets of an investigation as a pcap file.
//! - [`report`]: the investigation behind `probe` and `diagnose`, and its
//!   JSON report.
//!
//! Every result carries its evidence and the method that produced it; nothing
//! here prints.

pub mod arp;
pub mod capture;
pub mod connect;
pub mod diagnose;
pub mod icmp;
pub mod report;
pub mod service;
pub mod syn;
pub mod wait;

/// A TCP port on 127.0.0.1 that is closed (a connect is refused with RST)
/// and stays so while the socket lives: bound, never listening. A port
/// freed after binding could be taken by another test meanwhile.
#[cfg(test)]
pub(crate) fn closed_loopback_port() -> (socket2::Socket, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (socket, port)
}

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::failure::{Classify, FailureClass};
use clap::ValueEnum;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A TCP port's state as a probe sees it (and as a profile asks for it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PortState {
    /// SYN-ACK: something listens.
    #[default]
    Open,
    /// RST: the host is up, nothing listens.
    Closed,
    /// No answer, or ICMP unreachable.
    Filtered,
}

/// How ports are probed (a profile's `method`, `--method`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeMethod {
    /// SYN when raw sockets are allowed, else connect().
    #[default]
    Auto,
    /// Half-open TCP SYN probe (needs CAP_NET_RAW); takes no FTP session.
    Syn,
    /// A full connect(); works without privileges.
    Connect,
}

/// How a port's state was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// SYN answered with SYN-ACK.
    SynAck,
    /// SYN answered with RST.
    Rst,
    /// No answer after the retransmissions.
    NoResponse,
    /// An ICMP destination-unreachable came back.
    IcmpUnreachable,
    /// connect() was refused (the kernel saw a RST).
    Refused,
    /// connect() did not complete in time.
    Timeout,
}

/// The method actually used for a probe (`auto` resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsedMethod {
    Syn,
    Connect,
}

/// One port's state with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortResult {
    pub port: u16,
    pub state: PortState,
    pub reason: Reason,
    /// Round-trip time of the answer that decided the state.
    #[serde(serialize_with = "serialize_rtt_ms", rename = "rtt_ms")]
    pub rtt: Option<Duration>,
    /// What came back, like a capture line: `RST,ACK win=0 ttl=64 0.21 ms`.
    pub evidence: String,
    pub method: UsedMethod,
}

/// Result of one ICMP echo.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IcmpResult {
    pub state: IcmpState,
    #[serde(serialize_with = "serialize_rtt_ms", rename = "rtt_ms")]
    pub rtt: Option<Duration>,
    /// What came back (or did not), e.g. `echo reply ttl=64 0.08 ms`.
    pub evidence: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IcmpState {
    Reply,
    Timeout,
    Unreachable,
}

/// Why a probe could not run at all (as opposed to a port being closed).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Raw sockets need CAP_NET_RAW (environment).
    #[error(
        "{what} needs CAP_NET_RAW (run as root, or `setcap cap_net_raw+ep` on flashline); use --method connect without it"
    )]
    PermissionDenied { what: &'static str },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve `{host}` to an IPv4 address{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Resolve { host: String, detail: Option<String> },
}

impl Classify for NetError {
    /// A name that does not resolve is the user's; a probe that cannot run
    /// (no raw-socket permission, a socket error) is this machine's.
    fn class(&self) -> FailureClass {
        match self {
            NetError::Resolve { .. } => FailureClass::Input,
            NetError::PermissionDenied { .. } | NetError::Io { .. } => FailureClass::Environment,
        }
    }
}

impl NetError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> NetError {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            // Only raw-socket creation reaches here with EPERM/EACCES.
            return NetError::PermissionDenied { what: "a raw socket" };
        }
        NetError::Io { what: what.into(), source }
    }
}

/// Resolves `host` (an IPv4 literal or a name) to one IPv4 address.
pub async fn resolve_ipv4(host: &str) -> Result<Ipv4Addr, NetError> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip);
    }
    let addrs = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| NetError::Resolve { host: host.to_string(), detail: Some(e.to_string()) })?;
    for addr in addrs {
        if let std::net::SocketAddr::V4(v4) = addr {
            return Ok(*v4.ip());
        }
    }
    Err(NetError::Resolve { host: host.to_string(), detail: None })
}

/// Milliseconds with two decimals, as capture tools print them.
pub fn format_rtt(rtt: Duration) -> String {
    format!("{:.2} ms", rtt.as_secs_f64() * 1000.0)
}

fn serialize_rtt_ms<S: serde::Serializer>(rtt: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match rtt {
        Some(rtt) => s.serialize_f64((rtt.as_secs_f64() * 1_000_000.0).round() / 1000.0),
        None => s.serialize_none(),
    }
}

/// Options shared by the port probes.
#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// Wait for an answer to each try.
    pub timeout: Duration,
    /// Extra tries for a SYN with no answer (a lost packet is not a filter).
    pub retries: u32,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions { timeout: Duration::from_millis(500), retries: 1 }
    }
}

/// A port prober with its method decided: SYN when raw sockets are allowed
/// (and asked for), connect() otherwise.
pub enum Prober {
    Syn(syn::SynProber),
    Connect,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Prober::Syn(_) => "Prober::Syn",
            Prober::Connect => "Prober::Connect",
        })
    }
}

impl Prober {
    /// `auto` picks SYN when a raw socket can be opened.
    pub fn new(method: ProbeMethod) -> Result<Prober, NetError> {
        match method {
            ProbeMethod::Connect => Ok(Prober::Connect),
            ProbeMethod::Syn => Ok(Prober::Syn(syn::SynProber::new()?)),
            ProbeMethod::Auto => match syn::SynProber::new() {
                Ok(prober) => Ok(Prober::Syn(prober)),
                Err(NetError::PermissionDenied { .. }) => Ok(Prober::Connect),
                Err(other) => Err(other),
            },
        }
    }

    pub fn method(&self) -> UsedMethod {
        match self {
            Prober::Syn(_) => UsedMethod::Syn,
            Prober::Connect => UsedMethod::Connect,
        }
    }

    /// Probes every port of `target` concurrently; results in `ports` order.
    pub async fn probe(
        &self,
        target: Ipv4Addr,
        ports: &[u16],
        options: ProbeOptions,
    ) -> Result<Vec<PortResult>, NetError> {
        match self {
            Prober::Syn(prober) => prober.probe(target, ports, options).await,
            Prober::Connect => Ok(connect::probe(target, ports, options).await),
        }
    }
}
