//! The one integration test binary: each module tests one area against real
//! peers (the binary itself, PTYs, network namespaces, simulators).

mod util;

mod addp;
mod arp;
mod cli_contract;
mod dashboard;
mod demo;
mod diagnose_console;
mod dialog;
mod exs;
mod exs_golden;
mod ftp;
mod fuzz_seeds;
mod input_files;
mod net;
mod netos_ftp;
mod pcap;
mod pipeline;
mod ports;
mod profile_check;
mod promises_batch;
mod promises_cli;
mod promises_exs;
mod promises_net;
mod promises_profile;
mod promises_serial;
mod promises_station;
mod serial;
mod serial_net;
mod serial_tap;
mod station;
mod station_postgres;
mod store;
mod test_helpers;
mod tftp;
mod units;
