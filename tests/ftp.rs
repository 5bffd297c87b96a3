//! `flashline ftp put` against a real vsftpd started by each test on
//! 127.0.0.1: files of 1 B and 64 MiB arrive intact (an empty one is
//! refused before connecting: tests/input_files.rs), a connection cut
//! mid-transfer ends in a verified retry or a clear failure, and 530, 550, 421
//! and a refused connection are each reported with their class. The default
//! `auto` mode falls back to PORT when passive mode is refused; a server that
//! accepts and stays silent, or answers with something that is not FTP,
//! fails within the reply timeout and says so. A hostile server whose PASV
//! names another host never gets the image sent there; a run killed between
//! two files resumes without sending the first again; `--connect-timeout`
//! ends a connect whose SYNs are dropped, `--reply-timeout` a stalled
//! transfer, and a certificate must carry the address or `--tls-name`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::child::{Bounded, FLASHLINE, QUICK};
use crate::util::vsftpd::{self, Vsftpd};
use crate::util::{flashline, require, text};

fn sha256_file(path: &Path) -> String {
    let mut hasher = Sha256::new();
    hasher.update(std::fs::read(path).unwrap());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A file of `size` pseudo-random bytes (not all zeros: an ASCII-mode
/// transfer that rewrote line feeds would show).
fn make_file(dir: &Path, name: &str, size: usize) -> std::path::PathBuf {
    let mut bytes = Vec::with_capacity(size);
    let mut x: u32 = 0x1234_5678;
    while bytes.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(size);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn vsftpd_here() -> bool {
    match vsftpd::unavailable_reason() {
        Some(reason) => !require(false, &reason),
        None => true,
    }
}

/// Runs `ftp put` as anonymous with `args` and returns (exit code, JSON).
fn put(port: u16, args: &[&str]) -> (Option<i32>, Value, String) {
    let port = port.to_string();
    let output = flashline()
        .env("FTP_PW", "flashline@example.invalid")
        .args([
            "ftp",
            "put",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--user",
            "anonymous",
            "--password-env",
            "FTP_PW",
            "--json",
        ])
        .args(args)
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\n{stderr}"));
    (output.status.code(), value, stderr)
}

#[test]
fn files_of_1_b_and_64_mib_arrive_intact() {
    if !vsftpd_here() {
        return;
    }
    let (server, up) = Vsftpd::anonymous_upload(0, &[]);
    let port = server.address.port();
    let dir = tempfile::tempdir().unwrap();
    for (name, size) in [("one.bin", 1usize), ("image.bin", 64 << 20)] {
        let local = make_file(dir.path(), name, size);
        for verify in ["size", "readback"] {
            let remote = format!("up/{verify}-{name}");
            let (code, report, stderr) =
                put(port, &[local.to_str().unwrap(), "--remote", &remote, "--verify", verify, "--hash"]);
            assert_eq!(code, Some(0), "{name} {verify}: {stderr}\n{report:#}");
            let file = &report["files"][0];
            assert_eq!(file["bytes"], size as u64);
            let expected = sha256_file(&local);
            assert_eq!(file["sha256"], expected.as_str());
            assert_eq!(sha256_file(&up.join(format!("{verify}-{name}"))), expected, "the server's copy of {name}");
            let how = file["verified"].as_str().unwrap();
            assert!(how.contains(if verify == "size" { "size" } else { "sha256 of a read-back" }), "{how}");
        }
    }
}

/// Watches the server's copy grow and cuts every session once it passes
/// `after` bytes; returns whether it cut.
fn cut_when_growing(server: &Vsftpd, file: &Path, after: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::metadata(file).is_ok_and(|m| m.len() > after) {
            return server.kill_sessions() > 0;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Uploads a 64 MiB image to a rate-limited vsftpd (about 4 s, long enough
/// to cut) with `extra` options while the test cuts every session once 8 MiB
/// have arrived. Returns the exit code, the JSON, stderr, and the local and
/// server-side copies.
fn put_while_cutting(
    extra: &[&str],
) -> Option<(Option<i32>, Value, String, std::path::PathBuf, std::path::PathBuf, tempfile::TempDir)> {
    if !vsftpd_here() {
        return None;
    }
    let (server, up) = Vsftpd::anonymous_upload(0, &["anon_max_rate=16000000"]);
    let port = server.address.port();
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "image.bin", 64 << 20);
    let remote = up.join("image.bin");
    let result = std::thread::scope(|scope| {
        let cutter = scope.spawn(|| cut_when_growing(&server, &remote, 8 << 20));
        let mut args = vec![local.to_str().unwrap(), "--remote", "up/image.bin"];
        args.extend_from_slice(extra);
        let result = put(port, &args);
        assert!(cutter.join().unwrap(), "the test cut the transfer");
        result
    });
    let server_copy = dir.path().join("server-copy.bin");
    std::fs::copy(&remote, &server_copy).unwrap();
    Some((result.0, result.1, result.2, local, server_copy, dir))
}

#[test]
fn a_connection_cut_mid_transfer_is_retried_and_verified() {
    let Some((code, report, stderr, local, server_copy, _dir)) = put_while_cutting(&["--verify", "readback"]) else {
        return;
    };
    assert_eq!(code, Some(0), "{stderr}\n{report:#}");
    let file = &report["files"][0];
    assert!(file["attempts"].as_u64().unwrap() >= 2, "{report:#}");
    assert!(file["resumed_from"].as_u64().is_some_and(|offset| offset > 0), "resumed with REST: {report:#}");
    assert_eq!(file["sha256"], sha256_file(&local).as_str());
    assert_eq!(sha256_file(&server_copy), sha256_file(&local));
}

#[test]
fn a_cut_without_retries_is_a_clear_failure_never_a_success() {
    let Some((code, report, _, _, _, _dir)) = put_while_cutting(&["--retries", "0"]) else { return };
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["class"], "device");
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("upload of `up/image.bin` failed after 1 attempt(s)"), "{error}");
}

#[test]
fn refused_credentials_file_and_busy_are_classified() {
    if !vsftpd_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "rom.bin", 4096);
    let local = local.to_str().unwrap();

    // 530: the server only takes anonymous.
    let (server, _) = Vsftpd::anonymous_upload(0, &["deny_file={*.exe}"]);
    let port = server.address.port();
    let output = flashline()
        .env("FTP_PW", "s3cret-not-shown")
        .args([
            "ftp",
            "put",
            local,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--user",
            "operator",
            "--password-env",
            "FTP_PW",
            "--json",
        ])
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"), "password leaked");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["class"], "device");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("refused the credentials (530") && error.contains("user(s) tried: operator"), "{error}");

    // 550: a name the server will not store.
    let (code, report, _) = put(port, &[local, "--remote", "up/flash.exe"]);
    assert_eq!(code, Some(1));
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("the server refused STOR `up/flash.exe`: 550"), "{error}");

    // 421: the one session it allows is taken.
    let (busy_server, _) = Vsftpd::anonymous_upload(0, &["max_clients=1"]);
    let port = busy_server.address.port();
    // vsftpd counts a session until it has reaped its process: the start-up
    // check's connection may still hold the one place for a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let held = loop {
        let stream = std::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        let mut greeting = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut greeting).unwrap();
        if greeting.starts_with("220") {
            break stream;
        }
        assert!(Instant::now() < deadline, "vsftpd never freed its one session: {greeting}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (code, report, _) = put(port, &[local, "--remote", "up/rom.bin"]);
    assert_eq!(code, Some(1));
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("is busy: 421"), "{error}");
    drop(held);
}

#[test]
fn a_refused_connection_carries_the_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "rom.bin", 16);
    let closed = crate::util::ports::closed_tcp_port();
    let port = closed.port.to_string();
    let output = flashline()
        .args(["ftp", "put", local.to_str().unwrap(), "--host", "127.0.0.1", "--port", &port, "--json"])
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["finding"]["code"], "no-listener", "{report:#}");
    assert_eq!(report["finding"]["port"], port.parse::<u64>().unwrap());
    assert!(report["error"].as_str().unwrap().contains("Connection refused"));

    // A missing local file is this machine's problem, found before connecting.
    let output = flashline()
        .args(["ftp", "put", "/nonexistent/rom.bin", "--host", "127.0.0.1", "--port", &port])
        .output_within(FLASHLINE);
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output).1.contains("cannot read image /nonexistent/rom.bin"));
}

