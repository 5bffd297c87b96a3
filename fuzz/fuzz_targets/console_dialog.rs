//! Console text into the dialog and expect engines: `cargo +nightly fuzz run console_dialog`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("console_dialog", data));
