//! TCP/ICMP answers to the SYN probe, echo replies, ARP frames: `cargo +nightly fuzz run probe_packets`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flashline_fuzz::run("probe_packets", data));
