//! `flashline exs tftp-manage | decode | check-config` and `flashline sim csp`:
//! the real binary against the CSP simulator on 127.0.0.1, with a real TFTP
//! server (Debian's tftpd-hpa, started here) for Begin Download, and every
//! fault the simulator can inject.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashline::exs::tftp_manage::ResponseLayout;
use flashline::sim::csp::{self, CspConfig, CspEvent, Fault};
use flashline::sim::tftp_client::TftpOptions;
use serde_json::Value;

use crate::util::child::die_with_test;
use crate::util::{flashline, have_program, require, run_flashline, text};

/// The simulator, in this process, on its own runtime; stopped on drop.
struct Sim {
    port: u16,
    events: Arc<Mutex<Vec<CspEvent>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Sim {
    fn start(mut config: CspConfig) -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        config.events = Some(sender);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = events.clone();
        runtime.spawn(async move {
            while let Some(event) = receiver.recv().await {
                log.lock().unwrap().push(event);
            }
        });
        runtime.spawn(csp::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Sim { port, events, stop: Some(stop), runtime: Some(runtime) }
    }

    fn events(&self) -> Vec<CspEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Runs `flashline exs tftp-manage --host 127.0.0.1 --port P ARGS`.
    fn tftp_manage(&self, args: &[&str]) -> Output {
        let port = self.port.to_string();
        let mut all = vec!["exs", "tftp-manage", "--host", "127.0.0.1", "--port", &port];
        all.extend_from_slice(args);
        run_flashline(&all)
    }

    /// As [`Sim::tftp_manage`] with `--json`; the exit code and the report.
    fn tftp_manage_json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = args.to_vec();
        all.push("--json");
        let output = self.tftp_manage(&all);
        let (stdout, stderr) = text(&output);
        let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
        (output.status.code(), json)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn quiet_config() -> CspConfig {
    CspConfig { poll_interval: None, ..CspConfig::default() }
}

/// Status and More Status of each answer, as `0x0010/0x00` (more status `-`
/// when the layout has none).
fn statuses(report: &Value) -> Vec<String> {
    report["exchanges"]
        .as_array()
        .unwrap_or_else(|| panic!("no exchanges: {report}"))
        .iter()
        .map(|e| {
            let more = e["response"]["more_status"]["code"].as_str().unwrap_or("-");
            format!("{}/{more}", e["response"]["status"]["code"].as_str().unwrap())
        })
        .collect()
}

/// The values of the answer to exchange `index`, as `field=value`.
fn values(report: &Value, index: usize) -> Vec<String> {
    report["exchanges"][index]["response"]["icbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|icb| format!("{}={}", icb["field"].as_str().unwrap_or("?"), icb["value"]))
        .collect()
}

#[test]
fn exs_every_query_answers_what_was_set() {
    let sim = Sim::start(quiet_config());
    let (code, report) = sim.tftp_manage_json(&[
        "--local-config",
        r"c:\tftpboot\tftp_no_ts.cfg",
        "--local-server",
        "127.0.0.2",
        "--adjacent-config",
        "tftpboot/adjacent.cfg",
        "--adjacent-server",
        "127.0.0.3",
        "--timestamp",
        "20 24 01 31",
        "--query",
        "all",
    ]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(statuses(&report), vec!["0x0010/0x00"; 9]);
    let expected = [
        ("query local matrix configuration filename", r#"local-config="c:\\tftpboot\\tftp_no_ts.cfg""#),
        ("query local matrix server IP address", r#"local-server="127.0.0.2""#),
        ("query adjacent matrix configuration filename", r#"adjacent-config="tftpboot/adjacent.cfg""#),
        ("query adjacent matrix server IP address", r#"adjacent-server="127.0.0.3""#),
        ("query timestamp", r#"timestamp="20 24 01 31""#),
    ];
    for (i, (purpose, value)) in expected.iter().enumerate() {
        assert_eq!(report["exchanges"][i + 1]["purpose"], *purpose);
        assert_eq!(values(&report, i + 1), vec![value.to_string()], "{purpose}");
    }
    // No download yet: no loads, so these answer without a value.
    for i in 6..9 {
        assert_eq!(values(&report, i), Vec::<String>::new());
    }
    // Each query alone, in a new connection: the controller kept the settings.
    for (query, value) in [
        ("local-config", r"local matrix configuration filename: c:\tftpboot\tftp_no_ts.cfg"),
        ("local-server", "local matrix server IP address: 127.0.0.2"),
        ("adjacent-config", "adjacent matrix configuration filename: tftpboot/adjacent.cfg"),
        ("adjacent-server", "adjacent matrix server IP address: 127.0.0.3"),
        ("timestamp", "timestamp: 20 24 01 31"),
        ("save-options", "(no value: not set on the controller)"),
    ] {
        let output = sim.tftp_manage(&["--query", query]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{query}:\n{stdout}\n{stderr}");
        assert!(stdout.contains("status       0x0010 positive acknowledgment"), "{stdout}");
        assert!(stdout.contains(value), "{query}: {stdout}");
        assert!(stdout.contains("ok: 1 answers"), "{stdout}");
    }
    // The page's request bytes went out: seq 0 of a fresh connection, node 0xFF.
    let (_, report) = sim.tftp_manage_json(&["--query", "local-config"]);
    assert_eq!(report["exchanges"][0]["request_trace"], "[00 09] [00 3A] 00 00 FF 01 01 01 00");
}

#[test]
fn exs_trace_layout_answers_are_decoded_and_named() {
    let sim = Sim::start(CspConfig { layout: ResponseLayout::NoMoreStatus, ..quiet_config() });
    let output = sim.tftp_manage(&["--local-config", r"c:\tftpboot\tftp_no_ts.cfg", "--query", "local-config"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("more status  (none in this layout)"), "{stdout}");
    assert!(stdout.contains("layout       trace layout (no More Status)"), "{stdout}");
    assert!(
        stdout.contains(r"local matrix configuration filename: c:\tftpboot\tftp_no_ts.cfg (in the query's Action ICB)"),
        "{stdout}"
    );
    // The answer is byte for byte the page's response trace.
    let (_, report) = sim.tftp_manage_json(&["--query", "local-config"]);
    assert_eq!(
        report["exchanges"][0]["response_trace"],
        "[00 26] [00 3A] 00 00 FF 00 10 01 01 01 1B 63 3A 5C 74 66 74 70 62 6F 6F 74 5C 74 66 74 70 5F 6E 6F 5F 74 73 2E 63 66 67 00"
    );
    assert_eq!(report["exchanges"][0]["response"]["layout"], "no-more-status");
}

/// tftpd-hpa on 127.0.0.1 with its own directory; killed on drop.
struct Tftpd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Tftpd {
    fn start() -> Option<Tftpd> {
        let program =
            ["/usr/sbin/in.tftpd", "in.tftpd"].into_iter().find(|p| Path::new(p).is_file() || have_program(p))?;
        let dir = tempfile::tempdir().unwrap();
        // in.tftpd drops to an unprivileged user: it must be able to read.
        make_world_readable(dir.path());
        // Started as inetd would: its socket, already bound, on stdin. No
        // port is chosen and freed first, so none can be taken meanwhile,
        // and it serves as soon as it runs. It serves request after request
        // until killed (or 10 minutes with none).
        let socket = crate::util::ports::bound_udp();
        let port = socket.local_addr().unwrap().port();
        let mut command = Command::new(program);
        let child = die_with_test(&mut command)
            .args(["--timeout", "600", "--secure"])
            .arg(dir.path())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(socket)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Tftpd { child, port, dir })
    }

    fn put(&self, name: &str, content: &str) {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        make_world_readable(&path);
    }
}

impl Drop for Tftpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn make_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn download_config(tftp_port: u16) -> CspConfig {
    CspConfig {
        tftp_port,
        tftp: TftpOptions { timeout: Duration::from_millis(300), ..TftpOptions::default() },
        ..quiet_config()
    }
}

const GOOD_CONFIG: &str = "' CSP load for line 3\nEXCPU_LOAD=loads/excpu.bin:SAVE_LOAD_TRUE ' matrix controller\nONELC_LOAD=loads/onelc.bin:SAVE_LOAD_FALSE\n";

#[test]
fn exs_begin_download_fetches_the_file_from_tftpd_hpa() {
    if !require(
        have_program("in.tftpd") || Path::new("/usr/sbin/in.tftpd").is_file(),
        "in.tftpd (Debian package tftpd-hpa)",
    ) || !require(crate::util::is_root(), "in.tftpd --secure chroots into its folder: needs root")
    {
        return;
    }
    let tftpd = Tftpd::start().expect("start in.tftpd");
    tftpd.put("csp_load.cfg", GOOD_CONFIG);
    tftpd.put("with_ts.cfg", &format!("{GOOD_CONFIG}TIMESTAMP=20240131\n"));
    tftpd.put("no_equals.cfg", "EXCPU_LOAD=loads/excpu.bin:SAVE_LOAD_TRUE\nONELC_LOAD loads/onelc.bin\n");
    tftpd.put("not_saved.cfg", "EXCPU_LOAD=loads/excpu.bin:SAVE_LOAD_FALSE\n");
    let sim = Sim::start(download_config(tftpd.port));
    let download = |file: &str, timestamp: Option<&str>| {
        let mut args = vec!["--local-config", file, "--local-server", "127.0.0.1", "--begin-download"];
        if let Some(timestamp) = timestamp {
            args.extend(["--timestamp", timestamp]);
        }
        sim.tftp_manage_json(&args)
    };

    let (code, report) = download("csp_load.cfg", Some("20240131"));
    assert_eq!((code, statuses(&report)), (Some(0), vec!["0x0010/0x00".to_string()]), "{report:#}");
    let fetched = sim.events().into_iter().any(|e| {
        matches!(&e, CspEvent::Download { filename, result, .. }
            if filename == "csp_load.cfg" && *result == format!("{} bytes", GOOD_CONFIG.len()))
    });
    assert!(fetched, "{:#?}", sim.events());
    // The loads the file named are now known to the controller.
    let (code, report) = sim.tftp_manage_json(&["--query", "load-filename,load-version,save-options", "--load", "2"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(values(&report, 0), vec![r#"load-filename="loads/onelc.bin""#]);
    assert_eq!(values(&report, 1), vec![r#"load-version="20 24 01 31""#]);
    assert_eq!(values(&report, 2), vec![r#"save-options="01 00""#]);
    let (code, report) = sim.tftp_manage_json(&["--query", "load-filename", "--load", "9"]);
    assert_eq!((code, statuses(&report)), (Some(1), vec!["0x000c/0x09".to_string()]));

    // What a controller answers when the download or the file is wrong.
    for (file, timestamp, expected) in [
        ("missing.cfg", Some("01"), "0x0008/0x01"),
        ("no_equals.cfg", Some("01"), "0x0008/0x0c"),
        ("not_saved.cfg", Some("01"), "0x0008/0x10"),
        ("csp_load.cfg", None, "0x0000/0x00"),
    ] {
        // A fresh controller each time: no timestamp left from before.
        let sim = Sim::start(download_config(tftpd.port));
        let mut args = vec!["--local-config", file, "--local-server", "127.0.0.1", "--begin-download"];
        if let Some(timestamp) = timestamp {
            args.extend(["--timestamp", timestamp]);
        }
        let (code, report) = sim.tftp_manage_json(&args);
        assert_eq!((code, statuses(&report)), (Some(1), vec![expected.to_string()]), "{file}: {report:#}");
    }
    let sim = Sim::start(download_config(tftpd.port));
    let (code, report) = download_with(&sim, "with_ts.cfg", Some("01"));
    assert_eq!((code, statuses(&report)), (Some(1), vec!["0x0001/0x00".to_string()]), "two timestamps");
    // The refused download still set the timestamp it carried.
    let output = sim.tftp_manage(&["--query", "timestamp"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.lines().any(|l| l.trim_end().ends_with("timestamp: 01")), "{stdout}{stderr}");

    // Older than the adjacent controller's load.
    let sim = Sim::start(CspConfig { adjacent_timestamp: Some(vec![0x20, 0x25]), ..download_config(tftpd.port) });
    let (code, report) = download_with(&sim, "csp_load.cfg", Some("2024"));
    assert_eq!((code, statuses(&report)), (Some(1), vec!["0x0002/0x00".to_string()]), "old timestamp");

    // Human output names the failure.
    let sim = Sim::start(download_config(tftpd.port));
    let output = sim.tftp_manage(&[
        "--local-config",
        "missing.cfg",
        "--local-server",
        "127.0.0.1",
        "--timestamp",
        "01",
        "--begin-download",
    ]);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("status       0x0008 TFTP of the configuration file failed"), "{stdout}");
    assert!(stdout.contains("more status  0x01 TFTP protocol error"), "{stdout}");
}

fn download_with(sim: &Sim, file: &str, timestamp: Option<&str>) -> (Option<i32>, Value) {
    let mut args = vec!["--local-config", file, "--local-server", "127.0.0.1", "--begin-download"];
    if let Some(timestamp) = timestamp {
        args.extend(["--timestamp", timestamp]);
    }
    sim.tftp_manage_json(&args)
}

/// The arguments that make `exs tftp-manage` serve `folder` on `port` itself.
fn serve_args(folder: &str, port: &str) -> Vec<String> {
    ["--local-server", "127.0.0.1", "--begin-download", "--serve", folder, "--serve-port", port]
        .map(String::from)
        .to_vec()
}

/// `--serve`: flashline's own TFTP server answers the simulator's Begin
/// Download (no tftpd-hpa), and the report lists what it served.
#[test]
fn exs_begin_download_served_by_flashline_itself() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("csp_load.cfg"), GOOD_CONFIG).unwrap();
    let served = dir.path().to_str().unwrap();
    // flashline's server binds the port it is told: a port taken since it
    // was chosen is tried again with another.
    let (sim, port, output) = crate::util::ports::on_free_port("flashline's TFTP server", |port| {
        use crate::util::ports::{Start, says_address_in_use};
        let sim = Sim::start(download_config(port));
        let mut args = vec!["--local-config", "csp_load.cfg", "--timestamp", "20240131", "--json"];
        let serve = serve_args(served, &port.to_string());
        args.extend(serve.iter().map(String::as_str));
        let output = sim.tftp_manage(&args);
        let (stdout, stderr) = text(&output);
        if output.status.code() == Some(3) && says_address_in_use(&format!("{stdout}{stderr}")) {
            return Start::PortTaken(stderr);
        }
        Start::Started((sim, port, output))
    });
    let (stdout, stderr) = text(&output);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    let code = output.status.code();
    assert_eq!((code, statuses(&report)), (Some(0), vec!["0x0010/0x00".to_string()]), "{report:#}");
    assert_eq!(report["served"][0]["filename"], "csp_load.cfg", "{report:#}");
    assert_eq!(report["served"][0]["bytes"], GOOD_CONFIG.len(), "{report:#}");
    let fetched = sim.events().into_iter().any(|e| {
        matches!(&e, CspEvent::Download { filename, result, .. }
            if filename == "csp_load.cfg" && *result == format!("{} bytes", GOOD_CONFIG.len()))
    });
    assert!(fetched, "{:#?}", sim.events());

    // A file the folder does not have: the controller's TFTP fails (its
    // status says so) and the report says why.
    let mut args = vec!["--local-config", "missing.cfg", "--timestamp", "20240131"];
    let serve = serve_args(served, &port.to_string());
    args.extend(serve.iter().map(String::as_str));
    let (code, report) = sim.tftp_manage_json(&args);
    assert_eq!(code, Some(1), "{report:#}");
    assert!(report["served"][0]["failure"].as_str().unwrap().contains("does not exist"), "{report:#}");
}

#[test]
fn exs_tftp_timeout_is_more_status_0x02() {
    // Nothing answers on this UDP port (held, never read): the simulator's TFTP client times out.
    let silent = crate::util::ports::silent_udp_port();
    let sim = Sim::start(download_config(silent.port));
    let (code, report) = download_with(&sim, "csp_load.cfg", Some("01"));
    assert_eq!((code, statuses(&report)), (Some(1), vec!["0x0008/0x02".to_string()]), "{report:#}");
}

fn fault_sim(faults: Vec<Fault>) -> Sim {
    Sim::start(CspConfig { faults, alarm_wait: Duration::from_secs(2), ..quiet_config() })
}

#[test]
fn exs_fault_bad_checksum_is_reported_with_message_and_sequence() {
    let sim = fault_sim(vec![Fault::BadChecksum]);
    let output = sim.tftp_manage(&["--query", "local-config", "--timeout", "2s"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("query local matrix configuration filename: unreadable frame while TFTP Manage (0x003a) seq 0 waited for its response: bad checksum in TFTP Manage (0x003a) seq 0: expected 0x"),
        "{stderr}"
    );
    assert!(stderr.contains("received: FE 00"), "{stderr}");
}

#[test]
fn exs_fault_wrong_sequence_times_out_naming_what_came() {
    let sim = fault_sim(vec![Fault::WrongSequence]);
    let output = sim.tftp_manage(&["--query", "local-config", "--timeout", "1s"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("no response to TFTP Manage (0x003a) seq 0 from 127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("within 1s; received instead: TFTP Manage (0x003a) seq 1"), "{stderr}");
}

#[test]
fn exs_fault_truncated_frame_then_reconnect_and_answer() {
    let sim = fault_sim(vec![Fault::Truncated]);
    let (code, report) =
        sim.tftp_manage_json(&["--local-config", "a.cfg", "--query", "local-config", "--timeout", "2s"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(statuses(&report), vec!["0x0010/0x00"; 2]);
    assert_eq!(report["events"][0]["event"], "reconnected");
    let reason = report["events"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("connection closed after ") && reason.ends_with("bytes of an incomplete frame"),
        "{reason}"
    );
    let connections = sim.events().iter().filter(|e| matches!(e, CspEvent::Connected { .. })).count();
    assert_eq!(connections, 2);
    assert_eq!(values(&report, 1), vec![r#"local-config="a.cfg""#]);
}

#[test]
fn exs_fault_dropped_connection_reconnects_once_only() {
    let sim = fault_sim(vec![Fault::DropConnection]);
    let output = sim.tftp_manage(&["--query", "local-server", "--local-server", "127.0.0.9"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("reconnected after: connection closed"), "{stdout}");
    assert!(stdout.contains("local matrix server IP address: 127.0.0.9"), "{stdout}");

    let sim = fault_sim(vec![Fault::DropConnection, Fault::DropConnection]);
    let output = sim.tftp_manage(&["--query", "local-server"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("closed the connection 2 times while TFTP Manage (0x003a) seq 0 waited for its response"),
        "{stderr}"
    );
}

#[test]
fn exs_fault_alarm_before_the_answer_is_acknowledged() {
    let sim = fault_sim(vec![Fault::AlarmFirst]);
    let output = sim.tftp_manage(&["--query", "timestamp", "--timestamp", "0A0B", "--timeout", "5s"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("answered Alarm (0x00b9) seq 0 from the controller"), "{stdout}");
    assert!(stdout.contains("timestamp: 0A 0B"), "{stdout}");
    // The simulator got the acknowledgment (it answers only after it).
    let acknowledged = sim
        .events()
        .iter()
        .any(|e| matches!(e, CspEvent::HostAnswered { message, seq: 0 } if message == "Alarm (0x00b9)"));
    assert!(acknowledged, "{:#?}", sim.events());
}

#[test]
fn exs_polls_while_waiting_are_answered() {
    let sim = Sim::start(CspConfig {
        poll_interval: Some(Duration::from_millis(100)),
        answer_delay: Duration::from_millis(550),
        ..quiet_config()
    });
    let output = sim.tftp_manage(&["--query", "local-config", "--timeout", "5s"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for seq in 0..3 {
        assert!(stdout.contains(&format!("answered Poll (0x00ab) seq {seq} from the controller")), "{stdout}");
    }
    let answered = sim
        .events()
        .iter()
        .filter(|e| matches!(e, CspEvent::HostAnswered { message, .. } if message == "Poll (0x00ab)"))
        .count();
    assert!(answered >= 3, "{:#?}", sim.events());
}

#[test]
fn exs_errors_before_sending_and_without_a_controller() {
    let output =
        run_flashline(&["exs", "tftp-manage", "--host", "127.0.0.1", "--begin-download", "--local-config", "a.cfg"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("begin_download: begin_download needs local_config and local_server"), "{stderr}");
    let output = run_flashline(&["exs", "tftp-manage", "--host", "127.0.0.1", "--local-config", &"x".repeat(128)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("filename is 128 characters; the controller takes at most 127"));
    // A port nobody listens on (held closed until the end of the test).
    let closed = crate::util::ports::closed_tcp_port();
    let port = closed.port;
    let output =
        run_flashline(&["exs", "tftp-manage", "--host", "127.0.0.1", "--port", &port.to_string(), "--query", "all"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot connect to 127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn exs_decode_reads_the_page_traces() {
    let output = run_flashline(&["exs", "decode", "[00 09] [00 3A] 00 00 FF 01 01 01 00", "--from", "host"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("frame 1 (trace: no marker, no checksum)"), "{stdout}");
    assert!(stdout.contains("query local matrix configuration filename"), "{stdout}");

    let response = "[00 26] [00 3A] 00 00 FF [00 10] 01 01 01 [1B 63 3A 5C 74 66 74 70 62 6F 6F 74 5C 74 66 74 70 5F 6E 6F 5F 74 73 2E 63 66 67 00]";
    let output = run_flashline(&["exs", "decode", "--json", "--from", "controller", response]);
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let decoded = &json[0]["response"]["Ok"];
    assert_eq!(decoded["status"]["code"], "0x0010");
    assert_eq!(decoded["layout"], "no-more-status");
    assert_eq!(decoded["icbs"][0]["value"], r"c:\tftpboot\tftp_no_ts.cfg");

    // A wire capture with a wrong checksum: shown, and exit code 2.
    let output = run_flashline(&["exs", "decode", "FE 00 09 00 3A 00 00 FF 01 01 01 00 C5"]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout.contains("checksum      0xc5 wrong (expected 0xc4)"), "{stdout}");
    let output = run_flashline(&["exs", "decode", "00 09 00 3G"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("`3G` (at character 10) is not hex"));
}

fn write_config(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn exs_check_config_flags_each_rule_with_line_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let long = "p".repeat(128);
    let bad = write_config(
        dir.path(),
        "bad.cfg",
        &format!(
            "EXCPU_LOAD=loads/excpu.bin:SAVE_LOAD_FALSE\n\
             ONELC_LOAD loads/onelc.bin\n\
             ST1LC_LOAD={long}:SAVE_LOAD_FALSE\n\
             SE1LC_LOAD=se.bin:SAVE_LOAD_TRUE\n\
             SJ1LC_LOAD=sj.bin: SAVE_LOAD_FALSE\n\
             DS3_LOAD=ds3.bin:SAVE_LOAD_FALSE trailing\n\
             TIMESTAMP=\n\
             WIDGET_LOAD=w.bin:SAVE_LOAD_FALSE\n"
        ),
    );
    let output = run_flashline(&["exs", "check-config", bad.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    let file = bad.display().to_string();
    for (line, text, code) in [
        (1, "error: the matrix controller card EXCPU must be SAVE_LOAD_TRUE", Some("more status 0x10")),
        (2, "error: `ONELC_LOAD loads/onelc.bin` has no '='", Some("more status 0x0c")),
        (3, "error: the path is 128 characters; at most 127", Some("more status 0x0f")),
        (4, "error: SAVE_LOAD_TRUE is only valid for the matrix controller card (EXCPU)", None),
        (5, "error: space before the SAVE_LOAD label (none is allowed)", None),
        (6, "error: text after the SAVE_LOAD label (`SAVE_LOAD_FALSE trailing`): a comment must start with '", None),
        (7, "error: TIMESTAMP= has no value", Some("more status 0x0e")),
        (8, "warning: card label `WIDGET` is not one of the known labels", None),
    ] {
        let head = format!("{file}:{line}: {text}");
        let at = stdout.find(&head).unwrap_or_else(|| panic!("missing `{head}` in:\n{stdout}"));
        let next_problem =
            stdout[at + head.len()..].find(&format!("{file}:")).map_or(stdout.len(), |n| at + head.len() + n);
        let block = &stdout[at..next_problem];
        match code {
            Some(code) => assert!(block.contains(&format!("controller answers: status 0x0008, {code}")), "{block}"),
            None => assert!(!block.contains("controller answers"), "{block}"),
        }
    }
    assert!(stdout.contains(&format!("{file}: would be refused (7 errors, 1 warnings)")), "{stdout}");

    // Timestamp rules depend on the message.
    let good = write_config(dir.path(), "good.cfg", &format!("{GOOD_CONFIG}TIMESTAMP=20240131\n"));
    let output = run_flashline(&["exs", "check-config", good.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).0);
    assert!(text(&output).0.contains(": ok (2 loads, 0 warnings)"));
    let output = run_flashline(&["exs", "check-config", "--message-timestamp", "--json", good.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["accepted"], false);
    assert_eq!(json["problems"][0]["line"], 4);
    assert_eq!(json["problems"][0]["status"]["code"], "0x0001");
    let no_ts = write_config(dir.path(), "no_ts.cfg", GOOD_CONFIG);
    let output = run_flashline(&["exs", "check-config", "--no-message-timestamp", no_ts.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).0.contains("controller answers: status 0x0000 no timestamp"), "{}", text(&output).0);
    let output = run_flashline(&["exs", "check-config", dir.path().join("absent.cfg").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
}

/// `flashline sim csp` as a process; killed on drop.
struct SimProcess(Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn exs_sim_csp_subcommand_serves_a_query() {
    let mut command = flashline();
    let child = die_with_test(&mut command)
        .args(["sim", "csp", "--listen", "127.0.0.1:0", "--poll-interval", "0s", "--exit-after", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sim = SimProcess(child);
    let mut lines = BufReader::new(sim.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let address: SocketAddr = first.strip_prefix("listening on ").unwrap().parse().unwrap();
    assert!(address.ip().is_loopback());
    let port = address.port().to_string();
    let output = run_flashline(&[
        "exs",
        "tftp-manage",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--local-server",
        "127.0.0.7",
        "--query",
        "local-server",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("local matrix server IP address: 127.0.0.7"), "{stdout}");
    // The simulator printed what it did (bounded: at most 10 lines).
    let printed: Vec<String> =
        lines.by_ref().take(10).map_while(Result::ok).take_while(|l| !l.contains("closed")).collect();
    assert!(printed.iter().any(|l| l.contains("set local matrix server IP address = 127.0.0.7")), "{printed:?}");
}

#[test]
fn check_config_shows_escape_codes_in_the_file_instead_of_obeying_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hostile.cfg");
    // A line with no '=' is quoted in its problem: with the codes in it.
    std::fs::write(&file, "EXCPU_LOAD=loads/excpu.bin:SAVE_LOAD_TRUE\n\u{1b}[2J\u{1b}]0;pwned\u{7}\n").unwrap();
    let output = run_flashline(&["exs", "check-config", file.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stdout.contains("`\\u{1b}[2J\\u{1b}]0;pwned\\u{7}` has no '='"), "{stdout}");
    assert!(!stdout.contains('\u{1b}') && !stdout.contains('\u{7}'), "{stdout:?}");
}
