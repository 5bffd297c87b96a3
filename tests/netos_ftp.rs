//! `flashline ftp put`, `probe` and `diagnose` against the simulated NET+OS
//! FTP flash server (libunftp under the NET+OS rules) on 127.0.0.x: the
//! factory credential candidates, flash written when the session closes, the
//! restart, two sessions at most, and each field-failure scenario.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use flashline::sim::netos_ftp::{Firmware, FtpBehaviour, FtpScenario, NetosFtp};
use serde_json::Value;

use crate::util::child::LineChild;
use crate::util::run_flashline_async as run;

/// A loopback address of its own per test, so every simulated device can
/// use the same port.
fn address(last: u8) -> SocketAddr {
    let port = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, last), 0)).unwrap().local_addr().unwrap().port();
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), port))
}

fn fast(firmware: Firmware, scenario: FtpScenario) -> FtpBehaviour {
    FtpBehaviour {
        firmware,
        scenario,
        reset_delay: Duration::from_millis(300),
        boot_time: Duration::from_millis(500),
        max_sessions: 2,
        no_pasv: false,
    }
}

fn put_args(address: SocketAddr, files: &[&Path], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["ftp".into(), "put".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend([
        "--host".into(),
        address.ip().to_string(),
        "--port".into(),
        address.port().to_string(),
        "--json".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn images(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let rom = dir.join("rom.bin");
    let image = dir.join("image.bin");
    std::fs::write(&rom, (0..40_000u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>()).unwrap();
    std::fs::write(&image, (0..300_000u32).map(|i| (i * 13 + 5) as u8).collect::<Vec<u8>>()).unwrap();
    (rom, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rom_and_image_in_separate_sessions_with_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let address = address(11);
    let device = NetosFtp::start(address, fast(Firmware::Netos74, FtpScenario::Normal), dir.path());
    let mut console = device.console();
    drop(connect_when_up(address));
    let (rom, image) = images(dir.path());
    // Without --user: the factory candidates root/Netsilicon then root/password.
    let (code, stdout, stderr) = run(put_args(
        address,
        &[&rom, &image],
        &["--verify", "readback", "--wait-for-restart", "--restart-timeout", "10s"],
    ))
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["user"], "root");
    let flash = device.flash();
    assert!(!flash.recovery);
    assert_eq!(flash.boots, 3, "booted, then restarted after each session");
    for (name, path) in [("rom.bin", &rom), ("image.bin", &image)] {
        let written = &flash.images[name];
        assert_eq!(written.writes, 1, "{name} flashed once");
        let expected: String =
            sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(written.sha256, expected);
        let file = report["files"].as_array().unwrap().iter().find(|f| f["remote"] == name).unwrap();
        assert!(file["restart_seconds"].as_f64().is_some(), "waited for the restart: {file:#}");
    }
    let mut lines = Vec::new();
    while let Ok(line) = console.try_recv() {
        lines.push(line);
    }
    assert_eq!(lines.iter().filter(|l| *l == "FTP: Flash download complete.").count(), 2, "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("Resetting system in")), "{lines:?}");
}

use sha2::Digest as _;

/// The next `count` console lines, each within 10 s (fails otherwise).
async fn console_lines(console: &mut tokio::sync::broadcast::Receiver<String>, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..count {
        match tokio::time::timeout(Duration::from_secs(10), console.recv()).await {
            Ok(Ok(line)) => lines.push(line),
            other => panic!("console line {} missing ({other:?}) after {lines:?}", lines.len() + 1),
        }
    }
    lines
}

/// Connects once the simulated device's server listens (it boots on its own
/// task), trying for at most 5 s.
fn connect_when_up(address: SocketAddr) -> std::net::TcpStream {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(stream) => return stream,
            Err(error) if std::time::Instant::now() >= deadline => panic!("{address} never listened: {error}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_images_in_one_session_leave_it_in_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let address = address(12);
    let device = NetosFtp::start(address, fast(Firmware::Netos6, FtpScenario::Normal), dir.path());
    drop(connect_when_up(address));
    let (rom, image) = images(dir.path());
    let (code, stdout, stderr) =
        run(put_args(address, &[&rom, &image], &["--one-session", "--wait-for-restart", "--restart-timeout", "3s"]))
            .await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["error"].as_str().unwrap().contains("did not come back"), "{report:#}");
    assert!(device.flash().recovery);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_give_their_findings() {
    let dir = tempfile::tempdir().unwrap();
    let (rom, _) = images(dir.path());

    // An image without the FTP server: ping works, port 21 answers RST. The
    // device must be running (its console says which application booted):
    // with no simulator at all nothing would listen either.
    let address_a = address(13);
    let a = NetosFtp::start(address_a, fast(Firmware::Netos6, FtpScenario::NoFtpServer), dir.path());
    let mut console_a = a.console_since_start();
    let (code, stdout, stderr) = run(put_args(address_a, &[&rom], &[])).await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["finding"]["code"], "no-listener", "{report:#}");
    assert_eq!(report["finding"]["port"], address_a.port(), "{report:#}");
    let advice: Vec<&str> =
        report["finding"]["advice"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(advice.iter().any(|a| a.contains("built without the FTP server")), "{advice:#?}");
    assert!(advice.iter().any(|a| a.contains("check the console's APPLICATION: line")), "{advice:#?}");
    let console = console_lines(&mut console_a, 2).await;
    assert_eq!(console, ["Network IP configured.", "APPLICATION: custom application (no FTP server)"]);
    assert_eq!(a.flash().boots, 1, "booted once, and nothing was flashed");
    assert!(a.flash().images.is_empty());

    // A changed password: both factory candidates get 530.
    let address_b = address(14);
    let _b = NetosFtp::start(address_b, fast(Firmware::Netos6, FtpScenario::WrongPassword), dir.path());
    drop(connect_when_up(address_b));
    let (code, stdout, _) = run(put_args(address_b, &[&rom], &[])).await;
    assert_eq!(code, Some(1));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("refused the credentials (530") && error.contains("user(s) tried: root, root"), "{error}");

    // A server that starts late: the wait's timeline shows RST, then SYN-ACK.
    // The server starts once flashline has reported the port closed.
    let address_c = address(15);
    let c =
        NetosFtp::start(address_c, fast(Firmware::Netos6, FtpScenario::LateFtp(Duration::from_secs(600))), dir.path());
    let mut console_c = c.console_since_start();
    let port = address_c.port();
    let (closed, open) = (format!("port {port} closed (RST"), format!("port {port} open (SYN,ACK"));
    let output = tokio::task::block_in_place(|| {
        // Without --json the wait's timeline comes live on stderr.
        let mut probe = LineChild::spawn(crate::util::flashline().args([
            "probe",
            &address_c.ip().to_string(),
            "--ports",
            &port.to_string(),
            "--wait-until",
            "open",
            "--timeout",
            "30s",
        ]));
        let first = probe.line_matching(Duration::from_secs(30), |l| l.contains(&closed) || l.contains(&open));
        assert!(first.contains(&closed), "the first poll finds the port closed: {first}");
        c.start_ftp_now();
        probe.line_matching(Duration::from_secs(30), |l| l.contains(&open));
        probe.finish_within(Duration::from_secs(30))
    });
    let (stdout, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let events: Vec<&str> = stderr.lines().filter(|l| l.contains(" ms  ")).collect();
    let position =
        |needle: &str| events.iter().position(|e| e.contains(needle)).unwrap_or_else(|| panic!("{events:#?}"));
    assert!(position(&closed) < position(&open), "{events:#?}");
    assert!(position(&open) < position("all wanted states reached"), "{events:#?}");
    let console = console_lines(&mut console_c, 2).await;
    assert_eq!(console, ["Network IP configured.", "FTP download server is ready."]);

    // At most two sessions: the third gets 421.
    let address_d = address(16);
    let _d = NetosFtp::start(address_d, fast(Firmware::Netos6, FtpScenario::Normal), dir.path());
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let stream = connect_when_up(address_d);
            let mut greeting = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut greeting).unwrap();
            assert_eq!(greeting, "220 NET+OS 6.3 FTP server ready.\r\n");
            stream
        })
        .collect();
    let (code, stdout, _) = run(put_args(address_d, &[&rom], &[])).await;
    assert_eq!(code, Some(1));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["error"].as_str().unwrap().contains("is busy: 421"), "{report:#}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_of_1_b_and_64_mib_reach_the_simulated_flash_intact() {
    let dir = tempfile::tempdir().unwrap();
    let address = address(17);
    let device = NetosFtp::start(address, fast(Firmware::Netos6, FtpScenario::Normal), dir.path());
    drop(connect_when_up(address));
    // (An empty image is refused before connecting: tests/input_files.rs.)
    for (writes, size) in [1usize, 64 << 20].into_iter().enumerate() {
        let image = dir.path().join("image.bin");
        let bytes: Vec<u8> = (0..size as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&image, &bytes).unwrap();
        let (code, stdout, stderr) = run(put_args(
            address,
            &[&image],
            &["--verify", "readback", "--wait-for-restart", "--restart-timeout", "20s"],
        ))
        .await;
        assert_eq!(code, Some(0), "{size} bytes: {stdout}{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let expected: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(report["files"][0]["sha256"], expected.as_str());
        let flashed = &device.flash().images["image.bin"];
        assert_eq!(flashed.sha256, expected, "{size} bytes in flash");
        assert_eq!(flashed.bytes, size as u64);
        assert_eq!(flashed.writes, writes as u32 + 1);
    }
}

/// Sends `command` (when given) and reads one reply line, within 10 s.
async fn exchange(control: &mut tokio::io::BufReader<tokio::net::TcpStream>, command: Option<&str>) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    if let Some(command) = command {
        control.get_mut().write_all(format!("{command}\r\n").as_bytes()).await.unwrap();
    }
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), control.read_line(&mut line)).await.expect("a reply").unwrap();
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_words_replies_like_the_vendors_transcript_and_no_pasv_falls_back_to_port() {
    let dir = tempfile::tempdir().unwrap();
    let address = address(18);
    let behaviour = FtpBehaviour { no_pasv: true, ..fast(Firmware::Netos74, FtpScenario::Normal) };
    let device = NetosFtp::start(address, behaviour, dir.path());
    drop(tokio::task::block_in_place(|| connect_when_up(address)));

    // The transcript's session, byte for byte, and the refused passive modes.
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut control = tokio::io::BufReader::new(stream);
    let data = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let data_port = data.local_addr().unwrap().port();
    let port_command = format!("PORT 127,0,0,1,{},{}", data_port >> 8, data_port & 0xff);
    let conversation = [
        (None, "220 NET+OS 7.4.2 FTP server ready.\r\n"),
        (Some("USER root"), "331 User root OK, send password.\r\n"),
        (Some("PASS password"), "230 Password OK.\r\n"),
        (Some("TYPE I"), "200 Type set to I.\r\n"),
        (Some("PASV"), "502 Command not implemented.\r\n"),
        (Some("EPSV"), "502 Command not implemented.\r\n"),
        (Some(port_command.as_str()), "200 PORT command Ok.\r\n"),
    ];
    for (command, reply) in conversation {
        assert_eq!(exchange(&mut control, command).await, reply, "after {command:?}");
    }
    // The active data connection comes from the device's own address.
    let (_, peer) = tokio::time::timeout(Duration::from_secs(10), data.accept()).await.unwrap().unwrap();
    assert_eq!(peer.ip(), address.ip());
    assert_eq!(exchange(&mut control, Some("QUIT")).await, "221 Goodbye.\r\n");
    drop(control);

    // `ftp put` in the default mode: EPSV and PASV refused, PORT carries it.
    let (_, image) = images(dir.path());
    let (code, stdout, stderr) = run(put_args(address, &[&image], &["--verify", "readback"])).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let file = &report["files"][0];
    assert_eq!(file["mode"], "active", "{report:#}");
    assert_eq!(file["fallback"][0], "EPSV refused: 502 Command not implemented.", "{report:#}");
    assert_eq!(file["fallback"][1], "PASV refused: 502 Command not implemented.", "{report:#}");
    let sent: String =
        sha2::Sha256::digest(std::fs::read(&image).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !device.flash().images.contains_key("image.bin") {
        assert!(tokio::time::Instant::now() < deadline, "image.bin never reached the flash");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(device.flash().images["image.bin"].sha256, sent);

    // PASV asked for by name is refused by name.
    tokio::task::block_in_place(|| drop(connect_when_up(address)));
    let (code, stdout, _) = run(put_args(address, &[&image], &["--mode", "passive"])).await;
    assert_eq!(code, Some(1), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let error = report["error"].as_str().unwrap();
    assert!(error.ends_with("refused PASV: 502 Command not implemented."), "{error}");
}
