//! Files the user names that are not what they should be: a FIFO, a
//! directory, `/dev/zero`, an empty image, a file this user cannot read.
//! Every command that reads one refuses it at once with a message naming
//! the path and what it is (exit 2; 3 for a file that cannot be read), and
//! nothing reaches a device: `ftp put` makes no connection at all (a
//! listener on 127.0.0.1 counts them), `serial send` and `run` write nothing
//! to the serial line (a PTY whose other end the test reads).
//!
//! Each run is bounded by [`REFUSAL`]: before these checks a FIFO hung the
//! reader and `/dev/zero` was read until memory ran out.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serialport::SerialPort;

use crate::util::child::Bounded;
use crate::util::pty::PtyPair;
use crate::util::{flashline, flashline_bin, is_root, require, text};

/// A refusal is immediate; a reader that blocks or reads without end is
/// killed here and the test fails with what it printed.
const REFUSAL: Duration = Duration::from_secs(20);

const LOAD_ONLY: &str = "format: 1\nname: load-only\nvariables:\n  rom_image:\n    description: the image\nsteps:\n  - load_image:\n      file: ${rom_image}\n      protocol: xmodem\n";

/// A folder holding a FIFO, a subfolder, an empty file and a good image.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        nix::unistd::mkfifo(&path.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::create_dir(path.join("folder")).unwrap();
        std::fs::write(path.join("empty.bin"), b"").unwrap();
        std::fs::write(path.join("good.bin"), flashline::netos::boot_header::build(&[1u8; 100], 1)).unwrap();
        std::fs::write(path.join("load.yaml"), LOAD_ONLY).unwrap();
        Bench { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// (the path, what the message says it is) for each wrong kind of path.
    fn wrong_paths(&self) -> Vec<(PathBuf, &'static str)> {
        vec![
            (self.path("fifo"), "is a FIFO, not a regular file"),
            (self.path("folder"), "is a directory, not a regular file"),
            (PathBuf::from("/dev/zero"), "is a character device, not a regular file"),
        ]
    }
}

/// Runs `command` within [`REFUSAL`]: (exit code, stdout and stderr together).
fn refused(command: &mut Command) -> (Option<i32>, String) {
    let output = command.output_within(REFUSAL);
    let (stdout, stderr) = text(&output);
    (output.status.code(), format!("{stdout}{stderr}"))
}

fn expect(command: &mut Command, code: i32, message: &str) {
    let (got, output) = refused(command);
    assert_eq!(got, Some(code), "{output}");
    assert!(output.contains(message), "wanted `{message}` in:\n{output}");
}

/// A TCP listener on 127.0.0.1 that never answers: after the command ran,
/// [`Listener::connections`] says how many connections it made (the kernel
/// completes them into the backlog whether or not anyone accepts).
struct Listener(TcpListener);

