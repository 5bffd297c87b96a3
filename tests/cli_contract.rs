//! The command line's contract, checked through the binary: one exit code per
//! failure class whichever command meets the error, progress in `run`, and the
//! rough edges a new user found (each test failed before its fix).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use flashline::sim::netos_ftp::{Firmware, FtpBehaviour, FtpScenario, NetosFtp};

use crate::util::child::{Bounded, FLASHLINE, QUICK};
use crate::util::{flashline, have_program, repo_root, require, text};

/// A profile with one `load_image` step of `${rom_image}`.
const LOAD_ONLY: &str = "format: 1\nname: load-only\nvariables:\n  rom_image:\n    description: the image\nsteps:\n  - load_image:\n      file: ${rom_image}\n      protocol: xmodem\n";

fn run_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output: Output = flashline().current_dir(dir).args(args).output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    (output.status.code(), stdout, stderr)
}

/// A bootHdr image whose CRC no longer matches its payload.
fn bad_crc_image() -> Vec<u8> {
    let mut image = flashline::netos::boot_header::build(&[7u8; 3000], 0x0100_0000);
    image[100] ^= 0xFF;
    image
}

#[test]
fn the_standalone_command_and_run_give_the_same_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("load.yaml"), LOAD_ONLY).unwrap();
    std::fs::write(d.join("bad.bin"), bad_crc_image()).unwrap();
    std::fs::write(d.join("good.bin"), flashline::netos::boot_header::build(&[1u8; 100], 1)).unwrap();
    let no_port = "/dev/flashline-test-no-such-port";
    // (what, standalone command, the same error met by `run`, class exit code)
    let cases: [(&str, Vec<&str>, Vec<&str>, i32); 3] = [
        (
            "an image that fails its bootHdr CRC check is bad input",
            vec!["serial", "send", "bad.bin", "--port", no_port],
            vec!["run", "load.yaml", "--set", "rom_image=bad.bin", "--port", no_port],
            2,
        ),
        (
            "a port that does not exist is the environment",
            vec!["serial", "send", "good.bin", "--port", no_port],
            vec!["run", "load.yaml", "--set", "rom_image=good.bin", "--port", no_port],
            3,
        ),
        (
            "a journal that cannot be opened is the environment",
            vec!["batch", "inventory.csv", "--journal", "no-such-folder/journal.jsonl"],
            vec!["run", "load.yaml", "--set", "rom_image=good.bin", "--journal", "no-such-folder/journal.jsonl"],
            3,
        ),
    ];
    std::fs::write(d.join("inventory.csv"), "name,profile,rom_image\nunit-1,load.yaml,good.bin\n").unwrap();
    for (what, standalone, run, code) in cases {
        let (got, stdout, stderr) = run_in(d, &standalone);
        assert_eq!(got, Some(code), "{what}: {standalone:?}\n{stdout}\n{stderr}");
        let (got, stdout, stderr) = run_in(d, &run);
        assert_eq!(got, Some(code), "{what}: {run:?}\n{stdout}\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_shows_ftp_progress_and_step_outcomes_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let image: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(dir.path().join("image.bin"), &image).unwrap();
    let profile = dir.path().join("ftp-only.yaml");
    std::fs::write(
        &profile,
        "format: 1\nname: ftp-only\nnetwork:\n  dhcp: false\n  ip: ${ip}\nsteps:\n  - wait_for_network:\n      icmp: false\n      method: connect\n      ports: [{port: 2121}]\n      timeout: 3s\n  - ftp_upload:\n      port: 2121\n      credentials:\n        - {user: root, password: Netsilicon}\n      files: [{local: image.bin}]\n",
    )
    .unwrap();
    let ip = Ipv4Addr::new(127, 0, 0, 61);
    let behaviour = FtpBehaviour {
        firmware: Firmware::Netos6,
        scenario: FtpScenario::Normal,
        reset_delay: Duration::from_millis(200),
        boot_time: Duration::from_millis(300),
        max_sessions: 2,
        no_pasv: false,
    };
    let _device = NetosFtp::start(SocketAddr::from((ip, 2121)), behaviour, dir.path());
    let args: Vec<String> =
        ["run", profile.to_str().unwrap(), "--set", &format!("ip={ip}")].iter().map(|s| s.to_string()).collect();
    let (code, stdout, stderr) = crate::util::run_flashline_async(args).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    // stderr is a pipe here: plain lines, one per milestone of the upload.
    assert!(stderr.contains("device: sending image.bin (300000 bytes)"), "{stderr}");
    assert!(stderr.contains("device: sent image.bin: 300000 bytes in"), "{stderr}");
    assert!(stderr.contains("device: image.bin: verified"), "{stderr}");
    assert!(stderr.contains("device: ftp_upload passed ("), "{stderr}");
    assert!(!stderr.contains("Passed") && !stderr.contains("Skipped"), "debug names: {stderr}");
}

#[test]
fn a_failed_run_prints_each_problem_once_on_its_own_line_naming_the_values_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("net.yaml"),
        "format: 1\nname: net\nnetwork:\n  dhcp: false\n  ip: ${ip}\n  mask: ${mask}\nsteps:\n  - wait_for_network:\n      icmp: false\n      method: connect\n      ports: [{port: 2121}]\n      timeout: 1s\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run_in(d, &["run", "net.yaml", "--set", "ip=10.0.0.300", "--set", "mask=255.0.255.0"]);
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    let ip_problem = "net.yaml:5:7: error: network.ip:";
    let mask_problem = "net.yaml:6:9: error: network.mask:";
    for problem in [ip_problem, mask_problem] {
        assert_eq!(
            stderr.matches(problem).count() + stdout.matches(problem).count(),
            1,
            "{problem}:\n{stdout}\n{stderr}"
        );
    }
    assert!(!stderr.contains("; ") && !stdout.contains("; "), "problems joined on one line:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("is not an IPv4 address (after filling in `ip` from the command line (--set))"),
        "{stderr}"
    );
    assert!(stdout.contains("2 problem(s) with this device's values"), "the table keeps a short detail:\n{stdout}");

    // A value from an inventory row names that row. (The inventory checks
    // its own ip column; a profile variable of another name is checked once
    // filled in.)
    std::fs::write(
        d.join("net2.yaml"),
        "format: 1\nname: net2\nvariables:\n  addr:\n    description: the address\nnetwork:\n  dhcp: false\n  ip: ${addr}\nsteps:\n  - wait_for_network:\n      icmp: false\n      method: connect\n      ports: [{port: 2121}]\n      timeout: 1s\n",
    )
    .unwrap();
    std::fs::write(d.join("line.csv"), "name,addr\nunit-1,10.0.0.300\n").unwrap();
    let (code, _, stderr) = run_in(d, &["run", "net2.yaml", "--inventory", "line.csv", "--device", "unit-1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("(after filling in `addr` from line.csv:2)"), "{stderr}");
}

#[test]
fn a_path_typed_with_set_starts_from_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::write(profiles.join("load.yaml"), LOAD_ONLY).unwrap();
    std::fs::write(dir.path().join("rom.bin"), [0u8; 64]).unwrap();
    let no_port = "/dev/flashline-test-no-such-port";
    // rom.bin is in the current directory, not in profiles/: the run gets as
    // far as the port (environment, 3), not "file does not exist" (input, 2).
    let (code, stdout, stderr) =
        run_in(dir.path(), &["run", "profiles/load.yaml", "--set", "rom_image=rom.bin", "--port", no_port]);
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("does not exist") && stdout.contains(no_port), "{stdout}");

    // A path in an inventory starts from the inventory's folder.
    let line = dir.path().join("line");
    std::fs::create_dir(&line).unwrap();
    std::fs::write(line.join("unit.bin"), [0u8; 64]).unwrap();
    std::fs::write(
        line.join("line.csv"),
        format!("name,profile,rom_image,port\nu1,../profiles/load.yaml,unit.bin,{no_port}\n"),
    )
    .unwrap();
    let (code, stdout, stderr) = run_in(dir.path(), &["batch", "line/line.csv"]);
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
}

