//! The console dialog of issue 11: the shipped Digi profile, unedited,
//! against the NET+OS simulator in each firmware and after-save variant;
//! refused answers, unknown prompts; and the line endings CR, LF and CR LF
//! against consoles that end a line on CR or on LF.

use std::path::Path;
use std::time::Duration;

use flashline::pipeline::steps::configure_network as steps;
use flashline::profile::{
    self, CheckOptions, ConfigureNetwork, DeviceValues, LineEnding, ResolveMode, Step, ValueSource,
};
use flashline::progress::Silent;
use flashline::serial::console::Console;
use flashline::sim::netos::{AfterSave, Firmware, LineEnd, NetosConfig, NetosDevice, NvMemory};

use crate::serial::{Simulator, dialog, start_simulator};

fn digi_profile() -> std::path::PathBuf {
    crate::util::repo_root().join("profiles/digi-connectme-9210.yaml")
}

fn nv(sim: &Simulator) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(&sim.nv).expect("NV memory written")).unwrap()
}

/// NV memory after the dialog: the address set, everything else as it was.
fn assert_only_the_address_changed(nv: &serde_json::Value, what: &str) {
    assert_eq!(nv["dhcp"], false, "{what}: {nv}");
    assert_eq!(nv["ip"], "10.0.0.5", "{what}");
    assert_eq!(nv["mask"], "255.255.255.0", "{what}");
    assert_eq!(nv["gateway"], "10.0.0.1", "{what}");
    let factory = serde_json::to_value(NvMemory::default()).unwrap();
    for key in ["baud", "serial_number", "mac", "wait_seconds", "duplex", "root_password"] {
        assert_eq!(nv[key], factory[key], "{what}: {key} changed: {nv}");
    }
}

fn run_digi(sim: &Simulator, profile: &Path, transcript: &Path) -> (Option<i32>, String, String) {
    let output = dialog(sim, profile, "unused", &["--transcript", transcript.to_str().unwrap()]);
    let (stdout, stderr) = crate::util::text(&output);
    (output.status.code(), stdout, stderr)
}

#[test]
fn digi_profile_unedited_completes_the_dialog_on_every_firmware() {
    for firmware in Firmware::ALL {
        let sim = start_simulator(&["--key-window", "3s", "--cycle", "3s", "--firmware", firmware.name()]);
        let transcript = sim._dir.path().join("transcript.txt");
        let (code, stdout, stderr) = run_digi(&sim, &digi_profile(), &transcript);
        assert_eq!(code, Some(0), "firmware {firmware}: {stdout}\n{stderr}");
        assert_only_the_address_changed(&nv(&sim), &format!("firmware {firmware}"));
        let space = if firmware.guide_wording() { " " } else { "" };
        let kept = format!(
            "kept defaults: Would you like to update the Root Password? [N], \
             Set the baud rate of Serial channels [9600]?, Set the board's serial number{space}[N99999999]?, \
             Set the board's Ethernet MAC Address [00:40:9D:31:41:59]?, \
             How long (in seconds) should CPU delay before starting up [5]?, \
             What duplex setting should be used in this case (Full or Half)? [Full Duplex]; \
             accepted the settings after saving"
        );
        assert!(stdout.contains(&kept), "firmware {firmware}: {stdout}");
        let transcript = std::fs::read_to_string(&transcript).unwrap();
        assert!(transcript.contains("# keeping the default of `Set the baud rate of Serial channels [9600]?`"));
        assert!(!transcript.contains("Netsilicon") && !transcript.contains("> password"), "{transcript}");
        // 6.x refuses 7.x's factory password first; the second candidate is its own.
        let refused = transcript.matches("Invalid ***.").count();
        assert_eq!(refused, usize::from(firmware == Firmware::Netos6), "firmware {firmware}: {transcript}");
    }
}

