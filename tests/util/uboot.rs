//! A real U-Boot (Debian's `u-boot-qemu` build for QEMU's `virt` ARM board)
//! under `qemu-system-arm`, its console on a PTY. QEMU starts paused (`-S`)
//! and runs the guest only once flashline holds the PTY, so not one byte of
//! the banner and countdown is lost (QEMU drops console output while nobody
//! has the PTY open). Its network is QEMU's user network with `restrict=on`:
//! nothing the guest sends leaves the QEMU process. Killed on drop, also
//! after a panic, and with the test process (`PR_SET_PDEATHSIG`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::child::die_with_test;

/// The U-Boot build the tests boot.
pub const UBOOT_BIN: &str = "/usr/lib/u-boot/qemu_arm/u-boot.bin";
/// The MAC QEMU gives the guest's network card (U-Boot's `ethaddr`).
pub const GUEST_MAC: &str = "52:54:00:12:34:56";

pub struct QemuUboot {
    child: Child,
    /// The console, e.g. `/dev/pts/7`.
    pub pty: PathBuf,
    qmp: PathBuf,
    _dir: tempfile::TempDir,
}

/// Why a real U-Boot cannot run here, if it cannot.
pub fn unavailable_reason() -> Option<String> {
    if !super::have_program("qemu-system-arm") {
        return Some("qemu-system-arm (Debian package qemu-system-arm) is not installed".into());
    }
    if !Path::new(UBOOT_BIN).is_file() {
        return Some(format!("{UBOOT_BIN} (Debian package u-boot-qemu) is not installed"));
    }
    None
}

impl QemuUboot {
    /// Starts QEMU paused; the guest runs after [`QemuUboot::run_once_held_by`].
    pub fn start() -> QemuUboot {
        let dir = tempfile::tempdir().expect("temp dir");
        let qmp = dir.path().join("qmp.sock");
        let mut command = Command::new("qemu-system-arm");
        command
            .args(["-M", "virt", "-m", "128", "-display", "none", "-monitor", "none", "-S"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .args(["-bios", UBOOT_BIN, "-chardev", "pty,id=s0", "-serial", "chardev:s0"])
            .args(["-netdev", "user,id=n0,restrict=on"])
            .args(["-device", &format!("virtio-net-device,netdev=n0,mac={GUEST_MAC}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = die_with_test(&mut command).spawn().expect("cannot start qemu-system-arm");
        // QEMU names the PTY on stdout before it does anything else.
        let (sender, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let pty = loop {
            let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
                let _ = child.kill();
                panic!("qemu-system-arm named no PTY within 20 s");
            };
            if let Some(rest) = line.split("redirected to ").nth(1) {
                break PathBuf::from(rest.split_whitespace().next().expect("a PTY path"));
            }
        };
        QemuUboot { child, pty, qmp, _dir: dir }
    }

    /// Waits (bounded) until process `pid` holds the console open, then lets
    /// the guest run: U-Boot's first byte reaches flashline.
    pub fn run_once_held_by(&self, pid: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !holds(pid, &self.pty) {
            assert!(!ended(pid), "flashline ended before it opened {} (see its output)", self.pty.display());
            assert!(Instant::now() < deadline, "flashline did not open {} within 30 s", self.pty.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        let qmp = UnixStream::connect(&self.qmp).expect("QEMU's QMP socket");
        qmp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut writer = qmp.try_clone().unwrap();
        let mut replies = BufReader::new(qmp).lines();
        let _greeting = replies.next().expect("QMP greeting").expect("QMP greeting");
        for request in [r#"{"execute":"qmp_capabilities"}"#, r#"{"execute":"cont"}"#] {
            writeln!(writer, "{request}").unwrap();
            // Events (`RESUME`) may come before the answer: read, bounded, to it.
            let answered = replies
                .by_ref()
                .take(16)
                .map_while(Result::ok)
                .find(|line| line.contains("\"return\"") || line.contains("\"error\""));
            assert!(
                answered.as_deref().is_some_and(|line| line.contains("\"return\"")),
                "QMP: {request}: {answered:?}"
            );
        }
    }
}

/// Whether process `pid` has `path` open.
fn holds(pid: u32, path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    entries.filter_map(Result::ok).any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

/// Whether process `pid` has ended (a zombie not yet reaped, or gone).
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.rsplit(") ").next().is_some_and(|rest| rest.starts_with('Z')))
}

impl Drop for QemuUboot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
