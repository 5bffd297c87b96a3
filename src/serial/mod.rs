//! The serial side of provisioning: opening a port (a local one
//! exclusively, or one over the network), sending an image over XMODEM /
//! XMODEM-1K / YMODEM, and driving a console dialog.
//!
//! [`port`] opens any port name: a path, a stable USB name resolved by
//! [`names`] (udev's by-id and by-path links), or `rfc2217://` / `tcp://`
//! through [`remote`] (the async adapter) and [`rfc2217`] (the telnet and
//! COM-PORT-OPTION codec, pure).
//! [`settings`] holds the line settings (baud, 8N1, flow control) they all take.
//!
//! The protocols ([`xmodem`], [`expect`]) are state machines fed bytes with no
//! I/O inside; [`transfer`] and [`console`] are the small async loops that drive
//! them over any `AsyncRead + AsyncWrite + Unpin` stream (a serial port, a PTY,
//! the link emulator, a `tokio::io::duplex` in tests). [`dialog`] is the
//! console dialog of `configure_network` as a state machine fed console text
//! (the steps themselves run in `pipeline::steps`: serial knows no profile).
//! [`console_lines`] cuts console output into timed lines (pure; what they
//! say is the device family's grammar, [`crate::netos::boot_log`]);
//! [`boot_watch`] watches a console through one boot; [`tap`] relays between two ports or records
//! one, unchanged. Nothing here prints:
//! progress goes out as [`crate::progress::ProgressEvent`]s.

pub mod boot_watch;
pub mod console;
pub mod console_lines;
pub mod dialog;
pub mod expect;
pub mod names;
pub mod port;
pub mod remote;
pub mod rfc2217;
pub mod settings;
pub mod tap;
pub mod transcript;
pub mod transfer;
pub mod xmodem;
