//! Dashboard query strings and token headers: `cargo +nightly fuzz run dashboard_requests`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("dashboard_requests", data));
