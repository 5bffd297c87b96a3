//! README's EXS promises that had no test: `exs tftp-manage --config-file`
//! checks a local copy before anything is sent, and every `sim csp` switch
//! (`--fault ...`, `--trace-layout`, `--answer-delay`,
//! `--adjacent-timestamp`) works from the command line. The simulator runs as
//! its own process (`flashline sim csp`), and what it prints (one line per
//! event, in order) is the record of what it received.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::child::die_with_test;
use crate::util::{flashline, run_flashline, text};

/// `flashline sim csp --listen 127.0.0.1:0 ARGS`; its event lines; killed on drop.
struct SimCsp {
    child: Child,
    port: String,
    lines: mpsc::Receiver<String>,
}

impl SimCsp {
    fn start(extra: &[&str]) -> SimCsp {
        let mut command = flashline();
        let mut child = die_with_test(&mut command)
            .args(["sim", "csp", "--listen", "127.0.0.1:0", "--poll-interval", "0s", "--exit-after", "60s"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(30)).expect("sim csp prints its address");
        let address = first.strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {first}"));
        let port = address.rsplit(':').next().unwrap().to_string();
        SimCsp { child, port, lines }
    }

    /// `flashline exs tftp-manage --host 127.0.0.1 --port P ARGS`.
    fn tftp_manage(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut all = vec!["exs", "tftp-manage", "--host", "127.0.0.1", "--port", &self.port];
        all.extend_from_slice(args);
        let output = run_flashline(&all);
        let (stdout, stderr) = text(&output);
        (output.status.code(), stdout, stderr)
    }

    /// The simulator's event lines up to and including the first that
    /// satisfies `last` (at most 10 s); fails with the lines seen.
    fn events_until(&self, last: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let done = last(&line);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("sim csp printed no such line within 10 s; it printed: {seen:#?}")
    }
}

impl Drop for SimCsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const GOOD_CONFIG: &str =
    "' CSP load for line 3\nEXCPU_LOAD=loads/excpu.bin:SAVE_LOAD_TRUE\nONELC_LOAD=loads/onelc.bin:SAVE_LOAD_FALSE\n";

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn exs_config_file_is_checked_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.cfg", "EXCPU_LOAD=loads/excpu.bin:SAVE_LOAD_TRUE\nONELC_LOAD loads/onelc.bin\n");
    let good = write(dir.path(), "good.cfg", GOOD_CONFIG);
    let sim = SimCsp::start(&[]);
    let settings = ["--local-config", "bad.cfg", "--local-server", "127.0.0.5", "--timestamp", "20240131"];

