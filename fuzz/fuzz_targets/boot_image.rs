//! BootHdr image files: `cargo +nightly fuzz run boot_image`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("boot_image", data));
