//! ADDP, Digi's UDP protocol to find NET+OS and Digi devices on the local
//! network, give them a static address or DHCP, and restart them, without a
//! serial cable (docs/addp.md).
//!
//! - `frame`: the pure codec (header, requests, replies as typed fields).
//! - `client`: discovery over multicast (224.0.5.128:2362) on one interface
//!   or all, plus unicast; set address, DHCP and reboot for one MAC with
//!   retries, matched by MAC and command and judged by flag and error code.
//!
//! What this module does not do: decide wording or exit codes (the CLI),
//! or answer ADDP (the simulated device, `sim::addp`).

pub mod client;
pub mod frame;

pub use client::{AddpError, DiscoverOptions, Discovered, OperateOptions, Operation};
pub use frame::{Cookie, DeviceInfo, ErrorCode, Field, Frame, FrameError, Password, Reply, Request, ResultFlag};

use std::net::Ipv4Addr;

/// The multicast group devices listen on.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 5, 128);
/// The UDP port devices listen on.
pub const PORT: u16 = 2362;
