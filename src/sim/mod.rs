//! Simulated devices for tests and `flashline sim ...`: they speak the real
//! protocols over real sockets, so the production code runs against them
//! unchanged. They are not emulators of the hardware's internals.
//!
//! - [`bench`]: a whole simulated bench (NET+OS devices on PTYs with their
//!   FTP servers, a CSP controller, an inventory) for `flashline demo`.
//! - [`csp`]: a CSP matrix controller's EXS API server (TFTP Manage, Poll,
//!   Alarm), with fault injection.
//! - [`netos_ftp`]: a NET+OS device's FTP flash server (libunftp inside the
//!   NET+OS rules: two sessions, flash written on close, restart), with the
//!   field failures as scenarios.
//! - [`netos_ftp_control`]: the relay in front of libunftp that words the
//!   replies as the real server does and can refuse passive mode.
//! - [`netos`]: a NET+OS device's serial side (boot banner, configuration
//!   dialog, NV memory, serial recovery by XMODEM).
//! - [`firmware`]: which NET+OS release a simulated unit runs (6, 7.0, 7.4).
//! - [`link`]: a serial link emulator (baud pacing, latency, seeded noise).
//! - [`tftp_client`]: the RFC 1350 client the simulated controller uses to
//!   fetch configuration files.

pub mod bench;
pub mod csp;
pub mod firmware;
pub mod line;
pub mod link;
pub mod netos;
pub mod netos_ftp;
pub mod netos_ftp_control;
pub mod tftp_client;
