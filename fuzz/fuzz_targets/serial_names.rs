//! `rfc2217://`, `tcp://` and stable port names: `cargo +nightly fuzz run serial_names`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("serial_names", data));
