//! Station files: `cargo +nightly fuzz run station_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("station_file", data));
