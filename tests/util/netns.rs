//! Network namespace pairs for tests that cross a network: a `station`
//! namespace (where flashline runs) and a `dut` namespace (the device under
//! test), joined by a veth pair with addresses from 198.18.0.0/15.
//!
//! The network rule is hard: test traffic goes only to 127.0.0.0/8 or to these
//! addresses, with the tool under test inside the station namespace, so no
//! packet can leave through the host's routes. The namespaces have no other
//! interfaces and no default route, and are removed on drop, also when the
//! test panics. Their names carry the test process's pid: a process killed
//! before its drops ran (nextest's terminate-after, SIGKILL) leaves them
//! behind, and the next process that makes a pair removes those whose pid is
//! no longer alive.
//!
//! The rule holds by construction for what a test does itself, too: a
//! socket a test opens off loopback is opened by [`within`], which runs the
//! code on a thread that entered one of the namespaces this process made,
//! and panics before running anything if the thread is anywhere else (the
//! host's namespace above all). [`LoopbackNetns`] is a namespace with only
//! `lo`, for programs (a browser) that must reach 127.0.0.1 and nothing else.

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use super::child::{Bounded, QUICK};
use flashline::sync::lock;

/// Start of the benchmarking block RFC 2544 reserves; /15 gives 2^15 /30 subnets.
const BLOCK: u32 = u32::from_be_bytes([198, 18, 0, 0]);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair.
pub struct NetnsPair {
    pub station: String,
    pub dut: String,
    pub station_ip: Ipv4Addr,
    pub dut_ip: Ipv4Addr,
    /// An address in the same subnet that nobody has (a host that is down).
    pub absent_ip: Ipv4Addr,
    /// The dut's end of the veth pair.
    pub dut_veth: String,
    /// The station's end of the veth pair.
    pub station_veth: String,
}

/// Why a pair could not be made here.
pub fn unavailable_reason() -> Option<String> {
    if !super::is_root() {
        return Some("network namespaces need root".into());
    }
    if !super::have_program("ip") {
        return Some("`ip` (Debian package iproute2) is not installed".into());
    }
    None
}

impl NetnsPair {
    /// Makes a pair, or returns None after printing why not (outside CI) or
    /// panics with the reason (under CI).
    pub fn create() -> Option<NetnsPair> {
        if let Some(reason) = unavailable_reason() {
            super::require(false, &reason);
            return None;
        }
        Some(Self::create_or_panic())
    }

    fn create_or_panic() -> NetnsPair {
        static STALE: Once = Once::new();
        STALE.call_once(remove_stale);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // A /29 per pair (room for station, dut and an absent host), unique
        // across concurrent test processes by pid and counter.
        let index = ((pid & 0xFFF) << 2 | (n & 0x3)) % (1 << 14);
        let net = BLOCK + index * 8;
        let station_ip = Ipv4Addr::from(net + 1);
        let dut_ip = Ipv4Addr::from(net + 2);
        let absent_ip = Ipv4Addr::from(net + 5);
        let tag = format!("{pid}x{n}");
        let veth_s = format!("fl{tag}a");
        let veth_d = format!("fl{tag}b");
        let pair = NetnsPair {
            station: format!("fl{tag}s"),
            dut: format!("fl{tag}d"),
            station_ip,
            dut_ip,
            absent_ip,
            dut_veth: veth_d.clone(),
            station_veth: veth_s.clone(),
        };
        // From here on, Drop cleans up whatever was made if a step fails.
        for ns in [&pair.station, &pair.dut] {
            add_namespace(ns);
        }
        ip(&[
            "link",
            "add",
            &veth_s,
            "netns",
            &pair.station,
            "type",
            "veth",
            "peer",
            "name",
            &veth_d,
            "netns",
            &pair.dut,
        ]);
        ip(&["-n", &pair.station, "addr", "add", &format!("{station_ip}/29"), "dev", &veth_s]);
        ip(&["-n", &pair.dut, "addr", "add", &format!("{dut_ip}/29"), "dev", &veth_d]);
        ip(&["-n", &pair.station, "link", "set", &veth_s, "up"]);
        ip(&["-n", &pair.dut, "link", "set", &veth_d, "up"]);
        pair
    }

    /// A command run inside the station namespace (where flashline runs).
    pub fn in_station(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        in_namespace(&self.station, program)
    }

    /// A command run inside the dut namespace (the simulated device's side).
    pub fn in_dut(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        in_namespace(&self.dut, program)
    }
}

/// A namespace with only `lo` up (no other interface, no route): a program
/// run in it reaches its own 127.0.0.1 and nothing else. Removed on drop.
pub struct LoopbackNetns {
    pub name: String,
}

impl LoopbackNetns {
    /// Makes one, or returns None after printing why not (outside CI) or
    /// panics with the reason (under CI).
    pub fn create() -> Option<LoopbackNetns> {
        if let Some(reason) = unavailable_reason() {
            super::require(false, &reason);
            return None;
        }
        static STALE: Once = Once::new();
        STALE.call_once(remove_stale);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let netns = LoopbackNetns { name: format!("fl{}x{n}l", std::process::id()) };
        add_namespace(&netns.name);
        Some(netns)
    }

    /// A command run inside it.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        in_namespace(&self.name, program)
    }
}

impl Drop for LoopbackNetns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