    let mut args = settings.to_vec();
    args.extend(["--config-file", &bad]);
    let (code, stdout, stderr) = sim.tftp_manage(&args);
    assert_eq!(code, Some(2), "a refused configuration file is bad input:\n{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("configuration file {bad} would be refused")), "{stderr}");
    assert!(stderr.contains("has no '='"), "the first problem is named: {stderr}");

    // The good copy goes through. The simulator's first event after it
    // started is this run's connection: the refused run sent nothing.
    let mut args = settings.to_vec();
    args[1] = "good.cfg";
    args.extend(["--config-file", &good]);
    let (code, stdout, stderr) = sim.tftp_manage(&args);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let events = sim.events_until(|l| l.starts_with("answered seq 0"));
    assert!(events[0].starts_with("host connected from 127.0.0.1:"), "{events:#?}");
    let requests: Vec<&String> = events.iter().filter(|l| l.starts_with("TFTP Manage seq")).collect();
    assert_eq!(requests.len(), 1, "{events:#?}");
    assert!(requests[0].contains("good.cfg") && !requests[0].contains("bad.cfg"), "{events:#?}");

    // A copy that cannot be read is the environment's fault.
    let mut args = settings.to_vec();
    let absent = dir.path().join("absent.cfg");
    args.extend(["--config-file", absent.to_str().unwrap()]);
    let (code, stdout, stderr) = sim.tftp_manage(&args);
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
}

#[test]
fn sim_csp_faults_from_the_command_line() {
    // (fault, tftp-manage's exit code, what tftp-manage says, where)
    let cases: [(&[&str], i32, &str, bool); 6] = [
        (&["--fault", "bad-checksum"], 1, "bad checksum in TFTP Manage (0x003a) seq 0", false),
        (&["--fault", "wrong-sequence"], 1, "received instead: TFTP Manage (0x003a) seq 1", false),
        (&["--fault", "truncated"], 0, "reconnected after: connection closed after", true),
        (&["--fault", "drop-connection"], 0, "reconnected after: connection closed", true),
        (
            &["--fault", "alarm-first", "--alarm-wait", "2s"],
            0,
            "answered Alarm (0x00b9) seq 0 from the controller",
            true,
        ),
        // Repeatable, one per answer: dropped twice is more than the one reconnect.
        (
            &["--fault", "drop-connection", "--fault", "drop-connection"],
            1,
            "closed the connection 2 times while TFTP Manage (0x003a) seq 0 waited for its response",
            false,
        ),
    ];
    for (flags, code, said, on_stdout) in cases {
        let sim = SimCsp::start(flags);
        let (exit, stdout, stderr) = sim.tftp_manage(&["--query", "local-config", "--timeout", "2s"]);
        assert_eq!(exit, Some(code), "{flags:?}:\n{stdout}\n{stderr}");
        let where_ = if on_stdout { &stdout } else { &stderr };
        assert!(where_.contains(said), "{flags:?}: expected `{said}` in:\n{stdout}\n{stderr}");
        // The simulator says which fault it injected.
        let fault = flags[1].replace('-', "");
        let events = sim.events_until(|l| l.starts_with("fault "));
        assert!(events.last().unwrap().to_lowercase().starts_with(&format!("fault {fault} injected")), "{events:#?}");
    }
    // An unknown fault is refused by the simulator itself.
    let output =
        run_flashline(&["sim", "csp", "--listen", "127.0.0.1:0", "--fault", "melt-down", "--exit-after", "1s"]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    assert!(text(&output).1.contains("melt-down"), "{:?}", text(&output));
}

#[test]
fn sim_csp_trace_layout_and_answer_delay_from_the_command_line() {
    let sim = SimCsp::start(&["--trace-layout"]);
    let (code, stdout, stderr) = sim.tftp_manage(&["--local-config", "a.cfg", "--query", "local-config"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("more status  (none in this layout)"), "{stdout}");
    assert!(stdout.contains("layout       trace layout (no More Status)"), "{stdout}");
    drop(sim);

    let sim = SimCsp::start(&["--answer-delay", "1500ms"]);
    // Within the wait per answer: answered, and not before the delay.
    let started = Instant::now();
    let (code, stdout, stderr) = sim.tftp_manage(&["--query", "local-config", "--timeout", "5s"]);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(took >= Duration::from_millis(1500), "answered after {took:?}");
    // Longer than the wait: no answer.
    let (code, stdout, stderr) = sim.tftp_manage(&["--query", "local-config", "--timeout", "500ms"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("no response to TFTP Manage (0x003a) seq 0"), "{stderr}");
}

#[test]
fn sim_csp_adjacent_timestamp_from_the_command_line() {
    // The controller fetches the file from flashline's own TFTP server.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "csp_load.cfg", GOOD_CONFIG);
    let tftp_port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let sim = SimCsp::start(&["--tftp-port", &tftp_port, "--tftp-timeout", "300ms", "--adjacent-timestamp", "2025"]);
    let download = |timestamp: &str| {
        sim.tftp_manage(&[
            "--local-config",
            "csp_load.cfg",
            "--local-server",
            "127.0.0.1",
            "--begin-download",
            "--timestamp",
            timestamp,
            "--serve",
            dir.path().to_str().unwrap(),
            "--serve-port",
            &tftp_port,
        ])
    };
    // Older than the adjacent controller's load: status 0x0002.
    let (code, stdout, stderr) = download("2024");
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("status       0x0002"), "{stdout}");
    // Equal: status 0x0003.
    let (code, stdout, stderr) = download("2025");
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("status       0x0003"), "{stdout}");
    // Newer: accepted.
    let (code, stdout, stderr) = download("2026");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("status       0x0010 positive acknowledgment"), "{stdout}");
    // A timestamp that is not hex is refused by the simulator.
    let output = run_flashline(&["sim", "csp", "--listen", "127.0.0.1:0", "--adjacent-timestamp", "zz"]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    assert!(text(&output).1.contains("--adjacent-timestamp"), "{:?}", text(&output));
}