#[test]
fn serial_dialog_asks_only_for_the_variables_of_its_step() {
    // The dialog needs ip, mask, gateway and the root password: not the image
    // paths of load_image, not the FTP password of ftp_upload. It gets as far
    // as the port (3), not to missing variables (2).
    let profile = repo_root().join("profiles/sim-netos.yaml");
    let output = flashline()
        .args(["serial", "dialog", "--port", "/dev/flashline-test-no-such-port", "--profile"])
        .arg(&profile)
        .args(["--set", "ip=10.0.0.5", "--set", "mask=255.255.255.0", "--set", "gateway=10.0.0.1"])
        .env("FLASHLINE_SIM_ROOT_PASSWORD", "Netsilicon")
        .env_remove("FLASHLINE_SIM_FTP_PASSWORD")
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!stderr.contains("rom_image") && !stderr.contains("FTP_PASSWORD"), "{stderr}");
}

#[test]
fn the_demo_shows_no_simulator_server_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let output = flashline()
        .args(["demo", "--devices", "4", "--jobs", "4", "--report", report.to_str().unwrap()])
        .output_within(FLASHLINE);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("WARN"), "simulator logs at the user's level:\n{stderr}");
}

/// The text a shell's completion script must hold: its own registration
/// form, and the subcommands by name.
const COMPLETIONS: [(&str, &str); 5] = [
    ("bash", "complete -F _flashline"),
    ("zsh", "#compdef flashline"),
    ("fish", "complete -c flashline"),
    ("elvish", "edit:completion:arg-completer[flashline]"),
    ("powershell", "Register-ArgumentCompleter -Native -CommandName 'flashline'"),
];

