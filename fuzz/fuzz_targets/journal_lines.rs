//! The batch journal's reader and the resume decision on arbitrary bytes:
//! `cargo +nightly fuzz run journal_lines`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("journal_lines", data));
