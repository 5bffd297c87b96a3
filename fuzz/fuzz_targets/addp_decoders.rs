//! Every ADDP decoder on arbitrary bytes: `cargo +nightly fuzz run addp_decoders`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("addp_decoders", data));