/// The namespaces this process made, by the (device, inode) of their nsfs
/// file: the only places [`within`] lets test code open sockets.
static MADE: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// `ip netns add NS`, `lo` up, and NS recorded as one of ours.
fn add_namespace(ns: &str) {
    ip(&["netns", "add", ns]);
    let id = identity(&format!("/var/run/netns/{ns}"));
    lock(&MADE).push(id);
    ip(&["-n", ns, "link", "set", "lo", "up"]);
}

fn identity(path: &str) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {path}: {e}"));
    (meta.dev(), meta.ino())
}

/// Panics unless the calling thread is inside a namespace this process
/// made: the check every socket a test opens off loopback passes first.
pub fn assert_in_test_namespace(what: &str) {
    let here = identity("/proc/thread-self/ns/net");
    let made = lock(&MADE).contains(&here);
    assert!(made, "{what}: refused outside the test's own network namespaces (this thread is in netns {here:?})");
}

/// Runs `f` on a thread that entered namespace `ns`, one this process made
/// (checked before `f` runs), and returns what `f` returns. Sockets made by
/// `f` stay in `ns` wherever they are used afterwards.
pub fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    let thread = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("enter the namespace {path}: {e}"));
        assert_in_test_namespace(&path);
        f()
    });
    match thread.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Panics unless `address` is on loopback (127.0.0.0/8): for sockets a test
/// opens in its own namespace, the host's.
pub fn loopback(address: std::net::SocketAddr) -> std::net::SocketAddr {
    assert!(address.ip().is_loopback(), "{address}: a test outside its namespaces may use only 127.0.0.0/8");
    address
}

/// `ip netns exec NS program`.
pub fn in_namespace(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).arg(program);
    command
}

fn ip(args: &[&str]) -> Output {
    let output = Command::new("ip").args(args).output_within(QUICK);
    assert!(output.status.success(), "ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    output
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth, and with it the
        // other end. Errors are ignored: a half-made pair has less to remove.
        for ns in [&self.station, &self.dut] {
            delete(ns);
        }
    }
}

fn delete(ns: &str) {
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status_within(QUICK);
}

/// The pid in the name of a namespace a test made (`fl{pid}x{n}s`, `...d`
/// for a pair, `...l` for a loopback-only one).
fn owner_pid(ns: &str) -> Option<u32> {
    let rest = ns.strip_prefix("fl")?;
    let (pid, tail) = rest.split_once('x')?;
    let counter = tail.strip_suffix(['s', 'd', 'l'])?;
    counter.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Removes the namespaces of test processes that are gone (done once per
/// process before its first pair).
pub fn remove_stale() {
    for ns in namespaces() {
        if let Some(pid) = owner_pid(&ns)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            eprintln!("removing namespace {ns} left by process {pid}, which is gone");
            delete(&ns);
        }
    }
}

/// Names of the namespaces that exist now.
pub fn namespaces() -> Vec<String> {
    let output = Command::new("ip").args(["netns", "list"]).output_within(QUICK);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// A TCP socket bound inside namespace `ns` but not listening: the kernel
/// answers a SYN to it with RST (a closed port) until the test calls
/// `listen` on it. The socket stays in that namespace wherever it is used.
pub fn bind_in(ns: &str, address: std::net::SocketAddr) -> socket2::Socket {
    let name = ns.to_string();
    within(ns, move || {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
            .expect("a TCP socket");
        socket.bind(&address.into()).unwrap_or_else(|e| panic!("bind {address} in {name}: {e}"));
        socket
    })
}

/// A TCP listener bound inside namespace `ns`.
pub fn listen_in(ns: &str, address: std::net::SocketAddr) -> std::net::TcpListener {
    let socket = bind_in(ns, address);
    socket.listen(128).unwrap_or_else(|e| panic!("listen on {address} in {ns}: {e}"));
    socket.into()
}

/// The longest a `Serving` thread lives if the test never stops it.
const SERVE_AT_MOST: Duration = Duration::from_secs(600);

/// A thread that accepts and closes connections until the test stops it
/// (or drops it, also on a panic).
pub struct Serving {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Serving {
    /// Stops accepting and returns how many connections were accepted.
    pub fn stop(mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().expect("not stopped yet").join().expect("serving thread")
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts and closes connections on `listener` until the returned handle
/// says stop (bounded anyway by `SERVE_AT_MOST`: a test never hangs on it).
pub fn serve(listener: std::net::TcpListener) -> Serving {
    listener.set_nonblocking(true).expect("non-blocking listener");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut accepted = 0;
        let give_up = Instant::now() + SERVE_AT_MOST;
        while !stopped.load(Ordering::Relaxed) && Instant::now() < give_up {
            match listener.accept() {
                Ok(_) => accepted += 1,
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        // A connection whose handshake completed before the stop may still
        // wait in the backlog (the loop was asleep): count it too. The
        // backlog is finite (128), so is this loop.
        while listener.accept().is_ok() {
            accepted += 1;
        }
        accepted
    });
    Serving { stop, thread: Some(thread) }
}

/// Runs `nft` commands inside `ns` (rules vanish with the namespace).
pub fn nft_in(ns: &str, rules: &[&str]) {
    for rule in rules {
        let output = in_namespace(ns, "nft").args(rule.split_whitespace()).output_within(QUICK);
        assert!(output.status.success(), "nft {rule}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

/// Connects to `address` from inside namespace `ns` (on a thread that entered
/// it), retrying for at most `within`. The stream can be used anywhere after.
pub fn connect_from(ns: &str, address: std::net::SocketAddr, limit: Duration) -> Option<std::net::TcpStream> {
    within(ns, move || {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(stream) = std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
                return Some(stream);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}