#[test]
fn digi_profile_handles_a_device_that_resets_or_goes_on_after_saving() {
    for after in ["reset", "continue"] {
        let sim = start_simulator(&["--key-window", "3s", "--cycle", "3s", "--after-save", after]);
        let transcript = sim._dir.path().join("transcript.txt");
        let (code, stdout, stderr) = run_digi(&sim, &digi_profile(), &transcript);
        assert_eq!(code, Some(0), "{after}: {stdout}\n{stderr}");
        assert!(!stdout.contains("accepted the settings after saving"), "{after}: {stdout}");
        assert_only_the_address_changed(&nv(&sim), after);
        let transcript = std::fs::read_to_string(&transcript).unwrap();
        // Nothing is sent after saving: a key in a new boot's window would
        // open the dialog again.
        let after_save = transcript.split("Saving the changes in NV memory").nth(1).unwrap_or_default();
        assert!(!after_save.contains("] > "), "{after}: sent after saving: {after_save}");
    }
}

/// The Digi profile with a wrong mask typed in, and `reject` as given.
fn wrong_mask_profile(dir: &Path, rejects: &str) -> std::path::PathBuf {
    let original = std::fs::read_to_string(digi_profile()).unwrap();
    let edited = original
        .replace("send: ${mask}", "send: 255.0.255.0")
        .replace("      reject:\n        - (?i)invalid\n        - not a valid\n", &format!("      reject:{rejects}\n"));
    assert_ne!(edited, original);
    let profile = dir.join("wrong-mask.yaml");
    std::fs::write(&profile, edited).unwrap();
    profile
}

#[test]
fn a_wrong_mask_fails_with_the_device_line_and_is_never_answered_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // (refusal wording, reject patterns, what the error says)
        (
            "invalid",
            "\n        - (?i)invalid",
            "the device rejected the answer `255.0.255.0` to `Subnet mask +\\[`: it printed \
             `Invalid subnet mask, please try again.`",
        ),
        (
            "psos",
            "\n        - not a valid",
            "the device rejected the answer `255.0.255.0` to `Subnet mask +\\[`: it printed \
             `That is not a valid subnet mask`",
        ),
        // No reject pattern matches: the question asked again is the refusal.
        (
            "psos",
            " []",
            "the device asked `Subnet mask +\\[` again after the answer `255.0.255.0`: it printed \
             `That is not a valid subnet mask`",
        ),
    ];
    for (refusal, rejects, want) in cases {
        let sim = start_simulator(&["--key-window", "3s", "--cycle", "3s", "--refusal", refusal]);
        let transcript = sim._dir.path().join("transcript.txt");
        let (code, stdout, stderr) = run_digi(&sim, &wrong_mask_profile(dir.path(), rejects), &transcript);
        assert_eq!(code, Some(1), "{refusal}: {stdout}\n{stderr}");
        assert!(stderr.contains(want), "{refusal} {rejects:?}: {stderr}");
        let transcript = std::fs::read_to_string(&transcript).unwrap();
        assert_eq!(transcript.matches("> 255.0.255.0").count(), 1, "answered once: {transcript}");
        assert!(!sim.nv.exists(), "{refusal}: nothing saved");
    }
}

#[test]
fn an_unknown_prompt_without_a_default_fails_naming_it() {
    let sim = start_simulator(&["--key-window", "3s", "--cycle", "3s"]);
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(digi_profile()).unwrap();
    let start = original.find("        - expect: Enter the root password").unwrap();
    let end = original.find("        - expect: Reset configuration").unwrap();
    let profile = dir.path().join("no-password.yaml");
    std::fs::write(&profile, format!("{}{}", &original[..start], &original[end..])).unwrap();
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = run_digi(&sim, &profile, &dir.path().join("transcript.txt"));
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "the device asks `Enter the root password:`, which the profile does not answer and which offers no \
             default to keep"
        ),
        "{stderr}"
    );
    // Named once the console is quiet, well before the step's 20 s timeout.
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(!sim.nv.exists());
}

