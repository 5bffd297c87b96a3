//! Inventories, as YAML and as CSV: `cargo +nightly fuzz run inventory`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("inventory", data));
