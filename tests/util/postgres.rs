//! A throwaway PostgreSQL cluster (Debian package postgresql) for one test:
//! `initdb` into a temp folder as the unprivileged `postgres` user, the
//! server on 127.0.0.1 and a free port with password authentication, killed
//! and removed on drop (also after a panic, and with the test process if that
//! is killed: `PR_SET_PDEATHSIG`). `stop` and `start` let a test take the
//! database away mid-shift.

use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::child::{Bounded, QUICK, die_with_test};
use super::ports::Start;

/// The password of the cluster's superuser: tests check it never shows.
pub const PASSWORD: &str = "pg-Secret-4417";

pub struct Postgres {
    child: Option<Child>,
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    owner: Option<(u32, u32)>,
    /// `fsync` on (benchmarks); the tests' clusters run with it off.
    durable: bool,
    dir: tempfile::TempDir,
}

/// Where Debian keeps the server programs (`/usr/lib/postgresql/N/bin`).
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// Why PostgreSQL cannot run here, if it cannot.
pub fn unavailable_reason() -> Option<String> {
    if server_bin().is_none() {
        return Some("PostgreSQL's server (Debian package postgresql) is not installed".into());
    }
    if super::is_root() && postgres_user().is_none() {
        return Some("there is no `postgres` user to run the server as (Debian package postgresql makes it)".into());
    }
    None
}

/// uid and gid of the `postgres` user (initdb refuses to run as root).
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

impl Postgres {
    /// Makes and starts a cluster. Panics with the server's log if it does
    /// not come up within 30 s. `fsync` is off: a test's data need not
    /// survive a power cut, and the suite is faster.
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// As [`Postgres::start`], with `fsync` on: what a benchmark of commit
    /// latency needs to be fair to SQLite, which syncs each commit.
    #[allow(dead_code)] // used by benches/station.rs only
    pub fn start_durable() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(durable: bool) -> Postgres {
        let bin = server_bin().expect("PostgreSQL is installed (check unavailable_reason first)");
        let dir = tempfile::Builder::new().prefix("flashline-pg").tempdir().unwrap();
        let owner = if super::is_root() { postgres_user() } else { None };
        let data = dir.path().join("data");
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, PASSWORD).unwrap();
        if let Some((uid, gid)) = owner {
            chown_tree(dir.path(), uid, gid);
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["--auth=scram-sha-256", "--username=flashline", "--no-sync", "--encoding=UTF8"])
            .arg(format!("--pwfile={}", password_file.display()))
            .arg("-D")
            .arg(&data)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = owner {
            initdb.uid(uid).gid(gid);
        }
        let output = initdb.output_within(QUICK);
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        let mut postgres = Postgres { child: None, port: 0, bin, data, owner, durable, dir };
        // PostgreSQL binds the number it is told: one another test's server
        // took meanwhile is tried again with another.
        super::ports::on_free_port("PostgreSQL", |port| {
            postgres.port = port;
            postgres.try_start_server()
        });
        postgres
    }

    /// The URL flashline is given (with the password: tests check it never
    /// shows).
    pub fn url(&self) -> String {
        format!("postgres://flashline:{PASSWORD}@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server at once (as a crash or a cable pulled would), keeping
    /// the data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The postmaster's children leave with it; wait until the port is free.
        let deadline = Instant::now() + QUICK;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(self.data.join("postmaster.pid"));
    }

    /// Starts the server again on the same port and data.
    pub fn start_server(&mut self) {
        if let Start::PortTaken(why) = self.try_start_server() {
            panic!("PostgreSQL could not have its port {} again: {why}", self.port);
        }
    }

    /// Starts the server on `self.port`; `PortTaken` when it could not bind
    /// it. Ready means this server's own log says it accepts connections
    /// and `pg_isready` agrees: a port answering alone could be another
    /// test's server.
    fn try_start_server(&mut self) -> Start<()> {
        const READY: &str = "ready to accept connections";
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("server.log")).unwrap();
        let log_before = self.log().len();
        if let Some((uid, gid)) = self.owner {
            chown_tree(self.dir.path(), uid, gid);
        }
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .args(["-c", if self.durable { "fsync=on" } else { "fsync=off" }])
            .args(["-c", "max_connections=200"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.path().display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        die_with_test(&mut command);
        let mut child = command.spawn().expect("start postgres");
        let deadline = Instant::now() + QUICK;
        loop {
            let said = self.log().get(log_before..).unwrap_or_default().to_string();
            if let Ok(Some(status)) = child.try_wait() {
                let _ = std::fs::remove_file(self.data.join("postmaster.pid"));
                if super::ports::says_address_in_use(&said) {
                    return Start::PortTaken(said.trim().to_string());
                }
                panic!("PostgreSQL ended ({status}) before it was ready:\n{said}");
            }
            // Listening is not enough: during start-up it refuses sessions.
            if said.contains(READY) {
                let ready = Command::new(self.bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .stdin(Stdio::null())
                    .status_within(QUICK);
                if ready.success() {
                    break;
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("PostgreSQL was not ready within 30 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child = Some(child);
        Start::Started(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}
