//! A real ser2net 4 (Debian package ser2net) started by a test in front of a
//! serial device (a PTY, or a simulator's link), listening on 127.0.0.1 only,
//! with its YAML configuration in a temp folder; killed on drop, also after a
//! panic, and with the test if that is killed (`PR_SET_PDEATHSIG`).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::child::die_with_test;
use super::ports::Start;

/// How the accepter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepter {
    /// `telnet(rfc2217),tcp,...`: our `rfc2217://` client.
    Rfc2217,
    /// `tcp,...`: raw bytes, our `tcp://` client.
    RawTcp,
}

pub struct Ser2net {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Why ser2net cannot run here, if it cannot.
pub fn unavailable_reason() -> Option<String> {
    (!super::have_program("ser2net")).then(|| "ser2net (Debian package ser2net) is not installed".to_string())
}

impl Ser2net {
    /// Starts ser2net with one connection: `accepter` on 127.0.0.1 and a
    /// free port, to `device` at 9600 8N1 (`local`: modem lines ignored, as
    /// a PTY has none). Returns once the port accepts connections.
    pub fn start(device: &Path, accepter: Accepter) -> Ser2net {
        // ser2net binds the number it is told: one another test's server
        // took meanwhile is tried again with another.
        super::ports::on_free_port("ser2net", |port| Ser2net::try_start(device, accepter, port))
    }

    fn try_start(device: &Path, accepter: Accepter, port: u16) -> Start<Ser2net> {
        let dir = tempfile::tempdir().expect("temp dir");
        let accepter = match accepter {
            Accepter::Rfc2217 => format!("telnet(rfc2217),tcp,127.0.0.1,{port}"),
            Accepter::RawTcp => format!("tcp,127.0.0.1,{port}"),
        };
        let config = dir.path().join("ser2net.yaml");
        std::fs::write(
            &config,
            format!(
                "%YAML 1.1\n---\nconnection: &bench\n  accepter: {accepter}\n  connector: serialdev,{},9600n81,local\n  \
                 options:\n    kickolduser: true\n",
                device.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("ser2net.log")).unwrap();
        let mut command = Command::new("ser2net");
        // -n: stay in the foreground; -u: no UUCP lock files in /var/lock.
        let child = die_with_test(&mut command)
            .args(["-n", "-u", "-P"])
            .arg(dir.path().join("ser2net.pid"))
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start ser2net");
        let mut server = Ser2net { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        // Its own listening socket first (a connection alone could reach
        // whoever took the port), then a connection.
        while !super::ports::holds_listener(server.child.id(), port) || TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            let log = server.log();
            // ser2net keeps running, silent, when its port is taken: another
            // process's listener there is the sign (dropping `server` ends it).
            let mine = |server: &Ser2net| super::ports::holds_listener(server.child.id(), port);
            if super::ports::someone_listens(port) && !mine(&server) {
                std::thread::sleep(Duration::from_millis(300));
                if !mine(&server) {
                    return Start::PortTaken(format!("another process listens on {port}: {}", log.trim()));
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("ser2net exited with {status}:\n{log}");
            }
            assert!(Instant::now() < deadline, "ser2net did not listen on 127.0.0.1:{port}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The probe connection above opened the device; let ser2net close it.
        std::thread::sleep(Duration::from_millis(100));
        Start::Started(server)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ser2net.log")).unwrap_or_default()
    }
}

impl Drop for Ser2net {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