/// A self-signed certificate for 127.0.0.1 made with openssl: (cert, key).
fn self_signed(dir: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    if !require(crate::util::have_program("openssl"), "openssl (Debian package openssl)") {
        return None;
    }
    Some(certificate_for(dir, "cert", "IP:127.0.0.1"))
}

#[test]
fn ftps_upload_with_a_trusted_certificate_and_refusal_without() {
    if !vsftpd_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(dir.path()) else { return };
    let cert_line = format!("rsa_cert_file={}", cert.display());
    let key_line = format!("rsa_private_key_file={}", key.display());
    let (server, up) = Vsftpd::anonymous_upload(
        0,
        &[
            "ssl_enable=YES",
            "allow_anon_ssl=YES",
            "force_anon_logins_ssl=YES",
            "force_anon_data_ssl=YES",
            "require_ssl_reuse=NO",
            &cert_line,
            &key_line,
        ],
    );
    let port = server.address.port();
    let local = make_file(dir.path(), "image.bin", 3 << 20);
    let cert_arg = cert.to_str().unwrap();
    let (code, report, stderr) = put(
        port,
        &[local.to_str().unwrap(), "--remote", "up/image.bin", "--verify", "readback", "--tls", "--tls-ca", cert_arg],
    );
    assert_eq!(code, Some(0), "{stderr}\n{report:#}");
    assert_eq!(sha256_file(&up.join("image.bin")), sha256_file(&local));

    // The server insists on TLS: plain FTP is refused at login.
    let (code, report, _) = put(port, &[local.to_str().unwrap(), "--remote", "up/plain.bin"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["class"], "device", "{report:#}");
    assert_eq!(report["finding"]["code"], "auth-failed", "{report:#}");
    let advice = report["finding"]["advice"][0].as_str().unwrap();
    assert!(advice.starts_with("The server wants TLS before a login") && advice.contains("--tls"), "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.ends_with(
            "refused the credentials (530 Anonymous sessions must use encryption.) for user(s) tried: anonymous"
        ),
        "{error}"
    );
    assert!(!up.join("plain.bin").exists());

    // A certificate nobody vouched for is not trusted.
    let (code, report, _) = put(port, &[local.to_str().unwrap(), "--remote", "up/untrusted.bin", "--tls"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert!(report["error"].as_str().unwrap().starts_with("TLS with 127.0.0.1"), "{report:#}");
    assert!(!up.join("untrusted.bin").exists());
}

#[test]
fn the_password_never_reaches_the_log_even_at_trace_level() {
    if !vsftpd_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "rom.bin", 16);
    // Local users: vsftpd asks for the password (331), so PASS is sent.
    let server = Vsftpd::start(None, std::net::Ipv4Addr::LOCALHOST, 0, &[]);
    let port = server.address.port();
    let output = flashline()
        .env("FTP_PW", "s3cret-not-shown")
        .env("FLASHLINE_LOG", "trace")
        .args(["ftp", "put", local.to_str().unwrap(), "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--user", "flashline-nobody", "--password-env", "FTP_PW"])
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("TRACE"), "trace output is on: {stderr}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"), "password leaked:\n{stderr}");
}

