//! Times, MACs and filters as a browser or the command line send them:
//! `cargo +nightly fuzz run unit_queries`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("unit_queries", data));
