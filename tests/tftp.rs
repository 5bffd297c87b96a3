//! `flashline tftp serve` against independent clients: Debian's tftp-hpa
//! (`tftp`, blocks of 512 bytes, no options) and curl (`tftp://`, blksize and
//! tsize), on 127.0.0.1. Files arrive byte-exact; names that leave the root
//! get a TFTP error; writes only with `--allow-write`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::child::{Bounded, LineChild, QUICK, die_with_test};
use crate::util::{flashline, have_program, require};

/// `flashline tftp serve` on 127.0.0.1, a free port; killed on drop.
struct Server {
    child: LineChild,
    port: u16,
}

impl Server {
    fn start(root: &Path, extra: &[&str]) -> Server {
        let mut command = flashline();
        die_with_test(&mut command).args(["tftp", "serve", "--listen", "127.0.0.1:0", "--root"]).arg(root).args(extra);
        let mut child = LineChild::spawn(&mut command);
        let line = child.line_matching(Duration::from_secs(20), |l| l.starts_with("serving "));
        let port = line
            .split("udp 127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server { child, port }
    }

    /// The progress line about `name` (one per transfer).
    fn line_about(&mut self, name: &str) -> String {
        self.child.line_matching(Duration::from_secs(20), |l| l.contains(name) && !l.starts_with("serving "))
    }
}

fn tools_present() -> bool {
    require(have_program("tftp"), "`tftp` (Debian package tftp-hpa)")
        && require(have_program("curl"), "`curl` (Debian package curl)")
}

fn tftp_hpa(port: u16, command: &str) -> (bool, String) {
    let output = Command::new("tftp")
        .args(["-m", "binary", "127.0.0.1", &port.to_string(), "-c"])
        .args(command.split_whitespace())
        .output_within(Duration::from_secs(120));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // tftp-hpa exits 0 even after an error packet: its message tells.
    (output.status.success() && !text.contains("Error code"), text)
}

fn pattern(size: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[test]
fn tftp_serve_tftp_hpa_and_curl_fetch_byte_exact() {
    if !tools_present() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let files = [("empty.bin", 0usize), ("exact.bin", 512 * 8), ("big.bin", 32 << 20)];
    for (seed, (name, size)) in files.iter().enumerate() {
        std::fs::write(root.path().join(name), pattern(*size, seed as u32)).unwrap();
    }
    let mut server = Server::start(root.path(), &[]);
    for (name, size) in files {
        let want = std::fs::read(root.path().join(name)).unwrap();
        // The copies come through stdout, not the disk: a CI runner's disk
        // need only hold the served file.
        // tftp-hpa: 512-byte blocks; 32 MiB is 65536 full blocks and an
        // empty one, so the block number wraps past 65535.
        let output = Command::new("tftp")
            .args(["-m", "binary", "127.0.0.1", &server.port.to_string(), "-c", "get", name, "/dev/stdout"])
            .output_within(Duration::from_secs(120));
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && !said.contains("Error"), "tftp get {name}: {said}");
        assert!(output.stdout == want, "tftp-hpa's copy of {name} ({size} B) differs: {} B", output.stdout.len());
        let line = server.line_about(name);
        assert!(
            line.starts_with(&format!("sent {name} to 127.0.0.1:")) && line.contains(&format!(": {size} B in")),
            "{line}"
        );

        // curl: the largest block RFC 2348 allows, and tsize.
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--tftp-blksize", "65464", "--max-time", "120", "-o", "-"])
            .arg(format!("tftp://127.0.0.1:{}/{name}", server.port))
            .output_within(Duration::from_secs(150));
        assert!(output.status.success(), "curl {name}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(output.stdout == want, "curl's copy of {name} ({size} B) differs: {} B", output.stdout.len());
        let line = server.line_about(name);
        assert!(line.contains("blksize 65464"), "{line}");
    }
}

/// netascii (tftp-hpa's default mode): LF goes as CR LF and a lone CR as
/// CR NUL on the wire; tftp-hpa turns them back, so the copy is the file.
#[test]
fn tftp_serve_netascii_round_trips_through_tftp_hpa() {
    if !tools_present() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // Long enough for CR LF pairs to straddle 512-byte blocks.
    let text: String = (0..200).map(|i| format!("line {i}\r\n{}\rx\n", "y".repeat(i % 7))).collect();
    std::fs::write(root.path().join("t.txt"), &text).unwrap();
    let mut server = Server::start(root.path(), &[]);
    // Into a file: tftp-hpa's netascii output to a pipe differs (from
    // tftpd-hpa just the same), a file is what users get.
    let copy = root.path().join("copy.txt");
    let output = Command::new("tftp")
        .args(["-m", "netascii", "127.0.0.1", &server.port.to_string(), "-c", "get", "t.txt"])
        .arg(&copy)
        .output_within(QUICK);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let got = std::fs::read(&copy).unwrap();
    assert!(got == text.as_bytes(), "netascii copy differs:\n{:?}", String::from_utf8_lossy(&got));
    assert!(server.line_about("t.txt").starts_with("sent t.txt"));
}

#[test]
fn tftp_serve_refuses_names_that_leave_the_root() {
    if !tools_present() {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"not for the network").unwrap();
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link")).unwrap();
    let escape = format!("../{}/secret", outside.path().file_name().unwrap().to_string_lossy());
    let absolute = outside.path().join("secret").display().to_string();
    let mut server = Server::start(root.path(), &[]);
    let dest = tempfile::tempdir().unwrap();
    let local = dest.path().join("got");
    for name in [escape.as_str(), absolute.as_str(), "link"] {
        let (ok, said) = tftp_hpa(server.port, &format!("get {name} {}", local.display()));
        assert!(!ok && said.contains("Error code 2"), "tftp get {name}: {said}");
        let line = server.line_about(name);
        assert!(line.starts_with("refused "), "{line}");
    }
    // curl sends the path as typed with --path-as-is; the error is TFTP's
    // access violation (curl's exit code 69, CURLE_TFTP_PERM).
    let output = Command::new("curl")
        .args(["--silent", "--path-as-is", "--max-time", "20", "-o"])
        .arg(&local)
        .arg(format!("tftp://127.0.0.1:{}/{escape}", server.port))
        .output_within(QUICK);
    assert_eq!(output.status.code(), Some(69), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(std::fs::read(&local).map_or(true, |got| got.is_empty()), "the secret was sent");
}

#[test]
fn tftp_serve_writes_only_with_allow_write() {
    if !tools_present() {
        return;
    }
    let source = tempfile::tempdir().unwrap();
    let upload = source.path().join("up.bin");
    let content = pattern(5000, 9);
    std::fs::write(&upload, &content).unwrap();

    let root = tempfile::tempdir().unwrap();
    let mut server = Server::start(root.path(), &[]);
    let (ok, said) = tftp_hpa(server.port, &format!("put {} up.bin", upload.display()));
    assert!(!ok && said.contains("Error code 2"), "{said}");
    assert!(server.line_about("up.bin").contains("writing is not allowed"));
    assert!(!root.path().join("up.bin").exists());
    drop(server);

    let mut server = Server::start(root.path(), &["--allow-write"]);
    let (ok, said) = tftp_hpa(server.port, &format!("put {} up.bin", upload.display()));
    assert!(ok, "{said}");
    assert!(server.line_about("up.bin").starts_with("received up.bin"));
    assert_eq!(std::fs::read(root.path().join("up.bin")).unwrap(), content);
}
