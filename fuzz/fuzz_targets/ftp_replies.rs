//! FTP replies as `diagnose` reads them, and peer bytes quoted in errors: `cargo +nightly fuzz run ftp_replies`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("ftp_replies", data));