#[test]
fn completions_for_every_shell_and_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, registration) in COMPLETIONS {
        let output = flashline().args(["completions", shell]).output_within(FLASHLINE);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{shell}: {stderr}");
        assert!(stdout.contains(registration), "{shell}: no `{registration}` in:\n{stdout}");
        for subcommand in ["diagnose", "batch", "station", "completions"] {
            assert!(stdout.contains(subcommand), "{shell}: `{subcommand}` is not completed:\n{stdout}");
        }
        let script = dir.path().join(format!("flashline.{shell}"));
        std::fs::write(&script, &stdout).unwrap();
        // The shell itself reads the script without running it, where it is here.
        let check: Option<(&str, &[&str])> = match shell {
            "bash" => Some(("bash", &["-n"])),
            "zsh" => Some(("zsh", &["-n"])),
            "fish" => Some(("fish", &["--no-execute"])),
            _ => None,
        };
        if let Some((program, args)) = check {
            if shell != "bash" && !have_program(program) {
                eprintln!("{shell}: syntax not checked ({program} is not installed)");
                continue;
            }
            let output = std::process::Command::new(program).args(args).arg(&script).output_within(QUICK);
            assert!(
                output.status.success(),
                "{program} rejects the script: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    let output = flashline().args(["manpage"]).arg(dir.path()).output_within(FLASHLINE);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let page = dir.path().join("flashline.1");
    assert!(std::fs::read_to_string(&page).unwrap().contains(".TH flashline 1"));
    let run_page: PathBuf = dir.path().join("flashline-run.1");
    assert!(std::fs::read_to_string(&run_page).unwrap().contains("\\-\\-resume"));
    // Rendered as `man` would, with every groff warning on: none may appear.
    if !require(have_program("groff"), "groff (Debian package groff-base) renders the man pages") {
        return;
    }
    for (page, wanted) in [(&page, "NAME flashline - Provision"), (&run_page, "--resume")] {
        let output = std::process::Command::new("groff")
            // Plain text: no escape sequences, no overstrike for bold and underline.
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .arg(page)
            .output_within(QUICK);
        let (rendered, warnings) = text(&output);
        assert!(output.status.success() && warnings.is_empty(), "{}: {warnings}", page.display());
        // One space between words (groff justifies lines) and ASCII hyphens.
        let rendered = rendered.replace(['\u{2010}', '\u{2212}'], "-").split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(rendered.contains("NAME") && rendered.contains("SYNOPSIS"), "{rendered}");
        assert!(rendered.contains(wanted), "{}: no `{wanted}` in:\n{rendered}", page.display());
    }
}

/// Every `--json` command fails with the same object on stdout (`ok`,
/// `class`, `error`, and `help` / `finding` when the error has them), its
/// class the one the exit code gives, while the human lines still go to
/// stderr for whoever watches the script.
#[test]
fn every_json_command_fails_with_one_error_object_whose_class_matches_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("rom.bin"), b"not flashed").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let db = d.join("units.sqlite");
    let db = db.to_str().unwrap();
    // (what, arguments, exit code, class, a key the object must have beyond the three)
    type Case<'a> = (&'a str, Vec<&'a str>, i32, &'a str, Option<&'a str>);
    let cases: [Case; 3] = [
        ("a MAC that is no MAC", vec!["units", "show", "zz", "--db", db, "--json"], 2, "input", None),
        (
            "an FTP server that is not there, with the network's finding",
            vec!["ftp", "put", "rom.bin", "--host", "127.0.0.1", "--port", &closed_port, "--json"],
            1,
            "device",
            Some("finding"),
        ),
        (
            "a controller that is not there, with the command's help",
            vec![
                "exs",
                "tftp-manage",
                "--host",
                "127.0.0.1",
                "--port",
                &closed_port,
                "--query",
                "load-filename",
                "--load",
                "1",
                "--json",
            ],
            1,
            "device",
            Some("help"),
        ),
    ];
    for (what, args, code, class, extra) in cases {
        let (status, stdout, stderr) = run_in(d, &args);
        assert_eq!(status, Some(code), "{what}: exit code\n{stderr}");
        let line = stdout.lines().last().unwrap_or_else(|| panic!("{what}: nothing on stdout\n{stderr}"));
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {line}"));
        assert_eq!(object["ok"], false, "{what}: {object}");
        assert_eq!(object["class"], class, "{what}: {object}");
        let error = object["error"].as_str().unwrap_or_else(|| panic!("{what}: no error text: {object}"));
        assert!(stderr.contains(&format!("error: {error}")), "{what}: stderr lacks the same line:\n{stderr}");
        if let Some(key) = extra {
            assert!(!object[key].is_null(), "{what}: no `{key}`: {object}");
        }
    }
}
