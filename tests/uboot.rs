//! `console_commands` against a real U-Boot (Debian's u-boot-qemu build,
//! under qemu-system-arm): firmware nobody here wrote, so what passes is
//! what U-Boot itself printed. The texts asserted are U-Boot's own, seen on
//! this build (docs/uboot.md).

use std::path::Path;

use crate::util::child::{FLASHLINE, LineChild};
use crate::util::uboot::{GUEST_MAC, QemuUboot, unavailable_reason};
use crate::util::{first_device, flashline, require};

/// A profile of one `console_commands` step with these commands (YAML, each
/// line indented for the list).
fn profile(dir: &Path, name: &str, options: &str, commands: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "format: 1\nname: {name}\nfamily: uboot\nsteps:\n  - console_commands:\n      stop_autoboot: 'Hit any key to stop autoboot'\n{options}      commands:\n{commands}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `flashline run PROFILE --port PTY --json` on the unit, which runs once
/// flashline holds its console (the first run) or is already at its prompt.
fn run_on(unit: &QemuUboot, profile: &Path, first: bool) -> (Option<i32>, serde_json::Value, String, String) {
    let mut command = flashline();
    command.arg("run").arg(profile).arg("--port").arg(&unit.pty).args(["--set", "ip=198.18.7.2", "--json"]);
    let child = LineChild::spawn(&mut command);
    if first {
        unit.run_once_held_by(child.id());
    }
    first_device(&child.finish_within(FLASHLINE))
}

#[test]
fn console_commands_stop_autoboot_and_read_values_from_a_real_u_boot() {
    if !require(unavailable_reason().is_none(), &unavailable_reason().unwrap_or_default()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let commands = [
        "        - send: printenv ethaddr",
        "          capture: { ethaddr: 'ethaddr=(\\S+)' }",
        "        - send: setenv ipaddr ${ip}",
        "        - send: printenv ipaddr",
        "          expect: '(?m)^ipaddr=${ip}$'",
        "        - send: crc32 0x40000000 0x100",
        "          capture: { crc: '==> ([0-9a-f]{8})' }",
        "",
    ]
    .join("\n");
    let path = profile(dir.path(), "uboot-read", "      check_status: true\n", &commands);
    let unit = QemuUboot::start();
    let (code, device, stdout, stderr) = run_on(&unit, &path, true);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let detail = device["steps"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("4 commands at `=>`"), "{detail}");
    assert!(detail.contains(&format!("ethaddr={GUEST_MAC}")), "U-Boot's own ethaddr: {detail}");
    // `family: uboot`: the report's MAC is the one `printenv` printed.
    assert_eq!(device["mac"], GUEST_MAC, "{device}");
    // The CRC-32 U-Boot computed over memory it holds: eight hex digits.
    let crc = detail.split("crc=").nth(1).unwrap_or_default();
    assert!(crc.len() >= 8 && crc[..8].chars().all(|c| c.is_ascii_hexdigit()), "{detail}");
}

#[test]
fn a_command_u_boot_refuses_fails_the_step_with_its_own_words_and_stops_there() {
    if !require(unavailable_reason().is_none(), &unavailable_reason().unwrap_or_default()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unknown = profile(dir.path(), "unknown", "", "        - send: foo\n        - send: setenv after_foo 1\n");
    let unit = QemuUboot::start();
    let (code, device, stdout, stderr) = run_on(&unit, &unknown, true);
    assert_eq!(code, Some(1), "an unknown command is the device's failure\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let error = device["error"].as_str().or(device["steps"][0]["detail"].as_str()).unwrap_or_default().to_string();
    let all = format!("{error}\n{stdout}\n{stderr}");
    assert!(all.contains("`foo` failed") && all.contains("Unknown command 'foo'"), "{all}");

    // The unit is still at its prompt: the next run reaches it without a
    // countdown, and the command after the failed one was never typed.
    let check = profile(
        dir.path(),
        "after",
        "      errors: []\n",
        "        - send: printenv after_foo\n          expect: 'not defined'\n",
    );
    let (code, _, stdout, stderr) = run_on(&unit, &check, false);
    assert_eq!(code, Some(0), "`setenv after_foo` must not have run\nstdout:\n{stdout}\nstderr:\n{stderr}");
}

#[test]
fn saveenv_failing_on_the_qemu_build_is_a_failure_by_its_text_and_by_its_exit_status() {
    if !require(unavailable_reason().is_none(), &unavailable_reason().unwrap_or_default()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // U-Boot prints `Failed (1)`: one of the default error shapes.
    let by_text = profile(dir.path(), "by-text", "", "        - send: saveenv\n          timeout: 30s\n");
    // With the error shapes off, `$?` still tells.
    let by_status = profile(
        dir.path(),
        "by-status",
        "      errors: []\n      check_status: true\n",
        "        - send: saveenv\n          timeout: 30s\n",
    );
    let unit = QemuUboot::start();
    for (path, first, wanted) in
        [(&by_text, true, "the console printed `Failed (1)`"), (&by_status, false, "exit status 1")]
    {
        let (code, _, stdout, stderr) = run_on(&unit, path, first);
        assert_eq!(code, Some(1), "{}\nstdout:\n{stdout}\nstderr:\n{stderr}", path.display());
        assert!(format!("{stdout}{stderr}").contains(wanted), "{wanted}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    }
}

/// CRC-32 as zlib computes it (and U-Boot's `crc32`): reflected, 0xEDB88320.
fn zlib_crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn an_image_sent_by_ymodem_after_loady_arrives_whole_by_u_boots_own_crc32() {
    if !require(unavailable_reason().is_none(), &unavailable_reason().unwrap_or_default()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image: Vec<u8> = (0..9000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.path().join("image.bin"), &image).unwrap();
    let crc = format!("{:08x}", zlib_crc32(&image));
    // `$${filesize}` reaches U-Boot as `${filesize}`: its own variable,
    // set by `loady` to the size it received.
    let text = [
        "format: 1",
        "name: uboot-load",
        "family: uboot",
        "steps:",
        "  - console_commands:",
        "      stop_autoboot: 'Hit any key to stop autoboot'",
        "      commands:",
        "        - send: setenv filesize",
        "  - load_image:",
        "      file: image.bin",
        "      protocol: ymodem",
        "      start_command: loady 0x40200000",
        "  - console_commands:",
        "      check_status: true",
        "      commands:",
        "        - send: printenv filesize",
        "          capture: { filesize: 'filesize=([0-9a-f]+)' }",
        "        - send: crc32 0x40200000 $${filesize}",
        &format!("          expect: '==> {crc}'"),
        "",
    ]
    .join("\n");
    let path = dir.path().join("uboot-load.yaml");
    std::fs::write(&path, text).unwrap();
    let unit = QemuUboot::start();
    let (code, device, stdout, stderr) = run_on(&unit, &path, true);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let detail = device["steps"][2]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&format!("filesize={:x}", image.len())), "U-Boot received every byte: {detail}");
}
