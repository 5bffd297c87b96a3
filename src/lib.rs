//! flashline provisions networked embedded devices (Digi Connect ME 9210 /
//! NET+OS, Dialogic CSP matrix controllers) and diagnoses the ones that will not
//! take a load, driven by one YAML profile per kind of device.
//!
//! # Layout
//! - [`profile`]: the profile and inventory formats, their validation (every
//!   problem with file, line, column and field path) and `${...}` variables.
//! - [`exs`]: the EXS API TFTP Manage codec, configuration file check and client.
//! - [`sim`]: simulated devices for tests and demos (the CSP matrix controller).
//! - [`net`]: ICMP echo, TCP SYN and connect() probes, waiting for services
//!   with a timeline, and the "pings but refuses FTP" diagnosis.
//! - [`ftp`]: verified firmware uploads over FTP, with retries and the wait
//!   for the device's restart.
//! - [`pipeline`]: the batch journal and the reports (JSON, JUnit, table).
//! - [`cli`]: the command-line interface; the only module that prints or
//!   decides exit codes.
//! - [`serial`]: exclusive port opening, XMODEM/XMODEM-1K/YMODEM, the console
//!   expect engine and the `load_image` / `configure_network` steps.
//! - [`progress`]: progress events the library emits and the CLI renders.
//!
//! Later modules follow `DESIGN.md`: `serial` (image loads and the console
//! dialog), `net` (probes and diagnosis), `ftp`, `exs` (TFTP Manage), `pipeline`
//! and `sim` (simulated devices).

pub mod cli;
pub mod exs;
pub mod failure;
pub mod ftp;
pub mod net;
pub mod pipeline;
pub mod profile;
pub mod progress;
pub mod serial;
#[cfg(feature = "sim")]
pub mod sim;
