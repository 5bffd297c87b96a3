//! The EXS API of Dialogic CSP matrix controllers, as far as TFTP Manage
//! (0x003A) needs it: frames, ICBs, the TFTP Manage request and response with
//! their status tables, a check of TFTP configuration files, a TCP client that
//! answers the controller's Poll and Alarm messages, and the job the profile's
//! `tftp_manage` step and `flashline exs tftp-manage` both run.
//!
//! The codec modules (`frame`, `trace`, `icb`, `status`, `tftp_manage`,
//! `config_file`) do no I/O; only `connection` (framed reads and writes, shared
//! with the CSP simulator), `client` and `job` touch the network. Nothing
//! here prints: the CLI renders the typed reports.
//!
//! What the vendor did not publish (checksum rule, 0xFE escaping, default port,
//! field encodings) is assumed in exactly one place each, as listed in
//! `docs/exs-tftp-manage.md`, and the checksum and 0xFE rules are
//! selectable ([`frame::ExsChecksum`], [`frame::ExsMarkerRule`]).

/// Defines a `#[repr]` enum of vendor codes with a short user-facing text per
/// code, `from_code` (None for codes the spec does not list) and `code`.
macro_rules! code_table {
    ($(#[$meta:meta])* $name:ident: $repr:ty { $($(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $code,)*
        }

        impl $name {
            /// Every code of the table, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn from_code(code: $repr) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }

            pub fn code(self) -> $repr {
                self as $repr
            }

            /// The spec's meaning, shortened for people.
            pub fn text(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

pub mod client;
pub mod config_file;
pub mod connection;
pub mod frame;
pub mod icb;
pub mod job;
pub mod status;
pub mod tftp_manage;
pub mod trace;

pub use client::{Client, ClientError, ClientEvent, ClientOptions, Connect, TcpConnector};
pub use connection::Connection;
pub use frame::{Frame, FrameError, Framing};
pub use job::{ExsError, TftpManageJob, TftpManageReport, run_tftp_manage};
pub use status::{MoreStatus, Status, StatusCode};
pub use tftp_manage::{TftpManageRequest, TftpManageResponse};

/// Default EXS API host port. Assumed (medium-low confidence): 0x3142 = 12610;
/// the profile's `port` overrides it.
pub const DEFAULT_PORT: u16 = 12610;

/// Message types this crate knows by name.
pub mod message_type {
    /// TFTP Manage, host-initiated.
    pub const TFTP_MANAGE: u16 = 0x003A;
    /// Poll Request, host-initiated: asks the controller for a Poll.
    pub const POLL_REQUEST: u16 = 0x009E;
    /// Poll, controller-initiated every 2 s by default; must be answered.
    pub const POLL: u16 = 0x00AB;
    /// Alarm, controller-initiated; answered with a header-only response.
    pub const ALARM: u16 = 0x00B9;

    /// The name of a message type, for messages and logs.
    pub fn name(msg_type: u16) -> Option<&'static str> {
        match msg_type {
            TFTP_MANAGE => Some("TFTP Manage"),
            POLL_REQUEST => Some("Poll Request"),
            POLL => Some("Poll"),
            ALARM => Some("Alarm"),
            _ => None,
        }
    }

    /// `TFTP Manage (0x003A)` or `message 0x1234`.
    pub fn describe(msg_type: u16) -> String {
        match name(msg_type) {
            Some(name) => format!("{name} ({msg_type:#06x})"),
            None => format!("message {msg_type:#06x}"),
        }
    }
}
