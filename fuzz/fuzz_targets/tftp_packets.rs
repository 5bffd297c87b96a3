//! TFTP packets from any client, and netascii decoding: `cargo +nightly fuzz run tftp_packets`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("tftp_packets", data));
