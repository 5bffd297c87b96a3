//! The NET+OS device family: Digi's embedded OS on the Connect ME 9210 and
//! its kin (docs/netos.md). A NET+OS unit prints a banner at boot (`NET+OS
//! Version 7.4`, PLATFORM, APPLICATION, the network block, MAC and serial
//! number, `Press any key in N seconds`), takes an `image.bin` with a
//! `bootHdr` header, serves FTP with factory logins, and answers Digi's ADDP.
//!
//! What only a NET+OS unit does lives here, by responsibility:
//!
//! - [`boot_log`]: the boot-log grammar (what each console line says, and
//!   the facts of each boot);
//! - [`boot_header`]: the `bootHdr` check of `image.bin` files (and building one);
//! - [`console_findings`]: the diagnosis with the console's evidence (the
//!   reset window, another address, the backup image, ...);
//! - [`logins`]: the factory FTP logins;
//! - [`identity`]: the banner's MAC and serial-number patterns, for the
//!   station's arrival and the run's report.
//!
//! What stays generic (no family in it): the serial port, XMODEM/YMODEM, the
//! expect engine and the dialog, the probes and the network's own findings
//! ([`crate::net::diagnose`]), FTP, ADDP and EXS as protocols, the pipeline,
//! the journal and the reports. All pure here: no I/O.

pub mod boot_header;
pub mod boot_log;
pub mod console_findings;
pub mod identity;
pub mod logins;
