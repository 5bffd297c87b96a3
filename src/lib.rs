//! flashline provisions networked embedded devices (Digi Connect ME 9210 /
//! NET+OS, Dialogic CSP matrix controllers) and diagnoses the ones that will not
//! take a load, driven by one YAML profile per kind of device.
//!
//! # Layout
//! - [`exs`]: the EXS API TFTP Manage codec, configuration file check and client.
//! - [`profile`]: the profile and inventory formats, their validation (every
//!   problem with file, line, column and field path) and `${...}` variables.
//! - [`cli`]: the command-line interface; the only module that prints or
//!   decides exit codes.
//!
//! Later modules follow `DESIGN.md`: `serial` (image loads and the console
//! dialog), `net` (probes and diagnosis), `ftp`, `exs` (TFTP Manage), `pipeline`
//! and `sim` (simulated devices).

pub mod cli;
pub mod exs;
pub mod profile;