#[test]
fn auto_mode_falls_back_to_port_when_passive_is_refused_and_keeps_epsv_without_port() {
    if !vsftpd_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "rom.bin", 300_000);
    let sent = sha256_file(&local);

    // The case: vsftpd with pasv_enable=NO answers EPSV and PASV
    // with `550 Permission denied.`
    let (server, up) = Vsftpd::anonymous_upload(0, &["pasv_enable=NO"]);
    let port = server.address.port();
    let (code, report, stderr) = put(port, &[local.to_str().unwrap(), "--remote", "up/rom.bin"]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    let file = &report["files"][0];
    assert_eq!(file["mode"], "active", "{report:#}");
    let fallback: Vec<&str> = file["fallback"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(fallback.len(), 2, "{fallback:?}");
    assert!(fallback[0].starts_with("EPSV refused: 5"), "{fallback:?}");
    assert!(fallback[1].starts_with("PASV refused: 5"), "{fallback:?}");
    assert_eq!(sha256_file(&up.join("rom.bin")), sent, "byte-exact over PORT");

    // The human line names the mode too.
    let output = flashline()
        .env("FTP_PW", "x@example.invalid")
        .args(["ftp", "put", local.to_str().unwrap(), "--remote", "up/again.bin", "--host", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--user", "anonymous", "--password-env", "FTP_PW"])
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("via PORT") && stdout.contains("given up: PASV refused"), "{stdout}");

    // Passive asked for by name is refused by name: never the file's fault.
    let (code, report, _) = put(port, &[local.to_str().unwrap(), "--remote", "up/p.bin", "--mode", "passive"]);
    assert_eq!(code, Some(1));
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("refused PASV: 550 Permission denied."), "{error}");
    assert!(!error.contains("p.bin"), "the file is not the cause: {error}");

    // port_enable=NO: EPSV carries the data, nothing is given up.
    let (server, up) = Vsftpd::anonymous_upload(0, &["port_enable=NO"]);
    let port = server.address.port();
    let (code, report, stderr) =
        put(port, &[local.to_str().unwrap(), "--remote", "up/rom.bin", "--verify", "readback"]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["files"][0]["mode"], "epsv", "{report:#}");
    assert!(report["files"][0].get("fallback").is_none(), "{report:#}");
    assert_eq!(sha256_file(&up.join("rom.bin")), sent);

    // Active asked for by name on that server: PORT is named.
    let (code, report, _) = put(port, &[local.to_str().unwrap(), "--remote", "up/a.bin", "--mode", "active"]);
    assert_eq!(code, Some(1));
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("refused PORT: 5"), "{error}");
    assert!(!error.contains("a.bin"), "{error}");
}

/// `ftp put` with short deadlines against a listener on 127.0.0.1:`port`.
fn put_quick(port: u16, local: &Path) -> (Option<i32>, Value, Duration) {
    let started = Instant::now();
    let output = flashline()
        .args(["ftp", "put", local.to_str().unwrap(), "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--connect-timeout", "2s", "--reply-timeout", "2s", "--json"])
        .output_within(QUICK);
    let took = started.elapsed();
    let (stdout, stderr) = text(&output);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\n{stderr}"));
    (output.status.code(), value, took)
}

#[test]
fn a_server_that_accepts_and_stays_silent_fails_within_the_reply_timeout_with_no_banner() {
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "rom.bin", 16);
    // The kernel completes the handshake for a listener nobody accepts on:
    // a peer that takes the connection and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (code, report, took) = put_quick(port, &local);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["finding"]["code"], "no-banner", "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("sent no FTP greeting within 2 s"), "{error}");
    assert!(took < Duration::from_secs(12), "took {took:?} with a 2 s reply timeout");
    drop(silent);
}

/// A peer on 127.0.0.1 that sends `bytes` to each connection it accepts
/// (at most `connections`), then holds it open until the test ends.
fn talker(bytes: Vec<u8>, connections: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..connections {
            let Ok((mut stream, _)) = listener.accept() else { return };
            let _ = std::io::Write::write_all(&mut stream, &bytes);
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(20));
    });
    port
}

