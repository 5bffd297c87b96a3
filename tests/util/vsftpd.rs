//! A real vsftpd (Debian package vsftpd) started by a test, inside a network
//! namespace or on 127.0.0.1, with its own configuration in a temp folder;
//! killed on drop, also after a panic, and with the test process if that is
//! killed (`PR_SET_PDEATHSIG`).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::child::{Bounded, QUICK, die_with_test};
use super::ports::Start;

pub struct Vsftpd {
    child: Child,
    pub address: SocketAddr,
    /// Holds the configuration and the empty chroot folder.
    _dir: tempfile::TempDir,
    /// Other folders that must live as long as the server.
    keep: Vec<tempfile::TempDir>,
}

/// Why vsftpd cannot run here, if it cannot.
pub fn unavailable_reason() -> Option<String> {
    if !std::path::Path::new("/usr/sbin/vsftpd").is_file() {
        return Some("vsftpd (Debian package vsftpd) is not installed".into());
    }
    if !super::is_root() {
        return Some("vsftpd needs root".into());
    }
    None
}

impl Vsftpd {
    /// Starts vsftpd listening on `ip:port`, inside namespace `ns` when given.
    /// Port 0 (on the host's loopback only) picks a free port: vsftpd binds
    /// the number itself, so one taken meanwhile by another test's server
    /// is retried with another (`ports::on_free_port`); `address` says
    /// which. `extra` lines are added to the configuration.
    pub fn start(ns: Option<&str>, ip: Ipv4Addr, port: u16, extra: &[&str]) -> Vsftpd {
        if port == 0 {
            assert!(
                ns.is_none(),
                "a port of vsftpd's choice is for 127.0.0.1; a namespace of the test's has every port"
            );
            return super::ports::on_free_port("vsftpd", |port| Vsftpd::try_start(None, ip, port, extra));
        }
        match Vsftpd::try_start(ns, ip, port, extra) {
            Start::Started(server) => server,
            Start::PortTaken(why) => panic!("vsftpd could not bind {ip}:{port}: {why}"),
        }
    }

    pub fn try_start(ns: Option<&str>, ip: Ipv4Addr, port: u16, extra: &[&str]) -> Start<Vsftpd> {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let config: PathBuf = dir.path().join("vsftpd.conf");
        let mut text = format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address={ip}\nlisten_port={port}\nbackground=NO\n\
             write_enable=YES\nseccomp_sandbox=NO\n\
             secure_chroot_dir={}\npam_service_name=vsftpd\ndelay_failed_login=0\n\
             xferlog_enable=NO\nvsftpd_log_file={}\n",
            empty.display(),
            dir.path().join("vsftpd.log").display()
        );
        // Local users unless the caller sets up anonymous access.
        if !extra.iter().any(|l| l.starts_with("anonymous_enable")) {
            text.push_str("anonymous_enable=NO\nlocal_enable=YES\n");
        }
        for line in extra {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&config, text).unwrap();
        let mut command = match ns {
            Some(ns) => super::netns::in_namespace(ns, "/usr/sbin/vsftpd"),
            None => Command::new("/usr/sbin/vsftpd"),
        };
        let child = die_with_test(&mut command)
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vsftpd");
        let mut server = Vsftpd { child, address: SocketAddr::from((ip, port)), _dir: dir, keep: Vec::new() };
        if ns.is_none() {
            if let Err(why) = server.wait_until_bound() {
                return Start::PortTaken(why);
            }
            server.wait_until_listening();
        }
        Start::Started(server)
    }

    /// Waits (at most 5 s) until this vsftpd holds a listening socket on its
    /// port, read from /proc: a connection alone could reach another
    /// server that took the port first. Err when it ended because the port
    /// was taken; a panic when it ended otherwise.
    fn wait_until_bound(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut said = String::new();
                if let Some(mut stderr) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut stderr, &mut said);
                }
                // vsftpd leaves silently (exit 2) when its port is taken:
                // another process listening there is the sign.
                if super::ports::someone_listens(self.address.port()) {
                    return Err(format!("another process listens there; vsftpd ended ({status}) {}", said.trim()));
                }
                panic!("vsftpd ended ({status}) before listening on {}: {said}", self.address);
            }
            if super::ports::holds_listener(self.child.id(), self.address.port()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("vsftpd did not bind {} within 5 s", self.address);
    }

    /// Waits (at most 5 s) until a connection succeeds; only usable from a
    /// network that can reach the address (127.0.0.1).
    pub fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("vsftpd did not start listening on {}", self.address);
    }
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        // The listener and every session it forked: a logged-in session
        // runs in a session (setsid) of its own and outlives its listener,
        // holding its connection and the test's files.
        super::child::kill_tree(&mut self.child);
        let _ = self.child.wait();
    }
}

impl Vsftpd {
    /// The pid of the listener.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Vsftpd {
    /// vsftpd on 127.0.0.1:`port` accepting anonymous uploads into the
    /// folder `up/` (returned), which is where uploaded files land.
    pub fn anonymous_upload(port: u16, extra: &[&str]) -> (Vsftpd, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::Builder::new().prefix("flashline-ftp-").tempdir().expect("temp dir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let up = root.path().join("up");
        std::fs::create_dir(&up).unwrap();
        // Anonymous sessions run as the `ftp` user (made by the vsftpd package).
        let output = Command::new("chown").args(["ftp", up.to_str().unwrap()]).output_within(QUICK);
        assert!(output.status.success(), "chown ftp {}: {}", up.display(), String::from_utf8_lossy(&output.stderr));
        let anon_root = format!("anon_root={}", root.path().display());
        let mut lines = vec![
            "anonymous_enable=YES",
            "no_anon_password=YES",
            "anon_upload_enable=YES",
            "anon_other_write_enable=YES",
            "anon_umask=022",
            anon_root.as_str(),
        ];
        lines.extend_from_slice(extra);
        let mut server = Vsftpd::start(None, Ipv4Addr::LOCALHOST, port, &lines);
        server.keep.push(root);
        (server, up)
    }

    /// Stops every session process (SIGSTOP, not the listener): the client's
    /// connections stay open and nothing more moves, as a hung device.
    pub fn pause_sessions(&self) -> usize {
        self.signal_sessions("-STOP")
    }

    /// Kills every session process (not the listener): cuts all control and
    /// data connections at once, as a pulled cable or a crash would.
    pub fn kill_sessions(&self) -> usize {
        self.signal_sessions("-KILL")
    }

    fn signal_sessions(&self, signal: &str) -> usize {
        let mut killed = 0;
        let mut parents = vec![self.child.id()];
        let mut descendants = Vec::new();
        while let Some(parent) = parents.pop() {
            let output = Command::new("pgrep").args(["-P", &parent.to_string()]).output_within(QUICK);
            for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<u32>() {
                    descendants.push(pid);
                    parents.push(pid);
                }
            }
        }
        for pid in descendants {
            if Command::new("kill").args([signal, &pid.to_string()]).output_within(QUICK).status.success() {
                killed += 1;
            }
        }
        killed
    }
}