impl Listener {
    fn new() -> Listener {
        Listener(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn port(&self) -> String {
        self.0.local_addr().unwrap().port().to_string()
    }

    fn connections(&self) -> usize {
        self.0.set_nonblocking(true).unwrap();
        std::iter::from_fn(|| self.0.accept().ok()).take(100).count()
    }
}

fn ftp_put(port: &str, file: &Path) -> Command {
    let mut command = flashline();
    command
        .args(["ftp", "put", "--host", "127.0.0.1", "--port", port, "--connect-timeout", "2s", "--reply-timeout", "1s"])
        .arg(file);
    command
}

/// Runs the flashline binary as `nobody`, for whom a root-owned file of
/// mode 000 is unreadable (the tests run as root, who may read anything).
fn as_nobody() -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(flashline_bin())
        .env_remove("NO_COLOR")
        .env_remove("FLASHLINE_LOG")
        .env("TERM", "dumb");
    command
}

/// A file of a good image with mode 000 in a folder anyone may enter.
fn unreadable_image(bench: &Bench) -> PathBuf {
    std::fs::set_permissions(bench.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = bench.path("locked.bin");
    std::fs::copy(bench.path("good.bin"), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    path
}

fn can_switch_user() -> bool {
    require(is_root() && crate::util::have_program("setpriv"), "root and setpriv (util-linux), to run as nobody")
}

#[test]
fn ftp_put_of_an_unreadable_file_makes_no_connection() {
    if !can_switch_user() {
        return;
    }
    let bench = Bench::new();
    let locked = unreadable_image(&bench);
    let listener = Listener::new();
    let mut command = as_nobody();
    command.args(["ftp", "put", "--host", "127.0.0.1", "--port", &listener.port(), "--reply-timeout", "1s"]);
    expect(command.arg(&locked), 3, &format!("cannot read image {}: Permission denied", locked.display()));
    // Before: it logged in, opened STOR and sent 0 bytes (an emptied image.bin).
    assert_eq!(listener.connections(), 0, "no connection for a file that cannot be read");

    // The listener does see a connection when there is a file to send: the
    // count above is not zero for want of trying.
    let control = Listener::new();
    let mut command = as_nobody();
    command.args(["ftp", "put", "--host", "127.0.0.1", "--port", &control.port(), "--reply-timeout", "1s"]);
    let (code, output) = refused(command.arg(bench.path("good.bin")));
    assert_eq!(code, Some(1), "a server that never greets is the device's failure: {output}");
    assert_eq!(control.connections(), 1, "{output}");
}

#[test]
fn ftp_put_refuses_an_empty_file_and_wrong_paths_before_connecting() {
    let bench = Bench::new();
    let listener = Listener::new();
    let port = listener.port();
    let empty = bench.path("empty.bin");
    expect(
        &mut ftp_put(&port, &empty),
        2,
        &format!("image {} is empty (0 bytes): there is nothing to send", empty.display()),
    );
    for (path, what) in bench.wrong_paths() {
        expect(&mut ftp_put(&port, &path), 2, &format!("image {} {what}", path.display()));
    }
    // The second file is wrong: the first is not sent either.
    expect(ftp_put(&port, &bench.path("good.bin")).arg(&empty), 2, "is empty");
    assert_eq!(listener.connections(), 0);
}

/// `serial send FILE` to a PTY; returns the command and the line's other end.
fn serial_send(file: &Path) -> (Command, PtyPair) {
    let pair = PtyPair::new();
    let mut command = flashline();
    command.args(["serial", "send", "--port"]).arg(pair.device_path()).arg(file).args(["--wait-timeout", "2s"]);
    (command, pair)
}

/// Nothing was written to the line (no XMODEM block, no EOT).
fn line_is_silent(pair: &PtyPair) {
    assert_eq!(pair.controller.bytes_to_read().unwrap(), 0, "flashline wrote to the serial line");
}

#[test]
fn serial_send_refuses_an_empty_image_and_wrong_paths_without_writing_to_the_line() {
    let bench = Bench::new();
    let empty = bench.path("empty.bin");
    let (mut command, pair) = serial_send(&empty);
    // Before: "ok: sent 0 bytes" once a receiver asked.
    expect(&mut command, 2, &format!("image {} is empty (0 bytes)", empty.display()));
    line_is_silent(&pair);
    for (path, what) in bench.wrong_paths() {
        let (mut command, pair) = serial_send(&path);
        expect(&mut command, 2, &format!("image {} {what}", path.display()));
        line_is_silent(&pair);
    }
}

#[test]
fn serial_send_of_an_unreadable_image_is_the_environment() {
    if !can_switch_user() {
        return;
    }
    let bench = Bench::new();
    let locked = unreadable_image(&bench);
    let pair = PtyPair::new();
    let mut command = as_nobody();
    command.args(["serial", "send", "--port"]).arg(pair.device_path()).arg(&locked);
    expect(&mut command, 3, &format!("cannot read image {}: Permission denied", locked.display()));
    line_is_silent(&pair);
}

#[test]
fn run_refuses_an_empty_image_before_the_unit_is_touched() {
    let bench = Bench::new();
    let pair = PtyPair::new();
    let mut command = flashline();
    command
        .current_dir(bench.dir.path())
        .args(["run", "load.yaml", "--set", "rom_image=empty.bin", "--port"])
        .arg(pair.device_path());
    expect(&mut command, 2, "is empty (0 bytes)");
    line_is_silent(&pair);
    // The same in a batch, the image named by the inventory.
    std::fs::write(
        bench.path("line.csv"),
        format!("name,profile,rom_image,port\nu1,load.yaml,empty.bin,{}\n", pair.device_path().display()),
    )
    .unwrap();
    let mut command = flashline();
    command.current_dir(bench.dir.path()).args(["batch", "line.csv"]);
    expect(&mut command, 2, "is empty (0 bytes)");
    line_is_silent(&pair);
}

#[test]
fn a_profile_naming_a_folder_or_a_fifo_as_its_image_says_what_it_is() {
    // Before: "file `folder` does not exist" for both.
    let bench = Bench::new();
    for (name, what) in [("folder", "is a directory"), ("fifo", "is a FIFO")] {
        let mut command = flashline();
        command.current_dir(bench.dir.path()).args(["run", "load.yaml", "--set", &format!("rom_image={name}")]);
        expect(&mut command, 2, &format!("file `{name}` {what}, not a regular file"));
    }
}

#[test]
fn profiles_station_files_and_inventories_that_are_no_regular_file_are_refused() {
    let bench = Bench::new();
    for (path, what) in bench.wrong_paths() {
        let shown = path.display();
        expect(flashline().args(["profile", "check"]).arg(&path), 2, &format!("profile {shown} {what}"));
        expect(flashline().args(["station", "--check"]).arg(&path), 2, &format!("station file {shown} {what}"));
        expect(flashline().arg("batch").arg(&path), 2, &format!("inventory {shown} {what}"));
        expect(
            flashline().arg("run").arg(bench.path("load.yaml")).arg("--inventory").arg(&path).args(["--device", "u1"]),
            2,
            &format!("inventory {shown} {what}"),
        );
    }
}

#[test]
fn a_profile_larger_than_its_cap_is_refused_unread() {
    let bench = Bench::new();
    let big = bench.path("big.yaml");
    let file = std::fs::File::create(&big).unwrap();
    // Sparse: 17 MiB without writing them.
    file.set_len(17 << 20).unwrap();
    expect(
        flashline().args(["profile", "check"]).arg(&big),
        2,
        &format!("profile {} is larger than 16 MiB ({} bytes)", big.display(), 17 << 20),
    );
}

#[test]
fn a_journal_that_is_no_regular_file_is_refused_before_any_device() {
    let bench = Bench::new();
    let pair = PtyPair::new();
    std::fs::write(
        bench.path("line.csv"),
        format!("name,profile,rom_image,port\nu1,load.yaml,good.bin,{}\n", pair.device_path().display()),
    )
    .unwrap();
    for (path, what) in bench.wrong_paths() {
        // Before: `--journal /dev/zero` read 6.4 GB in 6 s; a FIFO hung.
        let mut command = flashline();
        command.current_dir(bench.dir.path()).args(["batch", "line.csv", "--journal"]).arg(&path);
        expect(&mut command, 2, &format!("journal {} {what}", path.display()));
        line_is_silent(&pair);
    }
}

#[test]
fn exs_config_files_and_boot_logs_that_are_no_regular_file_are_refused() {
    let bench = Bench::new();
    for (path, what) in bench.wrong_paths() {
        let shown = path.display();
        expect(flashline().args(["exs", "check-config"]).arg(&path), 2, &format!("configuration file {shown} {what}"));
        expect(
            flashline().args(["exs", "check-config", "--json"]).arg(&path),
            2,
            &format!("configuration file {shown} {what}"),
        );
        // The boot log is read before anything is probed.
        expect(
            flashline().args(["diagnose", "127.0.0.1", "--timeout", "1s", "--boot-log"]).arg(&path),
            2,
            &format!("boot log {shown} {what}"),
        );
    }
}

#[test]
fn a_password_file_that_is_no_regular_file_is_refused_before_anything_is_sent() {
    let bench = Bench::new();
    // Unicast to a loopback port nobody serves: even were the file read,
    // nothing could leave this host (the network rule).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    for (path, what) in bench.wrong_paths() {
        let mut command = flashline();
        command
            .args(["addp", "reboot", "00:40:9d:00:00:01", "--address", "127.0.0.1", "--port", &port, "--retries", "0"])
            .args(["--wait", "100ms", "--password-file"])
            .arg(&path);
        expect(&mut command, 2, &format!("secret file {} {what}", path.display()));
    }
    silent.set_nonblocking(true).unwrap();
    assert!(silent.recv_from(&mut [0u8; 1500]).is_err(), "an ADDP request was sent");
}
