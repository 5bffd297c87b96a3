//! Telnet/RFC 2217 frames from a serial server, and option negotiation: `cargo +nightly fuzz run rfc2217_frames`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("rfc2217_frames", data));
