//! Profile files (YAML with positions): `cargo +nightly fuzz run profile_yaml`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("profile_yaml", data));