/// The Digi profile's `configure_network` step, resolved for 10.0.0.5/24.
fn digi_step(line_ending: LineEnding, timeout: Duration) -> ConfigureNetwork {
    let loaded = profile::load(&digi_profile(), CheckOptions::default()).expect("the shipped profile loads");
    let mut values = DeviceValues::new();
    for (name, value) in [("ip", "10.0.0.5"), ("mask", "255.255.255.0"), ("gateway", "10.0.0.1")] {
        values.insert(name, value, ValueSource::CommandLine);
    }
    let index = loaded.profile.steps.iter().position(|s| matches!(s, Step::ConfigureNetwork(_))).unwrap();
    let resolved = profile::resolve_step(&loaded, &values, ResolveMode::Use, index).expect("resolves");
    let Step::ConfigureNetwork(mut step) = resolved.steps[index].clone() else { unreachable!() };
    step.line_ending = line_ending;
    step.timeout = flashline::profile::HumanDuration(timeout);
    step
}

/// Runs the Digi dialog against an in-process simulated console that ends
/// lines as `line_end` says; the step's result and the device's NV memory.
async fn dialog_in_process(
    line_ending: LineEnding,
    line_end: LineEnd,
) -> (Result<steps::DialogOutcome, String>, NvMemory) {
    let (ours, theirs) = tokio::io::duplex(4096);
    let device = NetosDevice::new(NetosConfig {
        key_window: Duration::from_secs(5),
        line_end,
        after_save: AfterSave::Ask,
        answer_timeout: Duration::from_secs(5),
        ..NetosConfig::default()
    });
    let state = device.state();
    let running = tokio::spawn(device.run(theirs));
    let mut console = Console::new(ours);
    let step = digi_step(line_ending, Duration::from_secs(3));
    let result = tokio::time::timeout(Duration::from_secs(30), steps::converse(&mut console, &step, &Silent))
        .await
        .expect("the dialog ends within its own timeouts")
        .map_err(|e| e.to_string());
    running.abort();
    let nv = state.lock().unwrap().nv.clone();
    (result, nv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialog_line_endings_cr_lf_crlf_against_consoles_ending_lines_on_cr_or_lf() {
    use LineEnd::{Any, Cr, Lf};
    use LineEnding::{Cr as SendCr, CrLf as SendCrLf, Lf as SendLf};
    // (what we send, what ends a line at the console, whether it can work)
    let cases = [
        (SendCr, Cr, true),
        (SendCr, Lf, false),
        (SendCr, Any, true),
        (SendLf, Cr, false),
        (SendLf, Lf, true),
        (SendLf, Any, true),
        (SendCrLf, Cr, true),
        (SendCrLf, Lf, true),
        // The LF of CR LF must not answer the next prompt (an empty answer
        // would keep 0.0.0.0 and shift every later answer by one prompt).
        (SendCrLf, Any, true),
    ];
    for (ending, console_end, works) in cases {
        let (result, nv) = dialog_in_process(ending, console_end).await;
        let what = format!("{ending:?} to a console ending lines on {console_end:?}");
        if works {
            let outcome = result.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(outcome.kept_defaults.len(), 6, "{what}: {outcome:?}");
            let want = NvMemory {
                dhcp: false,
                ip: "10.0.0.5".parse().unwrap(),
                mask: "255.255.255.0".parse().unwrap(),
                gateway: "10.0.0.1".parse().unwrap(),
                ..NvMemory::default()
            };
            assert_eq!(nv, want, "{what}");
        } else {
            // The console never sees the end of the password: a timeout
            // that quotes the masked echo, and nothing saved.
            let error = result.expect_err(&what);
            assert!(error.contains("timed out after 3s waiting for"), "{what}: {error}");
            assert_eq!(nv, NvMemory::default(), "{what}");
        }
    }
}
