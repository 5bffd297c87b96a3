//! The one integration test binary: each module tests one area against real
//! peers (the binary itself, PTYs, network namespaces, simulators).

mod util;

mod addp; // ADDP discovery and commands against simulated NET+OS devices in namespaces
mod arp; // the RFC 5227 address-conflict check (`arp-check`, `address_check`)
mod cli_contract; // exit codes, JSON and human output: the command line's contract
mod dashboard; // `flashline dashboard` with curl, SQLite and PostgreSQL
mod demo; // `flashline demo` end to end on simulated benches
mod diagnose_console; // `diagnose --console` and `--boot-log`: the console's evidence
mod dialog; // the shipped Digi profile's console dialog (issue 11)
mod exs; // `flashline exs ...` against `flashline sim csp`
mod exs_golden; // TFTP Manage requests against hand-written vendor bytes
mod ftp; // `flashline ftp put` against a real vsftpd
mod fuzz_seeds; // the fuzz targets' bodies over their seed corpus, on stable
mod input_files; // named files that are not regular readable files (a FIFO, `/dev/zero`, empty)
mod net; // `probe` and `diagnose` against the kernel's real network stack
mod netos_ftp; // `ftp put`, `probe`, `diagnose` against the simulated NET+OS FTP server
mod pcap; // `--pcap` captures read back by tshark
mod pipeline; // `run` and `batch` end to end against simulated NET+OS units
mod ports; // stable port names and `flashline ports` on fake /dev and /sys trees
mod profile_check; // `flashline profile check | schema | show`
mod promises_batch; // README's promises for `batch` and Ctrl-C
mod promises_cli; // README's command-line promises
mod promises_exs; // README's EXS promises
mod promises_net; // README's network promises
mod promises_profile; // README's profile promises
mod promises_serial; // README's serial promises
mod promises_station; // README's promises for `station`
mod serial; // our XMODEM/YMODEM against lrzsz over PTY pairs
mod serial_net; // RFC 2217 and raw TCP serial through a real ser2net
mod serial_tap; // `serial tap` and `serial monitor` between PTY pairs
mod station; // the line station against a simulated line
mod station_postgres; // many stations on one PostgreSQL
mod store; // the unit database's rules on SQLite and PostgreSQL
mod tftp; // `flashline tftp serve` against tftp-hpa and curl
mod uboot; // `console_commands` against a real U-Boot under QEMU (Debian's u-boot-qemu)
mod units; // `flashline units` over a database filled through the store
mod util_selftest; // the test helpers in `tests/util/` themselves
