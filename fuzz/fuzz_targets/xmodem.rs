//! The XMODEM/YMODEM receiver, and the sender's reply handling: `cargo +nightly fuzz run xmodem`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("xmodem", data));
