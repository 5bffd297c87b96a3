//! The console boot-log reader on arbitrary bytes, whole and in two pieces:
//! `cargo +nightly fuzz run boot_log`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("boot_log", data));
