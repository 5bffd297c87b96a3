//! Benchmark (not a test): `flashline discover` against 200 simulated NET+OS
//! ADDP responders in one network namespace (each on its own address, all
//! in the multicast group), run from the station namespace. Checks all 200
//! are found within the window, prints the time to the last reply, and its
//! ratio to the time to the reply of a single responder measured in the
//! same run (the reference).
//!
//! The responders run on a multi-threaded runtime (one worker per core), so
//! they answer side by side rather than one after another and the figure is
//! `discover`'s, not a queue in the simulator. Before the timed runs, an
//! untimed `discover` is repeated until every responder has answered
//! (bounded): that is when they are bound and in the group.
//!
//! Run as root: `cargo bench --bench addp_discover`. Without root it prints
//! why and exits 0: it never fails CI for being slow.

#[path = "../tests/util/mod.rs"]
mod util;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashline::sim::addp::{AddpConfig, DeviceLink};
use flashline::sim::netos::{NetosState, NvMemory};
use tokio::sync::{Notify, watch};
use util::child::{Bounded, FLASHLINE, QUICK};
use util::netns::NetnsPair;

const RESPONDERS: u32 = 200;
const RUNS: usize = 5;
const WINDOW: &str = "3s";
/// The responders' subnet, on both ends of the veth (inside the namespaces only).
const SUBNET: [u8; 3] = [198, 19, 250];

fn main() {
    if let Some(reason) = util::netns::unavailable_reason() {
        println!("addp_discover benchmark skipped: {reason}");
        return;
    }
    let pair = NetnsPair::create().expect("namespace pair");
    ip(&["-n", &pair.station, "addr", "add", &format!("{}.1/24", dotted()), "dev", &pair.station_veth]);
    let addresses: Vec<Ipv4Addr> =
        (0..RESPONDERS).map(|i| Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 10 + i as u8)).collect();
    for address in &addresses {
        ip(&["-n", &pair.dut, "addr", "add", &format!("{address}/24"), "dev", &pair.dut_veth]);
    }

    let single = Responders::start(&pair.dut, &addresses[..1]);
    wait_until_all_answer(&pair, 1);
    let reference = measure(&pair, 1);
    drop(single);
    let all = Responders::start(&pair.dut, &addresses);
    wait_until_all_answer(&pair, RESPONDERS as usize);
    let measured = measure(&pair, RESPONDERS as usize);
    drop(all);

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (one, many) = (median(reference), median(measured));
    println!(
        "addp_discover: all {RESPONDERS} responders found in each of {RUNS} runs (window {WINDOW}); time to the last reply: median {many:.1} ms (1 responder: {one:.2} ms); ratio {:.1}",
        many / one.max(0.001)
    );
}

fn dotted() -> String {
    format!("{}.{}.{}", SUBNET[0], SUBNET[1], SUBNET[2])
}

/// How many devices one `discover` run finds (window `window`).
fn discover(pair: &NetnsPair, window: &str) -> Vec<serde_json::Value> {
    let output = pair
        .in_station(util::flashline_bin())
        .args(["discover", "--json", "--cookie", "DVKT", "--timeout", window])
        .output_within(FLASHLINE);
    let found: serde_json::Value = serde_json::from_slice(&output.stdout).expect("discover JSON");
    found.as_array().expect("a list").clone()
}

/// Readiness: untimed `discover` runs until all `expected` responders
/// answer one (each has bound its socket and joined the group), at most
/// 20 runs; panics when they never do.
fn wait_until_all_answer(pair: &NetnsPair, expected: usize) {
    let mut found = 0;
    for _ in 0..20 {
        found = discover(pair, "1s").len();
        if found == expected {
            return;
        }
    }
    panic!("only {found} of {expected} responders answered after 20 discover runs");
}

/// Runs `discover` RUNS times and returns the time to the last reply of
/// each run; panics when a run does not find `expected` devices.
fn measure(pair: &NetnsPair, expected: usize) -> Vec<f64> {
    (0..RUNS)
        .map(|run| {
            let found = discover(pair, WINDOW);
            assert_eq!(found.len(), expected, "run {run}: found {} of {expected}", found.len());
            found.iter().map(|d| d["reply_ms"].as_f64().unwrap()).fold(0.0, f64::max)
        })
        .collect()
}

/// Simulated responders served from a runtime inside the dut namespace: its
/// worker threads are started from a thread that entered the namespace, so
/// they are in it too.
struct Responders {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Responders {
    fn start(ns: &str, addresses: &[Ipv4Addr]) -> Responders {
        let path = format!("/var/run/netns/{ns}");
        let addresses = addresses.to_vec();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("namespace file");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter the namespace");
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut keep = Vec::new();
                for (i, &address) in addresses.iter().enumerate() {
                    let nv = NvMemory {
                        dhcp: false,
                        ip: address,
                        mask: Ipv4Addr::new(255, 255, 255, 0),
                        mac: format!("00:40:9D:00:{:02X}:{:02X}", i / 256, i % 256),
                        ..NvMemory::default()
                    };
                    let (network, receiver) = watch::channel(Some(nv.clone()));
                    let state = Arc::new(Mutex::new(NetosState { nv, ..NetosState::default() }));
                    let link = DeviceLink { state, network: receiver, restart: Arc::new(Notify::new()) };
                    let config = AddpConfig { address, ..AddpConfig::default() };
                    tokio::spawn(async move {
                        if let Err(error) = flashline::sim::addp::serve(config, link).await {
                            eprintln!("responder {address}: {error}");
                        }
                    });
                    keep.push(network);
                }
                // Spawned; `wait_until_all_answer` tells when they listen.
                let _ = ready.send(());
                let _ = tokio::time::timeout(Duration::from_secs(600), stopped).await;
                drop(keep);
            });
        });
        is_ready.recv_timeout(Duration::from_secs(60)).expect("responders ready");
        Responders { stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn ip(args: &[&str]) {
    let output = std::process::Command::new("ip").args(args).output_within(QUICK);
    assert!(output.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}
