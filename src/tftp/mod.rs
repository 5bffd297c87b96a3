//! TFTP (RFC 1350, with the option extension and the blksize, tsize and
//! timeout options of RFC 2347-2349): the pure packet codec ([`packet`]),
//! the confinement of request names to a served folder ([`root`]) and the
//! server ([`server`]) behind `flashline tftp serve` and the `tftp_manage`
//! step's `serve:` folder. The simulated CSP's client
//! (`sim::tftp_client`) uses the same codec. There is no TFTP client for
//! users here.

pub mod packet;
pub mod root;
pub mod server;

pub use packet::{ErrorCode, Packet, PacketError, RequestKind};
pub use root::{PathRefusal, Root};
pub use server::{ServeError, ServerConfig, TransferRecord, bind, serve};
