//! flashline provisions networked embedded devices (Digi Connect ME 9210 /
//! NET+OS, Dialogic CSP matrix controllers) and diagnoses the ones that will not
//! take a load, driven by one YAML profile per kind of device.
//!
//! # Layout
//! - [`profile`]: the profile and inventory formats, their validation (every
//!   problem with file, line, column and field path), `${...}` variables and
//!   the device values they expand to (with where each came from).
//! - [`serial`]: port opening (local and exclusive, RFC 2217 or raw TCP over
//!   the network, stable USB names), XMODEM/XMODEM-1K/YMODEM, the console
//!   expect engine and the console dialog, the boot watch, and the serial tap
//!   and monitor.
//! - [`net`]: ICMP echo, TCP SYN and connect() probes, waiting for services
//!   with a timeline, packet captures, and the "pings but refuses FTP"
//!   diagnosis.
//! - [`family`]: the device-family seam: a profile's `family:` chooses the
//!   boot-log grammar, the console's findings, the identity patterns, the
//!   image check, the factory logins and whether ADDP is asked.
//! - [`netos`]: the NET+OS device family: its boot-log grammar, the `bootHdr`
//!   check, the diagnosis with its console's evidence, factory logins and
//!   the banner's identity patterns.
//! - [`uboot`]: the U-Boot device family: its prompt, the error lines of a
//!   failed command and where `printenv` names the unit.
//! - [`ftp`]: verified firmware uploads over FTP, with retries and the wait
//!   for the device's restart.
//! - [`exs`]: the EXS API codec, TFTP Manage, configuration file check and
//!   client.
//! - [`addp`]: Digi's ADDP: the pure codec and the client behind `flashline
//!   discover` and `flashline addp set-ip | dhcp | reboot`.
//! - [`tftp`]: the TFTP packet codec (RFC 1350, options of RFC 2347-2349)
//!   and the server behind `flashline tftp serve` and `tftp_manage`'s
//!   `serve:` folder.
//! - [`pipeline`]: one device through its steps, batches, the journal and the
//!   reports (JSON, JUnit, table).
//! - [`station`]: a line station: fixtures where units arrive one after
//!   another, identified by their banner, run and recorded.
//! - [`store`]: the unit database (SQLite or PostgreSQL through one code
//!   path): units, runs and steps, address leases, station heartbeats.
//! - [`dashboard`]: the line dashboard, a read-only web server over the unit
//!   database: pages, live updates, a JSON API and Prometheus metrics.
//! - [`input_file`]: reading a file the user named (profile, image,
//!   journal...): regular files only, never blocking on a FIFO, read with a
//!   cap per kind of file; empty images refused.
//! - [`failure`]: the one failure taxonomy (input, environment, device) that
//!   exit codes and reports derive from.
//! - [`progress`]: the one progress channel the library reports through and
//!   the CLI renders.
//! - [`mac`]: the one MAC address type and its printed form.
//! - [`digest`]: SHA-256 digests as the records write them (lowercase hex).
//! - [`sync`]: a mutex lock that outlives a panic elsewhere.
//! - [`calendar`]: days since the Unix epoch to and from civil dates.
//! - [`sim`]: simulated devices for tests and `flashline demo` (NET+OS console,
//!   FTP flash server and ADDP responder, CSP matrix controller with its TFTP
//!   client, serial link emulator, a whole bench and a manufacturing line).
//! - [`cli`]: the command-line interface; the only module that prints or
//!   decides exit codes.
//!
//! `ARCHITECTURE.md` at the repository root shows one device's path through
//! these modules and where to add a step kind, a protocol or a scenario.

pub mod addp;
pub mod calendar;
pub mod cli;
pub mod dashboard;
pub mod digest;
pub mod exs;
pub mod failure;
pub mod family;
pub mod ftp;
pub mod input_file;
pub mod mac;
pub mod net;
pub mod netos;
pub mod pipeline;
pub mod profile;
pub mod progress;
pub mod serial;
#[cfg(feature = "sim")]
pub mod sim;
pub mod station;
pub mod store;
pub mod sync;
pub mod tftp;
pub mod uboot;
