//! A real vsftpd (Debian package vsftpd) started by a test, inside a network
//! namespace or on 127.0.0.1, with its own configuration in a temp folder;
//! killed on drop, also after a panic.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Vsftpd {
    child: Child,
    pub address: SocketAddr,
    /// Holds the configuration and the empty chroot folder.
    _dir: tempfile::TempDir,
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
    /// `extra` lines are added to the configuration.
    pub fn start(ns: Option<&str>, ip: Ipv4Addr, port: u16, extra: &[&str]) -> Vsftpd {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let config: PathBuf = dir.path().join("vsftpd.conf");
        let mut text = format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address={ip}\nlisten_port={port}\nbackground=NO\n\
             anonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\nseccomp_sandbox=NO\n\
             secure_chroot_dir={}\npam_service_name=vsftpd\ndelay_failed_login=0\n\
             xferlog_enable=NO\nvsftpd_log_file={}\n",
            empty.display(),
            dir.path().join("vsftpd.log").display()
        );
        for line in extra {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&config, text).unwrap();
        let mut command = match ns {
            Some(ns) => super::netns::in_namespace(ns, "/usr/sbin/vsftpd"),
            None => Command::new("/usr/sbin/vsftpd"),
        };
        let child = command
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vsftpd");
        let server = Vsftpd {
            child,
            address: SocketAddr::from((ip, port)),
            _dir: dir,
        };
        if ns.is_none() {
            server.wait_until_listening();
        }
        server
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