#[test]
fn bytes_that_are_not_ftp_are_quoted_and_never_called_ready() {
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "rom.bin", 16);

    let port = talker(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec(), 1);
    let (code, report, took) = put_quick(port, &local);
    assert_eq!(code, Some(1), "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("does not answer like an FTP server"), "{error}");
    assert!(error.contains("SSH-2.0-OpenSSH_9.2p1"), "says what the server sent: {error}");
    assert_ne!(report["finding"]["code"], "ready", "{report:#}");
    assert!(took < Duration::from_secs(12), "{took:?}");

    // A greeting line longer than suppaftp's 256 KiB limit.
    let mut endless = b"220-".to_vec();
    endless.resize(300 * 1024, b'a');
    let port = talker(endless, 1);
    let (code, report, _) = put_quick(port, &local);
    assert_eq!(code, Some(1), "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("longer than the limit") && error.contains("220-aaaa"), "{error}");
    assert_ne!(report["finding"]["code"], "ready", "{report:#}");
}

#[test]
fn run_against_a_silent_server_fails_within_the_reply_timeout_with_no_banner() {
    let dir = tempfile::tempdir().unwrap();
    make_file(dir.path(), "image.bin", 64);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let profile = dir.path().join("silent.yaml");
    std::fs::write(
        &profile,
        format!(
            "format: 1\nname: silent\nnetwork:\n  dhcp: false\n  ip: 127.0.0.1\nsteps:\n  - ftp_upload:\n      port: {port}\n      credentials:\n        - {{user: root, password: Netsilicon}}\n      verify: none\n      files: [{{local: image.bin}}]\n      connect_timeout: 2s\n      reply_timeout: 2s\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let output = flashline().args(["run", profile.to_str().unwrap(), "--json"]).output_within(QUICK);
    let took = started.elapsed();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let device = &report["devices"][0];
    assert_eq!(device["finding"]["code"], "no-banner", "{report:#}");
    assert!(device["error"].as_str().unwrap().contains("no FTP greeting within 2 s"), "{report:#}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    drop(silent);
}

/// What the scripted server received: the file's bytes and the command verbs.
type Received = std::sync::mpsc::Receiver<(Vec<u8>, Vec<String>)>;

/// A scripted FTP server on 127.0.0.1 for one session, whose EPSV and PASV
/// offer a port nothing listens on (the passive data connection cannot be
/// made) and whose PORT works. Returns its port, the files it received and
/// the commands it was sent.
fn passive_unreachable_server() -> (u16, Received) {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((control, _)) = listener.accept() else { return };
        control.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // The port passive replies offer: held closed for the session.
        let closed = crate::util::ports::closed_tcp_port();
        let mut writer = control.try_clone().unwrap();
        let mut reader = std::io::BufReader::new(control);
        let mut say = |text: &str| writer.write_all(format!("{text}\r\n").as_bytes()).is_ok();
        say("220 scripted server");
        let (mut data_to, mut file, mut commands) = (None, Vec::new(), Vec::new());
        for _ in 0..50 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let line = line.trim_end().to_string();
            let (verb, argument) = line.split_once(' ').unwrap_or((&line, ""));
            commands.push(verb.to_string());
            let dead_port = || closed.port;
            let ok = match verb {
                "USER" => say("331 password"),
                "PASS" => say("230 in"),
                "TYPE" => say("200 binary"),
                "EPSV" => say(&format!("229 Entering Extended Passive Mode (|||{}|)", dead_port())),
                "PASV" => {
                    let p = dead_port();
                    say(&format!("227 Entering Passive Mode (127,0,0,1,{},{})", p >> 8, p & 0xff))
                }
                "PORT" => {
                    let n: Vec<u16> = argument.split(',').map(|x| x.parse().unwrap()).collect();
                    data_to = Some(SocketAddr::from(([127, 0, 0, 1], n[4] << 8 | n[5])));
                    say("200 PORT ok")
                }
                "STOR" => {
                    say("150 go");
                    let mut data =
                        std::net::TcpStream::connect_timeout(&data_to.expect("PORT first"), Duration::from_secs(5))
                            .unwrap();
                    data.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    data.read_to_end(&mut file).unwrap();
                    say("226 stored")
                }
                "QUIT" => {
                    say("221 bye");
                    break;
                }
                _ => say("502 not here"),
            };
            if !ok {
                break;
            }
        }
        let _ = done.send((file, commands));
    });
    (port, received)
}

#[test]
fn auto_mode_goes_to_port_when_the_passive_data_connection_cannot_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "image.bin", 70_000);
    let (port, received) = passive_unreachable_server();
    let (code, report, stderr) = put(port, &[local.to_str().unwrap(), "--verify", "none"]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    let file = &report["files"][0];
    assert_eq!(file["mode"], "active", "{report:#}");
    let fallback = file["fallback"].as_array().unwrap();
    assert_eq!(fallback.len(), 1, "PASV is skipped: it would connect the same way: {report:#}");
    let why = fallback[0].as_str().unwrap();
    assert!(why.starts_with("EPSV data connection to 127.0.0.1:") && why.contains("refused"), "{why}");
    let (bytes, commands) = received.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(bytes, std::fs::read(&local).unwrap());
    assert!(!commands.contains(&"PASV".to_string()), "{commands:?}");

    // PASV asked for by name: its data connection failed, nothing was refused.
    let (port, received) = passive_unreachable_server();
    let (code, report, _) = put(port, &[local.to_str().unwrap(), "--mode", "passive", "--retries", "0"]);
    assert_eq!(code, Some(1), "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains(": PASV data connection to 127.0.0.1:") && !error.contains("refused PASV"), "{error}");
    let (bytes, commands) = received.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(bytes.is_empty() && !commands.contains(&"STOR".to_string()), "{commands:?}");
}

/// What the PASV-elsewhere server saw: files that arrived on the control
/// peer's address, and every connection (with its bytes) to the other host.
#[derive(Debug, Default)]
struct Elsewhere {
    /// STOR arguments, in order.
    stors: Vec<String>,
    /// Files whose data connection came to 127.0.0.1 (the control peer).
    at_peer: Vec<Vec<u8>>,
    /// Connections to 127.0.0.2 (the address the PASV reply names), with
    /// the bytes each carried.
    at_elsewhere: Vec<Vec<u8>>,
    /// When each session's QUIT came, in seconds since the Unix epoch, as
    /// journal lines give `at`.
    ended_at: Vec<f64>,
}

fn epoch_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A hostile FTP server on 127.0.0.1 for up to `sessions` sessions in turn:
/// EPSV and PORT are refused (so `auto` reaches PASV), and PASV names
/// 127.0.0.2, where it listens and records whatever arrives. With
/// `listen_at_peer` it also listens on 127.0.0.1 at the same port (where a
/// client that uses only the reply's port connects). Returns the control
/// port and what it saw; it stops when `stop` is set or after 60 s.
fn pasv_elsewhere_server(
    listen_at_peer: bool,
    sessions: usize,
) -> (u16, std::sync::Arc<std::sync::Mutex<Elsewhere>>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    scripted_server(listen_at_peer, sessions, [127, 0, 0, 2], open)
}

/// [`pasv_elsewhere_server`] with the address its PASV replies name (with
/// 127.0.0.1, what arrives there is in `at_elsewhere` too), and a gate: a
/// session whose number (from 0) is not below `open` is accepted and left
/// without a greeting until `open` rises past it (a device that hangs
/// before its FTP server answers).
fn scripted_server(
    listen_at_peer: bool,
    sessions: usize,
    pasv_ip: [u8; 4],
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Elsewhere>>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{BufRead, Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    // The same port on both addresses (a port taken on 127.0.0.1 by someone
    // else: try another, a bounded number of times).
    let (elsewhere, at_peer) = (0..50)
        .find_map(|_| {
            let elsewhere = std::net::TcpListener::bind((std::net::Ipv4Addr::from(pasv_ip), 0)).ok()?;
            let port = elsewhere.local_addr().ok()?.port();
            let at_peer = match listen_at_peer && pasv_ip != [127, 0, 0, 1] {
                true => Some(std::net::TcpListener::bind(("127.0.0.1", port)).ok()?),
                false => None,
            };
            Some((elsewhere, at_peer))
        })
        .expect("a free port for the data connection");
    let data_port = elsewhere.local_addr().unwrap().port();
    let control = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = control.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Elsewhere::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(60);
    let read_all = |mut stream: std::net::TcpStream| {
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        bytes
    };
    // Whatever connects to 127.0.0.2 is recorded, STOR or not.
    {
        let (seen, stop) = (seen.clone(), stop.clone());
        elsewhere.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match elsewhere.accept() {
                    Ok((stream, _)) => {
                        let bytes = read_all(stream);
                        seen.lock().unwrap().at_elsewhere.push(bytes);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }
    {
        let (seen, stop) = (seen.clone(), stop.clone());
        control.set_nonblocking(true).unwrap();
        if let Some(at_peer) = &at_peer {
            at_peer.set_nonblocking(true).unwrap();
        }
        std::thread::spawn(move || {
            for session in 0..sessions {
                let stream = loop {
                    if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                        return;
                    }
                    match control.accept() {
                        Ok((stream, _)) => break stream,
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                };
                while session >= open.load(Ordering::SeqCst) {
                    if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = std::io::BufReader::new(stream);
                let mut say = |text: &str| writer.write_all(format!("{text}\r\n").as_bytes()).is_ok();
                say("220 hostile server");
                let mut last = 0usize;
                for _ in 0..50 {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end().to_string();
                    let (verb, argument) = line.split_once(' ').unwrap_or((&line, ""));
                    let ok = match verb {
                        "USER" => say("331 password"),
                        "PASS" => say("230 in"),
                        "TYPE" => say("200 binary"),
                        "EPSV" | "PORT" => say("500 not here"),
                        "PASV" => {
                            let [a, b, c, d] = pasv_ip;
                            let (high, low) = (data_port >> 8, data_port & 0xff);
                            say(&format!("227 Entering Passive Mode ({a},{b},{c},{d},{high},{low})"))
                        }
                        "STOR" => {
                            // The client connected before STOR: to the peer, or
                            // elsewhere. Counted before the 150, after which the
                            // whole file may arrive before this thread looks.
                            let before = {
                                let mut seen = seen.lock().unwrap();
                                seen.stors.push(argument.to_string());
                                seen.at_elsewhere.len()
                            };
                            say("150 go");
                            let waited = Instant::now() + Duration::from_secs(15);
                            let mut got = None;
                            while got.is_none() && Instant::now() < waited {
                                if let Some(Ok((stream, _))) = at_peer.as_ref().map(|l| l.accept()) {
                                    let bytes = read_all(stream);
                                    last = bytes.len();
                                    seen.lock().unwrap().at_peer.push(bytes);
                                    got = Some(());
                                } else if let Some(bytes) = seen.lock().unwrap().at_elsewhere.get(before) {
                                    last = bytes.len();
                                    got = Some(());
                                } else {
                                    std::thread::sleep(Duration::from_millis(5));
                                }
                            }
                            say(if got.is_some() { "226 stored" } else { "425 no data connection" })
                        }
                        "SIZE" => say(&format!("213 {last}")),
                        "QUIT" => {
                            // Before the reply: the client cannot count the
                            // session closed until it has it.
                            seen.lock().unwrap().ended_at.push(epoch_seconds());
                            say("221 bye");
                            break;
                        }
                        _ => say("502 not here"),
                    };
                    if !ok {
                        break;
                    }
                }
            }
        });
    }
    (port, seen, stop)
}

#[test]
fn a_pasv_reply_naming_another_host_is_never_followed() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "image.bin", 200_000);
    let image = std::fs::read(&local).unwrap();

    // auto reaches PASV (EPSV refused); the data goes to 127.0.0.1 at the
    // offered port, the reply's 127.0.0.2 gets nothing.
    let (port, seen, stop) = pasv_elsewhere_server(true, 1);
    let (code, report, stderr) = put(port, &[local.to_str().unwrap()]);
    stop.store(true, Ordering::SeqCst);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.at_elsewhere.is_empty(), "bytes went to 127.0.0.2: {:?}", seen.at_elsewhere.len());
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(seen.at_peer, vec![image.clone()], "the image arrived at the control peer");
    let file = &report["files"][0];
    assert_eq!(file["mode"], "passive", "{report:#}");
    let named = file["pasv_address_ignored"].as_str().unwrap();
    assert!(named.starts_with("127.0.0.2:"), "{report:#}");

    // Nothing listens at the peer's port: a clear failure naming both
    // addresses, never "verified", and still nothing to 127.0.0.2.
    let (port, seen, stop) = pasv_elsewhere_server(false, 4);
    let (code, report, _) = put(port, &[local.to_str().unwrap(), "--mode", "passive", "--retries", "0"]);
    stop.store(true, Ordering::SeqCst);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.at_elsewhere.is_empty(), "bytes went to 127.0.0.2");
    assert_eq!(code, Some(1), "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("PASV data connection to 127.0.0.1:")
            && error.contains("the reply named 127.0.0.2:")
            && error.contains("not the control connection's peer 127.0.0.1"),
        "{error}"
    );
    assert!(seen.stors.is_empty(), "no STOR without a data connection: {:?}", seen.stors);

    // The human output says so too.
    let (port, seen, stop) = pasv_elsewhere_server(true, 1);
    let output = flashline()
        .env("FTP_PW", "x")
        .args(["ftp", "put", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--user", "anonymous", "--password-env", "FTP_PW", local.to_str().unwrap()])
        .output_within(FLASHLINE);
    stop.store(true, Ordering::SeqCst);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(seen.lock().unwrap().at_elsewhere.is_empty());
    assert!(stdout.contains("ignored: the PASV reply's address 127.0.0.2:"), "{stdout}");
}

#[test]
fn the_ftp_upload_step_in_auto_mode_never_follows_a_pasv_reply_elsewhere() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let rom = make_file(dir.path(), "rom.bin", 30_000);
    let image = make_file(dir.path(), "image.bin", 90_000);
    let (port, seen, stop) = pasv_elsewhere_server(true, 2);
    let profile = dir.path().join("hostile.yaml");
    std::fs::write(
        &profile,
        format!(
            "format: 1\nname: hostile\nnetwork:\n  dhcp: false\n  ip: 127.0.0.1\nsteps:\n  - ftp_upload:\n      port: {port}\n      mode: auto\n      credentials:\n        - {{user: root, password: Netsilicon}}\n      files: [{{local: rom.bin}}, {{local: image.bin}}]\n      connect_timeout: 2s\n      reply_timeout: 5s\n"
        ),
    )
    .unwrap();
    let output = flashline().args(["run", profile.to_str().unwrap(), "--json"]).output_within(FLASHLINE);
    stop.store(true, Ordering::SeqCst);
    let (stdout, stderr) = text(&output);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.at_elsewhere.is_empty(), "bytes went to 127.0.0.2: {} connection(s)", seen.at_elsewhere.len());
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(seen.stors, ["rom.bin", "image.bin"]);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let detail = report["devices"][0]["steps"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("via PASV") && detail.contains("the PASV reply's address 127.0.0.2:"), "{detail}");
    assert_eq!(seen.at_peer, vec![std::fs::read(&rom).unwrap(), std::fs::read(&image).unwrap()]);
}

/// A profile whose one step uploads `files` (local names, under the same
/// names) to the FTP server on 127.0.0.1:`port`, one session per file, in
/// `mode`.
fn upload_profile(dir: &Path, port: u16, mode: &str, files: &[&str]) -> std::path::PathBuf {
    let list: Vec<String> = files.iter().map(|f| format!("{{local: {f}}}")).collect();
    let profile = dir.join("upload.yaml");
    std::fs::write(
        &profile,
        format!(
            "format: 1\nname: upload\nnetwork:\n  dhcp: false\n  ip: 127.0.0.1\nsteps:\n  - ftp_upload:\n      port: {port}\n      mode: {mode}\n      credentials:\n        - {{user: root, password: Netsilicon}}\n      verify: size\n      files: [{}]\n      connect_timeout: 5s\n      reply_timeout: 20s\n",
            list.join(", ")
        ),
    )
    .unwrap();
    profile
}

#[test]
fn a_run_killed_between_files_resumes_without_sending_a_confirmed_file_again() {
    use crate::util::child::LineChild;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let rom = make_file(dir.path(), "rom.bin", 40_000);
    let image = make_file(dir.path(), "image.bin", 300_000);
    // The first session (rom.bin) is served; the second (image.bin) is
    // held without a greeting, so the kill comes between the two files.
    let open = std::sync::Arc::new(AtomicUsize::new(1));
    let (port, seen, stop) = scripted_server(false, 4, [127, 0, 0, 1], open.clone());
    let profile = upload_profile(dir.path(), port, "passive", &["rom.bin", "image.bin"]);
    let journal = dir.path().join("journal.jsonl");
    let run = |extra: &[&str]| {
        let mut command = flashline();
        command.args(["run", profile.to_str().unwrap(), "--journal", journal.to_str().unwrap(), "--json"]).args(extra);
        command
    };

    let first = LineChild::spawn(&mut run(&[]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let confirmed = |text: &str| text.lines().any(|l| l.contains("\"file\":\"rom.bin\""));
    while !confirmed(&std::fs::read_to_string(&journal).unwrap_or_default()) {
        if Instant::now() >= deadline {
            first.signal(nix::sys::signal::Signal::SIGKILL);
            let (stdout, stderr) = text(&first.finish_within(QUICK));
            panic!("rom.bin never confirmed in the journal: {:?}\n{stdout}\n{stderr}", seen.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    first.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = first.finish_within(QUICK);
    assert_eq!(killed.status.code(), None, "killed by the signal");
    assert_eq!(seen.lock().unwrap().stors, ["rom.bin"], "only rom.bin was stored before the kill");
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert!(!lines.lines().any(|l| !l.contains("\"file\"")), "the step never ended:\n{lines}");

    // The held session (the killed run's) ends; the next ones are served.
    open.store(usize::MAX, Ordering::SeqCst);
    let output = run(&["--resume"]).output_within(FLASHLINE);
    stop.store(true, Ordering::SeqCst);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.stors, ["rom.bin", "image.bin"], "rom.bin once, image.bin once");
    let arrived = [std::fs::read(&rom).unwrap(), std::fs::read(&image).unwrap()];
    assert_eq!(seen.at_elsewhere, arrived, "each file's bytes arrived once, intact");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let step = &report["devices"][0]["steps"][0];
    assert_eq!(step["outcome"], "passed", "{report:#}");
    let detail = step["detail"].as_str().unwrap();
    assert!(detail.contains("rom.bin confirmed in an earlier run (journal), not sent again"), "{detail}");
    assert!(detail.contains("image.bin (300000 bytes via PASV"), "{detail}");
    let images: Vec<&str> = step["images"].as_array().unwrap().iter().map(|i| i["file"].as_str().unwrap()).collect();
    assert_eq!(images, ["rom.bin", "image.bin"], "both files' hashes are recorded: {report:#}");
    assert_eq!(step["images"][0]["sha256"], sha256_file(&rom).as_str());
    assert_eq!(step["images"][1]["sha256"], sha256_file(&image).as_str());
}

#[test]
fn connect_timeout_bounds_a_connect_that_hangs() {
    use crate::util::netns::{NetnsPair, nft_in};
    let Some(pair) = NetnsPair::create() else { return };
    if !require(crate::util::have_program("nft"), "nft (Debian package nftables)") {
        return;
    }
    // The device drops every SYN to its FTP port: the connect never ends by itself.
    nft_in(
        &pair.dut,
        &[
            "add table inet t",
            "add chain inet t input { type filter hook input priority 0 ; }",
            "add rule inet t input tcp dport 2121 drop",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "image.bin", 1000);
    let dut = pair.dut_ip.to_string();
    for (limit, seconds, said) in [("1s", 1.0, "1 s"), ("3s", 3.0, "3 s")] {
        let started = Instant::now();
        let output = pair
            .in_station(crate::util::flashline_bin())
            .env("FTP_PW", "x")
            .args(["ftp", "put", local.to_str().unwrap(), "--host", &dut, "--port", "2121"])
            .args(["--user", "root", "--password-env", "FTP_PW", "--connect-timeout", limit, "--json"])
            .output_within(FLASHLINE);
        let took = started.elapsed().as_secs_f64();
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let error = report["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("cannot connect to {dut}:2121: no connection within {said}")), "{error}");
        assert_eq!(report["finding"]["code"], "filtered", "{report:#}");
        // The connect waits the limit, then the diagnosis probes (about
        // a second more); the default limit (10 s) would take far longer.
        assert!(took >= seconds && took < seconds + 5.0, "--connect-timeout {limit}: took {took:.2} s");
    }
}

#[test]
fn reply_timeout_ends_a_stalled_transfer() {
    if !vsftpd_here() {
        return;
    }
    // 1 MB/s: the 16 MiB image is still moving when the session is stopped.
    let (server, up) = Vsftpd::anonymous_upload(0, &["anon_max_rate=1000000"]);
    let port = server.address.port();
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "image.bin", 16 << 20);
    let growing = up.join("image.bin");
    let stopper = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::fs::metadata(&growing).is_ok_and(|m| m.len() > 1 << 20) {
                return (server.pause_sessions(), Instant::now(), server);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("the upload never passed 1 MiB");
    });
    let (code, report, stderr) =
        put(port, &[local.to_str().unwrap(), "--remote", "up/image.bin", "--reply-timeout", "2s", "--retries", "0"]);
    let ended = Instant::now();
    let (paused, paused_at, server) = stopper.join().unwrap();
    assert!(paused > 0, "no session to stop");
    assert_eq!(code, Some(1), "{report:#}\n{stderr}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.starts_with("upload of `up/image.bin` failed after 1 attempt(s): data connection stalled for 2 s after"),
        "{error}"
    );
    // Ended by the 2 s limit, not by the server (its session is stopped and
    // can neither close nor reset). The limit counts from the write that
    // stalled, which may have started before the stop (vsftpd's rate limit
    // reads in bursts), so only the upper bound is exact.
    let waited = ended.duration_since(paused_at).as_secs_f64();
    assert!(waited < 8.0, "the stall ended {waited:.2} s after the stop");
    drop(server);
}

/// A certificate (cert, key) with `san` (`IP:127.0.0.2`, `DNS:unit-7.line3`),
/// self-signed, not a CA.
fn certificate_for(dir: &Path, name: &str, san: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=flashline-test"])
        .args(["-addext", &format!("subjectAltName={san}"), "-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status_within(QUICK);
    assert!(status.success(), "openssl made a certificate for {san}");
    (cert, key)
}

#[test]
fn the_certificate_must_carry_the_address_dialled_or_the_tls_name() {
    if !vsftpd_here() || !require(crate::util::have_program("openssl"), "openssl (Debian package openssl)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "image.bin", 100_000);
    let tls_server = |cert: &Path, key: &Path| {
        let cert_line = format!("rsa_cert_file={}", cert.display());
        let key_line = format!("rsa_private_key_file={}", key.display());
        let lines = [
            "ssl_enable=YES",
            "allow_anon_ssl=YES",
            "force_anon_logins_ssl=YES",
            "force_anon_data_ssl=YES",
            "require_ssl_reuse=NO",
            &cert_line,
            &key_line,
        ];
        let (server, up) = Vsftpd::anonymous_upload(0, &lines);
        (server.address.port(), server, up)
    };

    // Trusted, but for another address: refused when dialling 127.0.0.1,
    // before anything is sent.
    let (cert, key) = certificate_for(dir.path(), "other", "IP:127.0.0.2");
    let (port, _server, up) = tls_server(&cert, &key);
    let ca = cert.to_str().unwrap();
    let (code, report, _) =
        put(port, &[local.to_str().unwrap(), "--remote", "up/a.bin", "--tls", "--tls-ca", ca, "--verify", "none"]);
    assert_eq!(code, Some(1), "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("TLS with 127.0.0.1:"), "{error}");
    assert!(error.contains("not valid for name \"127.0.0.1\"") && error.contains("127.0.0.2"), "{error}");
    assert!(!up.join("a.bin").exists());

    // A certificate for a DNS name: refused for the bare address, accepted
    // with --tls-name naming it; a wrong --tls-name is refused.
    let (cert, key) = certificate_for(dir.path(), "named", "DNS:unit-7.line3.example");
    let (port, _server, up) = tls_server(&cert, &key);
    let ca = cert.to_str().unwrap();
    let base = [local.to_str().unwrap(), "--tls", "--tls-ca", ca, "--verify", "readback"];
    let (code, report, _) = put(port, &[&base[..], &["--remote", "up/b.bin"]].concat());
    assert_eq!(code, Some(1), "{report:#}");
    assert!(report["error"].as_str().unwrap().contains("not valid for name \"127.0.0.1\""), "{report:#}");
    assert!(!up.join("b.bin").exists());
    let (code, report, _) =
        put(port, &[&base[..], &["--remote", "up/c.bin", "--tls-name", "unit-8.line3.example"]].concat());
    assert_eq!(code, Some(1), "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("not valid for name \"unit-8.line3.example\""), "{error}");
    assert!(!up.join("c.bin").exists());
    let (code, report, stderr) =
        put(port, &[&base[..], &["--remote", "up/d.bin", "--tls-name", "unit-7.line3.example"]].concat());
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(sha256_file(&up.join("d.bin")), sha256_file(&local));
}

#[test]
fn in_one_session_a_file_is_confirmed_only_when_the_session_closes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    make_file(dir.path(), "rom.bin", 40_000);
    make_file(dir.path(), "image.bin", 60_000);
    let (port, seen, stop) =
        scripted_server(false, 1, [127, 0, 0, 1], std::sync::Arc::new(AtomicUsize::new(usize::MAX)));
    let profile = upload_profile(dir.path(), port, "passive", &["rom.bin", "image.bin"]);
    let text_now = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(
        &profile,
        text_now.replace("      verify: size\n", "      verify: size\n      session_per_file: false\n"),
    )
    .unwrap();
    let journal = dir.path().join("journal.jsonl");
    let output = flashline()
        .args(["run", profile.to_str().unwrap(), "--journal", journal.to_str().unwrap(), "--json"])
        .output_within(FLASHLINE);
    stop.store(true, Ordering::SeqCst);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.stors, ["rom.bin", "image.bin"], "one session carried both");
    let [closed] = seen.ended_at[..] else { panic!("one session: {:?}", seen.ended_at) };
    let lines: Vec<Value> =
        std::fs::read_to_string(&journal).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let files: Vec<(&str, f64)> =
        lines.iter().filter_map(|l| Some((l["file"].as_str()?, l["at"].as_f64().unwrap()))).collect();
    assert_eq!(files.iter().map(|f| f.0).collect::<Vec<_>>(), ["rom.bin", "image.bin"], "{lines:#?}");
    for (file, at) in files {
        assert!(at >= closed, "{file} was journaled as confirmed {:.3} s before the session closed", closed - at);
    }
}

/// What came over the server's own data connection, and over the other host's.
type Raced = std::sync::mpsc::Receiver<(Vec<u8>, Vec<u8>)>;

/// A scripted FTP server on 127.0.0.1 for one session in active mode whose
/// STOR is raced by another host: before connecting back to the client's
/// PORT address itself, it connects there from 127.0.0.2 (as a host on the
/// same network could). Returns its port and, when the session ended, the
/// bytes that came over its own data connection and over the other host's.
fn active_hijack_server() -> (u16, Raced) {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, received) = std::sync::mpsc::channel();
    let read_all = |mut stream: std::net::TcpStream| {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        bytes
    };
    std::thread::spawn(move || {
        let Ok((control, _)) = listener.accept() else { return };
        control.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut writer = control.try_clone().unwrap();
        let mut reader = std::io::BufReader::new(control);
        let mut say = |text: &str| writer.write_all(format!("{text}\r\n").as_bytes()).is_ok();
        say("220 scripted server");
        let (mut data_to, mut ours, mut theirs, mut last) = (None, Vec::new(), Vec::new(), 0);
        for _ in 0..50 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let line = line.trim_end().to_string();
            let (verb, argument) = line.split_once(' ').unwrap_or((&line, ""));
            let ok = match verb {
                "USER" => say("331 password"),
                "PASS" => say("230 in"),
                "TYPE" => say("200 binary"),
                "PORT" => {
                    let n: Vec<u16> = argument.split(',').map(|x| x.parse().unwrap()).collect();
                    data_to = Some(SocketAddr::from(([127, 0, 0, 1], n[4] << 8 | n[5])));
                    say("200 PORT ok")
                }
                "STOR" => {
                    let to = data_to.expect("PORT first");
                    // The other host, first: bound to 127.0.0.2.
                    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
                    other.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into()).unwrap();
                    other.connect_timeout(&to.into(), Duration::from_secs(5)).unwrap();
                    let other: std::net::TcpStream = other.into();
                    say("150 go");
                    let data = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
                    let reader = std::thread::spawn(move || read_all(other));
                    ours = read_all(data);
                    theirs = reader.join().unwrap();
                    last = ours.len();
                    say("226 stored")
                }
                "SIZE" => say(&format!("213 {last}")),
                "QUIT" => {
                    say("221 bye");
                    break;
                }
                _ => say("502 not here"),
            };
            if !ok {
                break;
            }
        }
        let _ = done.send((ours, theirs));
    });
    (port, received)
}

#[test]
fn in_active_mode_only_the_server_may_connect_back() {
    let dir = tempfile::tempdir().unwrap();
    let local = make_file(dir.path(), "image.bin", 150_000);
    let (port, received) = active_hijack_server();
    let (code, report, stderr) = put(port, &[local.to_str().unwrap(), "--mode", "active"]);
    let (ours, theirs) = received.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(theirs.is_empty(), "{} bytes went to 127.0.0.2", theirs.len());
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(ours, std::fs::read(&local).unwrap(), "the image came over the server's own connection");
    assert_eq!(report["files"][0]["mode"], "active", "{report:#}");
}
